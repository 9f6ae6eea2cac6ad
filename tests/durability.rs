//! Nothing accepted is lost: the real binary against a real collector (rotel) that goes away,
//! comes back, is slow or throttles; the bridge killed with `kill -9` and restarted; a damaged
//! disk buffer; one of two exporters down.
//!
//! Spans are sent as OTLP/HTTP JSON with distinct span ids; what arrives is counted by unique
//! span id at the sink behind the collector (duplicates are allowed where delivery is
//! at-least-once, and reported).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A port where the collector will listen later. Held until then (connections hang, like a
/// collector that does not answer), so that no other test is given it meanwhile.
struct LaterPort(std::net::TcpListener);

impl LaterPort {
    fn new() -> Self {
        Self::hold("127.0.0.1:0".parse().unwrap())
    }

    /// Holds `addr` again, after the collector there stopped.
    fn hold(addr: SocketAddr) -> Self {
        Self(std::net::TcpListener::bind(addr).unwrap())
    }

    fn addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }

    /// Frees the port for the collector.
    fn release(self) -> SocketAddr {
        self.addr()
    }
}

/// `[metrics]` off (only the spans sent here go through), then one gRPC exporter with fast
/// retries. `extra` is added to the exporter (e.g. `buffer_dir`).
fn exporter_toml(name: &str, collector: SocketAddr, extra: &str) -> String {
    format!(
        "[[exporters]]\nname = \"{name}\"\nendpoint = \"http://{collector}\"\nprotocol = \"grpc\"\n\
         timeout = \"2s\"\n{extra}\n[exporters.batch]\ntimeout = 50\n\
         [exporters.retry]\ninitial_backoff = 20\nmax_backoff = 200\n"
    )
}

fn buffered(collector: SocketAddr, dir: &Path) -> String {
    format!(
        "shutdown_timeout = \"1s\"\n\n[metrics]\nenabled = false\n\n{}",
        exporter_toml(
            "collector",
            collector,
            &format!("buffer_dir = \"{}\"", dir.display())
        )
    )
}

fn span_id(id: u32) -> String {
    format!("{:016x}", u64::from(id) + 1)
}

/// An OTLP/HTTP JSON request body carrying spans `ids`.
fn spans_json(ids: std::ops::Range<u32>) -> String {
    let spans: Vec<serde_json::Value> = ids
        .map(|id| {
            serde_json::json!({
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": span_id(id),
                "name": format!("span-{id}"),
                "kind": 1,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000100000000",
            })
        })
        .collect();
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "durability"}}
            ]},
            "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
        }]
    })
    .to_string()
}

async fn post_spans(
    client: &reqwest::Client,
    url: &str,
    ids: std::ops::Range<u32>,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(spans_json(ids))
        .send()
        .await
}

/// Sends spans `ids` in one request; returns the status (0: no answer).
async fn send_spans(client: &reqwest::Client, url: &str, ids: std::ops::Range<u32>) -> u16 {
    post_spans(client, url, ids)
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Waits until the metric `series` satisfies `ok`; returns its value.
async fn wait_metric(bridge: &Bridge, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = bridge.metric(series).await;
        if ok(value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn readyz(bridge: &Bridge) -> u16 {
    let url = format!("http://{}/readyz", bridge.admin);
    bridge
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// How often each span id arrived at `sink`.
fn arrivals(sink: &Sink) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for s in sink.spans() {
        *seen.entry(hex(&s.span.span_id)).or_default() += 1;
    }
    seen
}

fn expected(ids: std::ops::Range<u32>) -> HashSet<String> {
    ids.map(span_id).collect()
}

/// Waits until every span of `want` arrived at `sink`; returns the arrivals.
async fn all_arrive(sink: &Sink, want: &HashSet<String>) -> HashMap<String, usize> {
    poll(&format!("{} spans at the sink", want.len()), WAIT, || {
        let seen = arrivals(sink);
        want.iter().all(|id| seen.contains_key(id)).then_some(seen)
    })
    .await
}

fn duplicates(seen: &HashMap<String, usize>) -> usize {
    seen.values().map(|n| n - 1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_every_accepted_span_arrives_once_the_collector_is_up() {
    let sink = Sink::start().await;
    let collector = LaterPort::new();
    let buffer = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(&buffered(collector.addr(), buffer.path())).await;
    let url = bridge.url("/v1/traces");
    for n in 0..40 {
        assert_eq!(
            send_spans(&bridge.client, &url, n * 5..n * 5 + 5).await,
            202
        );
    }
    assert!(
        bridge
            .metric("rum_bridge_buffer_bytes{exporter=\"collector\"}")
            .await
            > 0.0
    );
    let _rotel = Rotel::start_on(&sink, collector.release()).await;
    let seen = all_arrive(&sink, &expected(0..200)).await;
    assert_eq!(seen.len(), 200, "exactly the spans sent");
    println!("outage: 200 spans, {} duplicates", duplicates(&seen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_stopped_mid_stream_loses_nothing() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let collector = rotel.grpc;
    let buffer = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(&buffered(collector, buffer.path())).await;

    let (client, url) = (bridge.client.clone(), bridge.url("/v1/traces"));
    let stream = tokio::spawn(async move {
        for n in 0..60 {
            assert_eq!(send_spans(&client, &url, n * 5..n * 5 + 5).await, 202);
            // Pacing, so the collector goes away mid-stream; nothing below depends on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    poll("the stream to reach the sink", WAIT, || {
        (sink.spans().len() >= 10).then_some(())
    })
    .await;
    rotel.terminate().await;
    let collector = LaterPort::hold(collector);
    stream.await.unwrap();
    let _rotel = Rotel::start_on(&sink, collector.release()).await;
    let seen = all_arrive(&sink, &expected(0..300)).await;
    assert_eq!(seen.len(), 300);
    println!(
        "collector stopped: 300 spans, {} duplicates",
        duplicates(&seen)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_bridge_loses_nothing_it_acknowledged() {
    let sink = Sink::start().await;
    let _rotel = Rotel::start(&sink).await;
    let buffer = tempfile::tempdir().unwrap();
    let config = buffered(_rotel.grpc, buffer.path());
    let mut bridge = Bridge::start(&config).await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let (client, url, acked) = (
        bridge.client.clone(),
        bridge.url("/v1/traces"),
        acknowledged.clone(),
    );
    let stream = tokio::spawn(async move {
        for n in 0..2000u32 {
            match send_spans(&client, &url, n * 5..n * 5 + 5).await {
                202 => acked.lock().unwrap().push(n),
                0 => break, // the bridge is gone
                other => panic!("unexpected status {other}"),
            }
        }
    });
    poll("the stream to reach the sink", WAIT, || {
        (sink.spans().len() >= 50).then_some(())
    })
    .await;
    bridge.proc.child.kill().unwrap(); // SIGKILL
    bridge.proc.child.wait().unwrap();
    stream.await.unwrap();
    let want: HashSet<String> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .flat_map(|n| n * 5..n * 5 + 5)
        .map(span_id)
        .collect();
    assert!(want.len() >= 50);

    let restarted = Bridge::start(&config).await;
    let seen = all_arrive(&sink, &want).await;
    let replayed = restarted
        .metric("rum_bridge_buffer_replayed_records_total{exporter=\"collector\"}")
        .await;
    println!(
        "kill -9: {} spans acknowledged, {} arrived, {} duplicates, {replayed} records replayed",
        want.len(),
        seen.len(),
        duplicates(&seen)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_to_the_collector_then_keeps_the_rest_for_the_next_start() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let collector = rotel.grpc;
    let buffer = tempfile::tempdir().unwrap();
    let config = buffered(collector, buffer.path());

    // Collector up: SIGTERM right after the last 202 still delivers everything.
    let mut bridge = Bridge::start(&config).await;
    let url = bridge.url("/v1/traces");
    for n in 0..10 {
        assert_eq!(
            send_spans(&bridge.client, &url, n * 5..n * 5 + 5).await,
            202
        );
    }
    terminate(&mut bridge.proc.child, "rum-bridge").await;
    all_arrive(&sink, &expected(0..50)).await;

    // Collector down: SIGTERM gives up after shutdown_timeout and keeps the rest on disk.
    rotel.terminate().await;
    let collector = LaterPort::hold(collector);
    let mut bridge = Bridge::start(&config).await;
    let url = bridge.url("/v1/traces");
    for n in 10..20 {
        assert_eq!(
            send_spans(&bridge.client, &url, n * 5..n * 5 + 5).await,
            202
        );
    }
    let stopping = Instant::now();
    terminate(&mut bridge.proc.child, "rum-bridge").await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "bounded by the deadline"
    );

    let _rotel = Rotel::start_on(&sink, collector.release()).await;
    let _bridge = Bridge::start(&config).await;
    let seen = all_arrive(&sink, &expected(0..100)).await;
    assert_eq!(seen.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_buffer_segment_is_skipped_counted_and_the_rest_delivered() {
    let sink = Sink::start().await;
    let collector = LaterPort::new();
    let buffer = tempfile::tempdir().unwrap();
    let config = buffered(collector.addr(), buffer.path());
    let mut bridge = Bridge::start(&config).await;
    let url = bridge.url("/v1/traces");
    // One span per request: one record each.
    for n in 0..30 {
        assert_eq!(send_spans(&bridge.client, &url, n..n + 1).await, 202);
    }
    terminate(&mut bridge.proc.child, "rum-bridge").await;

    let segments: Vec<_> = std::fs::read_dir(buffer.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&segments[0], &bytes).unwrap();

    let _rotel = Rotel::start_on(&sink, collector.release()).await;
    let bridge = Bridge::start(&config).await;
    let seen = poll("the intact records to arrive", WAIT, || {
        let seen = arrivals(&sink);
        (seen.len() >= 28).then_some(seen)
    })
    .await;
    let corrupt = "rum_bridge_buffer_corrupt_records_total{exporter=\"collector\"}";
    wait_metric(&bridge, corrupt, |n| n >= 1.0).await;
    assert!(seen.len() < 30, "a damaged record cannot be delivered");
    for id in [0, 29] {
        assert!(seen.contains_key(&span_id(id)), "span {id} is intact");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_one_exporter_down_does_not_hold_back_the_other() {
    let (sink_up, sink_down) = (Sink::start().await, Sink::start().await);
    let rotel_up = Rotel::start(&sink_up).await;
    let down = LaterPort::new();
    let buffer = tempfile::tempdir().unwrap();
    let config = format!(
        "[metrics]\nenabled = false\n\n{}\n{}",
        exporter_toml("up", rotel_up.grpc, ""),
        exporter_toml(
            "down",
            down.addr(),
            &format!("buffer_dir = \"{}\"", buffer.path().display())
        )
    );
    let bridge = Bridge::start(&config).await;
    let url = bridge.url("/v1/traces");
    for n in 0..20 {
        assert_eq!(
            send_spans(&bridge.client, &url, n * 5..n * 5 + 5).await,
            202
        );
    }
    all_arrive(&sink_up, &expected(0..100)).await;
    assert!(sink_down.spans().is_empty());

    let retries = "rum_bridge_export_retries_total{exporter=\"down\",signal=\"traces\"}";
    wait_metric(&bridge, retries, |n| n >= 1.0).await;
    let buffered = "rum_bridge_buffer_bytes{exporter=\"down\"}";
    assert!(bridge.metric(buffered).await > 0.0);
    let text = bridge.metrics_text().await;
    for series in [
        "rum_bridge_queue_depth{exporter=\"down\"}",
        "rum_bridge_queue_depth{exporter=\"up\"}",
        "rum_bridge_exported_items_total{exporter=\"up\",signal=\"traces\"} 100",
        "rum_bridge_export_failed_items_total",
    ] {
        assert!(text.contains(series), "{series} in /metrics");
    }

    let _rotel_down = Rotel::start_on(&sink_down, down.release()).await;
    all_arrive(&sink_down, &expected(0..100)).await;
}

/// An OTLP/HTTP traces endpoint that throttles (429 and 503, alternately, with
/// `Retry-After: 1`) until released; records when each request came.
#[derive(Default)]
struct Throttle {
    released: std::sync::atomic::AtomicBool,
    attempts: Mutex<Vec<Instant>>,
    spans: Mutex<HashSet<Vec<u8>>>,
}

async fn throttle_handler(
    axum::extract::State(t): axum::extract::State<Arc<Throttle>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let n = {
        let mut attempts = t.attempts.lock().unwrap();
        attempts.push(Instant::now());
        attempts.len()
    };
    if !t.released.load(std::sync::atomic::Ordering::SeqCst) {
        let status = if n % 2 == 1 { 429 } else { 503 };
        let status = axum::http::StatusCode::from_u16(status).unwrap();
        return (status, [("retry-after", "1")], "slow down").into_response();
    }
    let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
    let mut spans = t.spans.lock().unwrap();
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            spans.extend(ss.spans.iter().map(|s| s.span_id.clone()));
        }
    }
    axum::http::StatusCode::OK.into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_collector_retry_after_is_honoured_memory_bounded_edge_503_then_recovers() {
    let throttle = Arc::new(Throttle::default());
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(throttle_handler))
        .with_state(throttle.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = format!(
        "[metrics]\nenabled = false\n\n[[exporters]]\nname = \"slow\"\n\
         endpoint = \"http://{addr}\"\nprotocol = \"http/protobuf\"\n\
         [exporters.queue]\ncapacity = 8\nconcurrency = 1\n\
         [exporters.batch]\nmax_items = 5\ntimeout = 20\n\
         [exporters.retry]\ninitial_backoff = 10\nmax_backoff = 50\n"
    );
    let bridge = Bridge::start(&config).await;
    let url = bridge.url("/v1/traces");

    // Fill the queue: the edge refuses with 503 + Retry-After once it is full.
    let mut accepted = 0u32;
    let refusal = loop {
        let response = post_spans(&bridge.client, &url, accepted * 5..accepted * 5 + 5)
            .await
            .unwrap();
        if response.status() != 202 {
            break response;
        }
        accepted += 1;
        assert!(
            accepted <= 20,
            "a queue of 8 plus one batch in flight fills"
        );
    };
    assert_eq!(refusal.status(), 503);
    assert!(refusal.headers().contains_key("retry-after"));
    assert_eq!(readyz(&bridge).await, 503, "not ready while full");
    let depth = bridge
        .metric("rum_bridge_queue_depth{exporter=\"slow\"}")
        .await;
    assert!(depth <= 8.0, "memory bounded by the queue: depth {depth}");

    // Retry-After: 1 is honoured although our own backoff is 10-50 ms.
    let attempts = poll("three attempts", WAIT, || {
        let attempts = throttle.attempts.lock().unwrap().clone();
        (attempts.len() >= 3).then_some(attempts)
    })
    .await;
    for pair in attempts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    }

    // Released: everything accepted arrives, readiness returns, the edge accepts again.
    throttle
        .released
        .store(true, std::sync::atomic::Ordering::SeqCst);
    poll("every accepted span", WAIT, || {
        (throttle.spans.lock().unwrap().len() == accepted as usize * 5).then_some(())
    })
    .await;
    wait_ready(&bridge, "ready again once drained").await;
    assert_eq!(send_spans(&bridge.client, &url, 1000..1005).await, 202);
}

/// Spans `ids` with `padding` characters of attribute each, as OTLP/HTTP JSON.
fn padded_spans_json(ids: std::ops::Range<u32>, padding: usize) -> String {
    let mut body: serde_json::Value = serde_json::from_str(&spans_json(ids)).unwrap();
    for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap()
    {
        span["attributes"] = serde_json::json!([
            {"key": "padding", "value": {"stringValue": "x".repeat(padding)}}
        ]);
    }
    body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_buffer_refuses_at_the_edge_then_recovers() {
    let sink = Sink::start().await;
    let collector = LaterPort::new();
    let buffer = tempfile::tempdir().unwrap();
    let config = buffered(collector.addr(), buffer.path())
        .replace("buffer_dir", "buffer_max_bytes = 1048576\nbuffer_dir");
    let bridge = Bridge::start(&config).await;
    let url = bridge.url("/v1/traces");

    let mut accepted = 0u32;
    let refusal = loop {
        let response = bridge
            .client
            .post(&url)
            .header("content-type", "application/json")
            // 10 spans of 4 000 characters (under limits.max_attribute_value_len): ~40 kB.
            .body(padded_spans_json(accepted * 10..accepted * 10 + 10, 4_000))
            .send()
            .await
            .unwrap();
        if response.status() != 202 {
            break response;
        }
        accepted += 1;
        assert!(accepted <= 40, "1 MiB holds about 25 requests of 40 kB");
    };
    assert_eq!(refusal.status(), 503);
    assert!(refusal.headers().contains_key("retry-after"));
    assert_eq!(
        readyz(&bridge).await,
        503,
        "not ready while the buffer is full"
    );
    let refused =
        "rum_bridge_buffer_dropped_records_total{exporter=\"collector\",reason=\"refused\"}";
    assert!(bridge.metric(refused).await >= 1.0);

    let _rotel = Rotel::start_on(&sink, collector.release()).await;
    all_arrive(&sink, &expected(0..accepted * 10)).await;
    wait_ready(&bridge, "ready again once delivered").await;
    assert_eq!(send_spans(&bridge.client, &url, 5000..5005).await, 202);
    all_arrive(&sink, &expected(5000..5005)).await;
}

/// Polls `/readyz` until it answers 200, at most `WAIT`.
async fn wait_ready(bridge: &Bridge, what: &str) {
    let deadline = Instant::now() + WAIT;
    while readyz(bridge).await != 200 {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
