//! Retry policy for OTLP exports: which failures are worth another attempt, and how long to wait.
//!
//! The rules are the OTLP specification's (`docs/otlp-mapping.md#export-retries`): HTTP 429/502/503/504 and
//! connection failures are transient, every other 4xx/5xx is permanent; gRPC has its own code
//! table, with `RESOURCE_EXHAUSTED` retryable only when the server attaches `RetryInfo`. Server
//! hints (`Retry-After`, `RetryInfo.retry_delay`) win over our own exponential backoff.

use std::time::{Duration, SystemTime};

use rand::Rng;
use tonic::Code;
use tonic_types::StatusExt;

/// Whether a failed export may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Sending the same data again cannot succeed (bad data, auth, unknown endpoint…).
    Permanent,
    /// A transient failure; `after` is the server's requested delay, if it gave one.
    Retryable { after: Option<Duration> },
}

/// A failed export attempt.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub disposition: Disposition,
    pub message: String,
}

impl SendError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            disposition: Disposition::Permanent,
            message: message.into(),
        }
    }

    pub fn retryable(message: impl Into<String>, after: Option<Duration>) -> Self {
        Self {
            disposition: Disposition::Retryable { after },
            message: message.into(),
        }
    }
}

/// How an HTTP status code is treated by an OTLP/HTTP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpClass {
    /// Any 2xx (Datadog answers 202, New Relic 200 without body).
    Success,
    Retryable,
    Permanent,
}

/// Classifies an OTLP/HTTP response status (`docs/otlp-mapping.md#export-retries`: only 429, 502, 503, 504 retry).
pub fn classify_http_status(status: u16) -> HttpClass {
    match status {
        200..=299 => HttpClass::Success,
        429 | 502 | 503 | 504 => HttpClass::Retryable,
        _ => HttpClass::Permanent,
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP-date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classifies a failed OTLP/gRPC call (`docs/otlp-mapping.md#export-retries`), reading `google.rpc.RetryInfo` from the
/// status details when present. A call that got no answer at all (the connection broke: tonic
/// reports `UNKNOWN` with the transport error as source) is retried, like an HTTP request
/// without a response (docs/otlp-mapping.md#export-retries).
pub fn classify_grpc_status(status: &tonic::Status) -> Disposition {
    if status.code() == Code::Unknown && broke_in_transport(status) {
        return Disposition::Retryable { after: None };
    }
    let retry_delay = || {
        status
            .get_details_retry_info()
            .map(|info| info.retry_delay.filter(|d| !d.is_zero()))
    };
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Disposition::Retryable {
            after: retry_delay().flatten(),
        },
        Code::ResourceExhausted => match retry_delay() {
            Some(after) => Disposition::Retryable { after },
            None => Disposition::Permanent,
        },
        _ => Disposition::Permanent,
    }
}

/// Whether the status stands for a transport failure rather than an answer from the server.
fn broke_in_transport(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::transport::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Exponential backoff with jitter: the base delay starts at `initial`, doubles per attempt and
/// is capped at `max`; each delay is drawn uniformly from `[base / 2, base]` ("equal jitter"),
/// so retries from many clients spread out and no delay exceeds `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Smallest base delay, so a zero `initial_backoff` cannot turn retries into a busy loop.
    const FLOOR: Duration = Duration::from_millis(1);

    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(Self::FLOOR);
        Self {
            base: initial.clamp(Self::FLOOR, max),
            max,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base;
        self.base = base.saturating_mul(2).min(self.max);
        let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn http_status_table() {
        for status in [200, 201, 202, 204] {
            assert_eq!(classify_http_status(status), HttpClass::Success, "{status}");
        }
        for status in [429, 502, 503, 504] {
            assert_eq!(
                classify_http_status(status),
                HttpClass::Retryable,
                "{status}"
            );
        }
        for status in [301, 400, 401, 403, 404, 405, 408, 413, 415, 500, 501, 505] {
            assert_eq!(
                classify_http_status(status),
                HttpClass::Permanent,
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let in_90s = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&in_90s, now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5", "soon", "99999999999999999999999"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    fn with_retry_info(code: Code, delay: Duration) -> tonic::Status {
        tonic::Status::with_error_details(
            code,
            "slow down",
            ErrorDetails::with_retry_info(Some(delay)),
        )
    }

    #[test]
    fn grpc_code_table() {
        let retryable = [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ];
        for code in retryable {
            assert_eq!(
                classify_grpc_status(&tonic::Status::new(code, "x")),
                Disposition::Retryable { after: None },
                "{code:?}"
            );
        }
        let permanent = [
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::ResourceExhausted,
        ];
        for code in permanent {
            assert_eq!(
                classify_grpc_status(&tonic::Status::new(code, "x")),
                Disposition::Permanent,
                "{code:?}"
            );
        }
    }

    #[test]
    fn grpc_retry_info_sets_delay_and_unlocks_resource_exhausted() {
        let delay = Duration::from_millis(1500);
        assert_eq!(
            classify_grpc_status(&with_retry_info(Code::ResourceExhausted, delay)),
            Disposition::Retryable { after: Some(delay) }
        );
        assert_eq!(
            classify_grpc_status(&with_retry_info(Code::Unavailable, delay)),
            Disposition::Retryable { after: Some(delay) }
        );
        // RetryInfo does not make a permanent code retryable.
        assert_eq!(
            classify_grpc_status(&with_retry_info(Code::InvalidArgument, delay)),
            Disposition::Permanent
        );
        // A zero delay is no hint: our own backoff applies.
        assert_eq!(
            classify_grpc_status(&with_retry_info(Code::ResourceExhausted, Duration::ZERO)),
            Disposition::Retryable { after: None }
        );
    }

    #[test]
    fn backoff_doubles_within_jitter_bounds_up_to_max() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let mut draws = Vec::new();
        for _ in 0..50 {
            let mut backoff = Backoff::new(initial, max);
            let mut base = initial;
            for _ in 0..8 {
                let delay = backoff.next_delay();
                assert!(
                    delay >= base / 2 && delay <= base,
                    "{delay:?} outside [{base:?}/2, {base:?}]"
                );
                assert!(delay <= max);
                draws.push(delay);
                base = (base * 2).min(max);
            }
        }
        let first = draws[0];
        assert!(draws.iter().any(|d| *d != first), "delays are jittered");
    }

    #[test]
    fn backoff_never_zero() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        let delay = backoff.next_delay();
        assert!(delay >= Duration::from_micros(500));
    }
}
