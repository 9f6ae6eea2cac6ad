//! Size caps on everything that leaves the edge, whatever format it came in.
//!
//! A browser (or anyone pretending to be one) decides how many attributes an item carries and
//! how long their values are. Native and Faro decoders already bound what they build, but OTLP
//! passthrough forwards what the client sent, so the last word is here, applied to every
//! payload just before it is queued: at most `limits.max_attributes_per_item` attributes on a
//! resource, scope, span, span event, link, log record or data point (and entries in one array
//! or map value), string values, keys and log bodies cut at `limits.max_attribute_value_len`
//! bytes on a character boundary. Cut attributes are recorded in the item's `dropped_attributes_count`, as OTLP
//! SDKs do, and counted in `rum_bridge_attributes_dropped_total`.
//!
//! The walk is [`crate::handoff::attributes`], the same one an exporter's own value limit
//! uses: one rule for both.

use crate::config::LimitsConfig;
use crate::handoff::attributes::AttributeCaps;
use crate::handoff::Payload;

/// The compiled caps (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct ItemLimits {
    caps: AttributeCaps,
}

impl ItemLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            caps: AttributeCaps {
                max_attributes: config.max_attributes_per_item,
                max_value_len: config.max_attribute_value_len,
            },
        }
    }

    /// Caps every item of `payload`; returns how many attributes (and array or map entries)
    /// were cut.
    pub fn apply(&self, payload: &mut Payload) -> u64 {
        self.caps.payload(payload).dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn limits(max_attributes: usize, max_value_len: usize) -> ItemLimits {
        ItemLimits {
            caps: AttributeCaps {
                max_attributes,
                max_value_len,
            },
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
