//! Export: bounded queues, batching, OTLP transports and retries.
//!
//! The edge hands each accepted request's telemetry to [`Pipeline::submit`], which never waits:
//! it places the payload on every exporter's bounded queue or reports that a queue is full (the
//! edge turns that into `503` + `Retry-After`). Each exporter runs its own task: batch by count,
//! bytes and time, grouped by resource; send over OTLP gRPC, HTTP/protobuf or to OTLP-JSON files;
//! retry per the OTLP spec.

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

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

fn metric_points(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}
