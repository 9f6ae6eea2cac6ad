//! Lenient, single-pass JSON reading for the native decoder.
//!
//! Beacons come from browsers we do not control, so one wrong field must cost one event, not the
//! whole request. serde's derived structs fail the whole document on the first wrong type, and
//! reading into `serde_json::Value` first is about twice as slow. Instead every value is read
//! through [`Any`], which accepts whatever JSON type arrives and reports a wrong one as
//! [`Lenient::Bad`] after consuming it, so the parser stays in step and decoding goes on. Only
//! real syntax errors end the parse.
//!
//! Each expected shape is an [`Expect`] implementation that overrides the JSON types it accepts;
//! everything else falls back to "wrong type".

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

/// A finite number; numeric strings (`"12.5"`) are coerced.
pub(crate) struct Num;

impl Expect<'_> for Num {
    type Out = f64;
    const EXPECTED: &'static str = "a number";

    fn float(self, v: f64) -> Lenient<f64> {
        if v.is_finite() {
            Lenient::Value(v)
        } else {
            Lenient::Bad(Found::NonFinite)
        }
    }
    fn text(self, v: Cow<'_, str>) -> Lenient<f64> {
        match v.trim().parse::<f64>() {
            Ok(n) => self.float(n),
            Err(_) => Lenient::Bad(Found::NotNumeric),
        }
    }
}

/// A whole number in `0..=max`; numeric strings are coerced.
#[derive(Clone, Copy)]
pub(crate) struct UInt(pub(crate) u64);

impl Expect<'_> for UInt {
    type Out = u64;
    const EXPECTED: &'static str = "a non-negative whole number";

    fn int(self, v: i64) -> Lenient<u64> {
        match u64::try_from(v) {
            Ok(n) if n <= self.0 => Lenient::Value(n),
            _ => Lenient::Bad(Found::OutOfRange),
        }
    }
    fn float(self, v: f64) -> Lenient<u64> {
        if !v.is_finite() {
            Lenient::Bad(Found::NonFinite)
        } else if v >= 0.0 && v.fract() == 0.0 && v <= self.0 as f64 {
            Lenient::Value(v as u64)
        } else {
            Lenient::Bad(Found::OutOfRange)
        }
    }
    fn text(self, v: Cow<'_, str>) -> Lenient<u64> {
        match v.trim().parse::<f64>() {
            Ok(n) => self.float(n),
            Err(_) => Lenient::Bad(Found::NotNumeric),
        }
    }
}

/// A string, borrowed from the body when it has no escapes. Numbers are coerced to their
/// decimal text (ids sometimes arrive as numbers).
pub(crate) struct Text;

impl<'de> Expect<'de> for Text {
    type Out = Cow<'de, str>;
    const EXPECTED: &'static str = "a string";

    fn int(self, v: i64) -> Lenient<Self::Out> {
        Lenient::Value(Cow::Owned(v.to_string()))
    }
    fn float(self, v: f64) -> Lenient<Self::Out> {
        Lenient::Value(Cow::Owned(v.to_string()))
    }
    fn text(self, v: Cow<'de, str>) -> Lenient<Self::Out> {
        Lenient::Value(v)
    }
}

/// A boolean; `"true"`/`"false"` and `0`/`1` are coerced.
pub(crate) struct Flag;

impl Expect<'_> for Flag {
    type Out = bool;
    const EXPECTED: &'static str = "a boolean";

    fn boolean(self, v: bool) -> Lenient<bool> {
        Lenient::Value(v)
    }
    fn int(self, v: i64) -> Lenient<bool> {
        match v {
            0 => Lenient::Value(false),
            1 => Lenient::Value(true),
            _ => Lenient::Bad(Found::Number),
        }
    }
    fn text(self, v: Cow<'_, str>) -> Lenient<bool> {
        match v.as_ref() {
            "true" => Lenient::Value(true),
            "false" => Lenient::Value(false),
            _ => Lenient::Bad(Found::Text),
        }
    }
}

/// Truncates to at most `max` bytes, at a character boundary, and takes ownership.
pub(crate) fn bounded(s: Cow<'_, str>, max: usize) -> String {
    if s.len() <= max {
        return s.into_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'de, E: Expect<'de>>(json: &'de str, e: E) -> Lenient<E::Out> {
        let mut de = serde_json::Deserializer::from_str(json);
        Any(e).deserialize(&mut de).unwrap()
    }

    #[test]
    fn numbers_coerce_from_strings_and_reject_the_rest() {
        assert!(matches!(read("12.5", Num), Lenient::Value(v) if v == 12.5));
        assert!(matches!(read("\" 7 \"", Num), Lenient::Value(v) if v == 7.0));
        assert!(matches!(
            read("\"NaN\"", Num),
            Lenient::Bad(Found::NonFinite)
        ));
        assert!(matches!(
            read("\"inf\"", Num),
            Lenient::Bad(Found::NonFinite)
        ));
        assert!(matches!(
            read("\"abc\"", Num),
            Lenient::Bad(Found::NotNumeric)
        ));
        assert!(matches!(
            read("{\"a\":[1,{}]}", Num),
            Lenient::Bad(Found::Object)
        ));
        assert!(matches!(read("[1,[2]]", Num), Lenient::Bad(Found::Array)));
        assert!(matches!(read("true", Num), Lenient::Bad(Found::Bool)));
        assert!(matches!(read("null", Num), Lenient::Absent));
    }

    #[test]
    fn unsigned_ranges() {
        assert!(matches!(read("200", UInt(999)), Lenient::Value(200)));
        assert!(matches!(read("\"404\"", UInt(999)), Lenient::Value(404)));
        assert!(matches!(
            read("1000", UInt(999)),
            Lenient::Bad(Found::OutOfRange)
        ));
        assert!(matches!(
            read("-1", UInt(999)),
            Lenient::Bad(Found::OutOfRange)
        ));
        assert!(matches!(
            read("1.5", UInt(999)),
            Lenient::Bad(Found::OutOfRange)
        ));
        assert!(matches!(
            read("18446744073709551615", UInt(10)),
            Lenient::Bad(_)
        ));
    }

    #[test]
    fn text_borrows_unless_escaped() {
        assert!(matches!(
            read("\"abc\"", Text),
            Lenient::Value(Cow::Borrowed("abc"))
        ));
        assert!(matches!(read("\"a\\\"c\"", Text), Lenient::Value(Cow::Owned(s)) if s == "a\"c"));
        assert!(matches!(read("42", Text), Lenient::Value(s) if s == "42"));
        assert!(matches!(read("false", Text), Lenient::Bad(Found::Bool)));
    }

    #[test]
    fn flags() {
        assert!(matches!(read("true", Flag), Lenient::Value(true)));
        assert!(matches!(read("\"false\"", Flag), Lenient::Value(false)));
        assert!(matches!(read("1", Flag), Lenient::Value(true)));
        assert!(matches!(read("2", Flag), Lenient::Bad(Found::Number)));
    }

    #[test]
    fn bounded_cuts_at_char_boundary() {
        assert_eq!(bounded(Cow::Borrowed("héllo"), 2), "h");
        assert_eq!(bounded(Cow::Borrowed("héllo"), 3), "hé");
        assert_eq!(bounded(Cow::Borrowed("abc"), 10), "abc");
    }

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
