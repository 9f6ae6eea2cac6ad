//! Size caps on everything that leaves the edge, whatever format it came in.
//!
//! A browser (or anyone pretending to be one) decides how many attributes an item carries and
//! how long their values are. Native and Faro decoders already bound what they build, but OTLP
//! passthrough forwards what the client sent, so the last word is here, applied to every
//! payload just before it is queued: at most `limits.max_attributes_per_item` attributes on a
//! resource, span, span event, link or log record (and entries in one array or map value),
//! string values and log bodies cut at `limits.max_attribute_value_len` bytes on a character
//! boundary. Cut attributes are recorded in the item's `dropped_attributes_count`, as OTLP
//! SDKs do, and counted in `rum_bridge_attributes_dropped_total`.
//!
//! The walk touches each attribute once and allocates nothing.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::config::LimitsConfig;
use crate::convert::attrs::truncate_str;
use crate::export::Payload;

/// The compiled caps (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct ItemLimits {
    max_attributes: usize,
    max_value_len: usize,
}

impl ItemLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            max_attributes: config.max_attributes_per_item,
            max_value_len: config.max_attribute_value_len,
        }
    }

    /// Caps every span and log record of `payload`; returns how many attributes were cut.
    /// Metric points are left alone: the bridge's own are bounded by the cardinality cap.
    pub fn apply(&self, payload: &mut Payload) -> u64 {
        let mut cut = 0;
        for rs in &mut payload.spans {
            cut += self.resource(&mut rs.resource);
            for span in rs.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
                cut += self.list(&mut span.attributes, &mut span.dropped_attributes_count);
                for event in &mut span.events {
                    cut += self.list(&mut event.attributes, &mut event.dropped_attributes_count);
                }
                for link in &mut span.links {
                    cut += self.list(&mut link.attributes, &mut link.dropped_attributes_count);
                }
            }
        }
        for rl in &mut payload.logs {
            cut += self.resource(&mut rl.resource);
            for record in rl.scope_logs.iter_mut().flat_map(|s| &mut s.log_records) {
                cut += self.list(&mut record.attributes, &mut record.dropped_attributes_count);
                if let Some(body) = &mut record.body {
                    cut += self.value(body);
                }
            }
        }
        cut
    }

    fn resource(&self, resource: &mut Option<Resource>) -> u64 {
        match resource {
            Some(r) => self.list(&mut r.attributes, &mut r.dropped_attributes_count),
            None => 0,
        }
    }

    fn list(&self, attrs: &mut Vec<KeyValue>, dropped: &mut u32) -> u64 {
        let mut cut = 0;
        if attrs.len() > self.max_attributes {
            let over = attrs.len() - self.max_attributes;
            attrs.truncate(self.max_attributes);
            *dropped = dropped.saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
            cut += over as u64;
        }
        for kv in attrs.iter_mut() {
            if kv.key.len() > self.max_value_len {
                let keep = truncate_str(&kv.key, self.max_value_len).len();
                kv.key.truncate(keep);
            }
            if let Some(v) = &mut kv.value {
                cut += self.value(v);
            }
        }
        cut
    }

    /// Caps one value (strings cut, arrays and maps shortened), iteratively so that nesting
    /// depth costs no stack.
    fn value(&self, root: &mut AnyValue) -> u64 {
        let mut cut = 0;
        let mut pending = vec![root];
        while let Some(v) = pending.pop() {
            match &mut v.value {
                Some(Value::StringValue(s)) if s.len() > self.max_value_len => {
                    let keep = truncate_str(s, self.max_value_len).len();
                    s.truncate(keep);
                }
                Some(Value::BytesValue(b)) if b.len() > self.max_value_len => {
                    b.truncate(self.max_value_len);
                }
                Some(Value::ArrayValue(a)) => {
                    cut += shorten(&mut a.values, self.max_attributes);
                    pending.extend(a.values.iter_mut());
                }
                Some(Value::KvlistValue(l)) => {
                    cut += shorten(&mut l.values, self.max_attributes);
                    pending.extend(l.values.iter_mut().filter_map(|kv| kv.value.as_mut()));
                }
                _ => {}
            }
        }
        cut
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
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn limits(max_attributes: usize, max_value_len: usize) -> ItemLimits {
        ItemLimits {
            max_attributes,
            max_value_len,
        }
    }

    fn string(s: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(s.to_owned())),
        }
    }

    fn attrs(n: usize) -> Vec<KeyValue> {
        (0..n)
            .map(|i| KeyValue {
                key: format!("k{i}"),
                value: Some(string("v")),
                ..Default::default()
            })
            .collect()
    }

    fn spans(span: Span) -> Payload {
        Payload {
            spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: attrs(3),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn attribute_lists_are_cut_and_recorded() {
        let mut payload = spans(Span {
            attributes: attrs(10),
            dropped_attributes_count: 1,
            events: vec![Event {
                attributes: attrs(5),
                ..Default::default()
            }],
            ..Default::default()
        });
        let cut = limits(4, 100).apply(&mut payload);
        let span = &payload.spans[0].scope_spans[0].spans[0];
        assert_eq!(span.attributes.len(), 4);
        assert_eq!(span.attributes[3].key, "k3", "the first ones are kept");
        assert_eq!(span.dropped_attributes_count, 7);
        assert_eq!(span.events[0].attributes.len(), 4);
        assert_eq!(span.events[0].dropped_attributes_count, 1);
        assert_eq!(
            payload.spans[0].resource.as_ref().unwrap().attributes.len(),
            3
        );
        assert_eq!(cut, 7);
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let mut payload = spans(Span {
            attributes: vec![KeyValue {
                key: "message".into(),
                value: Some(string("ééééé")),
                ..Default::default()
            }],
            ..Default::default()
        });
        limits(10, 5).apply(&mut payload);
        let value = &payload.spans[0].scope_spans[0].spans[0].attributes[0].value;
        assert_eq!(value.as_ref().unwrap(), &string("éé"));
    }

    #[test]
    fn deeply_nested_and_wide_values_are_bounded_without_recursion() {
        let mut value = string(&"x".repeat(50));
        for _ in 0..1_000 {
            value = AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![value, string("y")],
                })),
            };
        }
        let wide = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList { values: attrs(50) })),
        };
        let mut payload = Payload {
            logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(value),
                        attributes: vec![KeyValue {
                            key: "wide".into(),
                            value: Some(wide),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let cut = limits(8, 10).apply(&mut payload);
        assert_eq!(cut, 42);
        let record = &payload.logs[0].scope_logs[0].log_records[0];
        let Some(Value::KvlistValue(l)) = &record.attributes[0].value.as_ref().unwrap().value
        else {
            panic!("kvlist expected");
        };
        assert_eq!(l.values.len(), 8);
        let mut innermost = record.body.as_ref().unwrap();
        while let Some(Value::ArrayValue(a)) = &innermost.value {
            innermost = &a.values[0];
        }
        assert_eq!(innermost, &string(&"x".repeat(10)));
    }
}
