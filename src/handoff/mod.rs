//! The hand-off between the per-request flow and the export stage.
//!
//! Conversion produces a [`Payload`] (OTLP resource spans, logs and metrics); the export stage
//! takes payloads and answers with a [`Receipt`] or a [`Backpressure`] refusal. Both sides
//! import this module and neither imports the other: `convert` and `pipeline` never see a
//! queue, `export` never sees the RUM model. The attribute-size rule that both the edge caps
//! and the per-exporter limits apply lives here too ([`attributes`]), so there is one walker
//! and one way of counting.

pub mod attributes;
mod memory;

use std::sync::Arc;

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::sync::oneshot;

/// Telemetry produced from one accepted request (or one metrics flush).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    pub spans: Vec<ResourceSpans>,
    pub logs: Vec<ResourceLogs>,
    pub metrics: Vec<ResourceMetrics>,
}

impl Payload {
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.logs.is_empty() && self.metrics.is_empty()
    }

    /// Heap bytes the payload holds while it waits: what a queue's byte budget counts
    /// ([`memory`]).
    pub fn memory_bytes(&self) -> usize {
        memory::payload_bytes(self)
    }

    /// Protobuf-encoded size.
    pub fn encoded_len(&self) -> usize {
        use prost::Message;
        self.spans.iter().map(Message::encoded_len).sum::<usize>()
            + self.logs.iter().map(Message::encoded_len).sum::<usize>()
            + self.metrics.iter().map(Message::encoded_len).sum::<usize>()
    }

    /// Number of spans, log records and metric data points, for accounting.
    pub fn counts(&self) -> ItemCounts {
        ItemCounts {
            spans: self
                .spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            logs: self
                .logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
            metric_points: self
                .metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(metric_points)
                .sum(),
        }
    }
}

/// Items in a payload, by signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemCounts {
    pub spans: usize,
    pub logs: usize,
    pub metric_points: usize,
}

/// The data points of one metric, whatever its type.
pub fn metric_points(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// Label value in metrics and logs; also the OTLP/HTTP path suffix and file name stem.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// Position in [`Signal::ALL`], for per-signal arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a disk buffer did not keep a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the disk buffer is full")]
    Full,
    #[error("the disk buffer could not be written")]
    WriteFailed,
}

/// Why the export stage (or a [`Receipt`]) refused a payload; the edge answers `503` with
/// `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Backpressure {
    #[error("export queue of {exporter:?} is full")]
    QueueFull { exporter: String },
    #[error("disk buffer of {exporter:?}: {refusal}")]
    Buffer { exporter: String, refusal: Refusal },
    #[error("export pipeline is shutting down")]
    ShuttingDown,
}

/// One disk buffer's answer to a write: `Ok` once the payload is durable in it.
pub type Durable = oneshot::Receiver<Result<(), Refusal>>;

/// Tells when a submitted payload is durable in every disk buffer (immediately without one).
/// Dropping it does not cancel anything.
#[derive(Debug, Default)]
pub struct Receipt {
    /// Per buffered exporter: its name and the writer's answer.
    pending: Vec<(Arc<str>, Durable)>,
}

impl Receipt {
    /// Adds the answer a buffered exporter will give.
    pub fn wait_for(&mut self, exporter: Arc<str>, durable: Durable) {
        self.pending.push((exporter, durable));
    }

    /// Waits until every buffered exporter has written the payload (and synced it, with
    /// `buffer_sync = "always"`). An error means a buffer did not keep it; the client should
    /// send it again.
    pub async fn durable(self) -> Result<(), Backpressure> {
        for (exporter, reply) in self.pending {
            match reply.await {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => {
                    return Err(Backpressure::Buffer {
                        exporter: exporter.to_string(),
                        refusal,
                    })
                }
                Err(_) => return Err(Backpressure::ShuttingDown),
            }
        }
        Ok(())
    }
}
