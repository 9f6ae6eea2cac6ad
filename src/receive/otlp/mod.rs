//! OTLP/HTTP intake from browser OpenTelemetry SDKs (`/v1/traces`, `/v1/logs`, `/v1/metrics`).
//!
//! Rate limit and app key before the body (the key is outside it, so unknown apps never cost a
//! body read), read, measure against the request budgets ([`budget`]: entries and decoded size,
//! before anything is built, unless the body is too small to matter), decode ([`decode`]); the pipeline enriches, normalizes, applies
//! the privacy rules and enqueues. Success is an empty `Export*ServiceResponse` in the request's encoding.

pub mod budget;
pub mod decode;
mod json_doubles;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::body::BodyFormat;
use super::client_ip::ClientIp;
use super::error::{EdgeError, Reason};
use super::{accepted, header_str, key_outside_body, EdgeState, KeyQuery};
use crate::pipeline::OtlpSignal;

pub use decode::decode;

/// An OTLP export request type and its route.
pub trait OtlpRoute: OtlpSignal {
    /// The ingest route, also its label in the request counter.
    const ROUTE: &'static str;
    /// The request's message type, where the budget pre-pass starts.
    const ROOT: budget::Msg;

    /// Decodes a body of this route ([`decode`]).
    fn decode_body(body: &[u8], format: BodyFormat) -> Result<Self, EdgeError> {
        decode::<Self>(body, format)
    }
}

impl OtlpRoute for ExportTraceServiceRequest {
    const ROUTE: &'static str = "/v1/traces";
    const ROOT: budget::Msg = budget::Msg::TraceRequest;
}

impl OtlpRoute for ExportLogsServiceRequest {
    const ROUTE: &'static str = "/v1/logs";
    const ROOT: budget::Msg = budget::Msg::LogsRequest;
}

impl OtlpRoute for ExportMetricsServiceRequest {
    const ROUTE: &'static str = "/v1/metrics";
    const ROOT: budget::Msg = budget::Msg::MetricsRequest;

    /// JSON doubles may be strings (`"NaN"`, `"2.5"`): [`json_doubles`] reads them.
    fn decode_body(body: &[u8], format: BodyFormat) -> Result<Self, EdgeError> {
        match format {
            BodyFormat::Json => json_doubles::decode(body).map_err(|e| EdgeError::Malformed {
                reason: Reason::InvalidJson,
                detail: format!("the body is not valid OTLP JSON: {e}"),
            }),
            BodyFormat::Protobuf => decode::<Self>(body, format),
        }
    }
}

pub(super) async fn ingest<T: OtlpRoute>(
    State(st): State<Arc<EdgeState>>,
    query: KeyQuery,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let format = st.admit(client_ip, &headers, true)?;
        let app = st.apps.authorize(
            key_outside_body(&headers, &query)?,
            header_str(&headers, header::ORIGIN),
        )?;
        st.rate_limits.check_app(&app)?;
        let bytes = st.read(&headers, body).await?;
        let budget = budget::Budget::new(&st.config.limits);
        // A small body cannot go over the decoded-size budget: decode it, then count.
        let small = budget::small_enough(bytes.len(), &budget);
        if !small {
            budget::measure(&bytes, format, T::ROOT, T::KIND, &budget)?;
        }
        let request = T::decode_body(&bytes, format)?;
        if small {
            budget::check_entries(request.entries(), T::KIND, &budget)?;
        }
        let facts = st.facts(&app, &headers, client_ip);
        st.ingest
            .otlp(request, &facts)
            .await
            .map_err(|e| st.refused(e))?;
        Ok(otlp_accepted(format))
    }
    .await;
    st.finish(T::ROUTE, &headers, result)
}

/// The OTLP success response: an empty `Export*ServiceResponse` in the request's encoding.
fn otlp_accepted(format: BodyFormat) -> Response {
    match format {
        BodyFormat::Json => accepted(b"{}".to_vec(), "application/json"),
        BodyFormat::Protobuf => accepted(Vec::new(), "application/x-protobuf"),
    }
}
