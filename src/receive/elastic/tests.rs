//! The Elastic intake decoder on the real `@elastic/apm-rum` captures (v2 and v3, gzip) and on
//! small handmade bodies.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value as Json;

use super::{decode, interpret, ElasticBatch};
use crate::config::PageLoadCorrelation;
use crate::model::trace_context::hex;
use crate::model::{Reason, RumEvent, VitalName};
use crate::receive::body::gunzip_limited;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const NOW: f64 = 1_800_000_000_000.0;

fn lines(name: &str) -> Vec<Json> {
    let path = format!(
        "{}/tests/fixtures/real-clients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The body as the bridge reads it: base64, then gunzip (the agent compresses every request).
fn body(line: &Json) -> Vec<u8> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(line["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(line["headers"]["content-encoding"], "gzip");
    gunzip_limited(&raw, 10 << 20).unwrap()
}

fn capture(file: &str, version: u8, mode: PageLoadCorrelation) -> Vec<ElasticBatch> {
    lines(file)
        .iter()
        .map(|line| {
            assert_eq!(
                line["path"],
                format!("/intake/v{version}/rum/events").as_str()
            );
            let intake = decode(&body(line), version, 1000).unwrap();
            assert!(intake.rejected.is_empty(), "{:?}", intake.rejected);
            assert_eq!(
                intake.metadata.service_name.as_deref(),
                Some("capture-shop-elastic")
            );
            interpret(intake, mode, NOW)
        })
        .collect()
}

fn spans(batches: &[ElasticBatch]) -> Vec<&Span> {
    batches
        .iter()
        .flat_map(|b| &b.spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect()
}

fn named<'a>(spans: &[&'a Span], name: &str) -> Vec<&'a Span> {
    spans.iter().copied().filter(|s| s.name == name).collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

/// The `traceparent` the page's fetch sent to the backend.
fn fetch_traceparent(file: &str) -> (String, String) {
    let app = &lines(file)[0];
    let tp = app["headers"]["traceparent"].as_str().unwrap();
    (tp[3..35].to_owned(), tp[36..52].to_owned())
}

fn check_capture(file: &str, app_file: &str, version: u8) {
    let batches = capture(file, version, PageLoadCorrelation::Child);
    let all = spans(&batches);
    let dl = named(&all, "documentLoad");
    assert_eq!(dl.len(), 1);
    let dl = dl[0];
    assert_eq!(hex(&dl.trace_id), SERVER_TRACE);
    assert_eq!(hex(&dl.parent_span_id), SERVER_SPAN);
    assert_eq!(dl.flags, 0x301, "remote parent, sampled");
    let events: Vec<&str> = dl.events.iter().map(|e| e.name.as_str()).collect();
    for mark in [
        "fetchStart",
        "responseStart",
        "domInteractive",
        "loadEventEnd",
        "firstContentfulPaint",
        "largestContentfulPaint",
    ] {
        assert!(events.contains(&mark), "{mark} in {events:?}");
    }
    // The document span carried the server span's id (`pageLoadSpanId`): it gets its own.
    let fetch = named(&all, "documentFetch");
    assert_eq!(fetch.len(), 1);
    assert_ne!(hex(&fetch[0].span_id), SERVER_SPAN);
    assert!(all.iter().all(|s| hex(&s.span_id) != SERVER_SPAN));
    assert_eq!(fetch[0].parent_span_id, dl.span_id);
    let resources = named(&all, "resourceFetch");
    assert_eq!(resources.len(), 3);
    for child in resources {
        assert_eq!(child.trace_id, dl.trace_id);
        assert_eq!(child.parent_span_id, dl.span_id);
        assert!(child.start_time_unix_nano >= dl.start_time_unix_nano);
    }

    // The fetch CLIENT span has exactly the ids the browser sent in `traceparent`.
    let (trace, span) = fetch_traceparent(app_file);
    let client = all.iter().find(|s| hex(&s.span_id) == span).unwrap();
    assert_eq!(hex(&client.trace_id), trace);
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.name, "POST");
    assert_eq!(
        attr(client, "url.full"),
        Some(&Value::StringValue(
            "http://127.0.0.1:18787/api/cart".into()
        ))
    );
    assert_eq!(
        attr(client, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    // … under its user-interaction transaction, which is a span too.
    let click = all
        .iter()
        .find(|s| s.span_id == client.parent_span_id)
        .unwrap();
    assert_eq!(click.name, "Click - button");
    assert!(attr(click, "elastic.breakdown.external.self_time_ms").is_some());

    // Session, vitals and errors.
    let first = &batches[0];
    assert!(first.has_navigation);
    assert_eq!(
        first.batch.context.app.environment.as_deref(),
        Some("capture")
    );
    assert_eq!(first.batch.context.sdk_name.as_deref(), Some("rum-js"));
    assert!(first.batch.context.session_id.is_some());
    let vitals: Vec<VitalName> = batches
        .iter()
        .flat_map(|b| &b.batch.events)
        .filter_map(|e| match e {
            RumEvent::Vital(v) => Some(v.name),
            _ => None,
        })
        .collect();
    for v in [
        VitalName::Lcp,
        VitalName::Fcp,
        VitalName::Ttfb,
        VitalName::Cls,
    ] {
        assert!(vitals.contains(&v), "{v:?} in {vitals:?}");
    }
    let errors: Vec<_> = batches
        .iter()
        .flat_map(|b| &b.batch.events)
        .filter_map(|e| match e {
            RumEvent::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2);
    let rejection = errors
        .iter()
        .find(|e| e.message.as_deref() == Some("Recommendations service unavailable (simulated)"))
        .unwrap();
    assert_eq!(rejection.error_type.as_deref(), Some("Error"));
    let active = rejection.active_span.unwrap();
    assert_eq!(hex(&active.trace_id), SERVER_TRACE);
    assert_eq!(&active.span_id[..], &dl.span_id[..], "on the page load");
    let type_error = errors
        .iter()
        .find(|e| e.error_type.as_deref() == Some("TypeError"))
        .unwrap();
    assert_eq!(
        type_error.message.as_deref(),
        Some("Cannot apply discount code \"SPRING25\": pricing rules are undefined")
    );
    let stack = type_error.stack.as_deref().unwrap();
    assert!(stack.starts_with("TypeError: Cannot apply"), "{stack}");
    assert!(
        stack.contains("\n    at applyDiscountCode (http://127.0.0.1:18787/"),
        "{stack}"
    );
    assert!(type_error.active_span.is_some());
}

#[test]
fn capture_v2_maps_page_load_fetch_errors_and_vitals() {
    check_capture("elastic-rum.jsonl", "elastic-rum.app-requests.jsonl", 2);
}

#[test]
fn capture_v3_compressed_names_map_the_same_way() {
    check_capture(
        "elastic-rum-v3.jsonl",
        "elastic-rum-v3.app-requests.jsonl",
        3,
    );
}

#[test]
fn capture_page_load_gets_its_own_trace_with_a_link_in_link_mode() {
    let batches = capture("elastic-rum.jsonl", 2, PageLoadCorrelation::Link);
    let all = spans(&batches);
    let dl = named(&all, "documentLoad")[0];
    assert_ne!(hex(&dl.trace_id), SERVER_TRACE);
    assert!(dl.parent_span_id.is_empty());
    assert_eq!(hex(&dl.links[0].trace_id), SERVER_TRACE);
    assert_eq!(hex(&dl.links[0].span_id), SERVER_SPAN);
    for child in named(&all, "resourceFetch") {
        assert_eq!(child.trace_id, dl.trace_id, "the tree follows its page");
    }
    // The error raised during the page load follows it too.
    let error = batches[0]
        .batch
        .events
        .iter()
        .find_map(|e| match e {
            RumEvent::Error(e) => e.active_span,
            _ => None,
        })
        .unwrap();
    assert_eq!(&error.trace_id[..], &dl.trace_id[..]);
}

const META: &str =
    r#"{"metadata":{"service":{"name":"shop","agent":{"name":"rum-js","version":"5.17.5"}}}}"#;

#[test]
fn a_bad_line_is_dropped_and_counted_the_rest_kept() {
    let body = format!(
        "{META}\nnot json\n{{\"transaction\":{{\"id\":\"zz\",\"trace_id\":\"{SERVER_TRACE}\"}}}}\n\
         {{\"bogus\":{{}}}}\n\
         {{\"transaction\":{{\"id\":\"0123456789abcdef\",\"trace_id\":\"{SERVER_TRACE}\",\
         \"name\":\"/cart\",\"type\":\"route-change\",\"duration\":12.5}}}}\n"
    );
    let intake = decode(body.as_bytes(), 2, 100).unwrap();
    let reasons: Vec<Reason> = intake.rejected.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::InvalidJson,
            Reason::InvalidField,
            Reason::UnknownType
        ]
    );
    assert!(intake.rejected[1].detail.starts_with("line 3:"));
    let out = interpret(intake, PageLoadCorrelation::Child, NOW);
    let all = spans(std::slice::from_ref(&out));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, "/cart");
    assert_eq!(
        all[0].end_time_unix_nano - all[0].start_time_unix_nano,
        12_500_000
    );
    assert_eq!(
        all[0].end_time_unix_nano,
        (NOW * 1e6) as u64,
        "ends on arrival"
    );
    assert!(!out.has_navigation);
}

#[test]
fn bodies_without_metadata_or_with_too_many_lines_are_refused() {
    assert!(decode(b"", 2, 10).is_err());
    let no_meta = format!("{{\"transaction\":{{}}}}\n{META}");
    assert_eq!(
        decode(no_meta.as_bytes(), 2, 10).unwrap_err().reason(),
        Reason::WrongShape
    );
    // v3 names on the v2 route are not metadata.
    let v3 = r#"{"m":{"se":{"n":"shop"}}}"#;
    assert!(decode(v3.as_bytes(), 2, 10).is_err());
    assert!(decode(v3.as_bytes(), 3, 10).is_ok());
    let many = format!("{META}\n{}", "{\"metricset\":{}}\n".repeat(11));
    assert_eq!(
        decode(many.as_bytes(), 2, 10).unwrap_err().reason(),
        Reason::TooManyItems
    );
    let spans = format!(
        "{{\"m\":{{}}}}\n{{\"x\":{{\"id\":\"0123456789abcdef\",\"tid\":\"{SERVER_TRACE}\",\"y\":[{}]}}}}",
        [r#"{"id":"1123456789abcdef"}"#; 10].join(",")
    );
    assert_eq!(
        decode(spans.as_bytes(), 3, 10).unwrap_err().reason(),
        Reason::TooManyItems,
        "v3 spans count"
    );
    let deep = format!("{META}\n{}{}", "[".repeat(40), "]".repeat(40));
    assert_eq!(
        decode(deep.as_bytes(), 2, 10).unwrap_err().reason(),
        Reason::TooDeep
    );
}

#[test]
fn page_exit_inp_becomes_a_vital_and_fid_is_counted_as_retired() {
    let body = format!(
        "{META}\n{{\"transaction\":{{\"id\":\"0123456789abcdef\",\"trace_id\":\"{SERVER_TRACE}\",\
         \"name\":\"page-exit\",\"type\":\"page-exit\",\"duration\":90,\
         \"context\":{{\"tags\":{{\"inp_value\":88}}}}}}}}\n\
         {{\"transaction\":{{\"id\":\"1123456789abcdef\",\"trace_id\":\"{SERVER_TRACE}\",\
         \"parent_id\":\"{SERVER_SPAN}\",\"name\":\"/\",\"type\":\"page-load\",\"duration\":900,\
         \"experience\":{{\"cls\":0.3,\"fid\":12,\"tbt\":40,\"longtask\":{{\"count\":2,\"sum\":140,\"max\":90}}}}}}}}\n"
    );
    let out = interpret(
        decode(body.as_bytes(), 2, 100).unwrap(),
        PageLoadCorrelation::Child,
        NOW,
    );
    let vitals: Vec<(VitalName, f64)> = out
        .batch
        .events
        .iter()
        .filter_map(|e| match e {
            RumEvent::Vital(v) => Some((v.name, v.value)),
            _ => None,
        })
        .collect();
    assert!(vitals.contains(&(VitalName::Inp, 88.0)));
    assert!(vitals.contains(&(VitalName::Cls, 0.3)));
    assert_eq!(out.batch.rejected[0].reason, Reason::UnsupportedVital);
    let all = spans(std::slice::from_ref(&out));
    assert_eq!(all.len(), 1, "page-exit is no span");
    // `pageLoadParentId`: the server span is the transaction's parent.
    assert_eq!(hex(&all[0].parent_span_id), SERVER_SPAN);
    assert_eq!(
        attr(all[0], "elastic.experience.tbt_ms"),
        Some(&Value::DoubleValue(40.0))
    );
    assert_eq!(
        attr(all[0], "elastic.experience.longtask.count"),
        Some(&Value::IntValue(2))
    );
}

#[test]
fn v3_spans_with_bad_ids_cost_only_themselves() {
    let body = format!(
        "{{\"m\":{{\"se\":{{\"n\":\"shop\"}}}}}}\n{{\"x\":{{\"id\":\"0123456789abcdef\",\
         \"tid\":\"{SERVER_TRACE}\",\"n\":\"Click\",\"t\":\"user-interaction\",\"d\":5,\
         \"y\":[{{\"id\":\"nope\"}},{{\"id\":\"2123456789abcdef\",\"n\":\"GET /x\",\"t\":\"external\",\
         \"su\":\"http\",\"s\":1,\"d\":2,\"c\":{{\"h\":{{\"url\":\"/x\",\"mt\":\"GET\",\"sc\":500}}}},\"o\":\"failure\"}},\
         {{\"id\":\"3123456789abcdef\",\"n\":\"child\",\"t\":\"app\",\"s\":1,\"d\":1,\"pi\":1}}]}}}}\n"
    );
    let intake = decode(body.as_bytes(), 3, 100).unwrap();
    assert_eq!(intake.rejected.len(), 1);
    assert!(intake.rejected[0].detail.starts_with("line 2: span 0:"));
    let out = interpret(intake, PageLoadCorrelation::Child, NOW);
    let all = spans(std::slice::from_ref(&out));
    let get = named(&all, "GET")[0];
    assert_eq!(get.kind, SpanKind::Client as i32);
    assert_eq!(hex(&get.parent_span_id), "0123456789abcdef");
    assert_eq!(get.status.as_ref().unwrap().code, 2, "failure → ERROR");
    // `pi`: the parent by its index in `y`.
    assert_eq!(named(&all, "child")[0].parent_span_id, get.span_id);
}
