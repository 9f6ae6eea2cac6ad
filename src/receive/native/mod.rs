//! `POST /v1/rum`: native beacons, from the bridge's loader (`/rum.js`) and from any client
//! that speaks the documented format (docs/beacon-format.md), Google `web-vitals` metrics
//! included.
//!
//! Order of work: open for traffic, client rate limit, media type; an app key outside the body
//! (`x-api-key` or `?key=`) is checked before the body is read; the body is read within its
//! limits and decoded ([`decode`]); a key inside the body (`sendBeacon` cannot set headers) is
//! checked after decoding; then the batch goes to the pipeline. A body that is a Zipkin span
//! array (Splunk RUM's `beaconEndpoint`) goes to the Zipkin decoder instead ([`super::zipkin`]).

pub mod decode;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;

use super::client_ip::ClientIp;
use super::error::EdgeError;
use super::{header_str, key_outside_body, EdgeState, KeyQuery};
use crate::pipeline::RumInput;

pub use decode::{decode, NativeError, FORMAT_VERSION, MAX_ATTRIBUTES, MAX_DEPTH};

/// The route, also its label in the request counter.
pub const ROUTE: &str = "/v1/rum";

pub(super) async fn ingest(
    State(st): State<Arc<EdgeState>>,
    query: KeyQuery,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        st.admit(client_ip, &headers, false)?;
        let origin = header_str(&headers, header::ORIGIN);
        let outside = key_outside_body(&headers, &query)?;
        if let Some(key) = outside {
            st.apps.authorize(Some(key), origin)?;
        }
        let bytes = st.read(&headers, body).await?;
        if super::zipkin::looks_like_zipkin(&bytes) {
            // Splunk RUM posts Zipkin spans to its `beaconEndpoint`, with its token in `?auth=`.
            let app = st.apps.authorize(outside, origin)?;
            st.rate_limits.check_app(&app)?;
            return st.handle_zipkin(&app, client_ip, &headers, &bytes).await;
        }
        let batch = decode(&bytes, &st.config.limits)
            .map_err(|e| EdgeError::refused_body(e.reason(), e.to_string()))?;
        let key = batch
            .context
            .app
            .key
            .clone()
            .or_else(|| outside.map(str::to_owned));
        let app = st.apps.authorize(key.as_deref(), origin)?;
        st.rate_limits.check_app(&app)?;
        let facts = st.facts(&app, &headers, client_ip);
        st.ingest_rum(RumInput::batch(batch), &facts).await
    }
    .await;
    st.finish(ROUTE, &headers, result)
}
