//! Series keys: the attribute values of one series, encoded in schema order (see
//! `descriptors`) into bytes, so that recording a measurement of an existing series is a hash
//! lookup on a reused buffer, with no allocation. The attributes are decoded from the key once,
//! when the series is created.

use std::cell::RefCell;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use crate::process::url::UrlRules;

thread_local! {
    /// Scratch space for series keys, reused so that recording does not allocate.
    pub(super) static KEY_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

// Series keys: attribute values in schema order, each a tag byte followed by its payload.
const ABSENT: u8 = 0;
/// Followed by the length (u32, little endian) and the UTF-8 bytes.
const STR: u8 = 1;
/// Followed by an i64, little endian.
const INT: u8 = 2;

pub(super) fn put_str(key: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => put_str_with(key, |out| out.extend_from_slice(text.as_bytes())),
        None => key.push(ABSENT),
    }
}

/// Writes a string value produced by `write`, which must append valid UTF-8.
pub(super) fn put_str_with(key: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    key.push(STR);
    let len_at = key.len();
    key.extend_from_slice(&[0; 4]);
    write(key);
    let len = u32::try_from(key.len() - len_at - 4).unwrap_or(u32::MAX);
    key[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
}

pub(super) fn put_int(key: &mut Vec<u8>, value: Option<i64>) {
    match value {
        Some(n) => {
            key.push(INT);
            key.extend_from_slice(&n.to_le_bytes());
        }
        None => key.push(ABSENT),
    }
}

/// Writes the `url.template` attribute: the one `process` computed, else the built-in
/// template of the URL (batches that skipped processing, e.g. in tests).
pub(super) fn put_url_template(key: &mut Vec<u8>, template: Option<&str>, url: Option<&str>) {
    match (template, url) {
        (Some(template), _) => put_str(key, Some(template)),
        (None, Some(url)) => put_str_with(key, |out| {
            UrlRules::builtin()
                .template_pieces(url, |piece| out.extend_from_slice(piece.as_bytes()))
        }),
        (None, None) => key.push(ABSENT),
    }
}

pub(super) fn push_decimal(out: &mut Vec<u8>, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Decodes a series key into its attributes (absent values are left out).
pub(super) fn decode_key(names: &[&'static str], mut key: &[u8]) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(names.len());
    for &name in names {
        let Some((&tag, rest)) = key.split_first() else {
            break;
        };
        key = rest;
        let value = match tag {
            STR => {
                let Some((len, rest)) = key.split_first_chunk::<4>() else {
                    break;
                };
                let Some((text, rest)) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)
                else {
                    break;
                };
                key = rest;
                any_value::Value::StringValue(String::from_utf8_lossy(text).into_owned())
            }
            INT => {
                let Some((n, rest)) = key.split_first_chunk::<8>() else {
                    break;
                };
                key = rest;
                any_value::Value::IntValue(i64::from_le_bytes(*n))
            }
            _ => continue,
        };
        attributes.push(KeyValue {
            key: name.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }
    attributes
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The value of attribute `key` (also used by the aggregator's tests).
    pub(in crate::convert::metrics) fn attribute<'a>(
        attributes: &'a [KeyValue],
        key: &str,
    ) -> Option<&'a any_value::Value> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    pub(in crate::convert::metrics) fn string(value: &str) -> any_value::Value {
        any_value::Value::StringValue(value.into())
    }

    #[test]
    fn keys_round_trip_through_decoding() {
        let mut key = Vec::new();
        put_str(&mut key, Some("a\u{0}b"));
        put_str(&mut key, None);
        put_int(&mut key, Some(-7));
        put_str_with(&mut key, |out| push_decimal(out, 404));
        let attributes = decode_key(&["one", "two", "three", "four"], &key);
        let keys: Vec<_> = attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["one", "three", "four"]);
        assert_eq!(attribute(&attributes, "one"), Some(&string("a\u{0}b")));
        assert_eq!(
            attribute(&attributes, "three"),
            Some(&any_value::Value::IntValue(-7))
        );
        assert_eq!(attribute(&attributes, "four"), Some(&string("404")));
        // A truncated key decodes what it can and never panics.
        assert_eq!(decode_key(&["one", "two"], &key[..3]).len(), 0);
    }
}
