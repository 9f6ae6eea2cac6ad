//! Who the data says it is, and what the daemon prints about where it goes: a configured app's
//! identity wins over what an OTLP client claims (JSON and protobuf, traces and logs) and what a
//! Faro SDK claims, and a
//! password in an exporter URL never reaches the start-up log.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

const APPS: &str = r#"
[[apps]]
name = "shop-web"
key = "pk_shop_web"
environment = "production"
allowed_origins = ["*"]
"#;

const RESOURCE: &str = r#"{"attributes": [
    {"key": "service.name", "value": {"stringValue": "evil-svc"}},
    {"key": "deployment.environment.name", "value": {"stringValue": "staging"}},
    {"key": "service.version", "value": {"stringValue": "6.6.6"}}]}"#;

fn traces_json(trace_id: &str) -> String {
    format!(
        r#"{{"resourceSpans": [{{"resource": {RESOURCE}, "scopeSpans": [{{"spans": [{{
            "traceId": "{trace_id}", "spanId": "1111111111111111", "name": "evil", "kind": 1,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"
        }}]}}]}}]}}"#
    )
}

fn logs_json(body: &str) -> String {
    format!(
        r#"{{"resourceLogs": [{{"resource": {RESOURCE}, "scopeLogs": [{{"logRecords": [{{
            "timeUnixNano": "1700000000000000000", "severityNumber": 9,
            "body": {{"stringValue": "{body}"}}
        }}]}}]}}]}}"#
    )
}

async fn post(bridge: &Bridge, path: &str, content_type: &str, body: Vec<u8>) {
    let resp = bridge
        .client
        .post(bridge.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 202, "{path}: {}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_apps_identity_wins_on_the_otlp_routes() {
    let sink = Sink::start().await;
    let bridge = Bridge::start(&format!("{APPS}\n{}", grpc_exporter_toml(sink.addr))).await;

    let (json_trace, proto_trace) = (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    );
    post(
        &bridge,
        "/v1/traces?key=pk_shop_web",
        "application/json",
        traces_json(json_trace).into_bytes(),
    )
    .await;
    let proto: ExportTraceServiceRequest = serde_json::from_str(&traces_json(proto_trace)).unwrap();
    post(
        &bridge,
        "/v1/traces?key=pk_shop_web",
        "application/x-protobuf",
        proto.encode_to_vec(),
    )
    .await;
    post(
        &bridge,
        "/v1/logs?key=pk_shop_web",
        "application/json",
        logs_json("json log").into_bytes(),
    )
    .await;
    let proto: ExportLogsServiceRequest = serde_json::from_str(&logs_json("proto log")).unwrap();
    post(
        &bridge,
        "/v1/logs?key=pk_shop_web",
        "application/x-protobuf",
        proto.encode_to_vec(),
    )
    .await;

    let spans = poll("both spans at the collector", WAIT, || {
        let spans = sink.spans();
        (spans.len() >= 2).then_some(spans)
    })
    .await;
    let logs = poll("both logs at the collector", WAIT, || {
        let logs = sink.logs();
        (logs.len() >= 2).then_some(logs)
    })
    .await;
    let resources = spans
        .iter()
        .map(|s| (hex(&s.span.trace_id), &s.resource))
        .chain(
            logs.iter()
                .map(|l| (format!("{:?}", l.record.body), &l.resource)),
        );
    let mut seen = 0;
    for (what, resource) in resources {
        let get = |key| attr(&resource.attributes, key);
        let names = resource
            .attributes
            .iter()
            .filter(|kv| kv.key == "service.name")
            .count();
        assert_eq!(names, 1, "{what}: one service.name");
        assert_eq!(get("service.name").as_deref(), Some("shop-web"), "{what}");
        assert_eq!(
            get("deployment.environment.name").as_deref(),
            Some("production"),
            "{what}"
        );
        // The app configures no version: the client's stands.
        assert_eq!(get("service.version").as_deref(), Some("6.6.6"), "{what}");
        // What the client claimed is kept apart, never as the identity.
        assert_eq!(
            get("rum.claimed.service.name").as_deref(),
            Some("evil-svc"),
            "{what}"
        );
        assert_eq!(
            get("rum.claimed.deployment.environment.name").as_deref(),
            Some("staging"),
            "{what}"
        );
        seen += 1;
    }
    assert_eq!(seen, 4);
    let trace_ids: Vec<_> = spans.iter().map(|s| hex(&s.span.trace_id)).collect();
    assert!(
        trace_ids.contains(&json_trace.to_owned()) && trace_ids.contains(&proto_trace.to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_apps_identity_wins_on_the_faro_route() {
    let sink = Sink::start().await;
    let bridge = Bridge::start(&format!("{APPS}\n{}", grpc_exporter_toml(sink.addr))).await;
    let payload = serde_json::json!({
        "meta": {
            "app": {"name": "evil-svc", "environment": "staging", "version": "6.6.6"},
            "session": {"id": "sess-identity-1"},
            "page": {"url": "https://shop.example.com/"}
        },
        "logs": [{"message": "faro identity", "level": "info",
                  "timestamp": "2026-11-28T08:00:00.000Z"}]
    });
    post(
        &bridge,
        "/collect/pk_shop_web",
        "application/json",
        payload.to_string().into_bytes(),
    )
    .await;
    let logs = poll("the Faro log at the collector", WAIT, || {
        let logs = sink.logs();
        (!logs.is_empty()).then_some(logs)
    })
    .await;
    let get = |key| attr(&logs[0].resource.attributes, key);
    assert_eq!(get("service.name").as_deref(), Some("shop-web"));
    assert_eq!(
        get("deployment.environment.name").as_deref(),
        Some("production")
    );
    assert_eq!(get("service.version").as_deref(), Some("6.6.6"));
    assert_eq!(get("rum.claimed.service.name").as_deref(), Some("evil-svc"));
    assert_eq!(
        get("rum.claimed.deployment.environment.name").as_deref(),
        Some("staging")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_apps_the_clients_identity_stands() {
    let sink = Sink::start().await;
    let bridge = Bridge::start(&grpc_exporter_toml(sink.addr)).await;
    post(
        &bridge,
        "/v1/traces?key=anything",
        "application/json",
        traces_json("cccccccccccccccccccccccccccccccc").into_bytes(),
    )
    .await;
    let spans = poll("the span at the collector", WAIT, || {
        let spans = sink.spans();
        (!spans.is_empty()).then_some(spans)
    })
    .await;
    let get = |key| attr(&spans[0].resource.attributes, key);
    assert_eq!(get("service.name").as_deref(), Some("evil-svc"));
    assert_eq!(get("rum.claimed.service.name"), None);
}

#[test]
fn an_exporter_password_never_reaches_the_start_up_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rum-bridge.toml");
    let (ingest, admin) = (free_port(), free_port());
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{ingest}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\n\
             [[exporters]]\nname = \"vendor\"\nprotocol = \"http/protobuf\"\n\
             endpoint = \"http://otlp-user:Hunter2Secret@127.0.0.1:9/otlp?api_key=QueryKey42\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(bridge_binary())
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("RUM_BRIDGE_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log until the exporter line (bounded: the reader thread gives up at the deadline).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut log = String::new();
    while !log.contains("exporting over OTLP") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        log.contains("exporting over OTLP"),
        "no exporter line:\n{log}"
    );
    assert!(
        !log.contains("Hunter2Secret"),
        "password in the log:\n{log}"
    );
    assert!(!log.contains("QueryKey42"), "query key in the log:\n{log}");
    assert!(
        log.contains("http://otlp-user:***@127.0.0.1:9/otlp?api_key=***"),
        "masked URL in the log:\n{log}"
    );
}
