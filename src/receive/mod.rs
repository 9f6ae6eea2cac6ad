//! The public ingest edge (axum): one listener that browsers talk to.
//!
//! A handler authenticates (app key, origin), enforces limits, decodes, converts and enqueues,
//! then answers `202` — it never waits for the export, only (with a disk buffer) for the
//! payload to be written to it. Every refusal is a documented status
//! with a JSON body and a counted reason (design §3).

pub mod apps;
pub mod body;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod faro;
pub mod loader;
pub mod native;
pub mod otlp;
pub mod rate_limit;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;

use crate::admin::{Metrics, RouteStatus};
use crate::config::Config;
use crate::convert::metrics::MetricsAggregator;
use crate::convert::ConvertOptions;
use crate::export::{Backpressure, Payload, Pipeline};
use crate::model::{PageContext, RumBatch};
use crate::process::limits::ItemLimits;
use crate::process::{Processor, RequestInfo};

use apps::{AppRegistry, Resolved};
use body::{body_format, read_body, BodyFormat};
use client_ip::ClientIp;
use error::EdgeError;
use rate_limit::RateLimits;

/// Everything a handler needs, shared by all requests.
pub struct EdgeState {
    pub config: Arc<Config>,
    pub apps: AppRegistry,
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    pub aggregator: Option<Arc<MetricsAggregator>>,
    pub convert: ConvertOptions,
    /// Privacy rules, applied to every batch before it is converted or passed through.
    pub processor: Processor,
    pub rate_limits: RateLimits,
    pub shutting_down: Arc<AtomicBool>,
    /// Operator resource attributes added to every exported resource.
    pub resource_attributes: Vec<(String, String)>,
    /// What the Faro route remembers between requests (retries, page views).
    pub faro: faro::FaroState,
}

/// The public router: the browser loader, native beacons, Grafana Faro and OTLP/HTTP, with
/// CORS preflights.
pub fn router(state: Arc<EdgeState>) -> Router {
    loader::prepare();
    Router::new()
        .route(loader::ROUTE, get(loader::serve))
        .route("/v1/rum", post(ingest_native).options(preflight))
        .route("/collect", post(faro::ingest).options(faro::preflight))
        .route(
            "/collect/{app_key}",
            post(faro::ingest_with_key).options(faro::preflight),
        )
        .route(
            "/v1/traces",
            post(ingest_otlp::<ExportTraceServiceRequest>).options(preflight),
        )
        .route(
            "/v1/logs",
            post(ingest_otlp::<ExportLogsServiceRequest>).options(preflight),
        )
        .route(
            "/v1/metrics",
            post(ingest_otlp::<ExportMetricsServiceRequest>).options(preflight),
        )
        .with_state(state)
}

/// App key given outside the body (`?key=`), for senders that cannot set headers.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    key: Option<String>,
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn key_outside_body<'a>(headers: &'a HeaderMap, query: &'a KeyQuery) -> Option<&'a str> {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or(query.key.as_deref())
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

    /// Refuses early, before any body is read or decoded, while shutting down or while an
    /// export queue is full: under overload the CPU goes to draining, not to work that the
    /// queue would refuse anyway.
    fn check_open(&self) -> Result<(), EdgeError> {
        let retry_after_secs = self.config.server.retry_after_secs;
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(EdgeError::ShuttingDown { retry_after_secs });
        }
        if self.pipeline.is_full() {
            return Err(EdgeError::QueueFull { retry_after_secs });
        }
        Ok(())
    }

    /// Applies the item caps (`process::limits`), enqueues for export and waits until every
    /// disk buffer holds the payload (at once without one), so a `202` is only sent for what
    /// the buffers keep.
    async fn submit(&self, mut payload: Payload) -> Result<(), EdgeError> {
        let cut = ItemLimits::new(&self.config.limits).apply(&mut payload);
        if cut > 0 {
            self.metrics.attributes_dropped.inc_by(cut);
        }
        let refused = |e| match e {
            Backpressure::QueueFull { .. } | Backpressure::Buffer { .. } => EdgeError::QueueFull {
                retry_after_secs: self.config.server.retry_after_secs,
            },
            Backpressure::ShuttingDown => EdgeError::ShuttingDown {
                retry_after_secs: self.config.server.retry_after_secs,
            },
        };
        let receipt = self.pipeline.submit(payload).map_err(refused)?;
        receipt.durable().await.map_err(refused)
    }

    async fn read(&self, headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, EdgeError> {
        let limits = &self.config.limits;
        read_body(
            headers,
            body,
            limits.max_body_bytes,
            limits.max_decompressed_bytes,
        )
        .await
    }

    /// Fills the page context from the resolved app and the request headers.
    fn complete_context(&self, ctx: &mut PageContext, app: &Resolved, headers: &HeaderMap) {
        match app {
            Resolved::Known(a) => {
                ctx.app.key = Some(a.key.clone());
                ctx.app.name = a.name.clone();
                if ctx.app.environment.is_none() {
                    ctx.app.environment = a.environment.clone();
                }
                if ctx.app.version.is_none() {
                    ctx.app.version = a.version.clone();
                }
            }
            Resolved::Development(key) => {
                if ctx.app.name.is_empty() {
                    ctx.app.name = key.clone().unwrap_or_else(|| "unknown_app".into());
                }
            }
        }
        if ctx.user_agent.is_none() {
            ctx.user_agent = header_str(headers, header::USER_AGENT).map(str::to_owned);
        }
        if ctx.browser.mobile.is_none() {
            ctx.browser.mobile = headers
                .get("sec-ch-ua-mobile")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim() == "?1");
        }
        if ctx.browser.platform.is_none() {
            ctx.browser.platform = headers
                .get("sec-ch-ua-platform")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().trim_matches('"').to_owned())
                .filter(|v| !v.is_empty());
        }
        if ctx.page_url.is_none() {
            ctx.page_url = header_str(headers, header::REFERER).map(str::to_owned);
        }
        for (k, v) in &self.resource_attributes {
            if !ctx.attributes.iter().any(|(ek, _)| ek == k) {
                ctx.attributes
                    .push((k.clone(), crate::model::AttrValue::Str(v.clone())));
            }
        }
        ctx.received_at_ms = now_ms();
    }

    async fn handle_native(
        &self,
        headers: &HeaderMap,
        query: &KeyQuery,
        body: &[u8],
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Response, EdgeError> {
        let mut batch: RumBatch = native::decode(body, &self.config.limits)
            .map_err(|e| EdgeError::refused_body(e.reason(), e.to_string()))?;
        let key = batch
            .context
            .app
            .key
            .clone()
            .or_else(|| key_outside_body(headers, query).map(str::to_owned));
        let origin = header_str(headers, header::ORIGIN);
        let app = self.apps.authorize(key.as_deref(), origin)?;
        self.rate_limits.check_app(&app)?;
        self.complete_context(&mut batch.context, &app, headers);
        batch.context.client_ip = client_ip;
        crate::process::skew::correct_clock_skew(
            &mut batch.context,
            self.config.correlation.clock_skew_threshold_ms as f64,
        );
        self.processor.process_batch(&mut batch);
        let request = request_info(client_ip, headers, &app);
        let withheld = self.processor.withhold(&mut batch, &request);
        let payload = crate::convert::convert(&batch, &self.convert);
        self.submit(payload).await?;
        // Withheld events (sampling, consent) still count in the aggregate metrics.
        if let Some(withheld) = withheld {
            self.metrics
                .drop_items(withheld.reason, withheld.events.len() as u64);
            batch.events.extend(withheld.events);
        }
        if let Some(agg) = &self.aggregator {
            let page_span = crate::convert::page_span(&batch.context, self.convert.page_load);
            agg.record_batch_with_page_span(&batch, Some(page_span));
        }
        Ok(self.count_and_answer(&batch, 0))
    }

    /// Counts a decoded batch's accepted events (plus `spans` passed through) and rejected
    /// items, and answers `202` with `{"accepted", "rejected", "errors"}` (the first 20).
    fn count_and_answer(&self, batch: &RumBatch, spans: usize) -> Response {
        for event in &batch.events {
            self.metrics.accept(event.kind(), 1);
        }
        if spans > 0 {
            self.metrics.accept("span", spans as u64);
        }
        for r in &batch.rejected {
            self.metrics.reject(r.reason);
        }
        let details: Vec<&str> = batch
            .rejected
            .iter()
            .take(20)
            .map(|r| r.detail.as_str())
            .collect();
        let body = serde_json::json!({
            "accepted": batch.events.len() + spans,
            "rejected": batch.rejected.len(),
            "errors": details,
        });
        accepted(error::json_body(&body), "application/json")
    }

    fn enrichment<'a>(&'a self, app: &'a Resolved, headers: &'a HeaderMap) -> otlp::Enrichment<'a> {
        let (name, env, version) = match app {
            Resolved::Known(a) => (
                Some(a.name.as_str()),
                a.environment.as_deref(),
                a.version.as_deref(),
            ),
            Resolved::Development(_) => (None, None, None),
        };
        otlp::Enrichment {
            service_name: name,
            environment: env,
            version,
            user_agent: header_str(headers, header::USER_AGENT),
            extra: &self.resource_attributes,
        }
    }
}

/// What the processing rules need to know about a request beyond its body.
pub(crate) fn request_info(
    client_ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    app: &Resolved,
) -> RequestInfo {
    RequestInfo {
        client_ip,
        gpc: headers
            .get("sec-gpc")
            .is_some_and(|v| v.as_bytes().trim_ascii() == b"1"),
        sample_rate: match app {
            Resolved::Known(app) => app.sample_rate,
            Resolved::Development(_) => None,
        },
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

/// The OTLP success response: an empty `Export*ServiceResponse` in the request's encoding.
fn otlp_accepted(format: BodyFormat) -> Response {
    match format {
        BodyFormat::Json => accepted(b"{}".to_vec(), "application/json"),
        BodyFormat::Protobuf => accepted(Vec::new(), "application/x-protobuf"),
    }
}

async fn preflight(State(st): State<Arc<EdgeState>>, headers: HeaderMap) -> Response {
    let origin = headers.get(header::ORIGIN);
    let allowed = origin
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| st.apps.any_allows_origin(o));
    cors::preflight(origin, allowed, st.config.server.cors_max_age_secs)
}

async fn ingest_native(
    State(st): State<Arc<EdgeState>>,
    Query(query): Query<KeyQuery>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        st.check_open()?;
        st.rate_limits.check_ip(client_ip)?;
        body_format(&headers, false)?;
        // A key outside the body (header or query) is checked before the body is read; a key
        // inside it (sendBeacon cannot set headers) only after decoding.
        if let Some(key) = key_outside_body(&headers, &query) {
            st.apps
                .authorize(Some(key), header_str(&headers, header::ORIGIN))?;
        }
        let bytes = st.read(&headers, body).await?;
        st.handle_native(&headers, &query, &bytes, client_ip).await
    }
    .await;
    st.finish("/v1/rum", &headers, result)
}

/// The three OTLP routes: rate limit and auth before the body (the key is outside it, so
/// unknown apps never cost a body read), read, decode, enrich and normalize, apply the privacy
/// rules, enqueue.
async fn ingest_otlp<T: otlp::OtlpRequest>(
    State(st): State<Arc<EdgeState>>,
    Query(query): Query<KeyQuery>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        st.check_open()?;
        st.rate_limits.check_ip(client_ip)?;
        let format = body_format(&headers, true)?;
        let app = st.apps.authorize(
            key_outside_body(&headers, &query),
            header_str(&headers, header::ORIGIN),
        )?;
        st.rate_limits.check_app(&app)?;
        let bytes = st.read(&headers, body).await?;
        let mut req = otlp::decode::<T>(&bytes, format)?;
        let n = req.prepare(&st.enrichment(&app, &headers));
        let max = st.config.limits.max_events_per_batch;
        if n > max {
            return Err(EdgeError::TooManyItems {
                detail: format!(
                    "{n} {}s in one request, more than max_events_per_batch ({max}); \
                     export smaller batches",
                    T::KIND
                ),
            });
        }
        let request = request_info(client_ip, &headers, &app);
        if let Some(d) = req.apply_privacy(&st.processor, &request) {
            st.metrics.drop_items(d.reason, d.count as u64);
        }
        st.submit(req.into_payload()).await?;
        st.metrics.accept(T::KIND, n as u64);
        Ok(otlp_accepted(format))
    }
    .await;
    st.finish(T::ROUTE, &headers, result)
}
