//! Vendor presets through the real binary: the exact requests each one sends (path, auth
//! header, protocol, compression, metric temporality, attribute truncation), received by a
//! local server standing in for the vendor (the test sets only `endpoint`, so everything else
//! comes from the preset).

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

/// One request the vendor stand-in received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The protobuf body, decompressed as its Content-Encoding says.
    fn decoded<M: Message + Default>(&self) -> M {
        let raw = match self.header("content-encoding") {
            Some("zstd") => zstd::decode_all(self.body.as_ref()).unwrap(),
            Some("gzip") => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(self.body.as_ref()),
                    &mut out,
                )
                .unwrap();
                out
            }
            None => self.body.to_vec(),
            Some(other) => panic!("unexpected encoding {other}"),
        };
        M::decode(raw.as_slice()).unwrap()
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

async fn record(State(log): State<Log>, uri: Uri, headers: HeaderMap, body: Bytes) -> &'static str {
    log.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    ""
}

/// A vendor stand-in that accepts every POST; returns its base URL and what it received.
async fn vendor() -> (String, Log) {
    let log = Log::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(record))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), log)
}

const LONG: usize = 5000;

/// Sends one span with a `LONG`-character attribute and a page-load beacon (whose web vitals
/// become aggregated metrics), then waits for a traces and a metrics request at the vendor.
async fn exchange(bridge: &Bridge, log: &Log) -> (Received, Received) {
    let span = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "long",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000100000000",
        "attributes": [{"key": "long", "value": {"stringValue": "x".repeat(LONG)}}],
    }]}]}]});
    let response = bridge
        .client
        .post(bridge.url("/v1/traces"))
        .header("content-type", "application/json")
        .body(span.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(bridge.send_page_load().await.status(), 202);
    poll("a traces and a metrics request", WAIT, || {
        let log = log.lock().unwrap();
        let with = |suffix: &str| log.iter().find(|r| r.path.ends_with(suffix)).cloned();
        // The page load may travel in its own request: wait for the one with the long span.
        let long = log
            .iter()
            .find(|r| {
                r.path.ends_with("/v1/traces") && {
                    let request: ExportTraceServiceRequest = r.decoded();
                    request
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .any(|s| s.spans.iter().any(|s| s.name == "long"))
                }
            })
            .cloned();
        Some((long?, with("/v1/metrics")?))
    })
    .await
}

/// The edge accepts values up to 8 192 bytes here, so only the preset's own cut shows.
fn config(preset: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "[limits]\nmax_attribute_value_len = 8192\n\n[metrics]\ninterval = \"1s\"\n\n[[exporters]]\nname = \"vendor\"\npreset = \"{preset}\"\n\
         endpoint = \"{endpoint}\"\n{extra}\n[exporters.batch]\ntimeout = 50\n"
    )
}

/// The long attribute of the traces request, and the temporality of the first histogram of
/// the metrics request.
fn inspect(traces: &Received, metrics: &Received) -> (usize, i32) {
    let request: ExportTraceServiceRequest = traces.decoded();
    let span = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .find(|s| s.name == "long")
        .expect("the long span");
    let long = attr(&span.attributes, "long").unwrap().chars().count();
    let request: ExportMetricsServiceRequest = metrics.decoded();
    let temporality = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find_map(|m| match &m.data {
            Some(Data::Histogram(h)) => Some(h.aggregation_temporality),
            _ => None,
        })
        .expect("a histogram");
    (long, temporality)
}

const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;

fn assert_protobuf(request: &Received, encoding: &str) {
    assert_eq!(
        request.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(request.header("content-encoding"), Some(encoding));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newrelic() {
    let (endpoint, log) = vendor().await;
    let config = config("newrelic", &endpoint, "api_key_env = \"NR_TEST_KEY\"");
    let bridge = Bridge::start_with_env(&config, &[("NR_TEST_KEY", "nr-license-123")]).await;
    let (traces, metrics) = exchange(&bridge, &log).await;
    for request in [&traces, &metrics] {
        assert_eq!(request.header("api-key"), Some("nr-license-123"));
        assert_protobuf(request, "zstd");
    }
    assert_eq!(traces.path, "/v1/traces");
    assert_eq!(inspect(&traces, &metrics), (4095, DELTA));

    // The effective configuration names where the key comes from, never the key.
    let path = bridge.dir.path().join("rum-bridge.toml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rum-bridge"))
        .arg("check-config")
        .arg(&path)
        .env("NR_TEST_KEY", "nr-license-123")
        .output()
        .unwrap();
    let shown = String::from_utf8(output.stdout).unwrap();
    assert!(shown.contains("api_key_env = \"NR_TEST_KEY\""), "{shown}");
    assert!(shown.contains("compression = \"zstd\""), "{shown}");
    assert!(shown.contains("max_bytes = 999000"), "{shown}");
    assert!(!shown.contains("nr-license-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog() {
    let (endpoint, log) = vendor().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dd-key");
    std::fs::write(&key, "dd-key-456\n").unwrap();
    let extra = format!("api_key_file = \"{}\"", key.display());
    let bridge = Bridge::start(&config("datadog", &endpoint, &extra)).await;
    let (traces, metrics) = exchange(&bridge, &log).await;
    for request in [&traces, &metrics] {
        assert_eq!(request.header("dd-api-key"), Some("dd-key-456"));
        assert_protobuf(request, "gzip");
    }
    assert_eq!(metrics.path, "/v1/metrics");
    assert_eq!(inspect(&traces, &metrics), (LONG, DELTA));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_cloud() {
    let (endpoint, log) = vendor().await;
    let extra = "api_key_env = \"GC_TEST_TOKEN\"\ninstance_id = \"123456\"";
    let config = config("grafana-cloud", &format!("{endpoint}/otlp"), extra);
    let bridge = Bridge::start_with_env(&config, &[("GC_TEST_TOKEN", "glc_token")]).await;
    let (traces, metrics) = exchange(&bridge, &log).await;
    for request in [&traces, &metrics] {
        // base64("123456:glc_token")
        assert_eq!(
            request.header("authorization"),
            Some("Basic MTIzNDU2OmdsY190b2tlbg==")
        );
        assert_protobuf(request, "gzip");
    }
    assert_eq!(traces.path, "/otlp/v1/traces");
    assert_eq!(inspect(&traces, &metrics), (LONG, CUMULATIVE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honeycomb() {
    let (endpoint, log) = vendor().await;
    let extra = "api_key_env = \"HC_TEST_KEY\"\ndataset = \"rum-metrics\"";
    let config = config("honeycomb", &endpoint, extra);
    let bridge = Bridge::start_with_env(&config, &[("HC_TEST_KEY", "hc-key-789")]).await;
    let (traces, metrics) = exchange(&bridge, &log).await;
    for request in [&traces, &metrics] {
        assert_eq!(request.header("x-honeycomb-team"), Some("hc-key-789"));
        assert_protobuf(request, "gzip");
    }
    assert_eq!(
        traces.header("x-honeycomb-dataset"),
        None,
        "traces go by service.name"
    );
    assert_eq!(metrics.header("x-honeycomb-dataset"), Some("rum-metrics"));
    assert_eq!(inspect(&traces, &metrics), (LONG, CUMULATIVE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rum-bridge.toml");
    std::fs::write(
        &path,
        config(
            "newrelic",
            "http://127.0.0.1:9",
            "api_key_env = \"NR_UNSET_KEY\"",
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rum-bridge"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&path)
        .env_remove("NR_UNSET_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("environment variable NR_UNSET_KEY is not set"),
        "{stderr}"
    );
}
