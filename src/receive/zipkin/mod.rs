//! Zipkin v2 JSON spans: Splunk RUM (`@splunk/otel-web` 2.x, which posts them to its
//! `beaconEndpoint`, here `POST /v1/rum?auth=<token>`) and any Zipkin sender
//! (`POST /api/v2/spans`). docs/splunk-mapping.md has the mapping.
//!
//! Splunk's agent sends `text/plain` with the app's token in `?auth=` (an alias of `?key=`), so
//! the key is checked before the body is read. The body is translated as the OpenTelemetry
//! collector's Zipkin receiver does ([`decode`]), then given its RUM meaning ([`rum`]): errors
//! and web vitals become model events (exception log records, web-vital events and
//! histograms), the rest stays spans with their ids, and `documentLoad` is tied to the server
//! span. Everything then goes through the same pipeline as Faro (context, clock skew, page-view
//! memory per session, privacy, sampling, limits): Splunk reports the page load once per page,
//! so later batches of a session hang their errors and vitals on its `documentLoad`.

pub mod decode;
pub mod rum;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;

use super::apps::Resolved;
use super::client_ip::ClientIp;
use super::error::EdgeError;
use super::{header_str, key_outside_body, EdgeState, KeyQuery};
use crate::pipeline::{BrowserClock, PageView, RememberedFormat, RumInput};

pub use decode::{decode, looks_like_zipkin, ZipkinError};
pub use rum::{interpret, SplunkBatch};

/// Zipkin's own route, also its label in the request counter.
pub const ROUTE: &str = "/api/v2/spans";

pub(super) async fn ingest(
    State(st): State<Arc<EdgeState>>,
    query: KeyQuery,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        st.admit(client_ip, &headers, false)?;
        let app = st.apps.authorize(
            key_outside_body(&headers, &query)?,
            header_str(&headers, header::ORIGIN),
        )?;
        st.rate_limits.check_app(&app)?;
        let bytes = st.read(&headers, body).await?;
        st.handle_zipkin(&app, client_ip, &headers, &bytes).await
    }
    .await;
    st.finish(ROUTE, &headers, result)
}

impl EdgeState {
    /// Decodes a Zipkin body already read and authorised, and hands it to the pipeline. Also
    /// called by the `/v1/rum` handler when its body is a Zipkin span array.
    pub(super) async fn handle_zipkin(
        &self,
        app: &Resolved,
        client_ip: Option<IpAddr>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, EdgeError> {
        let decoded = decode(body, self.config.limits.max_events_per_batch)
            .map_err(|e| EdgeError::refused_body(e.reason(), e.to_string()))?;
        let SplunkBatch {
            batch,
            spans,
            span_count,
            has_navigation,
            newest_ms,
        } = interpret(decoded, self.config.correlation.page_load);
        let facts = self.facts(app, headers, client_ip);
        let input = RumInput {
            batch,
            clock: BrowserClock::NewestItem(newest_ms),
            page_view: PageView::Remembered {
                navigation: has_navigation,
                format: RememberedFormat::SplunkRum,
            },
            spans,
            span_count,
            contrib: None,
        };
        self.ingest_rum(input, &facts).await
    }
}
