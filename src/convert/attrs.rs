//! Small helpers to build OTLP `KeyValue` / `AnyValue` lists cheaply and safely.
//!
//! Every converter builds attribute lists the same way: string values truncated to the
//! configured length (on a UTF-8 char boundary), non-finite numbers skipped (OTLP backends
//! reject NaN/±Inf), and no duplicate keys (the first value written for a key wins, so the
//! bridge's own semconv attributes are never overridden by client-supplied ones).

use opentelemetry_proto::tonic::common::v1::{any_value::Value, ArrayValue, KeyValue};

use crate::model::AttrValue;

pub use crate::handoff::attributes::truncate_str;
pub use crate::model::otlp::{any_string, find, has_key, kv};

/// Truncates an owned string in place (no reallocation).
pub fn truncate_string(mut s: String, max_len: usize) -> String {
    crate::handoff::attributes::truncate_string(&mut s, max_len);
    s
}

/// Truncates every string value (also inside arrays and maps) of an attribute list in place,
/// by the one rule of [`crate::handoff::attributes`].
pub fn truncate_values(attrs: &mut [KeyValue], max_len: usize) {
    crate::handoff::attributes::AttributeCaps::values_only(max_len).values(attrs);
}

/// An attribute list under construction, with the value-length limit applied on insert.
///
/// Inserting a key that is already present is a no-op: the first writer wins.
#[derive(Debug)]
pub struct AttrList {
    kvs: Vec<KeyValue>,
    max_len: usize,
}

impl AttrList {
    /// An empty list with room for `capacity` attributes.
    pub fn with_capacity(capacity: usize, max_len: usize) -> Self {
        Self {
            kvs: Vec::with_capacity(capacity),
            max_len,
        }
    }

    /// Starts from a copy of `base` (e.g. the per-batch common attributes) plus room for
    /// `extra` more.
    pub fn from_base(base: &[KeyValue], extra: usize, max_len: usize) -> Self {
        let mut kvs = Vec::with_capacity(base.len() + extra);
        kvs.extend_from_slice(base);
        Self { kvs, max_len }
    }

    fn push(&mut self, key: &str, value: Value) {
        if !has_key(&self.kvs, key) {
            self.kvs.push(kv(key, value));
        }
    }

    /// A string attribute (truncated).
    pub fn str(&mut self, key: &str, value: &str) {
        if !has_key(&self.kvs, key) {
            let v = truncate_str(value, self.max_len).to_owned();
            self.kvs.push(kv(key, Value::StringValue(v)));
        }
    }

    /// A string attribute from an owned value (truncated in place).
    pub fn string(&mut self, key: &str, value: String) {
        if !has_key(&self.kvs, key) {
            let v = truncate_string(value, self.max_len);
            self.kvs.push(kv(key, Value::StringValue(v)));
        }
    }

    /// A string attribute when present.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    pub fn int(&mut self, key: &str, value: i64) {
        self.push(key, Value::IntValue(value));
    }

    /// An integer attribute from an unsigned value (saturating at `i64::MAX`).
    pub fn uint(&mut self, key: &str, value: u64) {
        self.int(key, i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// A double attribute; skipped when not finite.
    pub fn float(&mut self, key: &str, value: f64) {
        if value.is_finite() {
            self.push(key, Value::DoubleValue(value));
        }
    }

    /// A double attribute when present and finite.
    pub fn opt_float(&mut self, key: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.float(key, v);
        }
    }

    pub fn bool(&mut self, key: &str, value: bool) {
        self.push(key, Value::BoolValue(value));
    }

    /// A string-array attribute (each element truncated).
    pub fn str_array(&mut self, key: &str, values: &[String]) {
        if has_key(&self.kvs, key) {
            return;
        }
        let values = values
            .iter()
            .map(|s| any_string(truncate_str(s, self.max_len).to_owned()))
            .collect();
        self.kvs
            .push(kv(key, Value::ArrayValue(ArrayValue { values })));
    }

    /// A model attribute value under `key` (non-finite floats skipped).
    pub fn model(&mut self, key: &str, value: &AttrValue) {
        match value {
            AttrValue::Str(s) => self.str(key, s),
            AttrValue::Int(i) => self.int(key, *i),
            AttrValue::Float(f) => self.float(key, *f),
            AttrValue::Bool(b) => self.bool(key, *b),
        }
    }

    /// Client-supplied attributes, after the bridge's own (which win on key clashes).
    pub fn extend_model(&mut self, attrs: &[(String, AttrValue)]) {
        self.kvs.reserve(attrs.len());
        for (k, v) in attrs {
            self.model(k, v);
        }
    }

    pub fn len(&self) -> usize {
        self.kvs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kvs.is_empty()
    }

    pub fn into_vec(self) -> Vec<KeyValue> {
        self.kvs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(list: &[KeyValue], key: &str) -> Option<Value> {
        list.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_str("héllo", 2), "h");
        assert_eq!(truncate_str("héllo", 3), "hé");
        assert_eq!(truncate_str("abc", 3), "abc");
        assert_eq!(truncate_str("abc", 0), "abc");
        assert_eq!(truncate_string("€€€".into(), 4), "€");
    }

    #[test]
    fn list_truncates_skips_non_finite_and_keeps_first_writer() {
        let mut l = AttrList::with_capacity(4, 3);
        l.str("a", "abcdef");
        l.str("a", "zzz");
        l.float("nan", f64::NAN);
        l.float("inf", f64::INFINITY);
        l.float("x", 1.5);
        l.uint("big", u64::MAX);
        l.extend_model(&[
            ("x".into(), AttrValue::Int(2)),
            ("y".into(), AttrValue::Str("ü-long".into())),
        ]);
        let v = l.into_vec();
        assert_eq!(value(&v, "a"), Some(Value::StringValue("abc".into())));
        assert_eq!(value(&v, "nan"), None);
        assert_eq!(value(&v, "inf"), None);
        assert_eq!(value(&v, "x"), Some(Value::DoubleValue(1.5)));
        assert_eq!(value(&v, "big"), Some(Value::IntValue(i64::MAX)));
        assert_eq!(value(&v, "y"), Some(Value::StringValue("ü-".into())));
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn truncate_values_walks_arrays() {
        let mut l = AttrList::with_capacity(2, 0);
        l.str_array("arr", &["abcdef".into()]);
        l.str("s", "abcdef");
        let mut v = l.into_vec();
        truncate_values(&mut v, 2);
        let Some(Value::ArrayValue(a)) = value(&v, "arr") else {
            panic!("array expected")
        };
        assert_eq!(a.values[0].value, Some(Value::StringValue("ab".into())));
        assert_eq!(value(&v, "s"), Some(Value::StringValue("ab".into())));
    }
}
