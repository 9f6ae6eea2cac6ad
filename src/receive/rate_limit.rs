//! Per-client and per-app rate limits (`[rate_limits]`), checked before a body is read.
//!
//! Keyed GCRA token buckets from `governor`, lock-free per key. The per-IP limiter is keyed by
//! [`ClientIps::rate_limit_key`] (an IPv6 client owns a whole /64, so it counts once); the
//! per-app limiter by the configured app key, so its key set is bounded. Buckets of quiet
//! clients are forgotten once a minute, so memory follows the number of active clients.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimitsConfig;
use crate::process::client_ip::ClientIps;

use super::apps::Resolved;
use super::error::{EdgeError, RateScope};

type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// How often buckets of quiet clients are dropped.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// The edge's rate limiters.
pub struct RateLimits<C: Clock = DefaultClock> {
    per_ip: Option<Keyed<IpAddr, C>>,
    per_app: Option<Keyed<String, C>>,
    clock: C,
    started: Instant,
    /// Seconds since `started` of the next cleanup.
    next_cleanup: AtomicU64,
}

impl RateLimits {
    pub fn new(config: &RateLimitsConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// With a given clock (tests use `governor::clock::FakeRelativeClock`).
    pub fn with_clock(config: &RateLimitsConfig, clock: C) -> Self {
        let quota = |rate: u32, burst: u32| {
            let rate = NonZeroU32::new(rate)?;
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Some(Quota::per_second(rate).allow_burst(burst))
        };
        Self {
            per_ip: quota(config.per_ip_requests_per_second, config.per_ip_burst)
                .map(|q| RateLimiter::dashmap_with_clock(q, clock.clone())),
            per_app: quota(config.per_app_requests_per_second, config.per_app_burst)
                .map(|q| RateLimiter::dashmap_with_clock(q, clock.clone())),
            clock,
            started: Instant::now(),
            next_cleanup: AtomicU64::new(CLEANUP_EVERY.as_secs()),
        }
    }

    /// Takes one request from the client's bucket.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), EdgeError> {
        self.maybe_cleanup();
        let (Some(limiter), Some(ip)) = (&self.per_ip, ip) else {
            return Ok(());
        };
        limiter
            .check_key(&ClientIps::rate_limit_key(ip))
            .map_err(|not_until| EdgeError::RateLimited {
                scope: RateScope::Ip,
                retry_after_secs: retry_after(not_until.wait_time_from(self.clock.now())),
            })
    }

    /// Takes one request from the app's bucket (configured apps only: in development mode any
    /// key is accepted, so keys are not a bounded set).
    pub fn check_app(&self, app: &Resolved) -> Result<(), EdgeError> {
        let (Some(limiter), Resolved::Known(app)) = (&self.per_app, app) else {
            return Ok(());
        };
        limiter
            .check_key(&app.key)
            .map_err(|not_until| EdgeError::RateLimited {
                scope: RateScope::App,
                retry_after_secs: retry_after(not_until.wait_time_from(self.clock.now())),
            })
    }

    fn maybe_cleanup(&self) {
        let now = self.started.elapsed().as_secs();
        let due = self.next_cleanup.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_cleanup
                .compare_exchange(
                    due,
                    now + CLEANUP_EVERY.as_secs(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.cleanup();
        }
    }

    /// Forgets buckets that are full again (their clients have been quiet).
    pub fn cleanup(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_app {
            l.retain_recent();
        }
    }

    /// Number of client addresses with a bucket.
    pub fn tracked_ips(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |l| l.len())
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use crate::receive::apps::AppRegistry;
    use governor::clock::FakeRelativeClock;

    fn limits(
        ip: (u32, u32),
        app: (u32, u32),
    ) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let config = RateLimitsConfig {
            per_ip_requests_per_second: ip.0,
            per_ip_burst: ip.1,
            per_app_requests_per_second: app.0,
            per_app_burst: app.1,
        };
        (RateLimits::with_clock(&config, clock.clone()), clock)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn per_ip_bucket_refills() {
        let (l, clock) = limits((2, 3), (0, 0));
        for _ in 0..3 {
            l.check_ip(ip("203.0.113.1")).unwrap();
        }
        let err = l.check_ip(ip("203.0.113.1")).unwrap_err();
        assert_eq!(err.reason(), "rate_limited_ip");
        assert_eq!(err.status(), 429);
        assert!(matches!(
            err,
            EdgeError::RateLimited {
                retry_after_secs: 1,
                ..
            }
        ));
        // Other clients have their own bucket; unknown addresses are not limited.
        l.check_ip(ip("203.0.113.2")).unwrap();
        l.check_ip(None).unwrap();
        // Half a second refills one request at 2/s.
        clock.advance(Duration::from_millis(500));
        l.check_ip(ip("203.0.113.1")).unwrap();
        assert!(l.check_ip(ip("203.0.113.1")).is_err());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let (l, _) = limits((1, 1), (0, 0));
        l.check_ip(ip("2001:db8:1:2::1")).unwrap();
        assert!(l.check_ip(ip("2001:db8:1:2::ffff")).is_err());
        l.check_ip(ip("2001:db8:1:3::1")).unwrap();
    }

    #[test]
    fn per_app_bucket_for_configured_apps_only() {
        let (l, _) = limits((0, 0), (1, 2));
        let registry = AppRegistry::new(&[AppConfig {
            name: "shop".into(),
            key: "pk_shop".into(),
            allowed_origins: vec![],
            environment: None,
            version: None,
            sample_rate: None,
        }]);
        let app = registry.resolve(Some("pk_shop")).unwrap();
        l.check_app(&app).unwrap();
        l.check_app(&app).unwrap();
        let err = l.check_app(&app).unwrap_err();
        assert_eq!(err.reason(), "rate_limited_app");
        let dev = AppRegistry::new(&[]).resolve(Some("anything")).unwrap();
        for _ in 0..10 {
            l.check_app(&dev).unwrap();
        }
        // The per-IP limit is off.
        for _ in 0..10 {
            l.check_ip(ip("203.0.113.1")).unwrap();
        }
    }

    #[test]
    fn quiet_clients_are_forgotten() {
        let (l, clock) = limits((10, 10), (0, 0));
        for i in 0..50 {
            l.check_ip(ip(&format!("198.51.100.{i}"))).unwrap();
        }
        assert_eq!(l.tracked_ips(), 50);
        clock.advance(Duration::from_secs(2));
        l.cleanup();
        assert_eq!(l.tracked_ips(), 0);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_secs(2)), 2);
        assert_eq!(retry_after(Duration::from_millis(2001)), 3);
    }
}
