//! The exemplar reservoir of one series: a uniform sample of at most `max_exemplars`
//! measurements per interval (Algorithm R, the OpenTelemetry SDK's
//! `SimpleFixedSizeExemplarReservoir`), kept without allocating per sample. See
//! docs/otlp-mapping.md, "Exemplars".

use opentelemetry_proto::tonic::metrics::v1::{exemplar, Exemplar};

use crate::model::SpanRef;

/// An exemplar as kept between flushes (no allocation per sample).
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) time_ns: u64,
    pub(super) value: exemplar::Value,
    pub(super) span: Option<SpanRef>,
}

/// A uniform sample of at most `capacity` measurements per interval (Algorithm R).
#[derive(Debug, Clone)]
pub(super) struct Reservoir {
    capacity: usize,
    seen: u64,
    samples: Vec<Sample>,
}

impl Reservoir {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: 0,
            samples: Vec::with_capacity(capacity),
        }
    }

    pub(super) fn offer(&mut self, sample: Sample) {
        if self.capacity == 0 {
            return;
        }
        self.seen += 1;
        if self.samples.len() < self.capacity {
            self.samples.push(sample);
        } else if let Ok(slot) = usize::try_from(rand::random_range(0..self.seen)) {
            if let Some(kept) = self.samples.get_mut(slot) {
                *kept = sample;
            }
        }
    }

    pub(super) fn reset(&mut self) {
        self.seen = 0;
        self.samples.clear();
    }

    pub(super) fn to_proto(&self) -> Vec<Exemplar> {
        self.samples
            .iter()
            .map(|sample| Exemplar {
                time_unix_nano: sample.time_ns,
                trace_id: sample.span.map_or_else(Vec::new, |s| s.trace_id.to_vec()),
                span_id: sample.span.map_or_else(Vec::new, |s| s.span_id.to_vec()),
                value: Some(sample.value),
                ..Default::default()
            })
            .collect()
    }
}
