//! The public ingest edge (axum): one listener that browsers talk to, and nothing more.
//!
//! A handler refuses what it must before paying for it (shutting down or full queues, rate
//! limits, media type, app key and origin), reads the body within its limits (gzip included),
//! decodes it with its format's decoder (`native`, `faro`, `otlp`, `zipkin`, `elastic`), and hands the result with
//! the request's facts to the [`crate::pipeline`]; then it answers `202` (the pipeline only
//! waits, with a disk buffer, for the payload to be written to it). Every refusal is a
//! documented status with a JSON body and a counted reason (docs/architecture.md#errors).
//!
//! The edge never converts or exports anything itself: it imports neither `convert` nor
//! `export`.

pub mod apps;
pub mod body;
pub mod boomerang;
pub mod client_ip;
pub mod cors;
pub mod elastic;
pub mod error;
pub mod faro;
pub(crate) mod lenient;
pub mod loader;
pub mod native;
pub mod otlp;
pub mod rate_limit;
pub mod routes;
pub mod zipkin;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::admin::{Metrics, RouteStatus, TimeoutPhase};
use crate::config::Config;
use crate::handoff::Backpressure;
use crate::pipeline::memory::Retries;
use crate::pipeline::{Accepted, AppRef, Ingest, Refused, RequestFacts, RumInput};
use crate::process::client_ip::ClientIps;
use crate::process::ProcessError;

use apps::{AppRegistry, Resolved};
use body::{body_format, read_body, BodyFormat};
use error::EdgeError;
use rate_limit::RateLimits;

/// What the handlers share: the edge's own state and the pipeline they hand requests to.
pub struct EdgeState {
    config: Arc<Config>,
    apps: AppRegistry,
    ingest: Ingest,
    metrics: Arc<Metrics>,
    rate_limits: RateLimits,
    shutting_down: Arc<AtomicBool>,
    /// Faro batches accepted recently, so that a retry is not counted twice.
    retries: Retries,
    /// Trusted proxies: who may tell the client's address.
    client_ips: ClientIps,
    /// The browser loader as served under `[routes]`, with each app's sample rate.
    loader: loader::Loaders,
}

impl EdgeState {
    pub fn new(
        config: Arc<Config>,
        ingest: Ingest,
        metrics: Arc<Metrics>,
        shutting_down: Arc<AtomicBool>,
    ) -> Result<Self, ProcessError> {
        Ok(Self {
            apps: AppRegistry::new(&config.apps),
            rate_limits: RateLimits::new(&config.rate_limits),
            ingest,
            metrics,
            shutting_down,
            retries: Retries::default(),
            client_ips: ClientIps::new(&config).map_err(ProcessError::TrustedProxy)?,
            loader: loader::Loaders::new(&config),
            config,
        })
    }
}

/// The public router: the browser loader, native beacons, Grafana Faro and OTLP/HTTP, with
/// CORS preflights. Routes are registered at their canonical paths; `[routes]` and the path
/// form of the app key are mapped onto them in front of the router ([`routes`]), so a route
/// added here is renamed by one line in `config::routes`.
pub fn router(state: Arc<EdgeState>) -> Router {
    let public = routes::PublicPaths::new(&state.config.routes);
    let handlers = Router::new()
        .route(loader::ROUTE, get(loader::serve))
        .route(native::ROUTE, post(native::ingest).options(preflight))
        .route("/collect", post(faro::ingest).options(faro::preflight))
        .route(
            "/collect/{app_key}",
            post(faro::ingest_with_key).options(faro::preflight),
        )
        .route(
            "/v1/traces",
            post(otlp::ingest::<ExportTraceServiceRequest>).options(preflight),
        )
        .route(
            "/v1/logs",
            post(otlp::ingest::<ExportLogsServiceRequest>).options(preflight),
        )
        .route(
            "/v1/metrics",
            post(otlp::ingest::<ExportMetricsServiceRequest>).options(preflight),
        )
        .route(zipkin::ROUTE, post(zipkin::ingest).options(preflight))
        .route(
            elastic::ROUTE_V2,
            post(elastic::ingest_v2).options(preflight),
        )
        .route(
            elastic::ROUTE_V3,
            post(elastic::ingest_v3).options(preflight),
        )
        .route(
            boomerang::ROUTE,
            get(boomerang::ingest)
                .post(boomerang::ingest)
                .options(preflight),
        )
        .with_state(state);
    public.in_front_of(handlers)
}

/// App key given outside the header: in the query (`?key=`, or `?auth=` as Splunk RUM sends
/// its token), for senders that cannot set headers, or in the path form (`/a/{app_key}/…`,
/// [`routes::PathKey`]), for senders whose URL cannot carry our parameter either. Extracting
/// it never fails: a query naming two different keys is refused by [`key_outside_body`] inside
/// the handler, so the refusal gets the JSON body and the counter every refusal gets.
#[derive(Debug)]
pub struct KeyQuery {
    keys: Vec<String>,
    path: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for KeyQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let keys = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| name == "key" || name == "auth")
            .map(|(_, value)| value.into_owned())
            .collect();
        let path = parts
            .extensions
            .get::<routes::PathKey>()
            .map(|routes::PathKey(key)| key.clone());
        Ok(Self { keys, path })
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The app key outside the body, the same rule on every route (docs/apps.md): the `x-api-key`
/// header, else `?key=` / `?auth=`, else the path form. Two different keys in the same place
/// (`?key=a&key=b`, two `x-api-key` headers) are refused: which app is meant is a guess. With
/// no key anywhere, [`apps::AppRegistry::authorize`] looks for the app by `Origin`.
fn key_outside_body<'a>(
    headers: &'a HeaderMap,
    query: &'a KeyQuery,
) -> Result<Option<&'a str>, EdgeError> {
    let from_header = headers.get_all("x-api-key").iter().map(|v| v.to_str().ok());
    if let Some(Some(key)) = single(from_header, "x-api-key header")? {
        return Ok(Some(key));
    }
    let from_query = single(
        query.keys.iter().map(|k| Some(k.as_str())),
        "`key` (or `auth`) query parameter",
    )?;
    Ok(from_query.flatten().or(query.path.as_deref()))
}

/// The one distinct value of `values` (`None` when there is none); an error when they differ.
fn single<'a>(
    mut values: impl Iterator<Item = Option<&'a str>>,
    place: &str,
) -> Result<Option<Option<&'a str>>, EdgeError> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.any(|v| v != first) {
        return Err(EdgeError::Malformed {
            reason: crate::model::Reason::AmbiguousAppKey,
            detail: format!(
                "the {place} is given more than once with different values; send one app key"
            ),
        });
    }
    Ok(Some(first))
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl EdgeState {
    /// Counts the request, adds CORS headers for an allowed origin, and returns the response.
    fn finish(
        &self,
        route: &'static str,
        headers: &HeaderMap,
        result: Result<Response, EdgeError>,
    ) -> Response {
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.metrics.reject(e.reason());
                e.into_response()
            }
        };
        self.metrics
            .requests
            .get_or_create(&RouteStatus {
                route,
                status: resp.status().as_u16(),
            })
            .inc();
        if let Some(origin) = headers.get(header::ORIGIN) {
            if origin
                .to_str()
                .is_ok_and(|o| self.apps.any_allows_origin(o))
            {
                cors::decorate(resp.headers_mut(), origin);
            }
        }
        resp
    }

    /// The cheapest refusals, shared by every ingest route, before any body is read: shutting
    /// down or an export queue full (under overload the CPU goes to draining, not to work the
    /// queue would refuse anyway), the client address's rate limit, then the media type.
    fn admit(
        &self,
        client_ip: Option<std::net::IpAddr>,
        headers: &HeaderMap,
        protobuf_allowed: bool,
    ) -> Result<BodyFormat, EdgeError> {
        let retry_after_secs = self.config.server.retry_after_secs;
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(EdgeError::ShuttingDown { retry_after_secs });
        }
        if self.ingest.is_full() {
            return Err(EdgeError::QueueFull { retry_after_secs });
        }
        self.rate_limits.check_ip(client_ip)?;
        body_format(headers, protobuf_allowed)
    }

    /// Reads the body within the size limits and `server.body_read_timeout`, so a client that
    /// sends it slowly (or never) holds the request for a bounded time.
    async fn read(&self, headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, EdgeError> {
        let limits = &self.config.limits;
        let limit = self.config.server.body_read_timeout;
        let read = read_body(
            headers,
            body,
            limits.max_body_bytes,
            limits.max_decompressed_bytes,
        );
        tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
            self.metrics.connections.timed_out(TimeoutPhase::Body);
            Err(EdgeError::BodyTimeout { limit })
        })
    }

    /// The facts of a request the pipeline needs, read from its headers once.
    fn facts<'a>(
        &self,
        app: &'a Resolved,
        headers: &'a HeaderMap,
        client_ip: Option<std::net::IpAddr>,
    ) -> RequestFacts<'a> {
        let app = match app {
            Resolved::Known(a) => AppRef::Configured {
                key: &a.key,
                name: &a.name,
                environment: a.environment.as_deref(),
                version: a.version.as_deref(),
                sample_rate: a.sample_rate,
            },
            Resolved::Development(key) => AppRef::Development {
                key: key.as_deref(),
            },
        };
        let hint = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        RequestFacts {
            app,
            client_ip,
            user_agent: header_str(headers, header::USER_AGENT),
            mobile_hint: hint("sec-ch-ua-mobile").map(|v| v.trim() == "?1"),
            platform_hint: hint("sec-ch-ua-platform")
                .map(|v| v.trim().trim_matches('"'))
                .filter(|v| !v.is_empty()),
            referer: header_str(headers, header::REFERER),
            gpc: headers
                .get("sec-gpc")
                .is_some_and(|v| v.as_bytes().trim_ascii() == b"1"),
            received_at_ms: now_ms(),
        }
    }

    /// Hands a decoded RUM batch to the pipeline and answers `202` with
    /// `{"accepted", "rejected", "errors"}` (the first 20 errors).
    async fn ingest_rum(
        &self,
        input: RumInput,
        facts: &RequestFacts<'_>,
    ) -> Result<Response, EdgeError> {
        let Accepted { items, rejected } = self
            .ingest
            .rum(input, facts)
            .await
            .map_err(|e| self.refused(e))?;
        let details: Vec<&str> = rejected
            .iter()
            .take(20)
            .map(|r| r.detail.as_str())
            .collect();
        let body = serde_json::json!({
            "accepted": items,
            "rejected": rejected.len(),
            "errors": details,
        });
        Ok(accepted(error::json_body(&body), "application/json"))
    }

    /// The answer to a request the pipeline did not take.
    fn refused(&self, refused: Refused) -> EdgeError {
        let retry_after_secs = self.config.server.retry_after_secs;
        match refused {
            Refused::Backpressure(Backpressure::QueueFull { .. } | Backpressure::Buffer { .. }) => {
                EdgeError::QueueFull { retry_after_secs }
            }
            Refused::Backpressure(Backpressure::ShuttingDown) => {
                EdgeError::ShuttingDown { retry_after_secs }
            }
            too_many @ Refused::TooManyItems { .. } => EdgeError::TooManyItems {
                detail: too_many.to_string(),
            },
        }
    }
}

/// `202 Accepted` with a body in the request's encoding.
fn accepted(body: Vec<u8>, content_type: &'static str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn preflight(State(st): State<Arc<EdgeState>>, headers: HeaderMap) -> Response {
    let origin = headers.get(header::ORIGIN);
    let allowed = origin
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| st.apps.any_allows_origin(o));
    cors::preflight(origin, allowed, st.config.server.cors_max_age_secs)
}
