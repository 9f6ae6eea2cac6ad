//! Deterministic trace and span ids for spans whose client did not choose ids.
//!
//! One page view usually arrives in several beacons (load, then vitals and errors on
//! `visibilitychange`, …). Log records of a later beacon must point at the same `documentLoad`
//! span as the first, so ids the bridge makes up are hashes (xxh3) of facts every beacon of
//! the page view shares — never random, and never all-zero (an all-zero id is invalid in
//! W3C trace context and OTLP).
//!
//! The page key hashes the session id, the page-view id and the page URL. When the client sends
//! no page-view id, the browser's original `performance.timeOrigin` (before clock-skew
//! correction, rounded to the millisecond) is added so two visits to one URL do not collide.

use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

use crate::config::PageLoadCorrelation;
use crate::model::{PageContext, SpanRef, TraceContext};

/// Seeds separating the id families, so a span id never equals another family's by design.
const SEED_DOCUMENT_LOAD: u64 = 0x646f_634c_6f61_6401;
const SEED_CHILD: u64 = 0x6368_696c_6453_7002;

/// The 128-bit key of a page view; the root of every derived id of its spans.
pub fn page_key(ctx: &PageContext) -> u128 {
    let mut h = Xxh3::new();
    h.update(b"rum-bridge/page-view/v1");
    hash_opt_str(&mut h, ctx.session_id.as_deref());
    hash_opt_str(&mut h, ctx.page_view_id.as_deref());
    hash_opt_str(&mut h, ctx.page_url.as_deref());
    if ctx.page_view_id.is_none() {
        let original_origin = ctx.time_origin_ms - ctx.clock_skew_ms.unwrap_or(0.0);
        let rounded = if original_origin.is_finite() {
            original_origin.round() as i64
        } else {
            0
        };
        h.update(&rounded.to_le_bytes());
    }
    h.digest128()
}

/// The page-load (`documentLoad`) span of a page view and how it relates to the server span
/// that rendered the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSpan {
    /// The page key ([`page_key`]) the derived ids of this page view hang off.
    pub key: u128,
    pub span: SpanRef,
    /// W3C trace flags of the page trace (the server's when the page joins its trace).
    pub trace_flags: u8,
    /// The server span, when `documentLoad` is its child (same trace).
    pub remote_parent: Option<TraceContext>,
    /// The server span, when `documentLoad` is in another trace and links to it instead.
    pub server_link: Option<TraceContext>,
}

impl PageSpan {
    /// Resolves the page span of `ctx`.
    ///
    /// Ids the client chose (`ctx.page_span`) always win, because calls made during the load
    /// already carry them as parent. Otherwise the trace id is the server's in `child` mode and
    /// derived from the page key in `link` mode (or when no server span is known); the span id
    /// is always derived. Whether the server span becomes the parent or a Link then follows from
    /// the ids: same trace → parent, different trace → Link.
    pub fn resolve(ctx: &PageContext, mode: PageLoadCorrelation) -> Self {
        let key = page_key(ctx);
        let span = ctx.page_span.unwrap_or_else(|| {
            let trace_id = match (mode, ctx.server_trace) {
                (PageLoadCorrelation::Child, Some(server)) => server.trace_id,
                _ => nonzero_trace_id(key.to_be_bytes()),
            };
            SpanRef {
                trace_id,
                span_id: nonzero_span_id(xxh3_64_with_seed(&key.to_be_bytes(), SEED_DOCUMENT_LOAD)),
            }
        });
        match ctx.server_trace {
            Some(server) if server.trace_id == span.trace_id && server.span_id != span.span_id => {
                Self {
                    key,
                    span,
                    trace_flags: server.flags,
                    remote_parent: Some(server),
                    server_link: None,
                }
            }
            server => Self {
                key,
                span,
                trace_flags: SAMPLED,
                remote_parent: None,
                server_link: server.filter(|s| s.trace_id != span.trace_id),
            },
        }
    }
}

/// W3C sampled trace flag: the bridge exports every span it makes, so they are sampled.
pub const SAMPLED: u8 = 0x01;

/// The `documentLoad` span of the page view `ctx` belongs to: the client's ids when it sent
/// them, otherwise derived deterministically (see [`PageSpan::resolve`]). Metric exemplars and
/// log records use it as their span context.
pub fn page_span(ctx: &PageContext, mode: PageLoadCorrelation) -> SpanRef {
    PageSpan::resolve(ctx, mode).span
}

/// Ids for a top-level event without client ids (an interaction or HTTP call): a hash of the
/// page key, the event kind, its start time and a discriminator (target, URL, …).
pub fn derive_span(page_key: u128, kind: &str, start_ms: f64, discriminator: &[&str]) -> SpanRef {
    let mut h = Xxh3::new();
    h.update(&page_key.to_be_bytes());
    hash_str(&mut h, kind);
    h.update(&start_ms.to_bits().to_le_bytes());
    for part in discriminator {
        hash_str(&mut h, part);
    }
    let digest = h.digest128().to_be_bytes();
    SpanRef {
        trace_id: nonzero_trace_id(digest),
        span_id: nonzero_span_id(xxh3_64_with_seed(&digest, SEED_CHILD)),
    }
}

/// The span id of the `index`-th child named `kind` of `parent` (`documentFetch`,
/// `resourceFetch`), discriminated by `url`.
pub fn child_span_id(parent: [u8; 8], kind: &str, index: usize, url: &str) -> [u8; 8] {
    let mut h = Xxh3::with_seed(SEED_CHILD);
    h.update(&parent);
    hash_str(&mut h, kind);
    h.update(&(index as u64).to_le_bytes());
    hash_str(&mut h, url);
    nonzero_span_id(h.digest())
}

/// Length-prefixed so that `("ab", "c")` and `("a", "bc")` hash differently.
fn hash_str(h: &mut Xxh3, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// Distinguishes `None` from `Some("")`.
fn hash_opt_str(h: &mut Xxh3, s: Option<&str>) {
    match s {
        Some(s) => {
            h.update(&[1]);
            hash_str(h, s);
        }
        None => h.update(&[0]),
    }
}

fn nonzero_trace_id(mut id: [u8; 16]) -> [u8; 16] {
    if id == [0; 16] {
        id[15] = 1;
    }
    id
}

fn nonzero_span_id(hash: u64) -> [u8; 8] {
    hash.max(1).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PageContext {
        PageContext {
            session_id: Some("s1".into()),
            page_view_id: Some("pv1".into()),
            page_url: Some("https://shop.example.com/".into()),
            time_origin_ms: 1_700_000_000_000.0,
            ..Default::default()
        }
    }

    fn server() -> TraceContext {
        TraceContext::parse_traceparent("00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01")
            .unwrap()
    }

    #[test]
    fn page_span_is_stable_and_nonzero() {
        let a = page_span(&ctx(), PageLoadCorrelation::Child);
        let b = page_span(&ctx(), PageLoadCorrelation::Child);
        assert_eq!(a, b);
        assert_ne!(a.trace_id, [0; 16]);
        assert_ne!(a.span_id, [0; 8]);
        let mut other = ctx();
        other.page_view_id = Some("pv2".into());
        assert_ne!(page_span(&other, PageLoadCorrelation::Child), a);
    }

    #[test]
    fn page_span_survives_skew_correction_without_page_view_id() {
        let mut c = ctx();
        c.page_view_id = None;
        let before = page_span(&c, PageLoadCorrelation::Link);
        c.time_origin_ms += 5_000.25;
        c.clock_skew_ms = Some(5_000.25);
        assert_eq!(page_span(&c, PageLoadCorrelation::Link), before);
        c.time_origin_ms += 1000.0;
        assert_ne!(page_span(&c, PageLoadCorrelation::Link), before);
    }

    #[test]
    fn child_mode_joins_server_trace() {
        let mut c = ctx();
        c.server_trace = Some(server());
        let p = PageSpan::resolve(&c, PageLoadCorrelation::Child);
        assert_eq!(p.span.trace_id, server().trace_id);
        assert_eq!(p.remote_parent, Some(server()));
        assert_eq!(p.server_link, None);
        assert_eq!(p.trace_flags, 0x01);
    }

    #[test]
    fn link_mode_starts_new_trace() {
        let mut c = ctx();
        c.server_trace = Some(server());
        let p = PageSpan::resolve(&c, PageLoadCorrelation::Link);
        assert_ne!(p.span.trace_id, server().trace_id);
        assert_eq!(p.remote_parent, None);
        assert_eq!(p.server_link, Some(server()));
        // Same span id in both modes: only the trace differs.
        let child = PageSpan::resolve(&c, PageLoadCorrelation::Child);
        assert_eq!(p.span.span_id, child.span.span_id);
    }

    #[test]
    fn client_ids_win_and_decide_parent_or_link() {
        let mut c = ctx();
        c.server_trace = Some(server());
        let own = SpanRef {
            trace_id: [7; 16],
            span_id: [8; 8],
        };
        c.page_span = Some(own);
        let p = PageSpan::resolve(&c, PageLoadCorrelation::Child);
        assert_eq!(p.span, own);
        assert_eq!(p.server_link, Some(server()));
        assert_eq!(p.remote_parent, None);

        c.page_span = Some(SpanRef {
            trace_id: server().trace_id,
            span_id: [8; 8],
        });
        let p = PageSpan::resolve(&c, PageLoadCorrelation::Link);
        assert_eq!(p.remote_parent, Some(server()));
    }

    #[test]
    fn derived_ids_differ_by_every_input() {
        let k = page_key(&ctx());
        let a = derive_span(k, "click", 10.0, &["#buy"]);
        assert_eq!(a, derive_span(k, "click", 10.0, &["#buy"]));
        assert_ne!(a, derive_span(k, "click", 10.5, &["#buy"]));
        assert_ne!(a, derive_span(k, "keydown", 10.0, &["#buy"]));
        assert_ne!(a, derive_span(k, "click", 10.0, &["#buy2"]));
        assert_ne!(a, derive_span(k + 1, "click", 10.0, &["#buy"]));
        let c = child_span_id(a.span_id, "resourceFetch", 0, "u");
        assert_ne!(c, child_span_id(a.span_id, "resourceFetch", 1, "u"));
        assert_ne!(c, [0; 8]);
    }
}
