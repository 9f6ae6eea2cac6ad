//! Durations in TOML: a string with a unit (`"1500ms"`, `"10s"`, `"5m"`, `"1h"`), or a bare
//! integer in the unit the key documents. Written back with the largest unit that keeps the
//! value exact (`"5m"`, `"10s"`, `"1500ms"`), so nothing is lost.

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;
use std::fmt;
use std::time::Duration;

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let ms = d.as_millis();
    let text = match ms {
        0 => "0s".to_owned(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    };
    s.serialize_str(&text)
}

/// Parses `"<integer><unit>"` with unit `ms`, `s`, `m` or `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected e.g. \"500ms\", \"10s\", \"5m\"")
    })?;
    let ms_per_unit = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be ms, s, m or h"
            ))
        }
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// Accepts an integer of `ms_per_unit` milliseconds, or a string with a unit.
pub fn deserialize<'de, D: Deserializer<'de>>(
    d: D,
    ms_per_unit: u64,
) -> Result<Duration, D::Error> {
    struct DurationVisitor(u64);
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"10s\" or \"500ms\", or an integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            v.checked_mul(self.0)
                .map(Duration::from_millis)
                .ok_or_else(|| E::custom("duration is too large"))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            let v = u64::try_from(v).map_err(|_| E::custom("duration cannot be negative"))?;
            self.visit_u64(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
    }
    d.deserialize_any(DurationVisitor(ms_per_unit))
}

/// Durations whose bare-integer form is seconds.
pub(super) mod secs {
    pub use super::serialize;
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::deserialize(d, 1000)
    }
}

/// Durations whose bare-integer form is milliseconds.
pub(super) mod millis {
    pub use super::serialize;
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::deserialize(d, 1)
    }
}
