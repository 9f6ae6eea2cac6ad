//! The visitor framework: every value is read through [`Any`], which accepts whatever JSON type
//! arrives and hands it to the [`Expect`] implementation for the expected shape. A wrong type is
//! reported as [`Lenient::Bad`] after the value is consumed, so the parser stays in step and
//! decoding goes on; only real syntax errors end the parse.
//!
//! Each expected shape overrides the JSON types it accepts; everything else falls back to
//! "wrong type" (containers are drained with `IgnoredAny`, which serde_json walks without
//! recursion). Hand-written readers use [`take`], which records the first [`Problem`]; serde
//! derives use [`read`], which reads a wrong value as absent.

use crate::model::Reason;
use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The outcome of reading one value leniently.
#[derive(Debug)]
pub(crate) enum Lenient<T> {
    /// `null`: treated as if the key were missing.
    Absent,
    Value(T),
    /// The value had the wrong type or an unusable value (already consumed).
    Bad(Found),
}

/// What was found where something else was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    Bool,
    Number,
    Text,
    Object,
    Array,
    /// A string where a number was expected, that does not parse as one.
    NotNumeric,
    /// `NaN` or an infinity (only reachable through numeric strings; JSON has no such literal).
    NonFinite,
    /// A number outside the field's range (a negative size, a fractional count, status 1000).
    OutOfRange,
}

impl Found {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Found::Bool => "a boolean",
            Found::Number => "a number",
            Found::Text => "a string",
            Found::Object => "an object",
            Found::Array => "an array",
            Found::NotNumeric => "a string that is not a number",
            Found::NonFinite => "a non-finite number",
            Found::OutOfRange => "a number out of range",
        }
    }

    /// Low-cardinality reason token for the `items_rejected` counter.
    pub(crate) fn reason(self) -> Reason {
        match self {
            Found::NonFinite => Reason::InvalidNumber,
            _ => Reason::InvalidField,
        }
    }
}

/// A field whose value could not be used: which field, what it should be, what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Enclosing key for nested objects (`nav` for `nav.fetchStart`).
    pub(crate) within: Option<&'static str>,
    pub(crate) field: &'static str,
    pub(crate) expected: &'static str,
    pub(crate) found: Found,
}

impl Problem {
    /// The same problem, seen from the object that holds `outer`.
    pub(crate) fn within(self, outer: &'static str) -> Self {
        Self {
            within: Some(outer),
            ..self
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.within {
            Some(outer) => write!(f, "`{outer}.{}`", self.field)?,
            None => write!(f, "`{}`", self.field)?,
        }
        write!(
            f,
            " must be {}, got {}",
            self.expected,
            self.found.describe()
        )
    }
}

/// One expected JSON shape. Each method handles one JSON type; the defaults report the type as
/// wrong (draining containers), so an implementation overrides only what it accepts.
pub(crate) trait Expect<'de>: Sized {
    type Out;
    /// How the expected value is described in rejection details ("a number").
    const EXPECTED: &'static str;

    fn boolean(self, _v: bool) -> Lenient<Self::Out> {
        Lenient::Bad(Found::Bool)
    }
    fn int(self, v: i64) -> Lenient<Self::Out> {
        self.float(v as f64)
    }
    fn float(self, _v: f64) -> Lenient<Self::Out> {
        Lenient::Bad(Found::Number)
    }
    fn text(self, _v: Cow<'de, str>) -> Lenient<Self::Out> {
        Lenient::Bad(Found::Text)
    }
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Self::Out>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient::Bad(Found::Object))
    }
    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<Self::Out>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient::Bad(Found::Array))
    }
}

/// Reads any JSON value and hands it to the [`Expect`] implementation for its type.
pub(crate) struct Any<E>(pub(crate) E);

impl<'de, E: Expect<'de>> DeserializeSeed<'de> for Any<E> {
    type Value = Lenient<E::Out>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E: Expect<'de>> Visitor<'de> for Any<E> {
    type Value = Lenient<E::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(E::EXPECTED)
    }
    fn visit_bool<Er>(self, v: bool) -> Result<Self::Value, Er> {
        Ok(self.0.boolean(v))
    }
    fn visit_i64<Er>(self, v: i64) -> Result<Self::Value, Er> {
        Ok(self.0.int(v))
    }
    fn visit_u64<Er>(self, v: u64) -> Result<Self::Value, Er> {
        Ok(match i64::try_from(v) {
            Ok(i) => self.0.int(i),
            Err(_) => self.0.float(v as f64),
        })
    }
    fn visit_f64<Er>(self, v: f64) -> Result<Self::Value, Er> {
        Ok(self.0.float(v))
    }
    fn visit_borrowed_str<Er>(self, v: &'de str) -> Result<Self::Value, Er> {
        Ok(self.0.text(Cow::Borrowed(v)))
    }
    fn visit_str<Er>(self, v: &str) -> Result<Self::Value, Er> {
        Ok(self.0.text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<Er>(self, v: String) -> Result<Self::Value, Er> {
        Ok(self.0.text(Cow::Owned(v)))
    }
    fn visit_unit<Er>(self) -> Result<Self::Value, Er> {
        Ok(Lenient::Absent)
    }
    fn visit_none<Er>(self) -> Result<Self::Value, Er> {
        Ok(Lenient::Absent)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.array(seq)
    }
}

/// Reads the current map value as `E`. A wrong value is recorded in `problem` (the first one
/// wins) under `field` and reads as absent.
pub(crate) fn take<'de, A, E>(
    map: &mut A,
    expect: E,
    field: &'static str,
    problem: &mut Option<Problem>,
) -> Result<Option<E::Out>, A::Error>
where
    A: MapAccess<'de>,
    E: Expect<'de>,
{
    Ok(match map.next_value_seed(Any(expect))? {
        Lenient::Absent => None,
        Lenient::Value(v) => Some(v),
        Lenient::Bad(found) => {
            problem.get_or_insert(Problem {
                within: None,
                field,
                expected: E::EXPECTED,
                found,
            });
            None
        }
    })
}

/// Reads one value as `E` for a `deserialize_with` helper: a wrong value reads as absent.
pub(crate) fn read<'de, D, E>(d: D, expect: E) -> Result<Option<E::Out>, D::Error>
where
    D: Deserializer<'de>,
    E: Expect<'de>,
{
    Ok(match Any(expect).deserialize(d)? {
        Lenient::Value(v) => Some(v),
        Lenient::Absent | Lenient::Bad(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_names_the_path() {
        let p = Problem {
            within: None,
            field: "fetchStart",
            expected: "a number",
            found: Found::Text,
        };
        assert_eq!(
            p.within("nav").to_string(),
            "`nav.fetchStart` must be a number, got a string"
        );
    }
}
