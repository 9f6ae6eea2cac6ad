//! Item lists kept as raw JSON: a top-level array is split into its items without parsing them,
//! so that each item is parsed on its own and a bad one costs only itself.

use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::visit::Found;

/// Parses one JSON object into `T`. Anything else is refused: a derived struct would read an
/// array positionally (`[1, "warn"]` as a log), which no sender means.
pub(crate) fn object<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, String> {
    let text = raw.get();
    match json_type(text.as_bytes()) {
        Some("an object") | None => serde_json::from_str(text).map_err(|e| e.to_string()),
        Some(found) => Err(format!("must be an object, got {found}")),
    }
}

/// The type of the JSON value `text` starts with, from its first byte, in the words of
/// [`Found::describe`] (`None` when that byte starts no JSON value).
pub(crate) fn json_type(text: &[u8]) -> Option<&'static str> {
    let found = match text.trim_ascii_start().first()? {
        b'{' => Found::Object,
        b'[' => Found::Array,
        b'"' => Found::Text,
        b't' | b'f' => Found::Bool,
        b'n' => return Some("null"),
        b'-' | b'0'..=b'9' => Found::Number,
        _ => return None,
    };
    Some(found.describe())
}

/// The items of one top-level array, kept as raw JSON. At most `cap` are kept; the rest are only
/// counted.
pub(crate) struct Items<'a> {
    pub(crate) kept: Vec<&'a RawValue>,
    pub(crate) overflow: usize,
}

/// Splits a JSON array into its items (at most `cap` kept). Fails when `raw` is not an array.
pub(crate) fn items(raw: &RawValue, cap: usize) -> Result<Items<'_>, serde_json::Error> {
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
