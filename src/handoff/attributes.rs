//! The one attribute-size rule, and the one walk that applies it.
//!
//! Values are measured in UTF-8 bytes and cut on a character boundary: a value within `N`
//! bytes is also within `N` characters, so the rule is safe for destinations that state their
//! limits in characters, and checking it costs no scan of the string. The same walk serves the edge caps
//! (`limits.max_attributes_per_item`, `limits.max_attribute_value_len`, applied to every
//! payload before it is queued) and a destination's own value limit (an exporter's
//! `max_attribute_value_len`, applied to each batch on its way out).
//!
//! It visits resources, scopes, spans, span events and links, log records (their bodies too)
//! and metric data points; inside a value it walks arrays and maps without recursion, so a
//! deeply nested value costs no stack. It allocates nothing but that walk's work list, and
//! never copies a value it keeps.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use super::Payload;

/// `s` cut to at most `max_len` bytes without splitting a character. `0` means no limit.
pub fn truncate_str(s: &str, max_len: usize) -> &str {
    if max_len == 0 || s.len() <= max_len {
        return s;
    }
    let mut end = max_len;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cuts an owned string in place (no reallocation) to at most `max_len` bytes; whether it cut.
pub fn truncate_string(s: &mut String, max_len: usize) -> bool {
    let keep = truncate_str(s, max_len).len();
    let cut = keep < s.len();
    s.truncate(keep);
    cut
}

/// What a walk cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    /// Attributes (and array or map entries) removed beyond the count limit.
    pub dropped: u64,
    /// String or bytes values shortened (keys are cut by the same rule, not counted).
    pub truncated: u64,
}

impl std::ops::AddAssign for Cut {
    fn add_assign(&mut self, other: Cut) {
        self.dropped += other.dropped;
        self.truncated += other.truncated;
    }
}

/// The limits a walk applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeCaps {
    /// Most attributes on one resource, scope, span, event, link, log record or data point,
    /// and most entries in one array or map value; the rest are cut and recorded in the
    /// item's `dropped_attributes_count` where it has one.
    pub max_attributes: usize,
    /// Longest string value (and key) in bytes, and longest bytes value. `0` means no limit.
    pub max_value_len: usize,
}

impl AttributeCaps {
    /// Only a value length limit (a destination's `max_attribute_value_len`).
    pub fn values_only(max_value_len: usize) -> Self {
        Self {
            max_attributes: usize::MAX,
            max_value_len,
        }
    }

    /// Caps every signal of `payload`.
    pub fn payload(&self, payload: &mut Payload) -> Cut {
        let mut cut = self.spans(&mut payload.spans);
        cut += self.logs(&mut payload.logs);
        cut += self.metrics(&mut payload.metrics);
        cut
    }

    pub fn spans(&self, entries: &mut [ResourceSpans]) -> Cut {
        let mut cut = Cut::default();
        for rs in entries {
            cut += self.resource(&mut rs.resource);
            for ss in &mut rs.scope_spans {
                cut += self.scope(&mut ss.scope);
                for span in &mut ss.spans {
                    cut += self.list(&mut span.attributes, &mut span.dropped_attributes_count);
                    for event in &mut span.events {
                        cut +=
                            self.list(&mut event.attributes, &mut event.dropped_attributes_count);
                    }
                    for link in &mut span.links {
                        cut += self.list(&mut link.attributes, &mut link.dropped_attributes_count);
                    }
                }
            }
        }
        cut
    }

    pub fn logs(&self, entries: &mut [ResourceLogs]) -> Cut {
        let mut cut = Cut::default();
        for rl in entries {
            cut += self.resource(&mut rl.resource);
            for sl in &mut rl.scope_logs {
                cut += self.scope(&mut sl.scope);
                for record in &mut sl.log_records {
                    cut += self.list(&mut record.attributes, &mut record.dropped_attributes_count);
                    if let Some(body) = &mut record.body {
                        cut += self.value(body);
                    }
                }
            }
        }
        cut
    }

    pub fn metrics(&self, entries: &mut [ResourceMetrics]) -> Cut {
        let mut cut = Cut::default();
        for rm in entries {
            cut += self.resource(&mut rm.resource);
            for sm in &mut rm.scope_metrics {
                cut += self.scope(&mut sm.scope);
                for metric in &mut sm.metrics {
                    cut += self.points(metric);
                }
            }
        }
        cut
    }

    fn resource(&self, resource: &mut Option<Resource>) -> Cut {
        match resource {
            Some(r) => self.list(&mut r.attributes, &mut r.dropped_attributes_count),
            None => Cut::default(),
        }
    }

    fn scope(&self, scope: &mut Option<InstrumentationScope>) -> Cut {
        match scope {
            Some(s) => self.list(&mut s.attributes, &mut s.dropped_attributes_count),
            None => Cut::default(),
        }
    }

    /// Data points record no dropped count: cut attributes are only counted.
    fn points(&self, metric: &mut Metric) -> Cut {
        let mut cut = Cut::default();
        let mut unrecorded = 0u32;
        let mut each = |attrs: &mut Vec<KeyValue>| cut += self.list(attrs, &mut unrecorded);
        match &mut metric.data {
            Some(Data::Gauge(g)) => g
                .data_points
                .iter_mut()
                .for_each(|p| each(&mut p.attributes)),
            Some(Data::Sum(s)) => s
                .data_points
                .iter_mut()
                .for_each(|p| each(&mut p.attributes)),
            Some(Data::Histogram(h)) => h
                .data_points
                .iter_mut()
                .for_each(|p| each(&mut p.attributes)),
            Some(Data::ExponentialHistogram(h)) => h
                .data_points
                .iter_mut()
                .for_each(|p| each(&mut p.attributes)),
            Some(Data::Summary(s)) => s
                .data_points
                .iter_mut()
                .for_each(|p| each(&mut p.attributes)),
            None => {}
        }
        cut
    }

    /// Caps one attribute list: its length (recorded in `dropped`), then each key and value.
    pub fn list(&self, attrs: &mut Vec<KeyValue>, dropped: &mut u32) -> Cut {
        let mut cut = Cut::default();
        if attrs.len() > self.max_attributes {
            let over = attrs.len() - self.max_attributes;
            attrs.truncate(self.max_attributes);
            *dropped = dropped.saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
            cut.dropped += over as u64;
        }
        for kv in attrs.iter_mut() {
            truncate_string(&mut kv.key, self.max_value_len);
            if let Some(v) = &mut kv.value {
                cut += self.value(v);
            }
        }
        cut
    }

    /// Caps the values of an attribute list, never its length.
    pub fn values(&self, attrs: &mut [KeyValue]) -> Cut {
        let mut cut = Cut::default();
        for v in attrs.iter_mut().filter_map(|kv| kv.value.as_mut()) {
            cut += self.value(v);
        }
        cut
    }

    /// Caps one value (strings and bytes cut, arrays and maps shortened), iteratively.
    pub fn value(&self, root: &mut AnyValue) -> Cut {
        let mut cut = Cut::default();
        let max = self.max_value_len;
        // Most values are scalars: the work list is only allocated for arrays and maps.
        if !matches!(
            root.value,
            Some(Value::ArrayValue(_) | Value::KvlistValue(_))
        ) {
            cut.truncated += truncate_scalar(&mut root.value, max);
            return cut;
        }
        let mut pending = vec![root];
        while let Some(v) = pending.pop() {
            match &mut v.value {
                Some(Value::ArrayValue(a)) => {
                    cut.dropped += shorten(&mut a.values, self.max_attributes);
                    pending.extend(a.values.iter_mut());
                }
                Some(Value::KvlistValue(l)) => {
                    cut.dropped += shorten(&mut l.values, self.max_attributes);
                    for kv in &mut l.values {
                        truncate_string(&mut kv.key, max);
                    }
                    pending.extend(l.values.iter_mut().filter_map(|kv| kv.value.as_mut()));
                }
                scalar => cut.truncated += truncate_scalar(scalar, max),
            }
        }
        cut
    }
}

/// Cuts a string or bytes value to `max` bytes; 1 when it cut.
fn truncate_scalar(value: &mut Option<Value>, max: usize) -> u64 {
    match value {
        Some(Value::StringValue(s)) => u64::from(truncate_string(s, max)),
        Some(Value::BytesValue(b)) if max > 0 && b.len() > max => {
            b.truncate(max);
            1
        }
        _ => 0,
    }
}

fn shorten<T>(items: &mut Vec<T>, max: usize) -> u64 {
    let over = items.len().saturating_sub(max);
    items.truncate(max);
    over as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(v.into())),
        }
    }

    #[test]
    fn cuts_bytes_on_a_character_boundary() {
        assert_eq!(truncate_str("héllo", 2), "h");
        assert_eq!(truncate_str("héllo", 3), "hé");
        assert_eq!(truncate_str("abc", 3), "abc");
        assert_eq!(truncate_str("abcdef", 0), "abcdef", "0 is no limit");
        let mut v = "€€€".to_owned();
        assert!(truncate_string(&mut v, 4));
        assert_eq!(v, "€");
        assert!(!truncate_string(&mut v, 4));
    }

    #[test]
    fn walks_nested_values_without_recursion() {
        let mut deep = s(&"x".repeat(20));
        for _ in 0..10_000 {
            deep = AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values: vec![deep] })),
            };
        }
        let cut = AttributeCaps::values_only(5).value(&mut deep);
        assert_eq!(cut.truncated, 1);
        // Dropping a 10 000-deep value recurses in prost's Drop: leak it in the test instead.
        std::mem::forget(deep);
    }

    #[test]
    fn list_records_dropped_and_cuts_keys() {
        let caps = AttributeCaps {
            max_attributes: 2,
            max_value_len: 3,
        };
        let mut attrs: Vec<KeyValue> = ["a", "bbbbb", "c"]
            .iter()
            .map(|k| KeyValue {
                key: (*k).into(),
                value: Some(s("long value")),
                ..Default::default()
            })
            .collect();
        let mut dropped = 0;
        let cut = caps.list(&mut attrs, &mut dropped);
        assert_eq!(dropped, 1);
        assert_eq!(cut.dropped, 1);
        assert_eq!(attrs[1].key, "bbb");
        assert_eq!(cut.truncated, 2, "values are counted, keys only cut");
    }
}
