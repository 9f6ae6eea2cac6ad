use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{metric, Gauge, Metric, NumberDataPoint};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::*;

fn budget() -> Budget {
    Budget::new(&LimitsConfig::default())
}

fn proto(body: &[u8], root: Msg) -> Result<Tally, EdgeError> {
    measure(body, BodyFormat::Protobuf, root, "span", &budget())
}

fn json(body: &str, root: Msg) -> Result<Tally, EdgeError> {
    measure(body.as_bytes(), BodyFormat::Json, root, "span", &budget())
}

fn spans(resources: usize, spans_each: usize, span: Span) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span; spans_each],
                    ..Default::default()
                }],
                ..Default::default()
            };
            resources
        ],
    }
}

/// `n` copies of `unit` inside `prefix`/`suffix`, without building a message.
fn repeated(prefix: &str, unit: &str, n: usize, suffix: &str) -> String {
    let mut body = String::with_capacity(prefix.len() + n * (unit.len() + 1) + suffix.len());
    body.push_str(prefix);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(unit);
    }
    body.push_str(suffix);
    body
}

#[test]
fn a_normal_request_passes_and_is_counted_alike_in_both_encodings() {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "GET".into(),
        attributes: vec![KeyValue {
            key: "http.request.method".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("GET".into())),
            }),
            ..Default::default()
        }],
        events: vec![Event::default(); 3],
        ..Default::default()
    };
    let request = spans(2, 400, span);
    let from_proto = proto(&request.encode_to_vec(), Msg::TraceRequest).unwrap();
    let from_json = json(&serde_json::to_string(&request).unwrap(), Msg::TraceRequest).unwrap();
    for tally in [from_proto, from_json] {
        assert_eq!(tally.resources, 2);
        assert_eq!(tally.scopes, 2);
        assert_eq!(tally.items, 800);
        assert_eq!(tally.nested, 2400);
        assert_eq!(tally.entries(), 804);
        assert!(tally.decoded_bytes > 800 * Msg::Span.size());
    }
}

#[test]
fn empty_spans_and_empty_resources_count_and_stop_the_walk() {
    // One entry over: every resource and scope counts along with the spans.
    let request = spans(1, 999, Span::default());
    let err = proto(&request.encode_to_vec(), Msg::TraceRequest).unwrap_err();
    assert_eq!(err.reason(), "too_many_items");
    assert_eq!(err.status(), 413);
    // Two million empty resources: no span at all.
    let body = [0x0a, 0x00].repeat(2_000_000);
    let err = proto(&body, Msg::TraceRequest).unwrap_err();
    assert_eq!(err.reason(), "too_many_items");
    let body = repeated(r#"{"resourceSpans":["#, "{}", 2_000_000, "]}");
    assert_eq!(
        json(&body, Msg::TraceRequest).unwrap_err().reason(),
        "too_many_items"
    );
    // Empty scopes in one resource.
    let body = repeated(r#"{"resourceLogs":[{"scopeLogs":["#, "{}", 5_000, "]}]}");
    assert_eq!(
        json(&body, Msg::LogsRequest).unwrap_err().reason(),
        "too_many_items"
    );
}

#[test]
fn a_million_empty_events_exceed_the_decoded_size_budget() {
    let request = spans(
        1,
        1,
        Span {
            events: vec![Event::default(); 1_000_000],
            ..Default::default()
        },
    );
    let body = request.encode_to_vec();
    assert!(body.len() < 2_100_000, "two bytes per event");
    let err = proto(&body, Msg::TraceRequest).unwrap_err();
    assert_eq!(err.reason(), "too_large_decoded");
    assert_eq!(err.status(), 413);
    let body = repeated(
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"events":["#,
        "{}",
        1_000_000,
        "]}]}]}]}",
    );
    assert_eq!(
        json(&body, Msg::TraceRequest).unwrap_err().reason(),
        "too_large_decoded"
    );
}

#[test]
fn data_points_and_log_bodies_are_measured() {
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default(); 1_000_000],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let err = proto(&request.encode_to_vec(), Msg::MetricsRequest).unwrap_err();
    assert_eq!(err.reason(), "too_large_decoded");

    // An array value of a million empty values in a log body.
    let body = repeated(
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"arrayValue":{"values":["#,
        "{}",
        1_000_000,
        "]}}}]}]}]}",
    );
    assert_eq!(
        json(&body, Msg::LogsRequest).unwrap_err().reason(),
        "too_large_decoded"
    );
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); 10],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let tally = proto(&logs.encode_to_vec(), Msg::LogsRequest).unwrap();
    assert_eq!(tally.items, 10);
}

#[test]
fn malformed_bodies_are_refused_as_the_decoder_would() {
    // A length running past the end.
    let err = proto(&[0x0a, 0x05, 0x00], Msg::TraceRequest).unwrap_err();
    assert_eq!(err.reason(), "invalid_protobuf");
    assert_eq!(err.status(), 400);
    let err = json(r#"{"resourceSpans":[{]}"#, Msg::TraceRequest).unwrap_err();
    assert_eq!(err.reason(), "invalid_json");
    // Deeper than serde_json's recursion limit.
    let deep = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}}}]}}]}}]}}"#,
        r#"{"arrayValue":{"values":["#.repeat(200) + &"]}}".repeat(200)
    );
    assert_eq!(
        json(&deep, Msg::LogsRequest).unwrap_err().reason(),
        "invalid_json"
    );
    // Unknown fields and other shapes are the decoder's business, not the budget's.
    let tally = json(
        r#"{"resourceSpans":[{"x":[[[]]],"scopeSpans":[{"spans":[{"name":"a","events":null}]}]}]}"#,
        Msg::TraceRequest,
    )
    .unwrap();
    assert_eq!(tally.items, 1);
}

#[test]
fn bodies_small_enough_to_skip_the_walk_cannot_reach_the_decoded_budget() {
    // A huge budget, so the walk measures instead of stopping: the densest bodies of empty
    // messages stay under the per-byte bound `small_enough` assumes.
    let roomy = Budget {
        max_entries: u64::MAX,
        max_decoded_bytes: u64::MAX,
    };
    let dense = [
        (
            repeated(
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":["#,
                "{}",
                5_000,
                "]}]}]}",
            ),
            Msg::TraceRequest,
        ),
        (
            repeated(
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"events":["#,
                "{}",
                5_000,
                "]}]}]}]}",
            ),
            Msg::TraceRequest,
        ),
        (
            repeated(
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"arrayValue":{"values":["#,
                "{}",
                5_000,
                "]}}}]}]}]}",
            ),
            Msg::LogsRequest,
        ),
        (
            repeated(
                r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":["#,
                "{}",
                5_000,
                "]}}]}]}]}",
            ),
            Msg::MetricsRequest,
        ),
        (
            repeated(r#"{"resourceSpans":["#, "{}", 5_000, "]}"),
            Msg::TraceRequest,
        ),
    ];
    for (body, root) in dense {
        let tally = measure(body.as_bytes(), BodyFormat::Json, root, "item", &roomy).unwrap();
        assert!(
            tally.decoded_bytes <= body.len() as u64 * worst_decoded_per_body_byte(),
            "{} decoded bytes per body byte for {root:?}",
            tally.decoded_bytes / body.len() as u64
        );
    }
    // With the default limits a browser's page load skips the walk; a megabyte does not.
    assert!(small_enough(30 * 1024, &budget()));
    assert!(!small_enough(1024 * 1024, &budget()));
}

#[test]
fn entries_counted_after_decoding_are_refused_like_the_walk_refuses_them() {
    let request = spans(1, 999, Span::default());
    let walked = proto(&request.encode_to_vec(), Msg::TraceRequest).unwrap_err();
    let counted = check_entries(1 + 1 + 999, "span", &budget()).unwrap_err();
    assert_eq!(
        (counted.status(), counted.reason(), counted.to_string()),
        (walked.status(), walked.reason(), walked.to_string())
    );
    assert!(check_entries(1000, "span", &budget()).is_ok());
}
