//! Faro's own field reader: the item `timestamp`, an RFC 3339 string (what Faro sends) or epoch
//! milliseconds. Every other Faro field is read with the shared toolkit
//! ([`crate::receive::lenient`]), which holds the coercion rules both decoders follow.

use std::borrow::Cow;

use serde::Deserializer;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::receive::lenient::{read, Expect, Found, Lenient, Num};

/// A point in time as Unix epoch milliseconds: an RFC 3339 string (what Faro sends) or a number
/// of epoch milliseconds (numbers as [`Num`] reads them, and positive). Unparseable values are
/// absent.
pub(super) fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    read(d, Timestamp)
}

struct Timestamp;

impl Expect<'_> for Timestamp {
    type Out = f64;
    const EXPECTED: &'static str = "an RFC 3339 date-time or epoch milliseconds";

    fn float(self, v: f64) -> Lenient<f64> {
        match Num.float(v) {
            Lenient::Value(ms) if ms <= 0.0 => Lenient::Bad(Found::OutOfRange),
            other => other,
        }
    }
    fn text(self, v: Cow<'_, str>) -> Lenient<f64> {
        parse_rfc3339_ms(&v).map_or(Lenient::Bad(Found::Text), Lenient::Value)
    }
}

/// Parses an RFC 3339 date-time (`2026-11-28T04:15:54.564Z`, any fraction length, `Z` or a
/// `±hh:mm` offset; `t`/space separators and lower-case `z` accepted) into Unix epoch ms.
/// Digits past nanoseconds add nothing; a leap second (`:60`) is read as the nanosecond before.
pub(super) fn parse_rfc3339_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    // `time` takes any byte between date and time; RFC 3339 names only these.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let at = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some(at.unix_timestamp() as f64 * 1000.0 + f64::from(at.nanosecond()) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::lenient::containers::MAX_MAP_ENTRIES;
    use crate::receive::lenient::{boolean, items, number, string, string_map, Lax, LaxList};
    use serde::Deserialize;
    use serde_json::value::RawValue;

    #[test]
    fn rfc3339_timestamps() {
        let base = 1_795_839_354_564.0; // 2026-11-28T04:15:54.564Z
        assert_eq!(parse_rfc3339_ms("2026-11-28T04:15:54.564Z"), Some(base));
        assert_eq!(parse_rfc3339_ms("2026-11-28t04:15:54.564z"), Some(base));
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T05:15:54.564+01:00"),
            Some(base)
        );
        let fine = parse_rfc3339_ms("2026-11-28T04:15:54.564123456789Z").unwrap();
        assert!((fine - (base + 0.123456)).abs() < 1e-3, "{fine}");
        assert_eq!(parse_rfc3339_ms("2026-11-28T04:15:54Z"), Some(base - 564.0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000.0)
        );
        for bad in [
            "",
            "2026-11-28",
            "2026-13-28T04:15:54Z",
            "2026-02-30T04:15:54Z",
            "2025-02-29T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T04:15:54.Z",
            "2026-11-28T04:15:54.564",
            "2026-11-28T04:15:54+1:00",
            "2026-11-28T04:15:54Zjunk",
            "２026-11-28T04:15:54Z",
            "Sat, 28 Nov 2026 04:15:54 GMT",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[derive(Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "number")]
        n: Option<f64>,
        #[serde(default, deserialize_with = "boolean")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "timestamp")]
        t: Option<f64>,
        #[serde(default, deserialize_with = "string_map")]
        m: Vec<(String, String)>,
        #[serde(default)]
        o: Lax<Inner>,
        #[serde(default)]
        l: LaxList<Inner, 2>,
    }

    #[derive(Deserialize)]
    struct Inner {
        #[serde(default, deserialize_with = "string")]
        x: Option<String>,
    }

    fn parse(json: &str) -> Fields {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fields_coerce_or_read_as_absent() {
        let f = parse(
            r#"{"s": 12.5, "n": "1280", "b": "TRUE", "t": 1700000000000,
                "m": {"a": 1, "b": "x", "c": {"deep": [1]}, "d": null, "e": true},
                "o": {"x": 5, "y": [[[]]]}, "l": [{"x": "1"}, 7, "s", {"x": "2"}, {"x": "3"}]}"#,
        );
        assert_eq!(f.s.as_deref(), Some("12.5"));
        assert_eq!(f.n, Some(1280.0));
        assert_eq!(f.b, Some(true));
        assert_eq!(f.t, Some(1_700_000_000_000.0));
        assert_eq!(
            f.m,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x".into()),
                ("e".into(), "true".into())
            ]
        );
        assert_eq!(f.o.0.unwrap().x.as_deref(), Some("5"));
        let xs: Vec<_> = f.l.0.iter().map(|i| i.x.clone().unwrap()).collect();
        assert_eq!(xs, ["1", "2"], "non-objects skipped, capped at 2");

        let f = parse(
            r#"{"s": {"a": 1}, "n": "abc", "b": "yes", "t": "yesterday", "m": [1, 2],
                "o": "text", "l": {"x": "1"}}"#,
        );
        assert!(f.s.is_none() && f.n.is_none() && f.b.is_none() && f.t.is_none());
        assert!(f.m.is_empty() && f.o.0.is_none() && f.l.0.is_empty());
        assert!(parse(r#"{"n": "NaN"}"#).n.is_none(), "non-finite is absent");
    }

    #[test]
    fn maps_are_capped_and_skip_long_keys() {
        let entries: Vec<String> = (0..100).map(|i| format!("\"k{i}\": \"{i}\"")).collect();
        let long = "k".repeat(200);
        let json = format!(r#"{{"m": {{"{long}": "x", {}}}}}"#, entries.join(","));
        let f = parse(&json);
        assert_eq!(f.m.len(), MAX_MAP_ENTRIES);
        assert_eq!(f.m[0], ("k0".into(), "0".into()));
    }

    #[test]
    fn items_are_capped_and_counted() {
        let raw: Box<RawValue> = serde_json::from_str(r#"[1, {"a": 2}, "x", [3]]"#).unwrap();
        let it = items(&raw, 2).unwrap();
        assert_eq!(
            it.kept.iter().map(|r| r.get()).collect::<Vec<_>>(),
            ["1", r#"{"a": 2}"#]
        );
        assert_eq!(it.overflow, 2);
        let raw: Box<RawValue> = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        assert!(items(&raw, 2).is_err());
    }
}
