//! Replays OTLP/HTTP requests captured from the real OpenTelemetry JS web SDK in Chromium
//! (JSON and protobuf) through the daemon into a real collector, and checks what came out.

mod common;

use std::collections::HashSet;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";

/// The span ids a captured request carries, decoded independently of the daemon.
fn span_ids(req: &Captured) -> Vec<(String, String)> {
    let is_proto = req
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.contains("protobuf"));
    let decoded: ExportTraceServiceRequest = if is_proto {
        ExportTraceServiceRequest::decode(&req.body[..]).unwrap()
    } else {
        serde_json::from_slice(&req.body).unwrap()
    };
    decoded
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (hex(&s.trace_id), hex(&s.span_id)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_otel_js_requests_arrive_intact_at_the_collector() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let bridge = Bridge::start(&grpc_exporter_toml(rotel.grpc)).await;

    let mut expected = HashSet::new();
    for file in ["otlp-json.jsonl", "otlp-proto.jsonl"] {
        let requests = captured(file);
        assert!(!requests.is_empty(), "{file} has requests");
        for req in &requests {
            expected.extend(span_ids(req));
            let resp = replay(&bridge.client, &bridge.url("/v1/traces"), req).await;
            assert_eq!(resp.status(), 202, "{file}: {}", resp.text().await.unwrap());
        }
    }
    assert!(expected.len() > 10);

    let spans = poll("every captured span at the collector", WAIT, || {
        let spans = sink.spans();
        let got: HashSet<_> = spans
            .iter()
            .map(|s| (hex(&s.span.trace_id), hex(&s.span.span_id)))
            .collect();
        expected.is_subset(&got).then_some(spans)
    })
    .await;

    // Each SDK variant's documentLoad stays under the server span of the page.
    for service in ["capture-shop-otel-json", "capture-shop-otel-proto"] {
        let doc = spans
            .iter()
            .find(|s| {
                s.span.name == "documentLoad"
                    && attr(&s.resource.attributes, "service.name").as_deref() == Some(service)
            })
            .unwrap_or_else(|| panic!("documentLoad of {service}"));
        assert_eq!(hex(&doc.span.trace_id), SERVER_TRACE);
        assert_eq!(hex(&doc.span.parent_span_id), SERVER_SPAN);
        // The bridge enriched the resource with what the browser did not send.
        assert!(attr(&doc.resource.attributes, "user_agent.original")
            .unwrap()
            .contains("HeadlessChrome"));
        assert_eq!(
            attr(&doc.resource.attributes, "telemetry.sdk.language").as_deref(),
            Some("webjs")
        );
    }

    // The fetch CLIENT span keeps exactly the ids the browser sent in `traceparent`.
    for file in [
        "otlp-json.app-requests.jsonl",
        "otlp-proto.app-requests.jsonl",
    ] {
        let app = captured(file);
        let tp = &app[0]
            .headers
            .iter()
            .find(|(k, _)| k == "traceparent")
            .unwrap()
            .1;
        let (trace, span) = (&tp[3..35], &tp[36..52]);
        let client = spans
            .iter()
            .find(|s| hex(&s.span.span_id) == span)
            .unwrap_or_else(|| panic!("client span {span} of {file}"));
        assert_eq!(hex(&client.span.trace_id), trace);
        assert_eq!(client.span.kind, 3, "CLIENT");
    }

    assert!(
        bridge
            .metric("rum_bridge_items_accepted_total{kind=\"span\"}")
            .await
            >= expected.len() as f64
    );
}
