//! What the bridge remembers between requests: retried batches (the edge's [`Retries`]) and
//! the page view of a session (the pipeline's [`PageViews`]). Both are small, time-limited and
//! capped, so memory stays bounded whatever clients send.
//!
//! - **Retries.** From SDK 2.11 the Faro transport retries a failed batch with the same
//!   `Idempotency-Key` (docs/faro-mapping.md#transport). A batch the bridge already accepted is answered `202`
//!   again without being counted or exported twice. A key is remembered only after its batch was
//!   enqueued, so a batch refused with `503` is processed when it comes back.
//! - **Page views.** Faro reports the page load once (the `faro.performance.navigation` event,
//!   with the server span from `Server-Timing`); later batches of the same page carry no page
//!   identity. The bridge remembers, per app and session, the last navigation's page-view id,
//!   server span and `documentLoad` span, so errors, logs and vitals of later batches point at
//!   the page-load span and web-vital exemplars at its trace.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3;

use crate::model::{SpanRef, TraceContext};

/// How long a retried batch is recognised (the SDK retries within seconds).
pub const RETRY_TTL: Duration = Duration::from_secs(5 * 60);
/// Most idempotency keys remembered; the oldest are forgotten first beyond this.
pub const RETRY_CAPACITY: usize = 65_536;
/// How long a page view is remembered after its last batch (Faro ends idle sessions after
/// 15 minutes).
pub const PAGE_TTL: Duration = Duration::from_secs(30 * 60);
/// Most page views remembered.
pub const PAGE_CAPACITY: usize = 32_768;

/// A page view as later batches of the same session should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMemo {
    pub page_view_id: Option<String>,
    pub server_trace: Option<TraceContext>,
    pub page_span: SpanRef,
}

/// Batches accepted recently, by retry key ([`retry_key`]); shared by all requests.
#[derive(Debug)]
pub struct Retries {
    seen: Mutex<TtlCache<()>>,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            seen: Mutex::new(TtlCache::new(RETRY_TTL, RETRY_CAPACITY)),
        }
    }
}

impl Retries {
    /// Whether a batch with this retry key was already accepted.
    pub fn is_retry(&self, key: u128, now: Instant) -> bool {
        lock(&self.seen).get(key, now).is_some()
    }

    /// Remembers an accepted batch's retry key.
    pub fn accepted(&self, key: u128, now: Instant) {
        lock(&self.seen).insert(key, (), now);
    }
}

/// The page view of each recent session, by [`page_key`]; shared by all requests.
#[derive(Debug)]
pub struct PageViews {
    pages: Mutex<TtlCache<PageMemo>>,
}

impl Default for PageViews {
    fn default() -> Self {
        Self {
            pages: Mutex::new(TtlCache::new(PAGE_TTL, PAGE_CAPACITY)),
        }
    }
}

impl PageViews {
    /// The page view remembered for a session; refreshes its lifetime.
    pub fn recall(&self, key: u128, now: Instant) -> Option<PageMemo> {
        let mut pages = lock(&self.pages);
        let memo = pages.get(key, now).cloned()?;
        pages.insert(key, memo.clone(), now);
        Some(memo)
    }

    /// Remembers the page view a navigation started.
    pub fn remember(&self, key: u128, memo: PageMemo, now: Instant) {
        lock(&self.pages).insert(key, memo, now);
    }
}

/// The retry identity of a request: its `Idempotency-Key` within its app.
pub fn retry_key(app: &str, idempotency_key: &str) -> u128 {
    hash_parts(b"rum-bridge/faro/retry/v1", &[app, idempotency_key])
}

/// The page-view identity of a batch: its app and session.
pub fn page_key(app: &str, session_id: &str) -> u128 {
    hash_parts(b"rum-bridge/faro/page/v1", &[app, session_id])
}

fn hash_parts(domain: &[u8], parts: &[&str]) -> u128 {
    let mut h = Xxh3::new();
    h.update(domain);
    for part in parts {
        // Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.digest128()
}

/// A panic elsewhere cannot leave these maps inconsistent (every update is one insert or
/// remove), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A map of 128-bit keys whose entries expire `ttl` after their last insert, holding at most
/// `capacity` entries.
#[derive(Debug)]
struct TtlCache<V> {
    entries: HashMap<u128, (Instant, V)>,
    ttl: Duration,
    capacity: usize,
}

impl<V> TtlCache<V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn get(&mut self, key: u128, now: Instant) -> Option<&V> {
        let (inserted, _) = self.entries.get(&key)?;
        if now.saturating_duration_since(*inserted) >= self.ttl {
            self.entries.remove(&key);
            return None;
        }
        self.entries.get(&key).map(|(_, v)| v)
    }

    fn insert(&mut self, key: u128, value: V, now: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.make_room(now);
        }
        self.entries.insert(key, (now, value));
    }

    /// Drops expired entries; when that is not enough, drops the oldest eighth, so the linear
    /// scan runs at most once per `capacity / 8` inserts.
    fn make_room(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.entries
            .retain(|_, (inserted, _)| now.saturating_duration_since(*inserted) < ttl);
        if self.entries.len() < self.capacity {
            return;
        }
        let mut times: Vec<Instant> = self.entries.values().map(|(t, _)| *t).collect();
        let evict = (self.capacity / 8).max(1);
        let (_, cutoff, _) = times.select_nth_unstable(evict - 1);
        let cutoff = *cutoff;
        self.entries.retain(|_, (inserted, _)| *inserted > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_ttl() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(Duration::from_secs(10), 100);
        c.insert(1, "a", t0);
        assert_eq!(c.get(1, t0 + Duration::from_secs(9)), Some(&"a"));
        assert_eq!(c.get(1, t0 + Duration::from_secs(10)), None);
        assert!(
            c.entries.is_empty(),
            "an expired entry is removed on lookup"
        );
    }

    #[test]
    fn capacity_evicts_expired_then_oldest() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(Duration::from_secs(10), 16);
        for k in 0..16u128 {
            c.insert(k, (), t0 + Duration::from_millis(k as u64));
        }
        // Full, nothing expired: the oldest eighth (2 entries) makes room.
        c.insert(100, (), t0 + Duration::from_secs(1));
        assert_eq!(c.entries.len(), 15);
        assert!(c.get(0, t0).is_none() && c.get(1, t0).is_none());
        assert!(c.get(2, t0 + Duration::from_secs(1)).is_some());
        // Re-inserting a present key into a full map never evicts.
        c.insert(200, (), t0 + Duration::from_secs(1));
        assert_eq!(c.entries.len(), 16);
        c.insert(200, (), t0 + Duration::from_secs(2));
        assert_eq!(c.entries.len(), 16);
        // Everything has expired: all of it goes at once.
        c.insert(300, (), t0 + Duration::from_secs(20));
        assert_eq!(c.entries.len(), 1);
    }

    #[test]
    fn retries_are_scoped_by_app() {
        let state = Retries::default();
        let now = Instant::now();
        let key = retry_key("shop", "jaDRsnWhyN2JQfLGXGMV");
        assert!(!state.is_retry(key, now));
        state.accepted(key, now);
        assert!(state.is_retry(key, now + Duration::from_secs(60)));
        assert!(!state.is_retry(key, now + RETRY_TTL));
        assert!(!state.is_retry(retry_key("other", "jaDRsnWhyN2JQfLGXGMV"), now));
        assert_ne!(retry_key("ab", "c"), retry_key("a", "bc"));
    }

    #[test]
    fn recalling_a_page_refreshes_it() {
        let state = PageViews::default();
        let t0 = Instant::now();
        let memo = PageMemo {
            page_view_id: Some("M87SvLGkZz".into()),
            server_trace: None,
            page_span: SpanRef {
                trace_id: [1; 16],
                span_id: [2; 8],
            },
        };
        let key = page_key("shop", "sTWv8ksKJV");
        state.remember(key, memo.clone(), t0);
        let later = t0 + PAGE_TTL - Duration::from_secs(1);
        assert_eq!(state.recall(key, later), Some(memo));
        assert!(state.recall(key, later + PAGE_TTL / 2).is_some());
        assert!(state.recall(page_key("shop", "other"), later).is_none());
    }
}
