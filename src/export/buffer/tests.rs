//! The disk buffer through the whole export pipeline, against a local OTLP/HTTP server that can
//! be taken down and brought back.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex as StdMutex;

use axum::body::Bytes as AxumBytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::*;
use crate::admin::Exporter as ExporterLabel;
use crate::config::{BufferSync, Protocol};
use crate::export::batch::tests::resource;
use crate::export::test_support::{exporter_config, wait_until};
use crate::export::Exporters;
use crate::handoff::{Backpressure, Refusal};

/// An OTLP/HTTP traces endpoint that answers `503` (with `Retry-After: 0`) while down.
#[derive(Default)]
struct Gate {
    up: AtomicBool,
    /// Span ids received while up, with how often each arrived.
    spans: StdMutex<HashMap<u32, usize>>,
}

impl Gate {
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    fn received(&self) -> HashMap<u32, usize> {
        self.spans.lock().unwrap().clone()
    }

    fn unique(&self) -> usize {
        self.spans.lock().unwrap().len()
    }
}

async fn gate_handler(State(gate): State<Arc<Gate>>, body: AxumBytes) -> axum::response::Response {
    if !gate.up.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "down",
        )
            .into_response();
    }
    let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
    let mut spans = gate.spans.lock().unwrap();
    for span in request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        let id = u32::from_be_bytes(span.span_id[4..].try_into().unwrap());
        *spans.entry(id).or_default() += 1;
    }
    (StatusCode::OK, Vec::new()).into_response()
}

async fn start_gate(up: bool) -> (String, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    gate.set_up(up);
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(gate_handler))
        .with_state(gate.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), gate)
}

/// One span numbered `id`, with `padding` bytes of attribute to make it big.
fn span_payload(id: u32, padding: usize) -> Payload {
    let mut span_id = vec![0; 4];
    span_id.extend_from_slice(&id.to_be_bytes());
    let attributes = (padding > 0)
        .then(|| KeyValue {
            key: "padding".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("x".repeat(padding))),
            }),
            ..Default::default()
        })
        .into_iter()
        .collect();
    Payload {
        spans: vec![ResourceSpans {
            resource: resource("shop"),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0xab; 16],
                    span_id,
                    name: format!("span-{id}"),
                    attributes,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn buffered_config(endpoint: &str, dir: &Path) -> ExporterConfig {
    let mut config = exporter_config("buffered", Protocol::HttpProtobuf);
    config.endpoint = Some(endpoint.to_owned());
    config.buffer_dir = Some(dir.to_owned());
    config.buffer_sync = BufferSync::Interval(Duration::from_millis(20));
    config.retry.initial_backoff = Duration::from_millis(1);
    config.retry.max_backoff = Duration::from_millis(20);
    config.retry.max_elapsed = Duration::from_millis(50);
    config.batch.timeout = Duration::from_millis(10);
    config.queue.concurrency = 2;
    config
}

/// Submits `ids` and waits until each is durable.
async fn submit_all(pipeline: &Exporters, ids: std::ops::Range<u32>, padding: usize) {
    for id in ids {
        let receipt = pipeline.submit(span_payload(id, padding)).unwrap();
        receipt.durable().await.unwrap();
    }
}

fn counter(family: &prometheus_client::metrics::family::Family<ExporterLabel, Counter>) -> u64 {
    family
        .get_or_create(&ExporterLabel {
            exporter: "buffered".into(),
        })
        .get()
}

/// Spans of the exporter counted as failed for `reason`.
fn failed(metrics: &Metrics, reason: &'static str) -> u64 {
    metrics
        .failed_items
        .get_or_create(&crate::admin::ExporterSignalReason {
            exporter: "buffered".into(),
            signal: "traces",
            reason,
        })
        .get()
}

fn segment_bytes(dir: &Path) -> u64 {
    segment::list(dir).unwrap().iter().map(|s| s.1).sum()
}

#[tokio::test]
async fn durable_before_the_receipt_resolves_then_delivered_and_freed() {
    let (endpoint, gate) = start_gate(true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = buffered_config(&endpoint, dir.path());
    config.buffer_sync = BufferSync::Always;
    let metrics = Arc::new(Metrics::new());
    let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();

    let receipt = pipeline.submit(span_payload(1, 0)).unwrap();
    receipt.durable().await.unwrap();
    assert!(segment_bytes(dir.path()) > 0, "on disk once durable");
    submit_all(&pipeline, 2..20, 0).await;
    wait_until(|| gate.unique() == 19).await;
    wait_until(|| acks::read_floor(dir.path()) == Some(19)).await;
    assert_eq!(
        counter(&metrics.buffer_replayed_records),
        0,
        "sent from memory"
    );
    pipeline.shutdown(Duration::from_secs(5)).await;
    assert!(gate.received().values().all(|&n| n == 1), "no duplicates");
}

#[tokio::test]
async fn outage_is_absorbed_and_everything_arrives_once_in_order() {
    let (endpoint, gate) = start_gate(false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = buffered_config(&endpoint, dir.path());
    // A small write queue and copy channel: most records must be read back from disk.
    config.queue.capacity = 4;
    let metrics = Arc::new(Metrics::new());
    let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();

    submit_all(&pipeline, 0..150, 0).await;
    assert!(!pipeline.is_full(), "the disk absorbs the outage");
    assert_eq!(gate.unique(), 0);
    gate.set_up(true);
    wait_until(|| gate.unique() == 150).await;
    pipeline.shutdown(Duration::from_secs(5)).await;
    assert!(gate.received().values().all(|&n| n == 1), "no duplicates");
    assert!(
        counter(&metrics.buffer_replayed_records) > 0,
        "read back from disk"
    );
    assert_eq!(counter(&metrics.buffer_corrupt_records), 0);
}

#[tokio::test]
async fn what_is_undelivered_at_shutdown_is_replayed_at_the_next_start() {
    let (endpoint, gate) = start_gate(false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = buffered_config(&endpoint, dir.path());
    let metrics = Arc::new(Metrics::new());
    let pipeline = Exporters::start(std::slice::from_ref(&config), metrics.clone()).unwrap();
    submit_all(&pipeline, 0..40, 0).await;
    pipeline.shutdown(Duration::from_millis(100)).await;
    assert_eq!(failed(&metrics, "shutdown"), 0, "kept on disk, not failed");

    gate.set_up(true);
    let metrics = Arc::new(Metrics::new());
    let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
    wait_until(|| gate.unique() == 40).await;
    pipeline.shutdown(Duration::from_secs(5)).await;
    assert_eq!(counter(&metrics.buffer_replayed_records), 40);
    assert!(gate.received().values().all(|&n| n == 1));
    assert_eq!(acks::read_floor(dir.path()), Some(40));
}

#[test]
fn a_crash_loses_nothing_durable() {
    let dir = tempfile::tempdir().unwrap();
    // A destination that is never reachable: nothing is acknowledged before the "crash".
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = buffered_config(&dead_endpoint, dir.path());
        runtime.block_on(async {
            let pipeline = Exporters::start(&[config], Arc::new(Metrics::new())).unwrap();
            submit_all(&pipeline, 0..30, 0).await;
        });
        // Dropping the runtime kills every task mid-flight, like `kill -9` (no shutdown).
        runtime.shutdown_background();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (endpoint, gate) = start_gate(true).await;
        let config = buffered_config(&endpoint, dir.path());
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
        wait_until(|| gate.unique() == 30).await;
        pipeline.shutdown(Duration::from_secs(5)).await;

        // Nothing reached a destination before the crash, so every payload that was durable
        // then arrives now, read back from disk, exactly once.
        let received = gate.received();
        let mut ids: Vec<u32> = received.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (0..30).collect::<Vec<_>>(),
            "every durable payload is replayed"
        );
        assert!(
            received.values().all(|&n| n == 1),
            "no duplicates: {received:?}"
        );
        assert_eq!(
            counter(&metrics.buffer_replayed_records),
            30,
            "read back from disk"
        );
        assert_eq!(acks::read_floor(dir.path()), Some(30), "all acknowledged");
    });
}

#[tokio::test]
async fn damaged_records_are_skipped_counted_and_the_rest_delivered() {
    let (endpoint, gate) = start_gate(false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = buffered_config(&endpoint, dir.path());
    let pipeline =
        Exporters::start(std::slice::from_ref(&config), Arc::new(Metrics::new())).unwrap();
    submit_all(&pipeline, 0..20, 0).await;
    pipeline.shutdown(Duration::from_millis(50)).await;

    // Flip bytes in the middle of the (only) segment: one or two records are damaged.
    let segments = segment::list(dir.path()).unwrap();
    assert_eq!(segments.len(), 1);
    let path = segment::path(dir.path(), segments[0].0);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();

    gate.set_up(true);
    let metrics = Arc::new(Metrics::new());
    let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
    wait_until(|| counter(&metrics.buffer_corrupt_records) == 1 && gate.unique() >= 18).await;
    pipeline.shutdown(Duration::from_secs(5)).await;
    let received = gate.received();
    assert!((18..20).contains(&received.len()), "{received:?}");
    assert!(received.contains_key(&0) && received.contains_key(&19));
    assert_eq!(
        acks::read_floor(dir.path()),
        Some(20),
        "damage is not waited for"
    );
}

#[tokio::test]
async fn a_full_buffer_refuses_then_recovers() {
    let (endpoint, gate) = start_gate(false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = buffered_config(&endpoint, dir.path());
    config.buffer_max_bytes = crate::config::MIN_BUFFER_MAX_BYTES;
    let metrics = Arc::new(Metrics::new());
    let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();

    let mut accepted = 0;
    let refused = loop {
        let receipt = pipeline.submit(span_payload(accepted, 50_000)).unwrap();
        match receipt.durable().await {
            Ok(()) => accepted += 1,
            Err(refused) => break refused,
        }
        assert!(accepted < 25, "1 MiB holds about 20 payloads of 50 kB");
    };
    assert_eq!(
        refused,
        Backpressure::Buffer {
            exporter: "buffered".into(),
            refusal: Refusal::Full
        }
    );
    assert!(accepted >= 15, "{accepted}");
    assert!(pipeline.is_full(), "readiness turns false");
    assert!(segment_bytes(dir.path()) <= crate::config::MIN_BUFFER_MAX_BYTES);

    gate.set_up(true);
    wait_until(|| gate.unique() == accepted as usize && !pipeline.is_full()).await;
    submit_all(&pipeline, 1000..1003, 50_000).await;
    wait_until(|| gate.unique() == accepted as usize + 3).await;
    pipeline.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn drop_oldest_makes_room_and_counts_what_it_dropped() {
    let (endpoint, gate) = start_gate(false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = buffered_config(&endpoint, dir.path());
    config.buffer_max_bytes = crate::config::MIN_BUFFER_MAX_BYTES;
    config.buffer_full = BufferFull::DropOldest;
    config.queue.concurrency = 1;
    let metrics = Arc::new(Metrics::new());
    let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();

    submit_all(&pipeline, 0..300, 10_000).await;
    assert!(segment_bytes(dir.path()) <= crate::config::MIN_BUFFER_MAX_BYTES);
    let dropped = failed(&metrics, "buffer_full");
    assert!(dropped >= 150, "{dropped}");
    gate.set_up(true);
    wait_until(|| gate.unique() as u64 + dropped == 300).await;
    pipeline.shutdown(Duration::from_secs(5)).await;
    assert!(gate.received().contains_key(&299), "the newest are kept");
    assert!(
        gate.received().contains_key(&0),
        "the first ones were on their way"
    );
}

#[test]
fn a_record_split_over_batches_is_finished_when_every_batch_is() {
    use crate::export::batch::tests::spans_payload;
    use crate::export::batch::Batcher;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    let acks = Arc::new(acks::Acks::new(7));
    let mut batcher = Batcher::new(&crate::config::BatchConfig {
        max_items: 2,
        ..Default::default()
    });
    let mut payload = spans_payload("shop", 0..3);
    payload.logs.push(ResourceLogs {
        resource: resource("shop"),
        scope_logs: vec![ScopeLogs {
            log_records: vec![LogRecord::default()],
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut out = Vec::new();
    let hold = Hold::new(7, acks.clone());
    batcher.push(payload, Some(&hold), std::time::Instant::now(), &mut out);
    drop(hold);
    batcher.push(
        spans_payload("shop", [9]),
        Some(&Hold::new(8, acks.clone())),
        std::time::Instant::now(),
        &mut out,
    );
    batcher.flush_all(&mut out);
    assert_eq!(out.len(), 3, "2 + 2 spans, 1 log");
    let holds: Vec<usize> = out.iter().map(|b| b.holds.len()).collect();
    assert_eq!(
        holds,
        [1, 2, 1],
        "the second traces batch has records 7 and 8"
    );
    let last = out.pop().unwrap();
    drop(out);
    assert_eq!(acks.floor(), 7, "the logs batch still holds record 7");
    drop(last);
    assert_eq!(acks.floor(), 9);
}
