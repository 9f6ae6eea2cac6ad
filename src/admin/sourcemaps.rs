//! The symbolication counters (`rum_bridge_sourcemap_*`), kept apart from the edge and export
//! counters so the symbolication stage owns its own numbers.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameOutcome {
    /// `resolved`, or why not (`no_source`, `not_found`, `refused`, …).
    pub reason: &'static str,
}

/// Frames, maps, cache.
#[derive(Default)]
pub struct SourcemapMetrics {
    /// Stack frames by outcome.
    pub frames: Family<FrameOutcome, Counter>,
    /// Map loads: `fetched`, `read` (local), `failed`, `cached` (answered from the cache),
    /// `evicted`.
    pub maps: Family<Outcome, Counter>,
    /// Estimated bytes of the parsed maps held.
    pub cache_bytes: Gauge,
    /// Payloads exported unresolved because their maps were not ready in time or too many
    /// payloads were waiting (`timeout`, `busy`).
    pub unresolved_payloads: Family<Outcome, Counter>,
}

impl SourcemapMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "sourcemap_frames",
            "Exception stack frames by symbolication outcome",
            self.frames.clone(),
        );
        registry.register(
            "sourcemap_maps",
            "Source map loads and cache events by outcome",
            self.maps.clone(),
        );
        registry.register(
            "sourcemap_cache_bytes",
            "Estimated memory of the parsed source maps held",
            self.cache_bytes.clone(),
        );
        registry.register(
            "sourcemap_unresolved_payloads",
            "Payloads exported without waiting longer for their source maps, by why",
            self.unresolved_payloads.clone(),
        );
    }

    pub fn frame(&self, reason: &'static str) {
        self.frames.get_or_create(&FrameOutcome { reason }).inc();
    }

    pub fn map(&self, outcome: &'static str) {
        self.maps.get_or_create(&Outcome { outcome }).inc();
    }
}
