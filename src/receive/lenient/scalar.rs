//! Scalar coercions, each written once for every decoder: what a number, a whole number, a
//! string or a boolean is, and which other JSON types stand in for it.
//!
//! - a number sent as a string (`"1280"`, `" 12.5 "`) is the number it spells;
//! - a non-finite number (`"NaN"`, `"inf"`, only reachable through strings) is wrong
//!   ([`Found::NonFinite`], counted as `invalid_number`);
//! - a string that is not a number, where a number belongs, is wrong ([`Found::NotNumeric`]);
//! - a number where a string belongs is its decimal text (ids sometimes arrive as numbers);
//! - a boolean is `true`/`false`, `"true"`/`"false"` in any case, or `1`/`0`.
//!
//! The `deserialize_with` adapters at the end ([`string`], [`number`], [`boolean`]) put the same
//! rules under serde-derived structs, reading a wrong value as absent.

use std::borrow::Cow;

use serde::Deserializer;

use super::visit::{read, Expect, Found, Lenient};

/// A finite number; numeric strings (`"12.5"`) are coerced.
#[derive(Clone, Copy)]
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
        numeric(self, &v)
    }
}

/// A numeric string (`" 12.5 "`, trimmed) read as the number it spells, through `expect`.
fn numeric<'de, E: Expect<'de>>(expect: E, v: &str) -> Lenient<E::Out> {
    match v.trim().parse::<f64>() {
        Ok(n) => expect.float(n),
        Err(_) => Lenient::Bad(Found::NotNumeric),
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
        numeric(self, &v)
    }
}

/// A string, borrowed from the body when it has no escapes. Numbers are coerced to their
/// decimal text (ids sometimes arrive as numbers).
#[derive(Clone, Copy)]
pub(crate) struct Text;

impl<'de> Expect<'de> for Text {
    type Out = Cow<'de, str>;
    const EXPECTED: &'static str = "a string";

    fn int(self, v: i64) -> Lenient<Self::Out> {
        Lenient::Value(Cow::Owned(v.to_string()))
    }
    fn float(self, v: f64) -> Lenient<Self::Out> {
        if v.is_finite() {
            Lenient::Value(Cow::Owned(v.to_string()))
        } else {
            Lenient::Bad(Found::NonFinite)
        }
    }
    fn text(self, v: Cow<'de, str>) -> Lenient<Self::Out> {
        Lenient::Value(v)
    }
}

/// A string where senders may also put a number or a boolean (Faro's `{string: string}` maps and
/// string fields): those become their text (`12.5` → `"12.5"`, `true` → `"true"`).
#[derive(Clone, Copy)]
pub(crate) struct ScalarText;

impl<'de> Expect<'de> for ScalarText {
    type Out = Cow<'de, str>;
    const EXPECTED: &'static str = "a string, number or boolean";

    fn boolean(self, v: bool) -> Lenient<Self::Out> {
        Lenient::Value(Cow::Borrowed(if v { "true" } else { "false" }))
    }
    fn int(self, v: i64) -> Lenient<Self::Out> {
        Text.int(v)
    }
    fn float(self, v: f64) -> Lenient<Self::Out> {
        Text.float(v)
    }
    fn text(self, v: Cow<'de, str>) -> Lenient<Self::Out> {
        Text.text(v)
    }
}

/// A boolean; `"true"`/`"false"` (in any case) and `0`/`1` are coerced.
#[derive(Clone, Copy)]
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
        if v.eq_ignore_ascii_case("true") {
            Lenient::Value(true)
        } else if v.eq_ignore_ascii_case("false") {
            Lenient::Value(false)
        } else {
            Lenient::Bad(Found::Text)
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

/// `deserialize_with`: a string; numbers and booleans become their text, anything else is absent.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(read(d, ScalarText)?.map(Cow::into_owned))
}

/// `deserialize_with`: a finite number; numeric strings are coerced, anything else is absent.
pub(crate) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    read(d, Num)
}

/// `deserialize_with`: a boolean as [`Flag`] reads it; anything else is absent.
pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    read(d, Flag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::lenient::Any;
    use serde::de::DeserializeSeed;

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
}
