//! The last steps every payload takes, whether on the request or after waiting for source maps
//! ([`super::symbolicate`]): item caps, error groups, enqueue for every exporter and the wait
//! for disk buffers. Written once so both paths cap, count and keep the same way.

use std::sync::Arc;

use crate::admin::Metrics;
use crate::convert::metrics::MetricsAggregator;
use crate::export::Exporters;
use crate::handoff::{Backpressure, Payload};
use crate::process::limits::ItemLimits;

/// Where finished payloads leave the pipeline.
#[derive(Clone)]
pub(super) struct Outlet {
    pub(super) exporters: Exporters,
    pub(super) limits: ItemLimits,
    pub(super) metrics: Arc<Metrics>,
    pub(super) aggregator: Option<Arc<MetricsAggregator>>,
}

impl Outlet {
    /// Caps the payload's items, enqueues it and waits until every disk buffer holds it (at
    /// once without one); its exceptions are counted by fingerprint once it is kept.
    pub(super) async fn submit(&self, mut payload: Payload) -> Result<(), Backpressure> {
        self.limits.apply(&mut payload).count(&self.metrics);
        let groups = self
            .aggregator
            .as_ref()
            .map(|agg| agg.error_groups(&payload));
        self.exporters.submit(payload)?.durable().await?;
        if let (Some(agg), Some(groups)) = (&self.aggregator, groups) {
            agg.record_error_groups(groups);
        }
        Ok(())
    }
}
