//! Lenient field readers for the Faro decoder.
//!
//! Faro payloads come from many SDK versions and from hand-written senders, and their types
//! drift: viewport sizes and every event attribute are strings, `brands` is a string or an array,
//! old senders put numbers where strings belong (docs/faro-mapping.md#lenient-decoding). Alloy's
//! Go structs reject the whole batch on the first mismatch. Here each field of the typed item
//! structs is read through a helper that accepts any JSON type, coerces what has an obvious
//! meaning (numbers as strings and back) and reads the rest as absent, so a derived struct only
//! fails when the item itself is not an object. Containers that are skipped are drained with
//! `IgnoredAny`, which serde_json walks without recursion.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Most entries kept from one `context` / `attributes` / `values` map; the rest are ignored.
pub(super) const MAX_MAP_ENTRIES: usize = 64;
/// Longest map key kept (longer keys are dropped with their value).
const MAX_KEY_LEN: usize = 128;

/// One JSON value reduced to what the field readers need.
enum Scalar<'de> {
    Text(Cow<'de, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// `null`, an object or an array.
    Nothing,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Nothing)
    }
    fn visit_none<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Nothing)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nothing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nothing)
    }
}

impl<'de> DeserializeSeed<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl Scalar<'_> {
    fn into_string(self) -> Option<String> {
        match self {
            Scalar::Text(s) => Some(s.into_owned()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Float(f) if f.is_finite() => Some(f.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Float(_) | Scalar::Nothing => None,
        }
    }

    fn into_number(self) -> Option<f64> {
        let n = match self {
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
            Scalar::Text(s) => s.trim().parse().ok()?,
            Scalar::Bool(_) | Scalar::Nothing => return None,
        };
        n.is_finite().then_some(n)
    }
}

/// A string; numbers and booleans become their text, anything else is absent.
pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(d.deserialize_any(ScalarVisitor)?.into_string())
}

/// A finite number; numeric strings (`"1280"`) are coerced, anything else is absent.
pub(super) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(d.deserialize_any(ScalarVisitor)?.into_number())
}

/// A boolean; `"true"` / `"false"` and `1` / `0` are coerced, anything else is absent.
pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match d.deserialize_any(ScalarVisitor)? {
        Scalar::Bool(b) => Some(b),
        Scalar::Int(1) => Some(true),
        Scalar::Int(0) => Some(false),
        Scalar::Text(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Scalar::Text(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

/// A point in time as Unix epoch milliseconds: an RFC 3339 string (what Faro sends) or a number
/// of epoch milliseconds. Unparseable values are absent.
pub(super) fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match d.deserialize_any(ScalarVisitor)? {
        Scalar::Text(s) => parse_rfc3339_ms(&s),
        other => other.into_number().filter(|ms| *ms > 0.0),
    })
}

/// An object of scalar values as `(key, text)` pairs (Faro's `context` and `attributes`, typed
/// `{string: string}`); values of other types are skipped, at most [`MAX_MAP_ENTRIES`] kept.
pub(super) fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    d.deserialize_any(MapVisitor(Scalar::into_string))
}

/// An object of numbers as `(key, number)` pairs (a measurement's `values`); numeric strings are
/// coerced, other values skipped, at most [`MAX_MAP_ENTRIES`] kept.
pub(super) fn number_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    d.deserialize_any(MapVisitor(Scalar::into_number))
}

struct MapVisitor<'de, T>(fn(Scalar<'de>) -> Option<T>);

impl<'de, T> Visitor<'de> for MapVisitor<'de, T> {
    type Value = Vec<(String, T)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if out.len() >= MAX_MAP_ENTRIES || key.len() > MAX_KEY_LEN || key.is_empty() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if let Some(value) = (self.0)(map.next_value_seed(ScalarVisitor)?) {
                out.push((key.into_owned(), value));
            }
        }
        Ok(out)
    }
    // Any other type reads as an empty map.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }
}

/// A sub-object read as `T` when it is an object, and as absent when it is any other type.
///
/// `T` should read all its fields leniently; then only a duplicate key inside the object can
/// fail it (and with it the item).
#[derive(Debug)]
pub(super) struct Lax<T>(pub(super) Option<T>);

impl<T> Default for Lax<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lax<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LaxVisitor(PhantomData))
    }
}

struct LaxVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LaxVisitor<T> {
    type Value = Lax<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lax<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|v| Lax(Some(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Lax<T>, E> {
        Ok(Lax(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Lax<T>, E> {
        Ok(Lax(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Lax<T>, E> {
        Ok(Lax(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Lax<T>, E> {
        Ok(Lax(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Lax<T>, E> {
        Ok(Lax(None))
    }
    fn visit_unit<E>(self) -> Result<Lax<T>, E> {
        Ok(Lax(None))
    }
    fn visit_none<E>(self) -> Result<Lax<T>, E> {
        Ok(Lax(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lax<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lax(None))
    }
}

/// An array of sub-objects: elements that are objects are read as `T` (at most `CAP`), other
/// elements and anything that is not an array are skipped.
#[derive(Debug)]
pub(super) struct LaxList<T, const CAP: usize>(pub(super) Vec<T>);

impl<T, const CAP: usize> Default for LaxList<T, CAP> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const CAP: usize> Deserialize<'de> for LaxList<T, CAP> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LaxListVisitor::<T, CAP>(PhantomData))
    }
}

struct LaxListVisitor<T, const CAP: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const CAP: usize> Visitor<'de> for LaxListVisitor<T, CAP> {
    type Value = LaxList<T, CAP>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while out.len() < CAP {
            match seq.next_element::<Lax<T>>()? {
                Some(Lax(Some(item))) => out.push(item),
                Some(Lax(None)) => {}
                None => return Ok(LaxList(out)),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LaxList(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(LaxList::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(LaxList::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(LaxList::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(LaxList::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(LaxList::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(LaxList::default())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(LaxList::default())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(LaxList::default())
    }
}

/// Parses one JSON object into `T`. Anything else is refused: a derived struct would read an
/// array positionally (`[1, "warn"]` as a log), which no Faro sender means.
pub(super) fn object<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, String> {
    let text = raw.get();
    match json_type(text.as_bytes()) {
        Some("an object") | None => serde_json::from_str(text).map_err(|e| e.to_string()),
        Some(found) => Err(format!("must be an object, got {found}")),
    }
}

/// The type of the JSON value `text` starts with, from its first byte (`None` when that byte
/// starts no JSON value).
pub(super) fn json_type(text: &[u8]) -> Option<&'static str> {
    match text.trim_ascii_start().first()? {
        b'{' => Some("an object"),
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b't' | b'f' => Some("a boolean"),
        b'n' => Some("null"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

/// The items of one top-level array, kept as raw JSON so that each is parsed on its own and a
/// bad one costs only itself. At most `cap` are kept; the rest are only counted.
pub(super) struct Items<'a> {
    pub(super) kept: Vec<&'a RawValue>,
    pub(super) overflow: usize,
}

/// Splits a JSON array into its items (at most `cap` kept). Fails when `raw` is not an array.
pub(super) fn items(raw: &RawValue, cap: usize) -> Result<Items<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    ItemsSeed { cap }.deserialize(&mut de)
}

struct ItemsSeed {
    cap: usize,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Items<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Items<'de>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Items<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
        let mut kept = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.cap).min(64));
        while kept.len() < self.cap {
            match seq.next_element::<&'de RawValue>()? {
                Some(item) => kept.push(item),
                None => return Ok(Items { kept, overflow: 0 }),
            }
        }
        let mut overflow = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            overflow += 1;
        }
        Ok(Items { kept, overflow })
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
    use serde::Deserialize;

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
