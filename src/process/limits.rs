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
//!
//! Spans also get OpenTelemetry's span limits on events and links
//! (`limits.max_events_per_span`, `limits.max_links_per_span`, 128 each by default): the first
//! ones are kept, the rest are cut before their attributes are walked, added to the span's
//! `dropped_events_count` / `dropped_links_count` (on top of what the client reported) and
//! counted in `rum_bridge_span_events_dropped_total` / `rum_bridge_span_links_dropped_total`.
//! Every format's spans pass here: native and Faro conversions, Faro's embedded OTLP spans and
//! OTLP passthrough.

use crate::config::LimitsConfig;
use crate::handoff::attributes::AttributeCaps;
use crate::handoff::Payload;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

/// The compiled caps (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct ItemLimits {
    caps: AttributeCaps,
    max_events_per_span: usize,
    max_links_per_span: usize,
}

/// What [`ItemLimits::apply`] cut from one payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capped {
    /// Attributes (and array or map entries) removed.
    pub attributes: u64,
    /// Span events removed beyond `max_events_per_span`.
    pub events: u64,
    /// Span links removed beyond `max_links_per_span`.
    pub links: u64,
}

impl Capped {
    /// Adds what was cut to the daemon's counters.
    pub fn count(&self, metrics: &crate::admin::Metrics) {
        metrics.attributes_dropped.inc_by(self.attributes);
        metrics.span_events_dropped.inc_by(self.events);
        metrics.span_links_dropped.inc_by(self.links);
    }
}

impl ItemLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            caps: AttributeCaps {
                max_attributes: config.max_attributes_per_item,
                max_value_len: config.max_attribute_value_len,
            },
            max_events_per_span: config.max_events_per_span,
            max_links_per_span: config.max_links_per_span,
        }
    }

    /// Caps every item of `payload`: span events and links first, then attributes.
    pub fn apply(&self, payload: &mut Payload) -> Capped {
        let (events, links) = self.span_lists(&mut payload.spans);
        Capped {
            attributes: self.caps.payload(payload).dropped,
            events,
            links,
        }
    }

    /// Cuts events and links beyond the span limits; returns how many of each were cut.
    fn span_lists(&self, entries: &mut [ResourceSpans]) -> (u64, u64) {
        let (mut events, mut links) = (0u64, 0u64);
        let spans = entries
            .iter_mut()
            .flat_map(|rs| rs.scope_spans.iter_mut())
            .flat_map(|ss| ss.spans.iter_mut());
        for span in spans {
            let over = cut_list(&mut span.events, self.max_events_per_span);
            span.dropped_events_count = span.dropped_events_count.saturating_add(over);
            events += u64::from(over);
            let over = cut_list(&mut span.links, self.max_links_per_span);
            span.dropped_links_count = span.dropped_links_count.saturating_add(over);
            links += u64::from(over);
        }
        (events, links)
    }
}

/// Keeps the first `max` entries (releasing the memory of the rest); how many went.
fn cut_list<T>(list: &mut Vec<T>, max: usize) -> u32 {
    if list.len() <= max {
        return 0;
    }
    let over = list.len() - max;
    list.truncate(max);
    list.shrink_to_fit();
    u32::try_from(over).unwrap_or(u32::MAX)
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
            max_events_per_span: 128,
            max_links_per_span: 128,
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
        let cut = limits(4, 100).apply(&mut payload).attributes;
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
        let cut = limits(8, 10).apply(&mut payload).attributes;
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

    #[test]
    fn span_events_and_links_are_capped_and_recorded_on_top_of_the_client_count() {
        use opentelemetry_proto::tonic::trace::v1::span::Link;
        let mut payload = spans(Span {
            events: (0..300)
                .map(|i| Event {
                    name: format!("e{i}"),
                    attributes: attrs(10),
                    ..Default::default()
                })
                .collect(),
            dropped_events_count: 5,
            links: vec![Link::default(); 130],
            ..Default::default()
        });
        let mut caps = limits(4, 100);
        caps.max_links_per_span = 100;
        let capped = caps.apply(&mut payload);
        let span = &payload.spans[0].scope_spans[0].spans[0];
        assert_eq!(span.events.len(), 128);
        assert_eq!(span.events[127].name, "e127", "the first ones are kept");
        assert_eq!(span.dropped_events_count, 5 + 172);
        assert_eq!(span.links.len(), 100);
        assert_eq!(span.dropped_links_count, 30);
        assert_eq!(capped.events, 172);
        assert_eq!(capped.links, 30);
        // Only the kept events' attributes are walked (and cut).
        assert_eq!(capped.attributes, 128 * 6);
        // Within the limits nothing changes.
        assert_eq!(caps.apply(&mut payload), Capped::default());
    }
}
