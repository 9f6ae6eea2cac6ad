//! demo-shop: a tiny instrumented web shop that shows rum-bridge's promise, one trace from a
//! click in the browser to the backend's database query.
//!
//! It serves three origins on 127.0.0.1 (each one port):
//!
//! - the **shop page** (`--listen`, default `:8080`): `GET /` renders the page inside a SERVER
//!   span and hands that span's context to the browser twice, as
//!   `Server-Timing: traceparent;desc="00-…"` and `<meta name="traceparent">`. The page carries
//!   the loader tag `<script src="{bridge}/rum.js" data-app="{key}" data-propagate="{api}/">`,
//!   so the page load (`documentLoad`) lands under that span. The page's own script is a
//!   minified bundle, `GET /static/shop.min.js`, with its source map at `.map` beside it (made
//!   from `static/shop.js` by `build-bundle.sh`; its "Break it" button throws an uncaught
//!   `TypeError` for the bridge to resolve with that map);
//! - the **shop API** (`--api-listen`, default `:8081`), another origin listed in
//!   `data-propagate`: the loader sends `traceparent` there, the API continues that trace (W3C
//!   propagator) with its SERVER span and a `SELECT products` child span for the "database"
//!   (a short sleep, it is a demo). CORS preflights allow `traceparent`; responses expose
//!   `Server-Timing`;
//! - a **partner** service (`--partner-listen`, default `:8082`), an origin *not* listed in
//!   `data-propagate`: it must never receive a `traceparent`.
//!
//! `GET /debug/requests` on the API origin lists the requests the API and the partner received
//! with the `traceparent` each carried (JSON), to check propagation by hand or in tests.
//!
//! Spans go over OTLP/gRPC to `--otlp-endpoint` (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
//! `http://127.0.0.1:4317`) as `service.name = demo-shop`; the standard `OTEL_BSP_*` variables
//! tune the batching. Run: `cargo run --example demo-shop -- --help`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::json;
use tracing::field::Empty;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// The page, with `{{…}}` placeholders filled per request.
const PAGE: &str = include_str!("shop.html");

/// The page's script, minified from `static/shop.js` by `build-bundle.sh`, and its source map:
/// embedded so that the binary stands alone. The bridge resolves the page's error stacks with
/// the same map (`[sourcemaps]` in `rum-bridge.toml`).
const BUNDLE: &str = include_str!("static/shop.min.js");
const BUNDLE_MAP: &str = include_str!("static/shop.min.js.map");

/// The "database": what `SELECT products` returns.
const PRODUCTS: [(&str, &str, u32); 3] = [
    ("SKU-123", "Espresso beans, 1 kg", 2490),
    ("SKU-456", "Hand grinder", 8900),
    ("SKU-789", "Milk jug", 1450),
];
const PRODUCTS_QUERY: &str = "SELECT sku, name, price_cents FROM products WHERE active = 1";

#[derive(Parser, Debug)]
#[command(about = "A demo shop instrumented with OpenTelemetry, for rum-bridge's demo")]
struct Args {
    /// Address of the shop page (its origin is the page's origin).
    #[arg(long, env = "DEMO_SHOP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the shop API: another origin, listed in the loader's data-propagate.
    #[arg(long, env = "DEMO_SHOP_API_LISTEN", default_value = "127.0.0.1:8081")]
    api_listen: SocketAddr,
    /// Address of the partner service: an origin not in data-propagate (gets no traceparent).
    #[arg(
        long,
        env = "DEMO_SHOP_PARTNER_LISTEN",
        default_value = "127.0.0.1:8082"
    )]
    partner_listen: SocketAddr,
    /// Base URL of rum-bridge, as the browser reaches it (the page loads {url}/rum.js).
    #[arg(long, env = "RUM_BRIDGE_URL", default_value = "http://127.0.0.1:4380")]
    bridge_url: String,
    /// Public app key of the page (data-app); an [[apps]] key of the bridge.
    #[arg(long, env = "RUM_APP_KEY", default_value = "pk_demo_shop")]
    app_key: String,
    /// OTLP/gRPC endpoint for the shop's own spans.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        default_value = "http://127.0.0.1:4317"
    )]
    otlp_endpoint: String,
    /// Extra script URL loaded in the page head before the loader (repeatable), e.g. Google's
    /// web-vitals beside /rum.js to compare their numbers.
    #[arg(long = "head-script")]
    head_scripts: Vec<String>,
}

/// The browser-facing settings of the page.
struct Site {
    page_origin: String,
    api_origin: String,
    partner_origin: String,
    bridge_url: String,
    app_key: String,
    head_scripts: Vec<String>,
}

/// One request the API or the partner received, with the `traceparent` it carried.
#[derive(Clone, serde::Serialize)]
struct Seen {
    service: &'static str,
    method: String,
    path: String,
    traceparent: Option<String>,
}

#[derive(Clone)]
struct AppState {
    site: Arc<Site>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The origin a browser uses for a listen address: `localhost` when listening on all
/// interfaces (in a container, say), since browsers refuse `0.0.0.0` as a destination.
fn origin(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let provider = init_tracing(&args.otlp_endpoint)?;

    let state = AppState {
        site: Arc::new(Site {
            page_origin: origin(args.listen),
            api_origin: origin(args.api_listen),
            partner_origin: origin(args.partner_listen),
            bridge_url: args.bridge_url.trim_end_matches('/').to_owned(),
            app_key: args.app_key,
            head_scripts: args.head_scripts,
        }),
        seen: Arc::default(),
    };

    let recorder = |service| Recorder {
        service,
        seen: state.seen.clone(),
    };
    // Layers wrap what is above them: requests go through record, then cors (which answers
    // preflights), then the SERVER span, then the handler.
    let page = Router::new()
        .route("/", get(shop_page))
        .route_layer(middleware::from_fn(traced))
        .route("/static/shop.min.js", get(bundle))
        .route("/static/shop.min.js.map", get(bundle_map));
    let api = Router::new()
        .route("/api/products", get(products))
        .route("/api/cart", post(add_to_cart))
        .route("/api/checkout", post(checkout))
        .route_layer(middleware::from_fn(traced))
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .layer(middleware::from_fn_with_state(recorder("api"), record))
        .route("/debug/requests", get(seen_requests));
    let partner = Router::new()
        .route("/reviews", get(reviews))
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .layer(middleware::from_fn_with_state(recorder("partner"), record));

    let servers = [
        (args.listen, page.with_state(state.clone())),
        (args.api_listen, api.with_state(state.clone())),
        (args.partner_listen, partner.with_state(state.clone())),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, router) in servers {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on {addr}"))?;
        tasks.spawn(async move { axum::serve(listener, router).await });
    }
    tracing::info!(
        page = %state.site.page_origin,
        api = %state.site.api_origin,
        partner = %state.site.partner_origin,
        bridge = %state.site.bridge_url,
        "demo shop ready: open {}/",
        state.site.page_origin
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        done = tasks.join_next() => {
            if let Some(result) = done {
                result.context("server task")?.context("server")?;
            }
        }
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    // Flush the last spans.
    provider.shutdown().context("flushing spans")?;
    Ok(())
}

/// Logs on stderr; this crate's spans to OTLP/gRPC as `service.name = demo-shop`.
fn init_tracing(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("OTLP exporter to {endpoint}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("demo-shop").build())
        .build();
    let own_spans = Targets::new().with_target("demo_shop", LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("demo-shop"))
                .with_filter(own_spans),
        )
        .with(Targets::new().with_default(LevelFilter::INFO))
        .init();
    Ok(provider)
}

/// Reads W3C trace context from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `00-{trace id}-{span id}-{flags}` of the current span.
fn current_traceparent() -> String {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Runs the request inside a SERVER span that continues the incoming `traceparent`, and
/// returns that span's context in `Server-Timing`. CORS preflights are not traced.
async fn traced(req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %req.uri().path(),
        http.response.status_code = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    let _ = span.set_parent(parent);
    async move {
        let mut response = next.run(req).await;
        let span = tracing::Span::current();
        let status = response.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "error");
        }
        let timing = format!("traceparent;desc=\"{}\"", current_traceparent());
        if let Ok(v) = HeaderValue::from_str(&timing) {
            response.headers_mut().insert("server-timing", v);
        }
        response
    }
    .instrument(span)
    .await
}

/// Cross-origin access for the shop page: preflights allow `traceparent`, responses expose
/// `Server-Timing`.
async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = HeaderValue::from_str(&state.site.page_origin).expect("an origin is ASCII");
    let mut response = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, traceparent, tracestate"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("server-timing"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// Notes the requests one service receives, with their `traceparent`.
#[derive(Clone)]
struct Recorder {
    service: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn record(State(recorder): State<Recorder>, req: Request, next: Next) -> Response {
    recorder.seen.lock().unwrap().push(Seen {
        service: recorder.service,
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        traceparent: req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    next.run(req).await
}

async fn seen_requests(State(state): State<AppState>) -> Response {
    let seen = serde_json::to_value(&*state.seen.lock().unwrap()).unwrap_or_default();
    json_response(StatusCode::OK, &seen)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The shop page, rendered with the server span's context for the loader.
async fn shop_page(State(state): State<AppState>) -> Response {
    let traceparent = current_traceparent();
    let site = &state.site;
    let head_scripts: String = site
        .head_scripts
        .iter()
        .map(|src| format!("<script src=\"{}\"></script>\n", escape(src)))
        .collect();
    let html = PAGE
        .replace("{{TRACEPARENT}}", &traceparent)
        .replace("{{HEAD_SCRIPTS}}", &head_scripts)
        .replace("{{RUM_BRIDGE_URL}}", &escape(&site.bridge_url))
        .replace("{{APP_KEY}}", &escape(&site.app_key))
        .replace("{{API_ORIGIN}}", &escape(&site.api_origin))
        .replace("{{PARTNER_ORIGIN}}", &escape(&site.partner_origin));
    let server_timing = format!("traceparent;desc=\"{traceparent}\"");
    ([("server-timing", server_timing)], Html(html)).into_response()
}

/// The page's minified script.
async fn bundle() -> Response {
    static_file("text/javascript; charset=utf-8", BUNDLE)
}

/// The script's source map (the bridge may fetch it when its origin is in `fetch_origins`).
async fn bundle_map() -> Response {
    static_file("application/json", BUNDLE_MAP)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Escapes text for an HTML attribute value in double quotes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The "database" query, as a child span with the semantic-convention database attributes.
async fn select_products() -> Vec<serde_json::Value> {
    let span = tracing::info_span!(
        "SELECT products",
        otel.kind = "client",
        db.system.name = "sqlite",
        db.operation.name = "SELECT",
        db.collection.name = "products",
        db.query.text = PRODUCTS_QUERY,
    );
    async {
        tokio::time::sleep(Duration::from_millis(12)).await;
        PRODUCTS
            .iter()
            .map(|(sku, name, price)| json!({"sku": sku, "name": name, "price_cents": price}))
            .collect()
    }
    .instrument(span)
    .await
}

async fn products() -> Response {
    json_response(StatusCode::OK, &json!(select_products().await))
}

#[derive(serde::Deserialize)]
struct CartItem {
    sku: String,
    qty: u32,
}

async fn add_to_cart(body: axum::body::Bytes) -> Response {
    let Ok(item) = serde_json::from_slice::<CartItem>(&body) else {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "bad cart item"}));
    };
    let products = select_products().await;
    match products.iter().find(|p| p["sku"] == item.sku.as_str()) {
        Some(product) => {
            let total = product["price_cents"].as_u64().unwrap_or(0) * u64::from(item.qty);
            tracing::info!(sku = %item.sku, qty = item.qty, "added to cart");
            json_response(
                StatusCode::OK,
                &json!({"sku": item.sku, "qty": item.qty, "total_cents": total}),
            )
        }
        None => json_response(StatusCode::NOT_FOUND, &json!({"error": "unknown sku"})),
    }
}

/// Checkout always fails: the payment provider is "down" (an error span, HTTP 503).
async fn checkout() -> Response {
    select_products().await;
    let payment = tracing::info_span!(
        "POST payments",
        otel.kind = "client",
        otel.status_code = "error",
        server.address = "payments.example",
        error.type = "timeout",
    );
    async { tokio::time::sleep(Duration::from_millis(5)).await }
        .instrument(payment)
        .await;
    tracing::warn!("checkout failed: payment provider unavailable");
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "payment provider unavailable"}),
    )
}

/// The partner's reviews (not instrumented: a third party).
async fn reviews() -> Response {
    json_response(
        StatusCode::OK,
        &json!([
            {"sku": "SKU-123", "stars": 5, "text": "Great crema."},
            {"sku": "SKU-456", "stars": 4, "text": "Takes a while, worth it."}
        ]),
    )
}
