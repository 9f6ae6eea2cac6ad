//! `[rate_limits]`: token buckets that protect the edge from floods (docs/architecture.md#rate-limits).
//!
//! A bucket refills at `*_requests_per_second` and holds up to `*_burst` requests; a request
//! that finds it empty is refused with `429` and `Retry-After`. `0` requests per second turns
//! a limit off.
//!
//! The per-address defaults are sized for a shared address, not for one browser: an office or
//! a carrier's NAT puts hundreds of users behind one IP (docs/architecture.md#rate-limits has
//! the numbers). They still hold one flooding host to a small share of what an instance can
//! take.

use serde::{Deserialize, Serialize};

/// Default sustained requests per second per address: 1,000 active users behind one NAT
/// address × 4 beacons per page view × 2 page views a minute ≈ 133 r/s, with 50 % headroom.
pub const DEFAULT_PER_IP_REQUESTS_PER_SECOND: u32 = 200;
/// Default burst per address: 10 s of the sustained rate, so those 1,000 users can all send
/// two beacons at the same moment (a shift start, a link shared in a chat, retries after an
/// outage).
pub const DEFAULT_PER_IP_BURST: u32 = 2_000;

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
            per_ip_requests_per_second: DEFAULT_PER_IP_REQUESTS_PER_SECOND,
            per_ip_burst: DEFAULT_PER_IP_BURST,
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
