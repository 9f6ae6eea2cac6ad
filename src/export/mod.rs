//! Export: bounded queues, durable disk buffers, batching, OTLP transports and retries.
//!
//! The pipeline hands each accepted request's telemetry ([`Payload`], from `handoff`) to
//! [`Exporters::submit`], which never waits: it places the payload on every exporter's bounded
//! queue or reports that a queue is full (the edge turns that into `503` + `Retry-After`). This
//! stage knows only payloads, never the RUM model or the HTTP edge. Each exporter has its own queue and tasks (fan-out:
//! a slow destination fills only its own queue): batch by count, bytes and time, grouped by
//! resource; send over OTLP gRPC, HTTP/protobuf, HTTP/JSON or to OTLP-JSON files; retry per the
//! OTLP spec. An exporter with a `buffer_dir` first writes each payload to its disk buffer
//! ([`buffer`]); the [`Receipt`] that `submit` returns resolves once that write is done, and only
//! then does the edge answer `202`. Every item ends up counted as exported or failed with a
//! reason (`admin::Metrics`).

mod acks;
pub mod batch;
mod buffer;
pub mod file;
pub mod grpc;
pub mod http;
mod queue;
pub mod retry;
pub mod tls;
mod worker;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::Metrics;
use crate::config::{ExporterConfig, Protocol};
use crate::handoff::{Backpressure, Payload, Receipt};
use batch::BatchData;
use buffer::{RecordBody, SpoolHandle, WriteRequest};
use queue::{Phase, QueueHandle, Queued};
use retry::SendError;
use worker::Worker;

/// Queue slots per worker of a buffered exporter: its queue is on disk, so a few payloads in
/// memory keep the workers busy.
const BUFFERED_SHARD_CAPACITY: usize = 16;

/// Why the export pipeline cannot start with the given configuration.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the export pipeline must be started inside a tokio runtime")]
    NoRuntime,
    #[error("no exporter configured")]
    NoExporters,
    /// The exporter list breaks a rule of `config::validate::exporter_set_problems` (one line
    /// per problem, each starting with its key).
    #[error("invalid exporters: {}", problems.join("; "))]
    Invalid { problems: Vec<String> },
    #[error("exporter {exporter:?}: invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        exporter: String,
        endpoint: String,
        reason: String,
    },
    /// The header value is deliberately not shown: it is usually a credential.
    #[error("exporter {exporter:?}: invalid header {name:?} (bad name or value)")]
    InvalidHeader { exporter: String, name: String },
    #[error("exporter {exporter:?}: protocol `file` needs `path`")]
    MissingPath { exporter: String },
    #[error("exporter {exporter:?}: cannot open {path}: {source}")]
    Io {
        exporter: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("exporter {exporter:?}: cannot build HTTP client: {source}")]
    HttpClient {
        exporter: String,
        source: reqwest::Error,
    },
    #[error("exporter {exporter:?}: TLS: {source}")]
    Tls {
        exporter: String,
        source: tls::TlsError,
    },
    #[error("exporter {exporter:?}: API key of preset: {source}")]
    Credential {
        exporter: String,
        source: crate::config::presets::CredentialError,
    },
}

/// What the destination said about a request it accepted (OTLP `partial_success`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ack {
    /// Items the destination rejected although the request succeeded.
    pub rejected: i64,
    /// A warning or the reason for the rejection; empty when all is well.
    pub message: String,
}

impl From<ExportTracePartialSuccess> for Ack {
    fn from(p: ExportTracePartialSuccess) -> Self {
        Self {
            rejected: p.rejected_spans,
            message: p.error_message,
        }
    }
}

impl From<ExportLogsPartialSuccess> for Ack {
    fn from(p: ExportLogsPartialSuccess) -> Self {
        Self {
            rejected: p.rejected_log_records,
            message: p.error_message,
        }
    }
}

impl From<ExportMetricsPartialSuccess> for Ack {
    fn from(p: ExportMetricsPartialSuccess) -> Self {
        Self {
            rejected: p.rejected_data_points,
            message: p.error_message,
        }
    }
}

/// One way of delivering batches: OTLP/gRPC, OTLP/HTTP or OTLP-JSON files.
pub(crate) trait Transport: Send + 'static {
    /// A batch encoded once, sent as often as retries need.
    type Prepared: Send + Sync;

    fn prepare(&self, batch: BatchData) -> Result<Self::Prepared, SendError>;

    fn send(
        &mut self,
        prepared: &Self::Prepared,
    ) -> impl Future<Output = Result<Ack, SendError>> + Send;
}

/// The export stage: one bounded queue and one task per exporter (fan-out), so a slow
/// destination fills only its own queue. Cheap to clone.
#[derive(Clone)]
pub struct Exporters {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<ExporterQueue>,
    /// Whether any exporter has a disk buffer (payloads are then encoded once, at submit).
    any_buffered: bool,
    phase: watch::Sender<Phase>,
    /// Every task: workers, and the writers and readers of disk buffers.
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Where `submit` puts an exporter's payloads.
enum ExporterQueue {
    /// In memory, straight to the workers.
    Memory(QueueHandle<Queued>),
    /// To the disk buffer's writer.
    Disk(SpoolHandle),
}

impl ExporterQueue {
    fn name(&self) -> &str {
        match self {
            ExporterQueue::Memory(q) => &q.name,
            ExporterQueue::Disk(s) => &s.queue.name,
        }
    }

    fn is_full(&self) -> bool {
        match self {
            ExporterQueue::Memory(q) => q.is_full(),
            ExporterQueue::Disk(s) => s.is_full(),
        }
    }

    fn depth(&self) -> usize {
        match self {
            ExporterQueue::Memory(q) => q.depth(),
            ExporterQueue::Disk(s) => s.queue.depth(),
        }
    }

    fn count_queued(&self) {
        match self {
            ExporterQueue::Memory(q) => q.count_queued(),
            ExporterQueue::Disk(s) => s.queue.count_queued(),
        }
    }
}

/// A slot reserved by `submit` in one exporter's queue.
enum Slot<'a> {
    Memory(queue::Reserved<'a, Queued>),
    Disk(&'a SpoolHandle, queue::Reserved<'a, WriteRequest>),
}

impl Exporters {
    /// Validates the exporters and spawns their tasks. Must be called inside a tokio runtime.
    /// gRPC channels connect lazily, so this succeeds while the collector is down.
    pub fn start(
        exporters: &[ExporterConfig],
        metrics: Arc<Metrics>,
    ) -> Result<Exporters, ExportError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ExportError::NoRuntime);
        }
        if exporters.is_empty() {
            return Err(ExportError::NoExporters);
        }
        tls::install_default_provider();
        let problems = crate::config::exporter_set_problems(exporters);
        if !problems.is_empty() {
            return Err(ExportError::Invalid { problems });
        }
        // Build every transport before spawning anything, so a bad config starts nothing.
        let transports = exporters
            .iter()
            .map(|config| {
                (0..shard_count(config))
                    .map(|_| AnyTransport::new(config))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;

        let (phase, _) = watch::channel(Phase::Running);
        // Open every disk buffer before spawning anything: a bad directory starts nothing.
        let mut planned = Vec::with_capacity(exporters.len());
        for (config, shard_transports) in exporters.iter().zip(transports) {
            let per_shard = match config.buffer_dir {
                Some(_) => BUFFERED_SHARD_CAPACITY,
                None => config.queue.capacity.div_ceil(shard_transports.len()),
            };
            let (senders, receivers): (Vec<_>, Vec<_>) = shard_transports
                .iter()
                .map(|_| mpsc::channel::<Queued>(per_shard))
                .unzip();
            let (queue, spool_tasks) = match &config.buffer_dir {
                Some(dir) => {
                    let opened = buffer::open(config, dir, senders, &phase.subscribe(), &metrics)?;
                    (
                        ExporterQueue::Disk(opened.handle),
                        Some((opened.writer, opened.reader)),
                    )
                }
                None => (
                    ExporterQueue::Memory(QueueHandle::new(
                        config.name.clone(),
                        senders,
                        config.queue.max_bytes,
                        &metrics,
                    )),
                    None,
                ),
            };
            planned.push((config, shard_transports, receivers, queue, spool_tasks));
        }

        let mut queues = Vec::with_capacity(exporters.len());
        let mut workers = Vec::new();
        for (config, shard_transports, receivers, queue, spool_tasks) in planned {
            for (transport, receiver) in shard_transports.into_iter().zip(receivers) {
                let phase = phase.subscribe();
                workers.push(match transport {
                    AnyTransport::Grpc(t) => {
                        tokio::spawn(Worker::new(config, t, receiver, phase, &metrics).run())
                    }
                    AnyTransport::Http(t) => {
                        tokio::spawn(Worker::new(config, t, receiver, phase, &metrics).run())
                    }
                    AnyTransport::File(t) => {
                        tokio::spawn(Worker::new(config, t, receiver, phase, &metrics).run())
                    }
                });
            }
            if let Some((writer, reader)) = spool_tasks {
                workers.push(tokio::spawn(writer.run()));
                workers.push(tokio::spawn(reader.run()));
            }
            queues.push(queue);
        }
        let any_buffered = queues.iter().any(|q| matches!(q, ExporterQueue::Disk(_)));
        Ok(Exporters {
            inner: Arc::new(Inner {
                queues,
                any_buffered,
                phase,
                workers: Mutex::new(workers),
            }),
        })
    }

    /// Queues a payload for every exporter without waiting. All or nothing: if any exporter's
    /// queue is full, no exporter gets it (so the client's retry does not duplicate data). The
    /// receipt tells when disk buffers have it; a buffer may still refuse it then (full), after
    /// the other exporters took it.
    pub fn submit(&self, payload: Payload) -> Result<Receipt, Backpressure> {
        if payload.is_empty() {
            return Ok(Receipt::default());
        }
        let queues = &self.inner.queues;
        let bytes = payload.memory_bytes();
        let mut slots = Vec::with_capacity(queues.len());
        for queue in queues {
            let reserved = match queue {
                ExporterQueue::Memory(q) => q.try_reserve(bytes).map(Slot::Memory),
                ExporterQueue::Disk(s) => s.queue.try_reserve(bytes).map(|r| Slot::Disk(s, r)),
            };
            match reserved {
                Ok(slot) => slots.push(slot),
                Err(mpsc::error::TrySendError::Full(())) => {
                    return Err(Backpressure::QueueFull {
                        exporter: queue.name().to_owned(),
                    })
                }
                Err(mpsc::error::TrySendError::Closed(())) => {
                    return Err(Backpressure::ShuttingDown)
                }
            }
        }
        let payload = Arc::new(payload);
        let body = self
            .inner
            .any_buffered
            .then(|| Arc::new(RecordBody::encode(&payload)));
        let mut receipt = Receipt::default();
        for slot in slots {
            match slot {
                Slot::Memory(reserved) => {
                    reserved.send(|budget| Queued::new(Arc::clone(&payload), Some(budget), None))
                }
                Slot::Disk(spool, reserved) => {
                    let (reply, durable) = oneshot::channel();
                    let body = Arc::clone(body.as_ref().expect("encoded when any is buffered"));
                    reserved.send(|budget| WriteRequest {
                        payload: Arc::clone(&payload),
                        body,
                        budget,
                        reply,
                    });
                    receipt.wait_for(spool.name(), durable);
                }
            }
        }
        for queue in queues {
            queue.count_queued();
        }
        Ok(receipt)
    }

    /// Whether any exporter's queue is at capacity, or its disk buffer full (readiness turns
    /// false).
    pub fn is_full(&self) -> bool {
        self.inner.queues.iter().any(ExporterQueue::is_full)
    }

    /// Payloads waiting in memory per exporter.
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        self.inner
            .queues
            .iter()
            .map(|q| (q.name().to_owned(), q.depth()))
            .collect()
    }

    /// Stops accepting, lets every exporter drain its queue and flush its batches, and waits up
    /// to `deadline`. Whatever is still undelivered then stays in its disk buffer for the next
    /// start; without one it is counted as failed (`shutdown`) and logged by its exporter.
    /// Returns once everything is delivered, or at the deadline: `true` when every exporter
    /// drained in time.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        self.inner.phase.send_if_modified(|phase| {
            let running = *phase == Phase::Running;
            if running {
                *phase = Phase::Draining;
            }
            running
        });
        let workers = std::mem::take(
            &mut *self
                .inner
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // Await each in turn against the common deadline; all of them drain concurrently.
        let mut pending = workers.into_iter();
        let mut unfinished = Vec::new();
        for mut worker in pending.by_ref() {
            match tokio::time::timeout_at(end, &mut worker).await {
                Ok(result) => log_worker_end(result),
                Err(_) => {
                    unfinished.push(worker);
                    break;
                }
            }
        }
        let drained = unfinished.is_empty();
        if !drained {
            tracing::warn!(
                ?deadline,
                "export shutdown deadline reached; stopping the exporters (what each still \
                 holds is logged next)"
            );
            // What is abandoned now must stay in the disk buffers.
            for queue in &self.inner.queues {
                if let ExporterQueue::Disk(spool) = queue {
                    spool.freeze();
                }
            }
            self.inner.phase.send_replace(Phase::Abort);
            // Aborted workers stop at their next await point and count what they still hold.
            for worker in unfinished.into_iter().chain(pending) {
                log_worker_end(worker.await);
            }
        }
        for queue in &self.inner.queues {
            if let ExporterQueue::Disk(spool) = queue {
                spool.finish().await;
            }
        }
        drained
    }
}

/// The headers `config`'s preset adds, with its API key read from the process environment or
/// its file.
fn preset_headers(
    config: &ExporterConfig,
) -> Result<crate::config::presets::PresetHeaders, ExportError> {
    crate::config::presets::preset_headers(config, &|name| std::env::var(name).ok()).map_err(
        |source| ExportError::Credential {
            exporter: config.name.clone(),
            source,
        },
    )
}

/// Workers (and in-flight requests) of one exporter: one for files, so lines never interleave.
fn shard_count(config: &ExporterConfig) -> usize {
    match config.protocol {
        crate::config::Protocol::File => 1,
        _ => config.queue.concurrency.max(1),
    }
}

fn log_worker_end(result: Result<(), tokio::task::JoinError>) {
    if let Err(error) = result {
        tracing::error!(%error, "exporter task failed");
    }
}

/// A configured transport, before its task is spawned.
// Lives only during start-up, so the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
enum AnyTransport {
    Grpc(grpc::GrpcTransport),
    Http(http::HttpTransport),
    File(file::FileTransport),
}

impl AnyTransport {
    fn new(config: &ExporterConfig) -> Result<Self, ExportError> {
        Ok(match config.protocol {
            Protocol::Grpc => Self::Grpc(grpc::GrpcTransport::new(config)?),
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                Self::Http(http::HttpTransport::new(config)?)
            }
            Protocol::File => Self::File(file::FileTransport::new(config)?),
        })
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::time::Duration;

    use crate::config::{ExporterConfig, Protocol};

    /// A default exporter of `protocol`, without endpoint or path.
    pub(crate) fn exporter_config(name: &str, protocol: Protocol) -> ExporterConfig {
        let mut config = crate::config::ExporterConfig::embedded_default();
        config.name = name.into();
        config.protocol = protocol;
        config.path = None;
        config
    }

    /// Polls `condition` every 10 ms for up to 10 s.
    pub(crate) async fn wait_until(mut condition: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not met within 10 s");
    }
}

#[cfg(test)]
mod tests {
    use super::batch::tests::spans_payload;
    use super::grpc::tests::{grpc_config, start_collector, Collector};
    use super::http::tests::start_server;
    use super::test_support::{exporter_config, wait_until};
    use super::*;
    use crate::admin::{ExporterSignal, ExporterSignalReason};
    use axum::http::StatusCode;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    fn exported(metrics: &Metrics, exporter: &str) -> u64 {
        metrics
            .exported_items
            .get_or_create(&ExporterSignal {
                exporter: exporter.into(),
                signal: "traces",
            })
            .get()
    }

    fn retries(metrics: &Metrics, exporter: &str) -> u64 {
        metrics
            .export_retries
            .get_or_create(&ExporterSignal {
                exporter: exporter.into(),
                signal: "traces",
            })
            .get()
    }

    fn failed(metrics: &Metrics, exporter: &str, reason: &'static str) -> u64 {
        metrics
            .failed_items
            .get_or_create(&ExporterSignalReason {
                exporter: exporter.into(),
                signal: "traces",
                reason,
            })
            .get()
    }

    fn fast_retries(config: &mut ExporterConfig) {
        config.retry.initial_backoff = Duration::from_millis(1);
        config.retry.max_backoff = Duration::from_millis(5);
        config.batch.timeout = Duration::from_millis(10);
    }

    fn file_config(name: &str, dir: &std::path::Path) -> ExporterConfig {
        let mut config = exporter_config(name, Protocol::File);
        config.path = Some(dir.to_owned());
        config
    }

    fn span_ids_in_file(path: &std::path::Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        let mut ids = Vec::new();
        for line in text.lines() {
            let request: serde_json::Value = serde_json::from_str(line).unwrap();
            for rs in request["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for span in ss["spans"].as_array().unwrap() {
                        ids.push(span["spanId"].as_str().unwrap().to_owned());
                    }
                }
            }
        }
        ids
    }

    #[tokio::test]
    async fn rejects_bad_configs() {
        let metrics = Arc::new(Metrics::new());
        assert!(matches!(
            Exporters::start(&[], metrics.clone()),
            Err(ExportError::NoExporters)
        ));
        let dir = tempfile::tempdir().unwrap();
        let twice = [file_config("a", dir.path()), file_config("a", dir.path())];
        assert!(matches!(
            Exporters::start(&twice, metrics.clone()),
            Err(ExportError::Invalid { problems })
                if problems == ["exporters[1].name: duplicate exporter name \"a\""]
        ));
        let mut zero = file_config("a", dir.path());
        zero.queue.capacity = 0;
        assert!(matches!(
            Exporters::start(&[zero], metrics),
            Err(ExportError::Invalid { problems })
                if problems == ["exporters[0].queue.capacity: must be greater than 0"]
        ));
    }

    #[tokio::test]
    async fn shutdown_drains_pending_items_to_every_exporter() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut configs = [
            file_config("a", &dir.path().join("a")),
            file_config("b", &dir.path().join("b")),
        ];
        for config in &mut configs {
            // Nothing would be flushed before shutdown on its own.
            config.batch.timeout = Duration::from_secs(3600);
        }
        let pipeline = Exporters::start(&configs, metrics.clone()).unwrap();
        assert!(
            pipeline.submit(Payload::default()).is_ok(),
            "empty is a no-op"
        );
        for n in 0..3 {
            pipeline.submit(spans_payload("shop", [n])).unwrap();
        }
        pipeline.shutdown(Duration::from_secs(10)).await;

        for name in ["a", "b"] {
            let ids = span_ids_in_file(&dir.path().join(name).join("traces.jsonl"));
            assert_eq!(
                ids,
                ["0000000000000000", "0101010101010101", "0202020202020202"]
            );
            assert_eq!(exported(&metrics, name), 3);
            assert_eq!(failed(&metrics, name, "shutdown"), 0);
        }
    }

    #[tokio::test]
    async fn concurrent_shards_share_the_capacity_and_keep_requests_in_flight() {
        // A destination that accepts connections but never answers: each shard holds one
        // request in flight and its share of the queue.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = exporter_config("sharded", Protocol::HttpProtobuf);
        config.endpoint = Some(format!("http://{}", silent.local_addr().unwrap()));
        config.timeout = Duration::from_secs(60);
        config.queue.capacity = 6;
        config.queue.concurrency = 3;
        config.batch.max_items = 1;
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
        let mut accepted = 0u8;
        while pipeline.submit(spans_payload("shop", [accepted])).is_ok() {
            accepted += 1;
            assert!(accepted <= 9, "6 queued plus 3 in flight at most");
        }
        assert!(accepted >= 6, "every shard's share is usable: {accepted}");
        assert!(pipeline.is_full());
        let depth = pipeline.queue_depths()[0].1;
        let gauge = metrics
            .queue_depth
            .get_or_create(&crate::admin::Exporter {
                exporter: "sharded".into(),
            })
            .get();
        wait_until(|| {
            metrics
                .queue_depth
                .get_or_create(&crate::admin::Exporter {
                    exporter: "sharded".into(),
                })
                .get()
                == depth as i64
        })
        .await;
        assert!(gauge >= depth as i64);
        pipeline.shutdown(Duration::from_millis(100)).await;
        assert_eq!(failed(&metrics, "sharded", "shutdown"), u64::from(accepted));
    }

    #[tokio::test]
    async fn byte_budget_bounds_the_queue_and_is_released_when_taken() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let one = spans_payload("shop", [0]).memory_bytes();
        let mut config = exporter_config("bytes", Protocol::HttpProtobuf);
        config.endpoint = Some(format!("http://{}", silent.local_addr().unwrap()));
        config.timeout = Duration::from_secs(60);
        config.queue.capacity = 1000;
        config.queue.concurrency = 1;
        config.queue.max_bytes = 2 * one;
        config.batch.max_items = 1;
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
        let mut accepted = 0u8;
        while pipeline.submit(spans_payload("shop", [accepted])).is_ok() {
            accepted += 1;
            assert!(
                accepted <= 3,
                "two payloads of budget plus one taken by the worker"
            );
        }
        assert!(accepted >= 2, "{accepted}");
        assert!(
            pipeline.is_full(),
            "the byte budget, not the slot count, is exhausted"
        );
        pipeline.shutdown(Duration::from_millis(100)).await;
        assert_eq!(failed(&metrics, "bytes", "shutdown"), u64::from(accepted));
    }

    #[tokio::test]
    async fn a_payload_larger_than_the_budget_is_taken_when_the_queue_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = exporter_config("big", Protocol::File);
        config.endpoint = None;
        config.path = Some(dir.path().to_owned());
        config.queue.max_bytes = 1;
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
        pipeline.submit(spans_payload("shop", [1, 2, 3])).unwrap();
        wait_until(|| exported(&metrics, "big") == 3).await;
        pipeline.submit(spans_payload("shop", [4])).unwrap();
        pipeline.shutdown(Duration::from_secs(5)).await;
        assert_eq!(exported(&metrics, "big"), 4);
    }

    #[tokio::test]
    async fn full_queue_is_backpressure_and_deadline_counts_the_rest() {
        // A destination that accepts connections but never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = exporter_config("stuck", Protocol::HttpProtobuf);
        config.endpoint = Some(format!("http://{}", silent.local_addr().unwrap()));
        config.timeout = Duration::from_secs(60);
        config.queue.capacity = 2;
        config.queue.concurrency = 1;
        config.batch.max_items = 1;
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();

        let mut accepted = 0;
        let refused = loop {
            match pipeline.submit(spans_payload("shop", [accepted])) {
                Ok(_) => accepted += 1,
                Err(refused) => break refused,
            }
            assert!(accepted <= 3, "queue of 2 plus one in flight");
        };
        assert_eq!(
            refused,
            Backpressure::QueueFull {
                exporter: "stuck".into()
            }
        );
        assert!(accepted >= 2);
        assert!(pipeline.is_full());
        assert_eq!(pipeline.queue_depths(), [("stuck".to_string(), 2)]);

        let other_handle = pipeline.clone();
        pipeline.shutdown(Duration::from_millis(100)).await;
        assert_eq!(failed(&metrics, "stuck", "shutdown"), u64::from(accepted));
        assert_eq!(exported(&metrics, "stuck"), 0);
        assert_eq!(
            other_handle.submit(spans_payload("shop", [9])).err(),
            Some(Backpressure::ShuttingDown)
        );
    }

    #[tokio::test]
    async fn http_503_is_retried_and_400_is_not() {
        let (endpoint, server) = start_server(vec![
            (StatusCode::SERVICE_UNAVAILABLE, vec![("retry-after", "0")]),
            (StatusCode::OK, vec![]),
            (StatusCode::BAD_REQUEST, vec![]),
        ])
        .await;
        let mut config = exporter_config("collector", Protocol::HttpProtobuf);
        config.endpoint = Some(endpoint);
        fast_retries(&mut config);
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();

        pipeline.submit(spans_payload("shop", 0..3)).unwrap();
        wait_until(|| exported(&metrics, "collector") == 3).await;
        assert_eq!(retries(&metrics, "collector"), 1);
        {
            let requests = server.requests.lock().unwrap();
            assert_eq!(requests.len(), 2);
            assert_eq!(requests[0].1, requests[1].1, "the same body is sent again");
            let decoded = ExportTraceServiceRequest::decode(requests[1].1.as_ref()).unwrap();
            assert_eq!(decoded.resource_spans, spans_payload("shop", 0..3).spans);
        }

        pipeline.submit(spans_payload("shop", 3..5)).unwrap();
        wait_until(|| failed(&metrics, "collector", "permanent_error") == 2).await;
        pipeline.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            server.requests.lock().unwrap().len(),
            3,
            "400 is not retried"
        );
        assert_eq!(retries(&metrics, "collector"), 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_elapsed() {
        let busy = (StatusCode::TOO_MANY_REQUESTS, vec![]);
        let (endpoint, server) = start_server(vec![busy; 1000]).await;
        let mut config = exporter_config("collector", Protocol::HttpProtobuf);
        config.endpoint = Some(endpoint);
        fast_retries(&mut config);
        config.retry.max_elapsed = Duration::from_millis(400);
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
        pipeline.submit(spans_payload("shop", 0..2)).unwrap();
        wait_until(|| failed(&metrics, "collector", "retries_exhausted") == 2).await;
        assert!(server.requests.lock().unwrap().len() >= 2);
        assert_eq!(exported(&metrics, "collector"), 0);
    }

    #[tokio::test]
    async fn grpc_unavailable_is_retried() {
        let collector = Arc::new(Collector::default());
        collector
            .failures
            .lock()
            .unwrap()
            .push(tonic::Status::unavailable("warming up"));
        let endpoint = start_collector(collector.clone()).await;
        let mut config = grpc_config(&endpoint);
        fast_retries(&mut config);
        let metrics = Arc::new(Metrics::new());
        let pipeline = Exporters::start(&[config], metrics.clone()).unwrap();
        pipeline.submit(spans_payload("shop", 0..4)).unwrap();
        wait_until(|| exported(&metrics, "collector") == 4).await;
        assert_eq!(retries(&metrics, "collector"), 1);
        let requests = collector.requests.lock().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[1].1.resource_spans,
            spans_payload("shop", 0..4).spans
        );
    }
}
