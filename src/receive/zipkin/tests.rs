//! The Zipkin decoder on the real `@splunk/otel-web` capture and on small handmade arrays.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value as Json;

use super::rum::{attr, interpret, SplunkBatch};
use super::{decode, looks_like_zipkin};
use crate::config::PageLoadCorrelation;
use crate::model::trace_context::hex;
use crate::model::{Reason, RumEvent, VitalName};

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";

fn fixture(name: &str) -> Vec<Json> {
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

/// Every beacon of the capture, decoded and interpreted one request at a time.
fn capture(mode: PageLoadCorrelation) -> Vec<SplunkBatch> {
    fixture("splunk-rum.jsonl")
        .iter()
        .map(|line| {
            assert_eq!(line["path"], "/v1/rum");
            assert_eq!(line["query"], "auth=pk_splunk_capture");
            let body = line["body"].as_str().unwrap().as_bytes();
            assert!(
                looks_like_zipkin(body),
                "a Splunk beacon is sniffed as Zipkin"
            );
            let decoded = decode(body, 1000).unwrap();
            assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
            interpret(decoded, mode)
        })
        .collect()
}

fn spans(batches: &[SplunkBatch]) -> Vec<&Span> {
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

#[test]
fn capture_page_load_joins_the_server_trace_in_child_mode() {
    let batches = capture(PageLoadCorrelation::Child);
    let all = spans(&batches);
    let dl = named(&all, "documentLoad");
    assert_eq!(dl.len(), 1);
    let dl = dl[0];
    assert_eq!(hex(&dl.trace_id), SERVER_TRACE);
    assert_eq!(hex(&dl.parent_span_id), SERVER_SPAN);
    assert_eq!(dl.flags, 0x301, "remote parent, sampled");
    for child in named(&all, "documentFetch")
        .into_iter()
        .chain(named(&all, "resourceFetch"))
    {
        assert_eq!(
            child.trace_id, dl.trace_id,
            "{} follows its page",
            child.name
        );
        assert_eq!(child.parent_span_id, dl.span_id);
    }
    assert_eq!(named(&all, "resourceFetch").len(), 3);
    let first = batches.iter().find(|b| b.has_navigation).unwrap();
    let ctx = &first.batch.context;
    assert_eq!(hex(&ctx.server_trace.unwrap().span_id), SERVER_SPAN);
    assert_eq!(ctx.page_span.unwrap().span_id.to_vec(), dl.span_id);
}

#[test]
fn capture_link_mode_keeps_the_page_trace_and_links_the_server_span() {
    let batches = capture(PageLoadCorrelation::Link);
    let all = spans(&batches);
    let dl = named(&all, "documentLoad")[0];
    assert_ne!(hex(&dl.trace_id), SERVER_TRACE);
    assert!(dl.parent_span_id.is_empty());
    assert_eq!(dl.links.len(), 1);
    assert_eq!(hex(&dl.links[0].trace_id), SERVER_TRACE);
    assert_eq!(hex(&dl.links[0].span_id), SERVER_SPAN);
}

#[test]
fn capture_fetch_client_span_keeps_the_ids_the_browser_sent() {
    let app = fixture("splunk-rum.app-requests.jsonl");
    let traceparent = app[0]["headers"]["traceparent"].as_str().unwrap();
    let parts: Vec<&str> = traceparent.split('-').collect();
    let batches = capture(PageLoadCorrelation::Child);
    let all = spans(&batches);
    let fetch: Vec<&Span> = all
        .iter()
        .copied()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(fetch.len(), 1);
    assert_eq!(hex(&fetch[0].trace_id), parts[1]);
    assert_eq!(hex(&fetch[0].span_id), parts[2]);
    assert_eq!(fetch[0].name, "HTTP POST");
    // The backend span from the response's Server-Timing is linked.
    let backend = app[0]["server_span"]["span_id"].as_str().unwrap();
    assert_eq!(hex(&fetch[0].links[0].span_id), backend);
    assert_eq!(
        attr(fetch[0], "http.url"),
        Some("http://127.0.0.1:18787/api/cart")
    );
    assert!(fetch[0].end_time_unix_nano > fetch[0].start_time_unix_nano);
    assert!(!fetch[0].events.is_empty(), "annotations became events");
}

#[test]
fn capture_errors_vitals_session_and_other_spans() {
    let batches = capture(PageLoadCorrelation::Child);
    let events: Vec<&RumEvent> = batches.iter().flat_map(|b| &b.batch.events).collect();
    let errors: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RumEvent::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(errors
        .iter()
        .any(|e| e.error_type.as_deref() == Some("TypeError")
            && e.message.as_deref().unwrap().contains("SPRING25")
            && e.stack.as_deref().unwrap().contains("applyDiscountCode")
            && !e.handled));
    assert!(errors
        .iter()
        .any(|e| e.message.as_deref() == Some("Recommendations service unavailable (simulated)")));
    let vitals: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RumEvent::Vital(v) => Some((v.name, v.value)),
            _ => None,
        })
        .collect();
    for name in [VitalName::Lcp, VitalName::Inp, VitalName::Cls] {
        assert!(
            vitals.iter().any(|(n, v)| *n == name && *v > 0.0),
            "{name:?}"
        );
    }
    let all = spans(&batches);
    assert!(named(&all, "webvitals").is_empty() && named(&all, "onerror").is_empty());
    for name in ["session.start", "longtask", "click"] {
        assert!(!named(&all, name).is_empty(), "{name} kept as a span");
    }
    let session = batches[0].batch.context.session_id.clone().unwrap();
    assert_eq!(session.len(), 32);
    for span in &all {
        assert_eq!(
            attr(span, "session.id"),
            Some(session.as_str()),
            "{}",
            span.name
        );
        for gone in [
            "splunk.rumSessionId",
            "telemetry.sdk.name",
            "app",
            "user_agent.original",
        ] {
            assert_eq!(attr(span, gone), None, "{gone} on {}", span.name);
        }
    }
    let ctx = &batches[0].batch.context;
    assert_eq!(ctx.app.name, "capture-shop-splunk");
    assert_eq!(ctx.app.version.as_deref(), Some("1.0.0"));
    assert_eq!(ctx.app.environment.as_deref(), Some("capture"));
    assert_eq!(ctx.sdk_name.as_deref(), Some("@splunk/otel-web"));
    assert!(batches.iter().all(|b| b.newest_ms.unwrap() > 1.7e12));
}

const HANDMADE: &str = r#"[
  {"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "parentId": "6b221d5bc9e6496c",
   "name": "get /api", "kind": "SERVER", "timestamp": 1556604172355737, "duration": 1431,
   "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.1", "port": 3306},
   "remoteEndpoint": {"serviceName": "frontend", "ipv4": "172.19.0.2", "port": 58648},
   "annotations": [{"timestamp": 1556604172355800, "value": "ws"}],
   "tags": {"http.method": "GET", "http.path": "/api", "error": "boom"}},
  "not a span",
  {"traceId": "zz", "id": "352bff9a74ca9ad2", "timestamp": 1},
  {"traceId": "5af7183fb1d4cf5f", "id": "0000000000000000", "timestamp": 1},
  {"traceId": "5af7183fb1d4cf5f", "id": "452bff9a74ca9ad2"},
  {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312",
   "name": "webvitals", "timestamp": 1556604172355737, "duration": 0,
   "tags": {"fid": "12", "lcp": "nope", "cls": "0.3", "splunk.rumSessionId": "s1"}},
  {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "b2fb4a1d1a96d312",
   "name": "click", "timestamp": 1556604172355737, "tags": {"otel.status_code": "ERROR",
   "otel.status_description": "bad", "otel.scope.name": "ui", "count": 3}}
]"#;

#[test]
fn handmade_array_translates_like_the_collector_and_drops_bad_items() {
    let decoded = decode(HANDMADE.as_bytes(), 1000).unwrap();
    let reasons: Vec<Reason> = decoded.rejected.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::InvalidSpan,
            Reason::InvalidSpan,
            Reason::InvalidSpan,
            Reason::MissingField
        ],
        "{:?}",
        decoded.rejected
    );
    assert!(decoded.rejected[0].detail.starts_with("span 1:"));
    assert_eq!(decoded.spans.len(), 3);
    let out = interpret(decoded, PageLoadCorrelation::Child);
    // fid is retired, `lcp: nope` is no number: both counted; cls kept.
    let reasons: Vec<Reason> = out.batch.rejected.iter().map(|r| r.reason).collect();
    assert!(
        reasons.contains(&Reason::UnsupportedVital) && reasons.contains(&Reason::InvalidNumber)
    );
    assert!(
        matches!(&out.batch.events[..], [RumEvent::Vital(v)] if v.name == VitalName::Cls
        && v.value == 0.3 && v.rating.as_str() == "poor")
    );
    assert_eq!(out.span_count, 2);
    let backend = out
        .spans
        .iter()
        .find(|rs| {
            rs.resource
                .as_ref()
                .unwrap()
                .attributes
                .iter()
                .any(|kv| kv.key == "service.name")
        })
        .expect("localEndpoint.serviceName is the resource's service.name");
    let server = &backend.scope_spans[0].spans[0];
    assert_eq!(hex(&server.trace_id), "00000000000000005af7183fb1d4cf5f");
    assert_eq!(hex(&server.parent_span_id), "6b221d5bc9e6496c");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.start_time_unix_nano, 1_556_604_172_355_737_000);
    assert_eq!(server.end_time_unix_nano, 1_556_604_172_357_168_000);
    assert_eq!(server.events[0].name, "ws");
    assert_eq!(server.events[0].time_unix_nano, 1_556_604_172_355_800_000);
    let status = server.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (StatusCode::Error as i32, "boom")
    );
    assert_eq!(attr(server, "peer.service"), Some("frontend"));
    assert_eq!(attr(server, "network.peer.address"), Some("172.19.0.2"));
    assert_eq!(attr(server, "error"), None);
    let click = out
        .spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .find(|ss| ss.scope.as_ref().unwrap().name == "ui")
        .expect("otel.scope.name is the scope")
        .spans[0]
        .clone();
    assert_eq!(click.kind, SpanKind::Internal as i32);
    assert_eq!(
        click.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert_eq!(
        attr(&click, "count"),
        Some("3"),
        "non-string tags become strings"
    );
}

#[test]
fn meta_parented_page_load_gets_its_own_trace_in_link_mode() {
    let body = format!(
        r#"[{{"traceId": "{SERVER_TRACE}", "id": "2d6791067bddfd10", "parentId": "{SERVER_SPAN}",
        "name": "documentLoad", "timestamp": 1796316577210000, "duration": 811200, "tags": {{}}}},
        {{"traceId": "{SERVER_TRACE}", "id": "424896dcee581feb", "parentId": "2d6791067bddfd10",
        "name": "documentFetch", "timestamp": 1796316577210600, "duration": 50800, "tags": {{}}}},
        {{"traceId": "294fb03dce1c32a580539f1eb025ee5a", "id": "bed9105677ca6bf9",
        "parentId": "424896dcee581feb", "name": "onerror", "timestamp": 1796316578948000,
        "tags": {{"component": "error", "error.message": "x", "error.object": "Error"}}}}]"#
    );
    let child = interpret(
        decode(body.as_bytes(), 10).unwrap(),
        PageLoadCorrelation::Child,
    );
    let dl = &child.spans[0].scope_spans[0].spans[0];
    assert_eq!(
        hex(&dl.trace_id),
        SERVER_TRACE,
        "already the server's child"
    );
    assert_eq!(hex(&dl.parent_span_id), SERVER_SPAN);
    let link = interpret(
        decode(body.as_bytes(), 10).unwrap(),
        PageLoadCorrelation::Link,
    );
    let spans = &link.spans[0].scope_spans[0].spans;
    assert_ne!(hex(&spans[0].trace_id), SERVER_TRACE);
    assert_eq!(
        spans[0].trace_id, spans[1].trace_id,
        "the tree moves together"
    );
    assert!(spans[0].parent_span_id.is_empty());
    assert_eq!(hex(&spans[0].links[0].span_id), SERVER_SPAN);
    let RumEvent::Error(e) = &link.batch.events[0] else {
        panic!("an error event")
    };
    assert_eq!(hex(&e.active_span.unwrap().span_id), "424896dcee581feb");
}

#[test]
fn sniffing_and_whole_body_refusals() {
    assert!(
        !looks_like_zipkin(br#"{"v": 1, "events": []}"#),
        "a native beacon"
    );
    assert!(
        !looks_like_zipkin(br#"[{"name": "LCP", "value": 1}]"#),
        "web-vitals metrics"
    );
    assert!(!looks_like_zipkin(b"[]"));
    assert!(!looks_like_zipkin(b"\xff["));
    assert!(looks_like_zipkin(br#" [ {"id": "1", "traceId": "2"}, 3]"#));
    assert_eq!(decode(b"{}", 10).unwrap_err().reason(), Reason::WrongShape);
    assert_eq!(
        decode(b"[1,", 10).unwrap_err().reason(),
        Reason::InvalidJson
    );
    assert_eq!(
        decode(b"[1,2,3]", 2).unwrap_err().reason(),
        Reason::TooManyItems
    );
    let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        decode(deep.as_bytes(), 10).unwrap_err().reason(),
        Reason::TooDeep
    );
    assert!(decode(b"[]", 10).unwrap().spans.is_empty());
}
