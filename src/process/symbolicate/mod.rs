//! Source-map symbolication of exception stacks, and error fingerprints
//! (docs/symbolication.md).
//!
//! Production JavaScript is minified, so a browser's stack names `app.min.js:1:48213`. This
//! stage rewrites the `exception.stacktrace` of every exception record of a payload — log
//! records from native `error` events, Faro exceptions and OTLP logs, and `exception` span
//! events — to the original file, line, column and function, from maps found on disk
//! ([`local`]) or fetched from listed origins ([`fetch`]), held in a bounded cache
//! ([`store`]). It works on the finished OTLP payload, so every input is treated alike.
//!
//! It never loads a map on the request path: [`Symbolicator::missing`] tells the pipeline
//! which maps are not cached yet, and the pipeline decides whether to wait for
//! [`Symbolicator::load_all`] off the request. [`Symbolicator::apply`] then uses only cached
//! maps. A frame that cannot be resolved stays as it was; the original stack is kept in
//! [`MINIFIED_ATTRIBUTE`].
//!
//! Every exception record also gets [`FINGERPRINT_ATTRIBUTE`]: a hash of the exception type and
//! the top in-app frames' file and function (no line or column, no query string, library
//! frames left out), so the same bug groups together across releases, users and browsers.

pub mod fetch;
pub mod local;
pub mod stack;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::admin::Metrics;
use crate::config::SourcemapsConfig;
use crate::handoff::Payload;
use stack::{Frame, Line};
use store::{Cached, ParsedMap, Store};

/// The stack, as OpenTelemetry names it.
pub const STACKTRACE_ATTRIBUTE: &str = "exception.stacktrace";
/// The stack as the browser sent it, when symbolication changed it.
pub const MINIFIED_ATTRIBUTE: &str = "rum.exception.stacktrace.minified";
/// The error's group: 16 hex digits, the same for the same bug.
pub const FINGERPRINT_ATTRIBUTE: &str = crate::model::semconv::EXCEPTION_FINGERPRINT;
const TYPE_ATTRIBUTE: &str = "exception.type";
/// Maps one payload may ask to load: a beacon naming many distinct script URLs under a listed
/// origin must not turn into as many fetches (the rest stay unresolved, `not_ready`).
const MAX_LOADS_PER_PAYLOAD: usize = 8;
const MESSAGE_ATTRIBUTE: &str = "exception.message";

/// Why a frame was not resolved (the `reason` label of `rum_bridge_sourcemap_frames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// No `local` entry covers its URL and its origin is not listed.
    NoSource,
    /// No map where it should be.
    NotFound,
    /// The URL or path broke a rule (traversal, origin, redirect, credentials).
    Refused,
    /// Over `max_map_bytes`.
    TooLarge,
    /// Not loaded within `fetch_timeout`.
    Timeout,
    /// A connection or HTTP error.
    FetchFailed,
    /// Not a source map.
    ParseFailed,
    /// The map has no mapping at the frame's position.
    NoMapping,
    /// The map was not loaded before the payload's wait ended.
    NotReady,
}

impl Unresolved {
    pub fn as_str(self) -> &'static str {
        match self {
            Unresolved::NoSource => "no_source",
            Unresolved::NotFound => "not_found",
            Unresolved::Refused => "refused",
            Unresolved::TooLarge => "too_large",
            Unresolved::Timeout => "timeout",
            Unresolved::FetchFailed => "fetch_failed",
            Unresolved::ParseFailed => "parse_failed",
            Unresolved::NoMapping => "no_mapping",
            Unresolved::NotReady => "not_ready",
        }
    }
}

/// A configuration the symbolicator cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SymbolicateError {
    #[error("sourcemaps.library_frames: {0}")]
    Pattern(#[from] regex::Error),
    #[error("sourcemaps: cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Where a frame came from: source file, 1-based line and column, and the name the map gives
/// the position (the callee, when the position is a call).
type Place = (String, u32, u32, Option<String>);

/// The symbolication stage, shared by all requests.
pub struct Symbolicator {
    store: Store,
    locals: Vec<local::LocalDir>,
    fetcher: Option<fetch::Fetcher>,
    max_bytes: u64,
    library: regex::RegexSet,
    fingerprint_frames: usize,
    max_wait: Duration,
    pending: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Symbolicator {
    pub fn new(config: &SourcemapsConfig, metrics: Arc<Metrics>) -> Result<Self, SymbolicateError> {
        Ok(Self {
            store: Store::new(
                config.cache_bytes,
                config.negative_cache,
                Arc::clone(&metrics),
            ),
            locals: config.local.iter().map(local::LocalDir::new).collect(),
            fetcher: fetch::Fetcher::new(
                &config.fetch_origins,
                config.fetch_timeout,
                config.max_map_bytes,
            )?,
            max_bytes: config.max_map_bytes,
            library: regex::RegexSet::new(&config.library_frames)?,
            fingerprint_frames: config.fingerprint_frames.max(1),
            max_wait: config.max_wait,
            pending: Arc::new(Semaphore::new(config.max_pending)),
            metrics,
        })
    }

    /// How long a payload may wait for its maps.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// A place among the payloads waiting for maps, if one is free.
    pub fn try_wait(&self) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.pending).try_acquire_owned().ok();
        if permit.is_none() {
            self.unresolved_payload("busy");
        }
        permit
    }

    /// Counts a payload exported without its maps (`timeout`, `busy`).
    pub fn unresolved_payload(&self, why: &'static str) {
        self.metrics
            .sourcemaps
            .unresolved_payloads
            .get_or_create(&crate::admin::sourcemaps::Outcome { outcome: why })
            .inc();
    }

    fn has_source(&self, url: &str) -> bool {
        self.locals.iter().any(|l| l.covers(url))
            || self.fetcher.as_ref().is_some_and(|f| f.allows(url))
    }

    /// Script URLs in the payload's exception stacks that have a source but are not cached
    /// (nor remembered as failed): what [`Self::load_all`] would load.
    pub fn missing(&self, payload: &Payload) -> Vec<String> {
        let mut urls = Vec::new();
        if self.locals.is_empty() && self.fetcher.is_none() {
            return urls;
        }
        for_each_exception(payload, |attrs| {
            let Some(stack) = str_attr(attrs, STACKTRACE_ATTRIBUTE) else {
                return;
            };
            for line in stack::parse(stack) {
                if let Line::Frame(f) = line {
                    let key = cache_key(&f.url);
                    if urls.len() < MAX_LOADS_PER_PAYLOAD
                        && !urls.iter().any(|u| u == key)
                        && self.has_source(key)
                        && matches!(self.store.get(key), Cached::Unknown)
                    {
                        urls.push(key.to_owned());
                    }
                }
            }
        });
        urls
    }

    /// Loads maps (at most one load per URL at a time across all callers). Each load is its
    /// own task, bounded by `fetch_timeout`: a caller that stops waiting leaves it running, so
    /// the map is cached for the next error.
    pub async fn load_all(self: &Arc<Self>, urls: Vec<String>) {
        let tasks: Vec<_> = urls
            .into_iter()
            .map(|url| {
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    let _ = this.store.get_or_load(&url, || this.read(&url)).await;
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// One map, from the first source that has it; parsed off the async threads.
    async fn read(&self, url: &str) -> Result<ParsedMap, Unresolved> {
        let mut result = Err(Unresolved::NoSource);
        for local in self.locals.iter().filter(|l| l.covers(url)) {
            result = local.read(url, self.max_bytes).await;
            if result.is_ok() {
                self.metrics.sourcemaps.map("read");
                break;
            }
        }
        if let (Err(_), Some(fetcher)) = (&result, &self.fetcher) {
            if fetcher.allows(url) {
                result = fetcher.fetch_map(url).await;
                if result.is_ok() {
                    self.metrics.sourcemaps.map("fetched");
                }
            }
        }
        let parsed = match result {
            Ok(raw) => {
                let max = self.max_bytes;
                tokio::task::spawn_blocking(move || ParsedMap::parse(&raw, max))
                    .await
                    .unwrap_or(Err(Unresolved::ParseFailed))
            }
            Err(why) => Err(why),
        };
        if parsed.is_err() {
            self.metrics.sourcemaps.map("failed");
        }
        parsed
    }

    /// Rewrites every exception stack with the cached maps and fingerprints every exception.
    pub fn apply(&self, payload: &mut Payload) {
        for_each_exception_mut(payload, |attrs| self.exception(attrs));
    }

    fn exception(&self, attrs: &mut Vec<KeyValue>) {
        let mut frames: Vec<Frame> = Vec::new();
        if let Some(original) = str_attr(attrs, STACKTRACE_ATTRIBUTE).map(str::to_owned) {
            let mut lines = stack::parse(&original);
            if self.resolve(&mut lines) {
                let rendered = stack::render(&lines);
                set_str(attrs, MINIFIED_ATTRIBUTE, original);
                set_str(attrs, STACKTRACE_ATTRIBUTE, rendered);
            }
            frames = lines
                .into_iter()
                .filter_map(|l| match l {
                    Line::Frame(f) => Some(f),
                    Line::Text(_) => None,
                })
                .collect();
        }
        if str_attr(attrs, FINGERPRINT_ATTRIBUTE).is_none() {
            let fingerprint = self.fingerprint(
                str_attr(attrs, TYPE_ATTRIBUTE),
                str_attr(attrs, MESSAGE_ATTRIBUTE),
                &frames,
            );
            set_str(attrs, FINGERPRINT_ATTRIBUTE, fingerprint);
        }
    }

    /// Resolves the frames of a stack in place; whether any was.
    fn resolve(&self, lines: &mut [Line]) -> bool {
        // (source, line, column, name at the position) of each frame, top first.
        let mut found: Vec<Option<Place>> = Vec::new();
        let no_sources = self.locals.is_empty() && self.fetcher.is_none();
        for line in lines.iter() {
            let Line::Frame(f) = line else {
                continue;
            };
            let outcome = if no_sources {
                Err(Unresolved::NoSource)
            } else {
                self.lookup(f)
            };
            self.metrics.sourcemaps.frame(match &outcome {
                Ok(_) => "resolved",
                Err(why) => why.as_str(),
            });
            found.push(outcome.ok());
        }
        if found.iter().all(Option::is_none) {
            return false;
        }
        let mut i = 0;
        for line in lines.iter_mut() {
            let Line::Frame(f) = line else {
                continue;
            };
            if let Some((source, l, c, _)) = &found[i] {
                // The function a frame is in is named where its caller called it.
                let caller_name = found.get(i + 1).and_then(|n| n.as_ref()?.3.clone());
                f.url.clone_from(source);
                f.line = *l;
                f.column = *c;
                f.original_name = caller_name.is_some();
                if let Some(name) = caller_name {
                    f.function = Some(name);
                }
            }
            i += 1;
        }
        true
    }

    fn lookup(&self, f: &Frame) -> Result<Place, Unresolved> {
        let key = cache_key(&f.url);
        if !self.has_source(key) {
            return Err(Unresolved::NoSource);
        }
        let map = match self.store.get(key) {
            Cached::Map(map) => map,
            Cached::Missing(why) => return Err(why),
            Cached::Unknown => return Err(Unresolved::NotReady),
        };
        let (line, col) = (f.line.saturating_sub(1), f.column.saturating_sub(1));
        let token = map
            .map
            .lookup_token(line, col)
            .ok_or(Unresolved::NoMapping)?;
        if token.get_dst_line() != line {
            return Err(Unresolved::NoMapping);
        }
        let source = token.get_source().ok_or(Unresolved::NoMapping)?;
        Ok((
            source.to_owned(),
            token.get_src_line() + 1,
            token.get_src_col() + 1,
            token.get_name().map(str::to_owned),
        ))
    }

    /// The fingerprint of an exception: its type and its top in-app frames (file without
    /// query or fragment, function), or without frames its message with digits removed.
    pub fn fingerprint(
        &self,
        kind: Option<&str>,
        message: Option<&str>,
        frames: &[Frame],
    ) -> String {
        let mut hash = Sha256::new();
        hash.update(kind.unwrap_or("Error").as_bytes());
        let in_app: Vec<&Frame> = frames
            .iter()
            .filter(|f| !self.library.is_match(&f.url))
            .take(self.fingerprint_frames)
            .collect();
        if in_app.is_empty() {
            let message: String = message
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect();
            hash.update(b"\0m\0");
            hash.update(message.as_bytes());
        }
        for f in in_app {
            hash.update(b"\0f\0");
            hash.update(
                cache_key(&f.url)
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .as_bytes(),
            );
            hash.update(b"\0");
            if f.original_name {
                hash.update(function_name(f.function.as_deref()).as_bytes());
            }
        }
        let digest = hash.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A function name without what varies by call site (`async `, `new `, `[as x]`).
fn function_name(function: Option<&str>) -> &str {
    let f = function.unwrap_or_default();
    let f = f.strip_prefix("async ").unwrap_or(f);
    let f = f.strip_prefix("new ").unwrap_or(f);
    f.split(" [as ").next().unwrap_or(f)
}

/// The cache key of a script URL: without its fragment.
fn cache_key(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// The `sourceMappingURL` a script names in its last comment lines.
pub fn mapping_url(script: &[u8]) -> Option<String> {
    let tail = &script[script.len().saturating_sub(4096)..];
    let text = String::from_utf8_lossy(tail);
    text.lines().rev().find_map(|line| {
        let line = line.trim();
        let rest = line
            .strip_prefix("//# sourceMappingURL=")
            .or_else(|| line.strip_prefix("//@ sourceMappingURL="))?;
        Some(rest.trim().to_owned()).filter(|u| !u.is_empty())
    })
}

fn is_exception_event(name: &str) -> bool {
    name == "exception"
}

fn for_each_exception(payload: &Payload, mut f: impl FnMut(&Vec<KeyValue>)) {
    for rl in &payload.logs {
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                if str_attr(&r.attributes, STACKTRACE_ATTRIBUTE).is_some() {
                    f(&r.attributes);
                }
            }
        }
    }
    for rs in &payload.spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                for e in span.events.iter().filter(|e| is_exception_event(&e.name)) {
                    f(&e.attributes);
                }
            }
        }
    }
}

fn for_each_exception_mut(payload: &mut Payload, mut f: impl FnMut(&mut Vec<KeyValue>)) {
    for rl in &mut payload.logs {
        for sl in &mut rl.scope_logs {
            for r in &mut sl.log_records {
                let exception = str_attr(&r.attributes, STACKTRACE_ATTRIBUTE).is_some()
                    || str_attr(&r.attributes, TYPE_ATTRIBUTE).is_some();
                if exception {
                    f(&mut r.attributes);
                }
            }
        }
    }
    for rs in &mut payload.spans {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                for e in span
                    .events
                    .iter_mut()
                    .filter(|e| is_exception_event(&e.name))
                {
                    f(&mut e.attributes);
                }
            }
        }
    }
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn set_str(attrs: &mut Vec<KeyValue>, key: &str, value: String) {
    let value = Some(AnyValue {
        value: Some(any_value::Value::StringValue(value)),
    });
    match attrs.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => attrs.push(KeyValue {
            key: key.to_owned(),
            value,
            ..KeyValue::default()
        }),
    }
}

#[cfg(test)]
mod tests;
