//! Boomerang (`boomerangjs` 1.x, Akamai's open-source RUM library) beacons:
//! `POST /v1/boomerang` (form-urlencoded, as `navigator.sendBeacon` or XHR send it; `text/plain`
//! is read the same way) and `GET /v1/boomerang?…` (image beacons). docs/boomerang-mapping.md
//! has the mapping.
//!
//! Teams that already run Boomerang point its `beacon_url` at the bridge
//! (`https://rum.example.com/v1/boomerang?key=<app key>`) and get OpenTelemetry out. Boomerang
//! cannot set headers, so the app key comes from `?key=` (or `?auth=`) in the query, checked
//! before the body is read, as on every route. The beacon's parameters are decoded
//! ([`decode`]) into the model (page load with navigation and resource timing, web vitals,
//! errors, fetch calls) and go through the same pipeline as Faro and Splunk RUM (context, clock
//! skew, page-view memory per session, privacy, sampling, limits): Boomerang reports the page
//! load once, so later beacons of the page hang their errors and vitals on its `documentLoad`.
//!
//! Answers: `202` with the usual `{"accepted", "rejected", "errors"}` JSON to a POST, and
//! `204 No Content` to an image beacon (a body would only be decoded as an image; Boomerang
//! ignores the answer either way). Refusals are the usual 4xx JSON on both.

pub mod decode;
pub mod jsurl;
pub mod restiming;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client_ip::ClientIp;
use super::error::EdgeError;
use super::{header_str, key_outside_body, EdgeState, KeyQuery};
use crate::model::Reason;
use crate::pipeline::{BrowserClock, PageView, RememberedFormat, RumInput};

pub use decode::{decode, is_beacon, BoomerangBatch, Params};

/// The route, also its label in the request counter.
pub const ROUTE: &str = "/v1/boomerang";

/// Most parameters read from one beacon (Boomerang sends about 100); the rest are ignored.
pub const MAX_PARAMS: usize = 1024;

/// Query parameters that carry the app key, not beacon data.
const KEY_PARAMS: [&str; 2] = ["key", "auth"];

/// `GET` and `POST /v1/boomerang`.
pub(super) async fn ingest(
    State(st): State<Arc<EdgeState>>,
    method: Method,
    query: KeyQuery,
    ClientIp(client_ip): ClientIp,
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let image = method == Method::GET;
    let result = async {
        // The shared cheap refusals; the media type is checked here (form bodies are ours).
        st.admit(client_ip, &HeaderMap::new(), false)?;
        if !image {
            media_type(&headers)?;
        }
        let app = st.apps.authorize(
            key_outside_body(&headers, &query)?,
            header_str(&headers, header::ORIGIN),
        )?;
        st.rate_limits.check_app(&app)?;
        let mut params = parse_params(raw_query.as_deref().unwrap_or_default().as_bytes());
        if !image {
            let bytes = st.read(&headers, body).await?;
            params.extend(parse_params(&bytes));
        }
        let facts = st.facts(&app, &headers, client_ip);
        let input = st.boomerang_input(&params)?;
        st.ingest_rum(input, &facts).await
    }
    .await;
    let result = match result {
        Ok(_) if image => Ok(StatusCode::NO_CONTENT.into_response()),
        other => other,
    };
    st.finish(ROUTE, &headers, result)
}

/// A form body, as Boomerang sends it; `text/plain` and a missing type are read the same way.
fn media_type(headers: &HeaderMap) -> Result<(), EdgeError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.is_empty()
        || mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || mime.eq_ignore_ascii_case("text/plain")
    {
        Ok(())
    } else {
        Err(EdgeError::UnsupportedMediaType {
            got: ct.chars().take(100).collect(),
            allowed: "application/x-www-form-urlencoded, text/plain",
        })
    }
}

/// `name=value&…` pairs, without the app key, at most [`MAX_PARAMS`].
pub fn parse_params(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes)
        .filter(|(k, _)| !KEY_PARAMS.contains(&k.as_ref()))
        .take(MAX_PARAMS)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl EdgeState {
    /// Decodes the beacon's parameters into the pipeline's input.
    fn boomerang_input(&self, params: &[(String, String)]) -> Result<RumInput, EdgeError> {
        let p = Params(params);
        if !is_beacon(&p) {
            return Err(EdgeError::refused_body(
                Reason::WrongShape,
                "not a Boomerang beacon: none of `v`, `rt.si`, `pid`, `u`, `rt.start`, \
                 `rt.tstart`, `nt_nav_st` is present"
                    .to_owned(),
            ));
        }
        let BoomerangBatch {
            batch,
            has_navigation,
            newest_ms,
        } = decode(&p, &self.config.limits);
        Ok(RumInput {
            batch,
            clock: BrowserClock::NewestItem(newest_ms),
            page_view: PageView::Remembered {
                navigation: has_navigation,
                format: RememberedFormat::Boomerang,
            },
            spans: Vec::new(),
            span_count: 0,
            contrib: None,
        })
    }
}
