//! `[rate_limits]`: token buckets that protect the edge from floods (docs/architecture.md#rate-limits).
//!
//! A bucket refills at `*_requests_per_second` and holds up to `*_burst` requests; a request
//! that finds it empty is refused with `429` and `Retry-After`. `0` requests per second turns
//! a limit off.

use serde::{Deserialize, Serialize};

/// `[rate_limits]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Sustained requests per second from one client address (IPv6: one /64); 0 = no limit.
    pub per_ip_requests_per_second: u32,
    /// Requests one client address may send at once.
    pub per_ip_burst: u32,
    /// Sustained requests per second for one app (all clients together); 0 = no limit.
    pub per_app_requests_per_second: u32,
    /// Requests one app may receive at once.
    pub per_app_burst: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            per_ip_requests_per_second: 20,
            per_ip_burst: 100,
            per_app_requests_per_second: 0,
            per_app_burst: 10_000,
        }
    }
}

impl RateLimitsConfig {
    /// Problems, each starting with the key it concerns (see `validate`).
    pub(super) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.per_ip_requests_per_second > 0 && self.per_ip_burst == 0 {
            out.push(
                "rate_limits.per_ip_burst: must be at least 1 when per_ip_requests_per_second is \
                 set"
                .to_owned(),
            );
        }
        if self.per_app_requests_per_second > 0 && self.per_app_burst == 0 {
            out.push(
                "rate_limits.per_app_burst: must be at least 1 when per_app_requests_per_second \
                 is set"
                    .to_owned(),
            );
        }
        out
    }
}
