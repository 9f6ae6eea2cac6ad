//! The three OTLP export request types, as the pipeline handles them.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::de::DeserializeOwned;

use crate::handoff::Payload;
use crate::process::metric_points::{drop_non_finite_points, NonFinite};
use crate::process::otlp::{prepare_logs, prepare_metrics, prepare_traces, Enrichment};
use crate::process::{Dropped, Processor, RequestInfo};

/// One OTLP export request type (traces, logs or metrics).
pub trait OtlpSignal: Message + Default + DeserializeOwned {
    /// The item kind counted as accepted.
    const KIND: &'static str;
    /// Enriches resources and normalizes attributes; returns the number of items.
    fn prepare(&mut self, enrich: &Enrichment<'_>) -> usize;
    /// Scrubs, samples and applies consent; reports what was dropped.
    fn apply_privacy(&mut self, processor: &Processor, request: &RequestInfo) -> Option<Dropped>;
    /// Removes the items holding numbers that are not finite (metric points).
    fn drop_non_finite(&mut self) -> NonFinite {
        NonFinite::default()
    }
    fn into_payload(self) -> Payload;
    /// Resources, scopes and items together (what `limits.max_events_per_batch` bounds).
    fn entries(&self) -> u64;
}

impl OtlpSignal for ExportTraceServiceRequest {
    const KIND: &'static str = "span";
    fn prepare(&mut self, enrich: &Enrichment<'_>) -> usize {
        prepare_traces(self, enrich)
    }
    fn entries(&self) -> u64 {
        let r = &self.resource_spans;
        let scopes = r.iter().flat_map(|r| &r.scope_spans);
        (r.len() + scopes.clone().count() + scopes.map(|s| s.spans.len()).sum::<usize>()) as u64
    }
    fn apply_privacy(&mut self, processor: &Processor, request: &RequestInfo) -> Option<Dropped> {
        processor.process_otlp_spans(&mut self.resource_spans, request)
    }
    fn into_payload(self) -> Payload {
        Payload {
            spans: self.resource_spans,
            ..Default::default()
        }
    }
}

impl OtlpSignal for ExportLogsServiceRequest {
    const KIND: &'static str = "log_record";
    fn prepare(&mut self, enrich: &Enrichment<'_>) -> usize {
        prepare_logs(self, enrich)
    }
    fn entries(&self) -> u64 {
        let r = &self.resource_logs;
        let scopes = r.iter().flat_map(|r| &r.scope_logs);
        (r.len() + scopes.clone().count() + scopes.map(|s| s.log_records.len()).sum::<usize>())
            as u64
    }
    fn apply_privacy(&mut self, processor: &Processor, request: &RequestInfo) -> Option<Dropped> {
        processor.process_otlp_logs(&mut self.resource_logs, request)
    }
    fn into_payload(self) -> Payload {
        Payload {
            logs: self.resource_logs,
            ..Default::default()
        }
    }
}

impl OtlpSignal for ExportMetricsServiceRequest {
    const KIND: &'static str = "metric";
    fn prepare(&mut self, enrich: &Enrichment<'_>) -> usize {
        prepare_metrics(self, enrich)
    }
    fn entries(&self) -> u64 {
        let r = &self.resource_metrics;
        let scopes = r.iter().flat_map(|r| &r.scope_metrics);
        (r.len() + scopes.clone().count() + scopes.map(|s| s.metrics.len()).sum::<usize>()) as u64
    }
    fn drop_non_finite(&mut self) -> NonFinite {
        drop_non_finite_points(&mut self.resource_metrics)
    }
    /// Metric points carry no per-user data the rules act on; they pass as they are.
    fn apply_privacy(&mut self, _: &Processor, _: &RequestInfo) -> Option<Dropped> {
        None
    }
    fn into_payload(self) -> Payload {
        Payload {
            metrics: self.resource_metrics,
            ..Default::default()
        }
    }
}
