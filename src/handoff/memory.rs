//! What a payload costs in memory while it waits in a queue.
//!
//! A queue's byte budget (`queue.max_bytes`) bounds the memory that accepted telemetry holds
//! until it is exported. Counting protobuf-encoded bytes undercounts that by a factor of three
//! to five: every span, attribute and value is a struct with its own allocation, and strings
//! carry spare capacity. This walker adds up what the payload actually holds on the heap —
//! struct sizes times element capacities, plus string and byte capacities — so the budget, and
//! with it the peak RSS under overload, means what it says. It walks the payload once, about
//! the cost of computing its encoded length.

use std::mem::size_of;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, Exemplar, Metric, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::Payload;

/// Heap bytes a payload holds (its own struct included).
pub fn payload_bytes(p: &Payload) -> usize {
    size_of::<Payload>()
        + cap(&p.spans, resource_spans)
        + cap(&p.logs, resource_logs)
        + cap(&p.metrics, resource_metrics)
}

/// A vector's buffer (by capacity) plus what each element owns.
fn cap<T>(v: &Vec<T>, owned: impl Fn(&T) -> usize) -> usize {
    size_of::<T>() * v.capacity() + v.iter().map(owned).sum::<usize>()
}

fn string(s: &String) -> usize {
    s.capacity()
}

fn bytes(b: &Vec<u8>) -> usize {
    b.capacity()
}

fn attributes(attrs: &Vec<KeyValue>) -> usize {
    cap(attrs, key_value)
}

fn key_value(kv: &KeyValue) -> usize {
    string(&kv.key) + kv.value.as_ref().map_or(0, any_value)
}

fn any_value(v: &AnyValue) -> usize {
    match &v.value {
        Some(Value::StringValue(s)) => string(s),
        Some(Value::BytesValue(b)) => bytes(b),
        Some(Value::ArrayValue(a)) => cap(&a.values, any_value),
        Some(Value::KvlistValue(l)) => attributes(&l.values),
        _ => 0,
    }
}

fn resource(r: &Option<Resource>) -> usize {
    r.as_ref().map_or(0, |r| attributes(&r.attributes))
}

fn scope(s: &Option<InstrumentationScope>) -> usize {
    s.as_ref().map_or(0, |s| {
        string(&s.name) + string(&s.version) + attributes(&s.attributes)
    })
}

fn resource_spans(r: &ResourceSpans) -> usize {
    resource(&r.resource) + string(&r.schema_url) + cap(&r.scope_spans, scope_spans)
}

fn scope_spans(s: &ScopeSpans) -> usize {
    scope(&s.scope) + string(&s.schema_url) + cap(&s.spans, span)
}

fn span(s: &Span) -> usize {
    bytes(&s.trace_id)
        + bytes(&s.span_id)
        + bytes(&s.parent_span_id)
        + string(&s.trace_state)
        + string(&s.name)
        + attributes(&s.attributes)
        + cap(&s.events, event)
        + cap(&s.links, link)
        + s.status.as_ref().map_or(0, |st| string(&st.message))
}

fn event(e: &Event) -> usize {
    string(&e.name) + attributes(&e.attributes)
}

fn link(l: &Link) -> usize {
    bytes(&l.trace_id) + bytes(&l.span_id) + string(&l.trace_state) + attributes(&l.attributes)
}

fn resource_logs(r: &ResourceLogs) -> usize {
    resource(&r.resource) + string(&r.schema_url) + cap(&r.scope_logs, scope_logs)
}

fn scope_logs(s: &ScopeLogs) -> usize {
    scope(&s.scope) + string(&s.schema_url) + cap(&s.log_records, log_record)
}

fn log_record(l: &LogRecord) -> usize {
    string(&l.severity_text)
        + l.body.as_ref().map_or(0, any_value)
        + attributes(&l.attributes)
        + bytes(&l.trace_id)
        + bytes(&l.span_id)
        + string(&l.event_name)
}

fn resource_metrics(r: &ResourceMetrics) -> usize {
    resource(&r.resource) + string(&r.schema_url) + cap(&r.scope_metrics, scope_metrics)
}

fn scope_metrics(s: &ScopeMetrics) -> usize {
    scope(&s.scope) + string(&s.schema_url) + cap(&s.metrics, metric)
}

fn exemplars(e: &Vec<Exemplar>) -> usize {
    cap(e, |x| {
        attributes(&x.filtered_attributes) + bytes(&x.span_id) + bytes(&x.trace_id)
    })
}

fn buckets(b: &Option<Buckets>) -> usize {
    b.as_ref()
        .map_or(0, |b| size_of::<u64>() * b.bucket_counts.capacity())
}

fn metric(m: &Metric) -> usize {
    let header =
        string(&m.name) + string(&m.description) + string(&m.unit) + attributes(&m.metadata);
    header
        + match &m.data {
            Some(Data::Gauge(g)) => cap(&g.data_points, |p| {
                attributes(&p.attributes) + exemplars(&p.exemplars)
            }),
            Some(Data::Sum(s)) => cap(&s.data_points, |p| {
                attributes(&p.attributes) + exemplars(&p.exemplars)
            }),
            Some(Data::Histogram(h)) => cap(&h.data_points, |p| {
                attributes(&p.attributes)
                    + exemplars(&p.exemplars)
                    + size_of::<u64>() * p.bucket_counts.capacity()
                    + size_of::<f64>() * p.explicit_bounds.capacity()
            }),
            Some(Data::ExponentialHistogram(h)) => cap(&h.data_points, |p| {
                attributes(&p.attributes)
                    + exemplars(&p.exemplars)
                    + buckets(&p.positive)
                    + buckets(&p.negative)
            }),
            Some(Data::Summary(s)) => cap(&s.data_points, |p| {
                attributes(&p.attributes)
                    + size_of::<
                        opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile,
                    >() * p.quantile_values.capacity()
            }),
            None => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn payload(spans: usize, value_len: usize) -> Payload {
        let attrs = || {
            vec![
                kv("url.full", Value::StringValue("x".repeat(value_len))),
                kv(
                    "list",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::StringValue("y".repeat(value_len))),
                        }],
                    }),
                ),
            ]
        };
        Payload {
            spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: attrs(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|_| Span {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            name: "resourceFetch".into(),
                            attributes: attrs(),
                            events: vec![Event {
                                name: "responseEnd".into(),
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn counts_structs_and_strings_and_grows_with_both() {
        let small = payload(10, 10);
        let bytes = payload_bytes(&small);
        // Every span is at least its struct and its strings.
        assert!(bytes > 10 * (size_of::<Span>() + 16 + 8 + 13 + 20));
        // Far more than its encoded size: the structs are the cost the encoding hides.
        assert!(
            bytes > 3 * small.encoded_len(),
            "{bytes} vs {}",
            small.encoded_len()
        );
        assert!(payload_bytes(&payload(20, 10)) > bytes + 9 * size_of::<Span>());
        // Long values are counted once per byte.
        let long = payload_bytes(&payload(10, 1_010));
        assert!(long >= bytes + 2 * 11 * 1_000, "{long} vs {bytes}");
    }

    #[test]
    fn an_empty_payload_is_its_struct() {
        assert_eq!(payload_bytes(&Payload::default()), size_of::<Payload>());
    }
}
