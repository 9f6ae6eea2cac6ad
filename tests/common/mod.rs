//! Test harness for whole-daemon tests: a real collector (rotel), an OTLP sink behind it that
//! records exactly what the collector exported, and the real `rum-bridge` binary.
//!
//! Data path under test: HTTP → rum-bridge → OTLP/gRPC → rotel → OTLP/gRPC → sink.
#![allow(dead_code)]

pub mod browser;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::codec::CompressionEncoding::Gzip as GZIP;
use tonic::{Request, Response, Status};

/// How long any wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Everything the sink received.
#[derive(Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
}

/// An OTLP/gRPC server that records every export request.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Received>>,
}

#[derive(Clone)]
struct SinkService(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for SinkService {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.lock().unwrap().traces.push(req.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for SinkService {
    async fn export(
        &self,
        req: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.0.lock().unwrap().logs.push(req.into_inner());
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for SinkService {
    async fn export(
        &self,
        req: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.0.lock().unwrap().metrics.push(req.into_inner());
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A span with the resource it was exported under.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub resource: Resource,
    pub span: Span,
}

/// A log record with its resource.
#[derive(Clone, Debug)]
pub struct LogRecordEntry {
    pub resource: Resource,
    pub record: LogRecord,
}

impl Sink {
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let svc = SinkService(received.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(svc.clone()).accept_compressed(GZIP))
                .add_service(LogsServiceServer::new(svc.clone()).accept_compressed(GZIP))
                .add_service(MetricsServiceServer::new(svc).accept_compressed(GZIP))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Sink { addr, received }
    }

    pub fn spans(&self) -> Vec<SpanRecord> {
        let r = self.received.lock().unwrap();
        r.traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|rs| {
                let resource = rs.resource.clone().unwrap_or_default();
                rs.scope_spans.iter().flat_map(move |ss| {
                    let resource = resource.clone();
                    ss.spans.iter().map(move |s| SpanRecord {
                        resource: resource.clone(),
                        span: s.clone(),
                    })
                })
            })
            .collect()
    }

    pub fn logs(&self) -> Vec<LogRecordEntry> {
        let r = self.received.lock().unwrap();
        r.logs
            .iter()
            .flat_map(|t| &t.resource_logs)
            .flat_map(|rl| {
                let resource = rl.resource.clone().unwrap_or_default();
                rl.scope_logs.iter().flat_map(move |sl| {
                    let resource = resource.clone();
                    sl.log_records.iter().map(move |l| LogRecordEntry {
                        resource: resource.clone(),
                        record: l.clone(),
                    })
                })
            })
            .collect()
    }

    pub fn metrics(&self) -> Vec<Metric> {
        let r = self.received.lock().unwrap();
        r.metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| sm.metrics.clone())
            .collect()
    }
}

/// Finds a string, int, double or bool attribute and renders it as a string.
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

/// `data` gzip-compressed (best compression).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The histograms the bridge derives from browser data: the five web vitals and HTTP calls.
pub const RUM_HISTOGRAMS: [&str; 6] = [
    "browser.web_vital.lcp",
    "browser.web_vital.inp",
    "browser.web_vital.cls",
    "browser.web_vital.fcp",
    "browser.web_vital.ttfb",
    "http.client.request.duration",
];

/// Waits until the sink holds a metric of each name in `names`; returns all metrics.
pub async fn poll_metrics(sink: &Sink, names: &[&str]) -> Vec<Metric> {
    poll(&format!("metrics {names:?}"), WAIT, || {
        let metrics = sink.metrics();
        names
            .iter()
            .all(|n| metrics.iter().any(|m| m.name == *n))
            .then_some(metrics)
    })
    .await
}

/// The first data point of the histogram `name` among `metrics`.
pub fn first_histogram_point<'a>(metrics: &'a [Metric], name: &str) -> &'a HistogramDataPoint {
    let metric = metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    let Some(Data::Histogram(h)) = &metric.data else {
        panic!("{name} is not a histogram: {metric:?}")
    };
    &h.data_points[0]
}

/// Log records whose `event_name` is `event`.
pub fn events<'a>(
    logs: &'a [LogRecordEntry],
    event: &'a str,
) -> impl Iterator<Item = &'a LogRecordEntry> {
    logs.iter().filter(move |l| l.record.event_name == event)
}

/// The distinct `browser.web_vital.name`s among the `browser.web_vital` events of `logs`.
pub fn vital_names(logs: &[LogRecordEntry]) -> std::collections::HashSet<String> {
    events(logs, "browser.web_vital")
        .filter_map(|l| attr(&l.record.attributes, "browser.web_vital.name"))
        .collect()
}

/// `service.name` of a resource.
pub fn service_name(resource: &Resource) -> Option<String> {
    attr(&resource.attributes, "service.name")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of the rotel collector binary (installed by `scripts/install-test-deps.sh`).
pub fn rotel_binary() -> PathBuf {
    let p = std::env::var_os("ROTEL_AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/rotel/rotel-agent"));
    assert!(
        p.exists(),
        "rotel collector not found at {}: run scripts/install-test-deps.sh (or set ROTEL_AGENT)",
        p.display()
    );
    p
}

/// A running rotel collector exporting everything to `sink`.
pub struct Rotel {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    _proc: Proc,
}

impl Rotel {
    pub async fn start(sink: &Sink) -> Rotel {
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Self::start_on(sink, grpc).await
    }

    /// Starts rotel with its OTLP/gRPC receiver on `grpc` (e.g. where a bridge already sends).
    pub async fn start_on(sink: &Sink, grpc: SocketAddr) -> Rotel {
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(rotel_binary())
            .args(["start", "--otlp-grpc-endpoint", &grpc.to_string()])
            .args(["--otlp-http-endpoint", &http.to_string()])
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", "grpc"])
            .args(["--otlp-exporter-endpoint", &format!("http://{}", sink.addr)])
            .args(["--batch-timeout", "50ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rotel");
        let proc = Proc {
            child,
            name: "rotel",
        };
        poll("rotel to listen", WAIT, || {
            std::net::TcpStream::connect(grpc).ok()
        })
        .await;
        Rotel {
            grpc,
            http,
            _proc: proc,
        }
    }

    /// Stops rotel with SIGTERM (it flushes what it accepted to the sink) and waits for it.
    pub async fn terminate(mut self) {
        terminate(&mut self._proc.child, "rotel").await;
    }
}

/// Sends SIGTERM to `child` and waits (bounded) until it has exited.
pub async fn terminate(child: &mut Child, what: &str) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {what}");
    poll(&format!("{what} to exit"), WAIT, || {
        child.try_wait().ok().flatten()
    })
    .await;
}

/// An HTTP client for talking to the bridge. reqwest is built without a bundled crypto provider
/// (the bridge configures rustls with ring itself), so one is installed for the test process.
pub fn http_client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::new()
}

/// reqwest is built without a bundled TLS provider (the daemon picks ring): every client made
/// in a test needs this first.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The daemon under test: `RUM_BRIDGE_BIN` when set (`scripts/test.sh` points it at the
/// release build, the artifact users run), else the debug binary cargo built for the tests.
pub fn bridge_binary() -> PathBuf {
    std::env::var_os("RUM_BRIDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rum-bridge")))
}

/// A running `rum-bridge` binary.
pub struct Bridge {
    pub ingest: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub proc: Proc,
    pub client: reqwest::Client,
}

impl Bridge {
    /// Starts the binary with `extra_toml` appended to a config that sets the listeners.
    pub async fn start(extra_toml: &str) -> Bridge {
        Self::start_with_env(extra_toml, &[]).await
    }

    pub async fn start_with_env(extra_toml: &str, env: &[(&str, &str)]) -> Bridge {
        let dir = tempfile::tempdir().unwrap();
        let ingest: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = format!(
            "[server]\nlisten = \"{ingest}\"\nadmin_listen = \"{admin}\"\n\n{extra_toml}\n"
        );
        let path = dir.path().join("rum-bridge.toml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(bridge_binary());
        cmd.args(["run", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("RUM_BRIDGE_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start rum-bridge");
        let proc = Proc {
            child,
            name: "rum-bridge",
        };
        let client = http_client();
        let url = format!("http://{admin}/readyz");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "rum-bridge did not become ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Bridge {
            ingest,
            admin,
            dir,
            proc,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.ingest, path)
    }

    /// Sends `examples/beacons/page-load.json` the way `navigator.sendBeacon` does.
    pub async fn send_page_load(&self) -> reqwest::Response {
        let beacon = std::fs::read(repo_root().join("examples/beacons/page-load.json")).unwrap();
        self.client
            .post(self.url("/v1/rum"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", "https://shop.example.com")
            .body(beacon)
            .send()
            .await
            .unwrap()
    }

    /// The admin `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Value of one Prometheus sample line (exact series text), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// Exporter config sending to a collector over gRPC with short batching, for tests.
pub fn grpc_exporter_toml(collector: SocketAddr) -> String {
    format!(
        "[[exporters]]\nname = \"collector\"\nendpoint = \"http://{collector}\"\nprotocol = \"grpc\"\n\n[exporters.batch]\ntimeout = 50\n"
    )
}

/// One captured request from `tests/fixtures/real-clients/*.jsonl`.
pub struct Captured {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads a capture file (kept verbatim from the shared fixtures).
pub fn captured(file: &str) -> Vec<Captured> {
    use base64::Engine;
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/real-clients").join(file))
        .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let body = match v["body_encoding"].as_str() {
                Some("base64") => base64::engine::general_purpose::STANDARD
                    .decode(v["body"].as_str().unwrap())
                    .unwrap(),
                Some("utf8") => v["body"].as_str().unwrap().as_bytes().to_vec(),
                _ => Vec::new(),
            };
            let headers = v["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            Captured {
                path: v["path"].as_str().unwrap().to_owned(),
                headers,
                body,
            }
        })
        .collect()
}

/// Replays a captured request to `url`, keeping the browser's headers that matter.
pub async fn replay(client: &reqwest::Client, url: &str, req: &Captured) -> reqwest::Response {
    let mut b = client.post(url).body(req.body.clone());
    for (k, v) in &req.headers {
        if matches!(
            k.as_str(),
            "content-type" | "content-encoding" | "origin" | "user-agent" | "referer"
        ) || k.starts_with("sec-ch-ua")
        {
            b = b.header(k, v);
        }
    }
    b.send().await.unwrap()
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}
