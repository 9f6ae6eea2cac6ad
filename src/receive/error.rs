//! Edge errors and how they are answered.
//!
//! Every rejection is a status from docs/architecture.md#errors with a JSON body `{"error": …, "reason": …, "detail": …}` that
//! says what was wrong, and a low-cardinality reason that the `items_rejected` counter shows.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use crate::model::Reason;

/// Which rate limit a request hit (`[rate_limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// The client address's bucket.
    Ip,
    /// The app's bucket.
    App,
}

/// Why the edge refused a request.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("request body too large")]
    TooLarge { limit: usize, decompressed: bool },
    #[error("unsupported content type")]
    UnsupportedMediaType { got: String, allowed: &'static str },
    #[error("unsupported content encoding")]
    UnsupportedEncoding { got: String },
    #[error("malformed request body")]
    Malformed { reason: Reason, detail: String },
    /// The body did not arrive whole within `server.body_read_timeout` (408; the connection
    /// is closed).
    #[error("request body not received in time")]
    BodyTimeout { limit: std::time::Duration },
    /// More items in one request than `limits.max_events_per_batch` allows (413).
    #[error("too many items in one request")]
    TooManyItems { detail: String },
    /// An OTLP body that would take too much memory once decoded (413).
    #[error("request body too large once decoded")]
    TooLargeDecoded { detail: String },
    #[error("unknown or missing app key")]
    UnknownApp { detail: String },
    #[error("origin not allowed")]
    OriginNotAllowed { origin: String },
    /// No app key, and more than one app lists the request's `Origin` (400).
    #[error("app not determined: no app key and several apps allow this origin")]
    AmbiguousOrigin { detail: String },
    #[error("rate limited, retry later")]
    RateLimited {
        scope: RateScope,
        retry_after_secs: u64,
    },
    #[error("queue full, retry later")]
    QueueFull { retry_after_secs: u64 },
    #[error("shutting down, retry later")]
    ShuttingDown { retry_after_secs: u64 },
}

impl EdgeError {
    /// A body the decoder refused: `413` when it had too many items, `400` otherwise.
    pub fn refused_body(reason: Reason, detail: String) -> Self {
        match reason {
            Reason::TooManyItems => EdgeError::TooManyItems { detail },
            Reason::TooLargeDecoded => EdgeError::TooLargeDecoded { detail },
            reason => EdgeError::Malformed { reason, detail },
        }
    }

    /// Status code per docs/architecture.md#errors.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::TooLarge { .. }
            | EdgeError::TooManyItems { .. }
            | EdgeError::TooLargeDecoded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            EdgeError::UnsupportedMediaType { .. } | EdgeError::UnsupportedEncoding { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            EdgeError::Malformed { .. } | EdgeError::AmbiguousOrigin { .. } => {
                StatusCode::BAD_REQUEST
            }
            EdgeError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            EdgeError::UnknownApp { .. } => StatusCode::UNAUTHORIZED,
            EdgeError::OriginNotAllowed { .. } => StatusCode::FORBIDDEN,
            EdgeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            EdgeError::QueueFull { .. } | EdgeError::ShuttingDown { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Counter reason (`rum_bridge_items_rejected_total{reason}`).
    pub fn reason(&self) -> Reason {
        match self {
            EdgeError::TooLarge {
                decompressed: false,
                ..
            } => Reason::TooLarge,
            EdgeError::TooLarge {
                decompressed: true, ..
            } => Reason::TooLargeDecompressed,
            EdgeError::UnsupportedMediaType { .. } => Reason::UnsupportedMediaType,
            EdgeError::UnsupportedEncoding { .. } => Reason::UnsupportedEncoding,
            EdgeError::Malformed { reason, .. } => *reason,
            EdgeError::BodyTimeout { .. } => Reason::BodyTimeout,
            EdgeError::TooManyItems { .. } => Reason::TooManyItems,
            EdgeError::TooLargeDecoded { .. } => Reason::TooLargeDecoded,
            EdgeError::UnknownApp { .. } => Reason::UnknownApp,
            EdgeError::OriginNotAllowed { .. } => Reason::OriginNotAllowed,
            EdgeError::AmbiguousOrigin { .. } => Reason::AmbiguousOrigin,
            EdgeError::RateLimited {
                scope: RateScope::Ip,
                ..
            } => Reason::RateLimitedIp,
            EdgeError::RateLimited {
                scope: RateScope::App,
                ..
            } => Reason::RateLimitedApp,
            EdgeError::QueueFull { .. } => Reason::QueueFull,
            EdgeError::ShuttingDown { .. } => Reason::ShuttingDown,
        }
    }

    /// The answer's `detail`: what was wrong, in words.
    pub fn detail(&self) -> String {
        match self {
            EdgeError::TooLarge {
                limit,
                decompressed,
            } => {
                let what = if *decompressed {
                    "decompressed body"
                } else {
                    "body"
                };
                format!("the {what} exceeds the limit of {limit} bytes")
            }
            EdgeError::UnsupportedMediaType { got, allowed } => {
                format!("content type `{got}` is not accepted here; use one of: {allowed}")
            }
            EdgeError::UnsupportedEncoding { got } => {
                format!("content encoding `{got}` is not supported; use gzip or none")
            }
            EdgeError::Malformed { detail, .. }
            | EdgeError::TooManyItems { detail }
            | EdgeError::TooLargeDecoded { detail } => detail.clone(),
            EdgeError::BodyTimeout { limit } => {
                format!("the whole body must arrive within {limit:?} of the request headers")
            }
            EdgeError::UnknownApp { detail } | EdgeError::AmbiguousOrigin { detail } => {
                detail.clone()
            }
            EdgeError::OriginNotAllowed { origin } => {
                format!("origin `{origin}` is not in the app's allowed_origins")
            }
            EdgeError::RateLimited {
                scope,
                retry_after_secs,
            } => {
                let whose = match scope {
                    RateScope::Ip => "this client address",
                    RateScope::App => "this app",
                };
                format!("too many requests from {whose}; retry after {retry_after_secs} s")
            }
            EdgeError::QueueFull { retry_after_secs }
            | EdgeError::ShuttingDown { retry_after_secs } => {
                format!("retry after {retry_after_secs} s")
            }
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            EdgeError::QueueFull { retry_after_secs }
            | EdgeError::ShuttingDown { retry_after_secs }
            | EdgeError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.to_string(),
            "reason": self.reason().as_str(),
            "detail": self.detail(),
        });
        let mut resp = (self.status(), json_body(&body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, EdgeError::BodyTimeout { .. }) {
            // The rest of the body may still come; the connection cannot be reused.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Serializes a JSON value to bytes (cannot fail for `serde_json::Value`).
pub fn json_body(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
