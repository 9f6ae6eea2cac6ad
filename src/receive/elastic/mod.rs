//! Elastic APM RUM intake: what `@elastic/apm-rum` 5.x posts to its `serverUrl`,
//! `POST /intake/v2/rum/events` (NDJSON) and `POST /intake/v3/rum/events` (the same events with
//! the agent's compressed field names, `apiVersion: 3`), gzip-compressed by the agent where
//! the browser has `CompressionStream`. docs/elastic-mapping.md has the mapping.
//!
//! The agent cannot add our key header, so the app comes from `?key=`/`?auth=` or `x-api-key`
//! and the request's `Origin`, as on the Zipkin route, checked before the body is read. The
//! body is normalised ([`decode`]) and given its RUM meaning ([`rum`]): the page-load becomes
//! `documentLoad` under the server span, spans keep their ids, errors and vitals become model
//! events. Then it goes through the same pipeline as every format (context, page-view memory
//! per session, privacy, sampling, limits). The answer is APM Server's: `202` with no body
//! (`?verbose` adds `{"accepted", "rejected", "errors"}`).

pub mod decode;
pub mod intake;
pub mod rum;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::apps::Resolved;
use super::client_ip::ClientIp;
use super::error::EdgeError;
use super::{header_str, key_outside_body, now_ms, EdgeState, KeyQuery};
use crate::pipeline::{BrowserClock, PageView, RememberedFormat, RumInput};

pub use decode::{decode, Intake, IntakeError};
pub use rum::{interpret, ElasticBatch};

/// Intake v2 (NDJSON), also its label in the request counter.
pub const ROUTE_V2: &str = "/intake/v2/rum/events";
/// Intake v3 (compressed field names).
pub const ROUTE_V3: &str = "/intake/v3/rum/events";

/// `POST /intake/v2/rum/events`.
pub(super) async fn ingest_v2(
    st: State<Arc<EdgeState>>,
    query: KeyQuery,
    raw: RawQuery,
    ip: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(st, 2, query, raw, ip, headers, body).await
}

/// `POST /intake/v3/rum/events`.
pub(super) async fn ingest_v3(
    st: State<Arc<EdgeState>>,
    query: KeyQuery,
    raw: RawQuery,
    ip: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(st, 3, query, raw, ip, headers, body).await
}

async fn ingest(
    State(st): State<Arc<EdgeState>>,
    version: u8,
    query: KeyQuery,
    RawQuery(raw): RawQuery,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let verbose = raw.as_deref().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "verbose")
    });
    let result = async {
        ndjson_media_type(&headers)?;
        // The shared checks take JSON media types; NDJSON was accepted just above.
        let mut plain = headers.clone();
        plain.remove(header::CONTENT_TYPE);
        st.admit(client_ip, &plain, false)?;
        let app = st.apps.authorize(
            key_outside_body(&headers, &query)?,
            header_str(&headers, header::ORIGIN),
        )?;
        st.rate_limits.check_app(&app)?;
        let bytes = st.read(&headers, body).await?;
        st.handle_elastic(&app, version, client_ip, &headers, &bytes)
            .await
    }
    .await;
    let result = result.map(|resp| {
        if verbose {
            resp
        } else {
            StatusCode::ACCEPTED.into_response()
        }
    });
    st.finish(
        if version >= 3 { ROUTE_V3 } else { ROUTE_V2 },
        &headers,
        result,
    )
}

/// The agent sends `application/x-ndjson`; JSON and text media types are taken too.
fn ndjson_media_type(headers: &HeaderMap) -> Result<(), EdgeError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-ndjson" | "application/ndjson" | "application/json" | "text/plain" | "" => {
            Ok(())
        }
        _ => Err(EdgeError::UnsupportedMediaType {
            got: ct.chars().take(100).collect(),
            allowed: "application/x-ndjson, application/json, text/plain",
        }),
    }
}

impl EdgeState {
    /// Decodes an intake body already read and authorised, and hands it to the pipeline.
    async fn handle_elastic(
        &self,
        app: &Resolved,
        version: u8,
        client_ip: Option<IpAddr>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, EdgeError> {
        let intake = decode(body, version, self.config.limits.max_events_per_batch)
            .map_err(|e| EdgeError::refused_body(e.reason(), e.to_string()))?;
        let ElasticBatch {
            batch,
            spans,
            span_count,
            has_navigation,
            newest_ms,
        } = interpret(intake, self.config.correlation.page_load, now_ms());
        let facts = self.facts(app, headers, client_ip);
        let input = RumInput {
            batch,
            clock: BrowserClock::NewestItem(newest_ms),
            page_view: PageView::Remembered {
                navigation: has_navigation,
                format: RememberedFormat::ElasticRum,
            },
            spans,
            span_count,
            contrib: None,
        };
        self.ingest_rum(input, &facts).await
    }
}
