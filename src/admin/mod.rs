//! The admin listener: liveness, readiness and the daemon's own Prometheus metrics.
//!
//! It lives on its own address (default `127.0.0.1:4381`) so that operational endpoints are
//! never reachable through the public ingest port that browsers talk to.

mod connections;
pub use connections::{ConnectionMetrics, OpenConnection, TimeoutPhase};
pub mod rum;
pub mod sourcemaps;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// A privacy rule (`email`, `card`, … or a configured pattern's name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rule {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterSignal {
    pub exporter: String,
    pub signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterSignalReason {
    pub exporter: String,
    pub signal: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Exporter {
    pub exporter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterReason {
    pub exporter: String,
    pub reason: &'static str,
}

/// The daemon's own counters. One instance, shared by every component through an `Arc`.
///
/// Every item that enters is accounted for: accepted (by kind) then exported, or rejected /
/// dropped with a reason.
pub struct Metrics {
    registry: Registry,
    /// Ingest requests by route and status code.
    pub requests: Family<RouteStatus, Counter>,
    /// Items accepted at the edge, by kind (`page_load`, `vital`, `span`, `log_record`, …).
    pub items_accepted: Family<Kind, Counter>,
    /// Items or requests rejected at the edge, by reason (`too_large`, `invalid_json`, …).
    pub items_rejected: Family<Reason, Counter>,
    /// Items (spans, log records, metric points) the collector acknowledged.
    pub exported_items: Family<ExporterSignal, Counter>,
    /// Items given up on, by reason (`permanent_error`, `retries_exhausted`, `rejected`,
    /// `shutdown`, `buffer_full`).
    pub failed_items: Family<ExporterSignalReason, Counter>,
    /// Export attempts that were retried.
    pub export_retries: Family<ExporterSignal, Counter>,
    /// Payloads waiting in each exporter's queue.
    pub queue_depth: Family<Exporter, Gauge>,
    /// Time of one export request, seconds.
    pub export_latency: Family<ExporterSignal, Histogram>,
    /// Values redacted by the privacy rules, by rule.
    pub privacy_redactions: Family<Rule, Counter>,
    /// Items accepted but not exported as spans or logs (they still feed the aggregate
    /// metrics), by reason (`sampled_out`, `no_consent`, `gpc`).
    pub items_dropped: Family<Reason, Counter>,
    /// Attributes (and array or map entries) cut by `limits.max_attributes_per_item`.
    pub attributes_dropped: Counter,
    /// Span events cut by `limits.max_events_per_span`.
    pub span_events_dropped: Counter,
    /// Span links cut by `limits.max_links_per_span`.
    pub span_links_dropped: Counter,
    /// Faro batches of a session whose page view this replica does not remember (sessions
    /// spread over replicas without affinity, or a restart): docs/scaling.md.
    pub faro_page_memory_misses: Counter,
    /// Bytes held in each exporter's disk buffer.
    pub buffer_bytes: Family<Exporter, Gauge>,
    /// Disk buffer records that failed their checksum (or were truncated) and were skipped.
    pub buffer_corrupt_records: Family<Exporter, Counter>,
    /// Payloads the disk buffer did not keep, by reason (`refused`, `dropped_oldest`,
    /// `write_error`).
    pub buffer_dropped_records: Family<ExporterReason, Counter>,
    /// Records read back from the disk buffer (after a restart, or when the destination fell
    /// behind) rather than sent from memory. After a crash some of them may already have been
    /// delivered: delivery is at-least-once.
    pub buffer_replayed_records: Family<Exporter, Counter>,
    /// The ingest listener's connections: open, refused, timed out.
    pub connections: ConnectionMetrics,
    /// Source-map symbolication (`process::symbolicate`).
    pub sourcemaps: sourcemaps::SourcemapMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rum_bridge");
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "http_requests",
            "Ingest requests by route and status",
            requests.clone(),
        );
        let items_accepted = Family::<Kind, Counter>::default();
        registry.register(
            "items_accepted",
            "Items accepted at the edge, by kind",
            items_accepted.clone(),
        );
        let items_rejected = Family::<Reason, Counter>::default();
        registry.register(
            "items_rejected",
            "Items or requests rejected at the edge, by reason",
            items_rejected.clone(),
        );
        let exported_items = Family::<ExporterSignal, Counter>::default();
        registry.register(
            "exported_items",
            "Items acknowledged by the export destination",
            exported_items.clone(),
        );
        let failed_items = Family::<ExporterSignalReason, Counter>::default();
        registry.register(
            "export_failed_items",
            "Items that could not be exported, by reason",
            failed_items.clone(),
        );
        let export_retries = Family::<ExporterSignal, Counter>::default();
        registry.register(
            "export_retries",
            "Export requests retried",
            export_retries.clone(),
        );
        let queue_depth = Family::<Exporter, Gauge>::default();
        registry.register(
            "queue_depth",
            "Payloads waiting in the exporter queue",
            queue_depth.clone(),
        );
        let export_latency = Family::<ExporterSignal, Histogram>::new_with_constructor(
            (|| {
                Histogram::new([
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }) as fn() -> Histogram,
        );
        registry.register(
            "export_duration_seconds",
            "Duration of one export request",
            export_latency.clone(),
        );
        let privacy_redactions = Family::<Rule, Counter>::default();
        registry.register(
            "privacy_redactions",
            "Values redacted by the privacy rules, by rule",
            privacy_redactions.clone(),
        );
        let items_dropped = Family::<Reason, Counter>::default();
        registry.register(
            "items_dropped",
            "Items accepted but not exported as spans or logs (sampling, consent), by reason",
            items_dropped.clone(),
        );
        let attributes_dropped = Counter::default();
        registry.register(
            "attributes_dropped",
            "Attributes and array or map entries cut by limits.max_attributes_per_item",
            attributes_dropped.clone(),
        );
        let span_events_dropped = Counter::default();
        registry.register(
            "span_events_dropped",
            "Span events cut by limits.max_events_per_span",
            span_events_dropped.clone(),
        );
        let span_links_dropped = Counter::default();
        registry.register(
            "span_links_dropped",
            "Span links cut by limits.max_links_per_span",
            span_links_dropped.clone(),
        );
        let faro_page_memory_misses = Counter::default();
        registry.register(
            "faro_page_memory_misses",
            "Faro batches without a navigation whose session's page view this replica does not \
             remember (no session affinity, or a restart)",
            faro_page_memory_misses.clone(),
        );
        let buffer_bytes = Family::<Exporter, Gauge>::default();
        registry.register(
            "buffer_bytes",
            "Bytes held in the exporter's disk buffer",
            buffer_bytes.clone(),
        );
        let buffer_corrupt_records = Family::<Exporter, Counter>::default();
        registry.register(
            "buffer_corrupt_records",
            "Disk buffer records skipped because their checksum failed or they were truncated",
            buffer_corrupt_records.clone(),
        );
        let buffer_dropped_records = Family::<ExporterReason, Counter>::default();
        registry.register(
            "buffer_dropped_records",
            "Payloads the disk buffer did not keep, by reason",
            buffer_dropped_records.clone(),
        );
        let buffer_replayed_records = Family::<Exporter, Counter>::default();
        registry.register(
            "buffer_replayed_records",
            "Records read back from the disk buffer (restart or backlog) instead of memory",
            buffer_replayed_records.clone(),
        );
        let connections = ConnectionMetrics::register(&mut registry);
        let sourcemaps = sourcemaps::SourcemapMetrics::default();
        sourcemaps.register(&mut registry);
        Self {
            registry,
            sourcemaps,
            requests,
            items_accepted,
            items_rejected,
            exported_items,
            failed_items,
            export_retries,
            queue_depth,
            export_latency,
            privacy_redactions,
            items_dropped,
            attributes_dropped,
            span_events_dropped,
            span_links_dropped,
            faro_page_memory_misses,
            buffer_bytes,
            buffer_corrupt_records,
            buffer_dropped_records,
            buffer_replayed_records,
            connections,
        }
    }

    /// Counts items held back from span/log export.
    pub fn drop_items(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.items_dropped
                .get_or_create(&Reason { reason })
                .inc_by(n);
        }
    }

    /// Counts one rejected item or request.
    pub fn reject(&self, reason: crate::model::Reason) {
        self.items_rejected
            .get_or_create(&Reason {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts `n` rejected items of one reason.
    pub fn reject_many(&self, reason: crate::model::Reason, n: u64) {
        if n > 0 {
            self.items_rejected
                .get_or_create(&Reason {
                    reason: reason.as_str(),
                })
                .inc_by(n);
        }
    }

    /// Counts accepted items of a kind.
    pub fn accept(&self, kind: &'static str, n: u64) {
        if n > 0 {
            self.items_accepted.get_or_create(&Kind { kind }).inc_by(n);
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What readiness depends on.
pub trait Readiness: Send + Sync {
    /// `Err(reason)` when the daemon should not receive traffic.
    fn ready(&self) -> Result<(), String>;
}

/// Shared state of the admin endpoints.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub shutting_down: Arc<AtomicBool>,
    pub readiness: Arc<dyn Readiness>,
    /// The RUM series of `/metrics/rum`.
    pub rum: Arc<rum::RumExposition>,
}

/// The admin router: `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/metrics/rum", get(rum_metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.shutting_down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_string(),
        );
    }
    match state.readiness.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn rum_metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.rum.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels() {
        let m = Metrics::new();
        m.reject(crate::model::Reason::InvalidJson);
        m.accept("vital", 3);
        m.requests
            .get_or_create(&RouteStatus {
                route: "/v1/rum",
                status: 202,
            })
            .inc();
        let text = m.encode();
        assert!(text.contains("rum_bridge_items_rejected_total{reason=\"invalid_json\"} 1"));
        assert!(text.contains("rum_bridge_items_accepted_total{kind=\"vital\"} 3"));
        assert!(text.contains("rum_bridge_http_requests_total{route=\"/v1/rum\",status=\"202\"} 1"));
    }
}
