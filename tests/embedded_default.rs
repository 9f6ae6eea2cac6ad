//! With no exporter configured the daemon writes OTLP-JSON lines under `./rum-bridge-data/`,
//! and on SIGTERM it stops accepting, drains and flushes before exiting cleanly.

mod common;

use std::time::{Duration, Instant};

use common::*;

const SPAN_ID: &str = "2222222222222222";

fn otlp_json() -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop-web"}}}}]}},"scopeSpans":[{{"scope":{{"name":"t"}},"spans":[{{"traceId":"4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c","spanId":"{SPAN_ID}","name":"x","kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}}]}}]}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_otlp_json_lines_and_flushes_on_sigterm() {
    let mut bridge = Bridge::start("").await;
    let resp = bridge
        .client
        .post(bridge.url("/v1/traces"))
        .header("content-type", "application/json")
        .body(otlp_json())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    let pid = bridge.proc.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = bridge.proc.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "rum-bridge did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(exit.success(), "clean exit: {exit:?}");

    let path = bridge.dir.path().join("rum-bridge-data/traces.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let span = &line["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["spanId"], SPAN_ID);
    assert_eq!(span["traceId"], "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c");
}

/// Setting the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP protobuf by default, as the
/// spec says) switches from the embedded file default to a real collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_endpoint_env_exports_to_a_collector() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let endpoint = format!("http://{}", rotel.http);
    let bridge =
        Bridge::start_with_env("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())]).await;
    let resp = bridge
        .client
        .post(bridge.url("/v1/traces"))
        .header("content-type", "application/json")
        .body(otlp_json())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    poll("the span at the collector", WAIT, || {
        sink.spans()
            .into_iter()
            .find(|s| hex(&s.span.span_id) == SPAN_ID)
    })
    .await;
    assert!(!bridge.dir.path().join("rum-bridge-data").exists());
}
