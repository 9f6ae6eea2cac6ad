//! CORS for browser senders.
//!
//! Beacons arrive cross-origin, often with credentials (`sendBeacon` always sends them), so the
//! edge echoes an allowed `Origin` exactly with `Access-Control-Allow-Credentials: true` and
//! never answers `*`. Preflights carry no app key, so they are allowed when any app accepts the
//! origin; the real request is then checked against its own app.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Request headers a browser may send to the ingest routes.
pub const ALLOWED_HEADERS: &str =
    "content-type, content-encoding, traceparent, tracestate, x-api-key";

/// Request headers the Grafana Faro Web SDK may send (docs/faro-mapping.md#transport): its session and retry
/// headers, and `x-scope-orgid` for multi-tenant setups.
pub const FARO_ALLOWED_HEADERS: &str = "content-type, content-encoding, traceparent, x-api-key, \
     x-faro-session-id, x-scope-orgid, idempotency-key";

/// Adds the CORS response headers for an allowed origin.
pub fn decorate(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Answers a preflight: `204` with the allowed methods and headers, or `403` for an origin no
/// app accepts.
pub fn preflight(origin: Option<&HeaderValue>, allowed: bool, max_age_secs: u64) -> Response {
    preflight_allowing(origin, allowed, max_age_secs, ALLOWED_HEADERS)
}

/// [`preflight`] for a route whose senders need other request headers.
pub fn preflight_allowing(
    origin: Option<&HeaderValue>,
    allowed: bool,
    max_age_secs: u64,
    allowed_headers: &'static str,
) -> Response {
    let Some(origin) = origin.filter(|_| allowed) else {
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    decorate(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(allowed_headers),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(max_age_secs),
    );
    resp
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_echoes_origin_with_credentials() {
        let origin = HeaderValue::from_static("https://shop.example.com");
        let resp = preflight(Some(&origin), true, 600);
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let h = resp.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://shop.example.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("traceparent"));
    }

    #[test]
    fn faro_preflight_allows_the_sdk_headers_and_exposes_retry_after() {
        let origin = HeaderValue::from_static("http://127.0.0.1:18787");
        let resp = preflight_allowing(Some(&origin), true, 600, FARO_ALLOWED_HEADERS);
        let h = resp.headers();
        let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
        for name in [
            "content-type",
            "content-encoding",
            "traceparent",
            "x-api-key",
            "x-faro-session-id",
            "x-scope-orgid",
            "idempotency-key",
        ] {
            assert!(allowed.split(", ").any(|a| a == name), "{name}: {allowed}");
        }
        assert_eq!(h[header::ACCESS_CONTROL_EXPOSE_HEADERS], "retry-after");
    }

    #[test]
    fn preflight_refuses_unknown_origin() {
        let origin = HeaderValue::from_static("https://evil.example");
        let resp = preflight(Some(&origin), false, 600);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(resp
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
    }
}
