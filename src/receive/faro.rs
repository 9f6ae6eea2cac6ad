//! Grafana Faro Web SDK intake: `POST /collect` and `POST /collect/{app_key}` (faro.md §1, §7).
//!
//! Teams already instrumented with Faro point its `url` at the bridge and get OTLP out, with
//! the bridge's correlation and metrics, instead of Loki lines (Alloy) or logfmt bodies (the
//! collector-contrib receiver).
//!
//! Order of work per request, cheapest refusal first:
//! 1. open for traffic (else `503` with `Retry-After`), media type (JSON, optionally gzip);
//! 2. the app: its key from the path (Grafana Cloud's URL shape) or `x-api-key`, and the
//!    `Origin`, checked **before** the body is read (`401`/`403`); with no apps configured
//!    (development mode) any key is accepted and the app is named by `meta.app.name`;
//! 3. a retry of a batch already accepted (same `Idempotency-Key`) is answered `202` without
//!    reading it ([`memory`]);
//! 4. the body, limited on the wire and after gzip (`413`);
//! 5. a lenient decode ([`decode`]): unknown keys are ignored or mapped, numbers sent as
//!    strings are read, one bad item is dropped and counted, never the whole batch;
//! 6. the same context completion, clock handling and conversion as native beacons, plus the
//!    embedded OTLP spans; then enqueue and `202`.
//!
//! With `[faro] compat = "faro-contrib"` the decoder also keeps each log, exception,
//! measurement and event in the shape collector-contrib's faro receiver gives them
//! (`convert::faro_contrib`, for Grafana's Frontend Observability); after the same privacy
//! rules and sampling, those records replace the model's log records. Spans and metrics are
//! the same in both modes.
//!
//! Faro item times are absolute (RFC 3339), so a Faro batch's `time_origin_ms` is 0 and its
//! event times are Unix epoch ms. Faro sends no send time, so skew is only corrected for clocks
//! that run ahead: items stamped more than `correlation.clock_skew_threshold_ms` after their
//! arrival are shifted back so that the newest one is at the receive time (a late batch looks
//! like a slow clock and is left alone).

mod items;
mod lenient;
pub mod memory;
mod meta;
mod perf;
#[cfg(test)]
mod tests;
mod traces;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::apps::Resolved;
use super::body::{body_format, nesting_exceeds, MAX_JSON_DEPTH};
use super::client_ip::ClientIp;
use super::error::{json_body, EdgeError, TOO_MANY_ITEMS};
use super::{accepted, cors, header_str, now_ms, request_info, EdgeState};
use crate::config::{FaroCompat, LimitsConfig};
use crate::convert::faro_contrib::FaroRecords;
use crate::model::{Rejected, RumBatch, RumEvent};
use items::{Items, Section};
use memory::{page_key, retry_key, PageMemo};

pub use memory::FaroState;

/// The route label of both paths (a key in the path must never become a label).
const ROUTE: &str = "/collect";
/// The Faro SDK's session header, used when `meta.session.id` is missing.
const SESSION_HEADER: &str = "x-faro-session-id";
/// The retry header of the Faro transport (SDK ≥ 2.11).
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Longer idempotency keys are not remembered (the SDK sends 20 characters).
const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// Why a whole Faro body was refused (`400`).
#[derive(Debug, thiserror::Error)]
pub enum FaroError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("the body must be a Faro payload (a JSON object with `meta`, `logs`, …), got {found}")]
    WrongShape { found: &'static str },
    #[error(
        "{count} items in one batch, more than twice max_events_per_batch ({max}); \
         send smaller batches"
    )]
    TooManyItems { count: usize, max: usize },
    #[error("JSON is nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
}

impl FaroError {
    /// Low-cardinality token for the `items_rejected` counter.
    pub fn reason(&self) -> &'static str {
        match self {
            FaroError::InvalidJson(_) => "invalid_json",
            FaroError::WrongShape { .. } => "wrong_shape",
            FaroError::TooManyItems { .. } => TOO_MANY_ITEMS,
            FaroError::TooDeep => "too_deep",
        }
    }
}

/// A decoded Faro payload.
#[derive(Debug, Default)]
pub struct FaroBatch {
    /// Logs, exceptions, measurements and events in the model, with `meta` as the context.
    /// Times are Unix epoch ms (`time_origin_ms` = 0). `app.name` is `meta.app.name`; the edge
    /// replaces it for configured apps.
    pub batch: RumBatch,
    /// The spans of the embedded OTLP export (`traces`), ids as sent, not yet enriched.
    pub resource_spans: Vec<ResourceSpans>,
    pub span_count: usize,
    /// Whether the batch reports the page's navigation (`faro.performance.navigation`).
    pub has_navigation: bool,
    /// The latest item timestamp (Unix epoch ms).
    pub newest_ms: Option<f64>,
    /// The items in collector-contrib's shape, with `compat = "faro-contrib"`
    /// (`convert::faro_contrib`); not yet scrubbed.
    pub contrib: Option<FaroRecords>,
}

#[derive(Deserialize)]
struct Sections<'a> {
    #[serde(borrow, default)]
    meta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logs: Option<&'a RawValue>,
    #[serde(borrow, default)]
    exceptions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    measurements: Option<&'a RawValue>,
    #[serde(borrow, default)]
    events: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traces: Option<&'a RawValue>,
}

/// Decodes a Faro payload (faro.md §1.2–1.8).
///
/// The whole body is refused only when it is not a JSON object or holds more than twice
/// `limits.max_events_per_batch` items; otherwise bad parts are dropped and listed in
/// `batch.rejected`: items beyond `max_events_per_batch` (counted across all arrays and the
/// embedded spans), items that are not objects, a section that is not an array.
/// `received_at_ms` stamps items that have no readable timestamp. With
/// [`FaroCompat::FaroContrib`] the kept items are also returned in contrib's shape.
pub fn decode(
    body: &[u8],
    limits: &LimitsConfig,
    received_at_ms: f64,
    compat: FaroCompat,
) -> Result<FaroBatch, FaroError> {
    if let Some(found) = lenient::json_type(body).filter(|t| *t != "an object") {
        return Err(FaroError::WrongShape { found });
    }
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(FaroError::TooDeep);
    }
    let sections: Sections = serde_json::from_slice(body)?;
    let max = limits.max_events_per_batch;
    let mut rejected = Vec::new();
    let mut batch = RumBatch::default();
    let extras = match sections.meta {
        None => Default::default(),
        Some(raw) => match lenient::object::<meta::Meta>(raw) {
            Ok(meta) => meta.apply(&mut batch.context),
            Err(e) => {
                rejected.push(Rejected {
                    reason: "invalid_meta",
                    detail: format!("meta: {e}"),
                });
                Default::default()
            }
        },
    };
    let mut items = Items::new(limits, received_at_ms, extras);
    items.rejected = rejected;
    let contrib_meta = (compat == FaroCompat::FaroContrib).then(|| {
        items.contrib = Some(Vec::new());
        sections
            .meta
            .and_then(|raw| lenient::object::<meta::ContribMeta>(raw).ok())
            .map(meta::ContribMeta::into_meta)
            .unwrap_or_default()
    });
    let mut seen = 0usize;
    for (section, raw) in [
        (Section::Logs, sections.logs),
        (Section::Exceptions, sections.exceptions),
        (Section::Measurements, sections.measurements),
        (Section::Events, sections.events),
    ] {
        let Some(raw) = raw else { continue };
        match lenient::items(raw, max.saturating_sub(seen)) {
            Ok(list) => {
                seen += list.kept.len() + list.overflow;
                for (index, item) in list.kept.into_iter().enumerate() {
                    items.add(section, index, item);
                }
            }
            Err(e) => items.rejected.push(Rejected {
                reason: "invalid_section",
                detail: format!("{}: {e}", section.name()),
            }),
        }
    }
    let mut spans = traces::Decoded::default();
    if let Some(raw) = sections.traces {
        spans = traces::decode(raw, max.saturating_sub(seen), &mut items.rejected);
        seen += spans.spans + spans.overflow;
    }
    if seen > max {
        if seen - max > max {
            return Err(FaroError::TooManyItems { count: seen, max });
        }
        items.rejected.extend((max..seen).map(|index| Rejected {
            reason: TOO_MANY_ITEMS,
            detail: format!("item {index}: beyond max_events_per_batch ({max})"),
        }));
    }

    let Items {
        events,
        rejected,
        server_trace,
        navigation_id,
        referenced_navigation_id,
        newest_ms,
        contrib,
        ..
    } = items.finish();
    let ctx = &mut batch.context;
    ctx.server_trace = server_trace;
    if ctx.page_view_id.is_none() {
        ctx.page_view_id = navigation_id.or(referenced_navigation_id);
    }
    let has_navigation = events.iter().any(|e| matches!(e, RumEvent::PageLoad(_)));
    batch.events = events;
    batch.rejected = rejected;
    Ok(FaroBatch {
        batch,
        resource_spans: spans.resource_spans,
        span_count: spans.spans,
        has_navigation,
        newest_ms,
        contrib: contrib
            .zip(contrib_meta)
            .map(|(records, meta)| FaroRecords { records, meta }),
    })
}

/// `POST /collect`: the app key, if any, is in `x-api-key`.
pub(super) async fn ingest(
    State(st): State<Arc<EdgeState>>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    collect(&st, None, client_ip, &headers, body).await
}

/// `POST /collect/{app_key}`: the Grafana Cloud URL shape, the key in the path.
pub(super) async fn ingest_with_key(
    State(st): State<Arc<EdgeState>>,
    Path(app_key): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    collect(&st, Some(&app_key), client_ip, &headers, body).await
}

/// CORS preflight of the Faro routes: the Faro SDK's headers are allowed.
pub(super) async fn preflight(State(st): State<Arc<EdgeState>>, headers: HeaderMap) -> Response {
    let origin = headers.get(header::ORIGIN);
    let allowed = origin
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| st.apps.any_allows_origin(o));
    cors::preflight_allowing(
        origin,
        allowed,
        st.config.server.cors_max_age_secs,
        cors::FARO_ALLOWED_HEADERS,
    )
}

async fn collect(
    st: &EdgeState,
    path_key: Option<&str>,
    client_ip: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        st.check_open()?;
        st.rate_limits.check_ip(client_ip)?;
        body_format(headers, false)?;
        let key = path_key.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        let app = st
            .apps
            .authorize(key, header_str(headers, header::ORIGIN))?;
        st.rate_limits.check_app(&app)?;
        let retry = idempotency_key(headers).map(|k| retry_key(app_identity(&app), k));
        if retry.is_some_and(|r| st.faro.is_retry(r, Instant::now())) {
            st.metrics.reject("duplicate_batch");
            let body = serde_json::json!({"accepted": 0, "rejected": 0, "duplicate": true});
            return Ok(accepted(json_body(&body), "application/json"));
        }
        let bytes = st.read(headers, body).await?;
        let response = st.handle_faro(&app, client_ip, headers, &bytes).await?;
        if let Some(r) = retry {
            st.faro.accepted(r, Instant::now());
        }
        Ok(response)
    }
    .await;
    st.finish(ROUTE, headers, result)
}

fn idempotency_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
}

/// What scopes retries and page memory to one app before the body is read.
fn app_identity(app: &Resolved) -> &str {
    match app {
        Resolved::Known(a) => &a.key,
        Resolved::Development(key) => key.as_deref().unwrap_or(""),
    }
}

impl EdgeState {
    /// Decodes, correlates, converts and enqueues one Faro batch (steps 5–6 of the module docs).
    async fn handle_faro(
        &self,
        app: &Resolved,
        client_ip: Option<IpAddr>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, EdgeError> {
        let received_at_ms = now_ms();
        let FaroBatch {
            mut batch,
            mut resource_spans,
            span_count,
            has_navigation,
            newest_ms,
            contrib,
        } = decode(
            body,
            &self.config.limits,
            received_at_ms,
            self.config.faro.compat,
        )
        .map_err(|e| EdgeError::refused_body(e.reason(), e.to_string()))?;
        let ctx = &mut batch.context;
        if ctx.session_id.is_none() {
            ctx.session_id = headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
        }
        self.complete_context(ctx, app, headers);
        let threshold = self.config.correlation.clock_skew_threshold_ms as f64;
        if let Some(newest) = newest_ms.filter(|n| n - ctx.received_at_ms > threshold) {
            ctx.sent_at_ms = Some(newest);
            crate::process::skew::correct_clock_skew(ctx, threshold);
        }
        ctx.client_ip = client_ip;
        self.correlate_page_view(ctx, has_navigation);

        // The same privacy rules as every other format: scrub, then sample and apply consent.
        self.processor.process_batch(&mut batch);
        let request = request_info(client_ip, headers, app);
        // Contrib-shaped records get the same rules and follow their model event's fate.
        let contrib = contrib.map(|mut records| {
            self.processor.process_faro_records(&mut records);
            let policy = self.processor.export_policy(&batch.context, &request);
            records.records.retain(|r| {
                let event = r.event.and_then(|i| batch.events.get(i));
                self.processor.exports(policy, event)
            });
            records
        });
        let withheld = self.processor.withhold(&mut batch, &request);
        let mut payload = match contrib {
            None => crate::convert::convert(&batch, &self.convert),
            // They replace the model's log records; spans stay.
            Some(records) => {
                let mut payload = crate::convert::convert_spans_only(&batch, &self.convert);
                let logs =
                    crate::convert::faro_contrib::convert(records, &batch.context, &self.convert);
                payload.logs.extend(logs);
                payload
            }
        };
        traces::enrich(
            &mut resource_spans,
            &batch.context,
            matches!(app, Resolved::Known(_)),
        );
        if let Some(d) = self
            .processor
            .process_otlp_spans(&mut resource_spans, &request)
        {
            self.metrics.drop_items(d.reason, d.count as u64);
        }
        let calls = match &self.aggregator {
            Some(_) => traces::http_calls(&resource_spans),
            None => Vec::new(),
        };
        payload.spans.append(&mut resource_spans);
        self.submit(payload).await?;
        // Withheld events (sampling, consent) still count in the aggregate metrics.
        if let Some(withheld) = withheld {
            self.metrics
                .drop_items(withheld.reason, withheld.events.len() as u64);
            batch.events.extend(withheld.events);
        }

        let answer = self.count_and_answer(&batch, span_count);
        if let Some(agg) = &self.aggregator {
            let page_span = crate::convert::page_span(&batch.context, self.convert.page_load);
            // The CLIENT spans feed the HTTP histogram; they were exported as spans already.
            batch
                .events
                .extend(calls.into_iter().map(RumEvent::HttpCall));
            agg.record_batch_with_page_span(&batch, Some(page_span));
        }
        Ok(answer)
    }

    /// Ties a batch to its page view (see [`memory`]): a navigation is remembered for its
    /// session; a later batch without one takes the page-view id, server span and
    /// `documentLoad` span of the session's last navigation, unless it names another page view.
    fn correlate_page_view(&self, ctx: &mut crate::model::PageContext, has_navigation: bool) {
        let Some(session) = ctx.session_id.as_deref() else {
            return;
        };
        let key = page_key(&ctx.app.name, session);
        let now = Instant::now();
        if has_navigation {
            let memo = PageMemo {
                page_view_id: ctx.page_view_id.clone(),
                server_trace: ctx.server_trace,
                page_span: crate::convert::page_span(ctx, self.convert.page_load),
            };
            self.faro.remember_page(key, memo, now);
            return;
        }
        let Some(memo) = self.faro.recall_page(key, now) else {
            return;
        };
        match (&ctx.page_view_id, &memo.page_view_id) {
            (Some(own), Some(remembered)) if own != remembered => return,
            (None, _) => ctx.page_view_id = memo.page_view_id,
            _ => {}
        }
        if ctx.server_trace.is_none() {
            ctx.server_trace = memo.server_trace;
        }
        ctx.page_span.get_or_insert(memo.page_span);
    }
}
