//! `[sampling]`: which sessions leave as spans and logs (docs/architecture.md#sampling).
//!
//! Sampling is per session and deterministic on the session id, so every beacon of a kept
//! session is kept, on every replica. The aggregate metrics always see every session, so their
//! counts and percentiles need no correction.

use serde::{Deserialize, Serialize};

/// `[sampling]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Share of sessions kept (0–1) for apps without their own `sample_rate` (and in
    /// development mode).
    pub default_rate: f64,
    /// Errors of sessions that were not sampled are still exported.
    pub keep_errors: bool,
    /// Web vitals rated `poor` of sessions that were not sampled are still exported.
    pub keep_poor_vitals: bool,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            default_rate: 1.0,
            keep_errors: true,
            keep_poor_vitals: true,
        }
    }
}

impl SamplingConfig {
    /// Problems, each starting with the key it concerns (see `validate`).
    pub(super) fn problems(&self) -> Vec<String> {
        if (0.0..=1.0).contains(&self.default_rate) {
            Vec::new()
        } else {
            vec![format!(
                "sampling.default_rate: {} is not between 0 and 1",
                self.default_rate
            )]
        }
    }
}
