//! Grafana Faro Web SDK intake: `POST /collect` and `POST /collect/{app_key}` (docs/faro-mapping.md).
//!
//! Teams already instrumented with Faro point its `url` at the bridge and get OTLP out, with
//! the bridge's correlation and metrics, instead of Loki lines (Alloy) or logfmt bodies (the
//! collector-contrib receiver).
//!
//! Order of work per request, cheapest refusal first:
//! 1. open for traffic (else `503` with `Retry-After`), media type (JSON, optionally gzip);
//! 2. the app: its key from the path (Grafana Cloud's URL shape), else the rule of every route
//!    (`x-api-key`, `?key=`, the path form `/a/{app_key}/collect`, else the one app listing the
//!    `Origin`, docs/apps.md), checked **before** the body is read (`401`/`403`); with no apps
//!    configured (development mode) any key is accepted and the app is named by
//!    `meta.app.name`;
//! 3. a retry of a batch already accepted (same `Idempotency-Key`) is answered `202` without
//!    reading it ([`crate::pipeline::memory::Retries`]);
//! 4. the body, limited on the wire and after gzip (`413`);
//! 5. a lenient decode ([`decode`]): unknown keys are ignored or mapped, numbers sent as
//!    strings are read, one bad item is dropped and counted, never the whole batch;
//! 6. the pipeline: the same context completion, privacy rules and conversion as native
//!    beacons, plus the embedded OTLP spans and the session's page view; then `202`.
//!
//! With `[faro] compat = "faro-contrib"` the decoder also keeps each log, exception,
//! measurement and event in the shape collector-contrib's faro receiver gives them
//! (`model::faro_contrib`, for Grafana's Frontend Observability); after the same privacy
//! rules and sampling, the pipeline emits those records instead of the model's log records.
//! Spans and metrics are the same in both modes.
//!
//! Faro item times are absolute (RFC 3339), so a Faro batch's `time_origin_ms` is 0 and its
//! event times are Unix epoch ms. Faro sends no send time, so skew is only corrected for clocks
//! that run ahead: items stamped more than `correlation.clock_skew_threshold_ms` after their
//! arrival are shifted back so that the newest one is at the receive time (a late batch looks
//! like a slow clock and is left alone).

mod decode;
mod items;
mod lenient;
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

use super::apps::Resolved;
use super::client_ip::ClientIp;
use super::error::{json_body, EdgeError, Reason};
use super::{accepted, cors, header_str, key_outside_body, EdgeState, KeyQuery};
use crate::pipeline::memory::retry_key;
use crate::pipeline::{BrowserClock, PageView, RememberedFormat, RumInput};

pub use decode::{decode, FaroBatch, FaroError};

/// The route label of both paths (a key in the path must never become a label).
const ROUTE: &str = "/collect";
/// The Faro SDK's session header, used when `meta.session.id` is missing.
const SESSION_HEADER: &str = "x-faro-session-id";
/// The retry header of the Faro transport (SDK ≥ 2.11).
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Longer idempotency keys are not remembered (the SDK sends 20 characters).
const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// `POST /collect`: the app key, if any, is outside the path (`x-api-key`, `?key=`, path form).
pub(super) async fn ingest(
    State(st): State<Arc<EdgeState>>,
    query: KeyQuery,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    collect(&st, None, &query, client_ip, &headers, body).await
}

/// `POST /collect/{app_key}`: the Grafana Cloud URL shape, the key in the path.
pub(super) async fn ingest_with_key(
    State(st): State<Arc<EdgeState>>,
    Path(app_key): Path<String>,
    query: KeyQuery,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    collect(&st, Some(&app_key), &query, client_ip, &headers, body).await
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
    query: &KeyQuery,
    client_ip: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        st.admit(client_ip, headers, false)?;
        let key = match path_key {
            Some(key) => Some(key),
            None => key_outside_body(headers, query)?,
        };
        let app = st
            .apps
            .authorize(key, header_str(headers, header::ORIGIN))?;
        st.rate_limits.check_app(&app)?;
        let retry = idempotency_key(headers).map(|k| retry_key(app_identity(&app), k));
        if retry.is_some_and(|r| st.retries.is_retry(r, Instant::now())) {
            st.metrics.reject(Reason::DuplicateBatch);
            let body = serde_json::json!({"accepted": 0, "rejected": 0, "duplicate": true});
            return Ok(accepted(json_body(&body), "application/json"));
        }
        let bytes = st.read(headers, body).await?;
        let response = st.handle_faro(&app, client_ip, headers, &bytes).await?;
        if let Some(r) = retry {
            st.retries.accepted(r, Instant::now());
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
    /// Decodes one Faro batch and hands it to the pipeline (steps 5–6 of the module docs).
    async fn handle_faro(
        &self,
        app: &Resolved,
        client_ip: Option<IpAddr>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, EdgeError> {
        let facts = self.facts(app, headers, client_ip);
        let FaroBatch {
            mut batch,
            resource_spans,
            span_count,
            has_navigation,
            newest_ms,
            contrib,
        } = decode(
            body,
            &self.config.limits,
            facts.received_at_ms,
            self.config.faro.compat,
        )
        .map_err(|e| EdgeError::refused_body(e.reason(), e.to_string()))?;
        if batch.context.session_id.is_none() {
            batch.context.session_id = headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
        }
        let input = RumInput {
            batch,
            clock: BrowserClock::NewestItem(newest_ms),
            page_view: PageView::Remembered {
                navigation: has_navigation,
                format: RememberedFormat::Faro,
            },
            spans: resource_spans,
            span_count,
            contrib,
        };
        self.ingest_rum(input, &facts).await
    }
}
