//! The parsed maps in memory: least recently used first out, within `cache_bytes`; failures
//! remembered for `negative_cache`; one load per script URL at a time.
//!
//! A parsed map's size is estimated from what it holds (tokens, names, sources and their
//! contents), since that, not the JSON, is what stays in memory.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use sourcemap::{DecodedMap, SourceMap};

use crate::admin::Metrics;

use super::Unresolved;

/// Failures remembered at most (each is a URL string and an instant).
const MAX_MISSING: usize = 10_000;

/// A parsed map and its estimated size.
pub struct ParsedMap {
    pub map: DecodedMap,
    pub bytes: u64,
}

impl ParsedMap {
    /// Parses a map (regular or index map), refusing one whose parsed size exceeds `max_bytes`.
    pub fn parse(raw: &[u8], max_bytes: u64) -> Result<Self, Unresolved> {
        let map = sourcemap::decode_slice(raw).map_err(|_| Unresolved::ParseFailed)?;
        if matches!(map, DecodedMap::Hermes(_)) {
            return Err(Unresolved::ParseFailed);
        }
        let bytes = size_of_decoded(&map);
        if bytes > max_bytes {
            return Err(Unresolved::TooLarge);
        }
        Ok(Self { map, bytes })
    }
}

fn size_of_decoded(map: &DecodedMap) -> u64 {
    match map {
        DecodedMap::Regular(sm) => size_of_map(sm),
        DecodedMap::Index(index) => index
            .sections()
            .filter_map(|s| s.get_sourcemap())
            .map(size_of_decoded)
            .sum(),
        DecodedMap::Hermes(hermes) => size_of_map(hermes),
    }
}

fn size_of_map(sm: &SourceMap) -> u64 {
    let tokens = sm.get_token_count() as usize * std::mem::size_of::<sourcemap::RawToken>();
    let names: usize = sm.names().map(|n| n.len() + 16).sum();
    let sources: usize = sm.sources().map(|s| s.len() + 16).sum();
    let contents: usize = sm.source_contents().flatten().map(|c| c.len() * 2).sum();
    (256 + tokens + names + sources + contents) as u64
}

/// What the cache knows about a script URL.
pub enum Cached {
    Map(Arc<ParsedMap>),
    Missing(Unresolved),
    Unknown,
}

struct Inner {
    maps: LruCache<String, Arc<ParsedMap>>,
    bytes: u64,
    missing: LruCache<String, (Instant, Unresolved)>,
}

/// The cache of parsed maps.
pub struct Store {
    inner: Mutex<Inner>,
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    cache_bytes: u64,
    negative_ttl: Duration,
    metrics: Arc<Metrics>,
}

impl Store {
    pub fn new(cache_bytes: u64, negative_ttl: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                maps: LruCache::unbounded(),
                bytes: 0,
                missing: LruCache::new(NonZeroUsize::new(MAX_MISSING).expect("not zero")),
            }),
            inflight: Mutex::new(HashMap::new()),
            cache_bytes,
            negative_ttl,
            metrics,
        }
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().expect("store lock").bytes
    }

    /// What is known about `url`, marking a map as recently used.
    pub fn get(&self, url: &str) -> Cached {
        let mut inner = self.inner.lock().expect("store lock");
        if let Some(map) = inner.maps.get(url) {
            return Cached::Map(Arc::clone(map));
        }
        match inner.missing.get(url) {
            Some((until, why)) if *until > Instant::now() => Cached::Missing(*why),
            Some(_) => {
                inner.missing.pop(url);
                Cached::Unknown
            }
            None => Cached::Unknown,
        }
    }

    /// The map of `url`, loading it with `load` when unknown; concurrent callers for the same
    /// URL wait for the one load.
    pub async fn get_or_load<F, Fut>(
        &self,
        url: &str,
        load: F,
    ) -> Result<Arc<ParsedMap>, Unresolved>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<ParsedMap, Unresolved>>,
    {
        let gate = {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            Arc::clone(inflight.entry(url.to_owned()).or_default())
        };
        let guard = gate.lock().await;
        let result = match self.get(url) {
            Cached::Map(map) => {
                self.metrics.sourcemaps.map("cached");
                Ok(map)
            }
            Cached::Missing(why) => Err(why),
            Cached::Unknown => {
                let loaded = load().await.map(Arc::new);
                self.insert(url, loaded.clone());
                loaded
            }
        };
        drop(guard);
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if inflight.get(url).is_some_and(|g| Arc::strong_count(g) <= 2) {
            inflight.remove(url);
        }
        result
    }

    /// Keeps a loaded map (evicting the least recently used beyond `cache_bytes`) or a failure.
    pub fn insert(&self, url: &str, loaded: Result<Arc<ParsedMap>, Unresolved>) {
        let mut inner = self.inner.lock().expect("store lock");
        match loaded {
            Ok(map) => {
                inner.bytes += map.bytes;
                if let Some(old) = inner.maps.put(url.to_owned(), map) {
                    inner.bytes -= old.bytes;
                }
                while inner.bytes > self.cache_bytes {
                    let Some((_, evicted)) = inner.maps.pop_lru() else {
                        break;
                    };
                    inner.bytes -= evicted.bytes;
                    self.metrics.sourcemaps.map("evicted");
                }
            }
            Err(why) => {
                let until = Instant::now() + self.negative_ttl;
                inner.missing.put(url.to_owned(), (until, why));
            }
        }
        self.metrics.sourcemaps.cache_bytes.set(inner.bytes as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_map(i: usize) -> Vec<u8> {
        format!(
            r#"{{"version":3,"sources":["src/m{i}.js"],"names":["f{i}"],"mappings":"AAAAA","sourcesContent":["function f{i}() {{}}"]}}"#
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_thousand_maps_stay_within_cache_bytes_and_the_gauge_says_so() {
        let metrics = Arc::new(Metrics::new());
        let one = ParsedMap::parse(&small_map(0), u64::MAX).unwrap().bytes;
        let budget = one * 50;
        let store = Store::new(budget, Duration::from_secs(60), Arc::clone(&metrics));
        for i in 0..1000 {
            let url = format!("https://x.example/{i}.js");
            let raw = small_map(i);
            let map = store
                .get_or_load(&url, || async move { ParsedMap::parse(&raw, u64::MAX) })
                .await
                .unwrap();
            assert!(map.map.lookup_token(0, 0).is_some());
            assert!(store.bytes() <= budget, "{} > {budget}", store.bytes());
        }
        assert!(store.bytes() > budget / 2);
        let text = metrics.encode();
        assert!(
            text.contains(&format!(
                "rum_bridge_sourcemap_cache_bytes {}",
                store.bytes()
            )),
            "{text}"
        );
        let held = store.inner.lock().unwrap().maps.len();
        assert!(held < 60, "{held}");
        assert!(
            text.contains(&format!(
                "rum_bridge_sourcemap_maps_total{{outcome=\"evicted\"}} {}",
                1000 - held
            )),
            "{text}"
        );
        // The most recent are held, the first were evicted.
        assert!(matches!(
            store.get("https://x.example/999.js"),
            Cached::Map(_)
        ));
        assert!(matches!(
            store.get("https://x.example/0.js"),
            Cached::Unknown
        ));
        assert!(store.inflight.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn concurrent_loads_of_one_url_run_once_and_failures_are_remembered() {
        let store = Arc::new(Store::new(
            1 << 20,
            Duration::from_secs(60),
            Arc::new(Metrics::new()),
        ));
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, loads) = (Arc::clone(&store), Arc::clone(&loads));
            tasks.push(tokio::spawn(async move {
                store
                    .get_or_load("https://x.example/a.js", || async move {
                        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Err::<ParsedMap, _>(Unresolved::NotFound)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().err(), Some(Unresolved::NotFound));
        }
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(matches!(
            store.get("https://x.example/a.js"),
            Cached::Missing(Unresolved::NotFound)
        ));
    }

    #[test]
    fn a_map_over_the_limit_is_refused_after_parsing() {
        let raw = small_map(1);
        assert_eq!(ParsedMap::parse(&raw, 10).err(), Some(Unresolved::TooLarge));
        assert_eq!(
            ParsedMap::parse(b"not json", 1 << 20).err(),
            Some(Unresolved::ParseFailed)
        );
    }
}
