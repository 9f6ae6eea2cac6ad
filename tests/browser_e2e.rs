//! The product's promise, proven in a real browser: one trace from a click to the backend's
//! "database" query, and numbers that agree with Google's `web-vitals`.
//!
//! Headless Chromium opens the demo shop (`examples/demo-shop`, a real instrumented backend
//! exporting to the same collector) with the bridge's `/rum.js` loader and, beside it, Google's
//! `web-vitals` (its npm IIFE bundle, `reportAllChanges`) writing its values into a page global.
//! The test clicks "Add to cart" (a slow handler, then a cross-origin API call listed in
//! `data-propagate`), "Checkout" (an API call answered 503, and a `TypeError` thrown in the click
//! handler), "Load reviews" (a partner origin *not* in `data-propagate`) and "Break it" (an
//! uncaught `TypeError` in the page's minified bundle, resolved by the bridge with the bundle's
//! source map from `examples/demo-shop/static`), leaves the page, and checks what rotel
//! forwarded from the bridge and from the backend.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use axum::routing::get;
use common::browser::{javascript, npm_file, serve, wait_listening, Browser};
use common::*;
use serde_json::Value;

const APP: &str = "demo-shop-web";
const APP_KEY: &str = "pk_demo_shop";
/// `service.name` of the demo backend's own spans.
const BACKEND: &str = "demo-shop";

/// Collects Google web-vitals' running values (`reportAllChanges`) into `window.__webVitals`.
const COLLECT_WEB_VITALS: &str = r#"window.__webVitals = {};
for (const on of ["onLCP", "onFCP", "onTTFB", "onCLS", "onINP"]) {
  webVitals[on]((m) => { window.__webVitals[m.name] = m.value; }, { reportAllChanges: true });
}
"#;

/// The demo-shop example binary, built by `cargo test --all-targets` next to this test's
/// directory: `target/<profile>/deps/<this test>` → `target/<profile>/examples/demo-shop`.
fn demo_shop_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir.join("examples/demo-shop");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --all-targets` (or `cargo build --example demo-shop`)",
        path.display()
    );
    path
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The demo backend (page, API and partner origins).
struct DemoShop {
    api: SocketAddr,
    _proc: Proc,
}

impl DemoShop {
    /// Picks the ports: the page origin must be known to the bridge's config first.
    fn ports() -> (SocketAddr, SocketAddr, SocketAddr) {
        (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        )
    }

    async fn start(
        (page, api, partner): (SocketAddr, SocketAddr, SocketAddr),
        bridge: &Bridge,
        collector: SocketAddr,
        head_scripts: &[String],
    ) -> DemoShop {
        let mut cmd = Command::new(demo_shop_binary());
        cmd.arg("--listen")
            .arg(page.to_string())
            .arg("--api-listen")
            .arg(api.to_string())
            .arg("--partner-listen")
            .arg(partner.to_string())
            .arg("--bridge-url")
            .arg(bridge.url(""))
            .arg("--app-key")
            .arg(APP_KEY)
            .arg("--otlp-endpoint")
            .arg(format!("http://{collector}"))
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for src in head_scripts {
            cmd.arg("--head-script").arg(src);
        }
        let child = cmd.spawn().expect("start demo-shop");
        let proc = Proc {
            child,
            name: "demo-shop",
        };
        for addr in [page, api, partner] {
            wait_listening("demo-shop to listen", addr).await;
        }
        DemoShop { api, _proc: proc }
    }

    /// The requests the API and the partner received, with their `traceparent` (or null).
    async fn seen(&self) -> Vec<Value> {
        let body = reqwest::get(format!("http://{}/debug/requests", self.api))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

/// The span of `service` named `name`.
fn span<'a>(spans: &'a [SpanRecord], service: &str, name: &str) -> Option<&'a SpanRecord> {
    spans
        .iter()
        .find(|s| s.span.name == name && service_name(&s.resource).as_deref() == Some(service))
}

/// The browser's CLIENT span for a call to a URL containing `path`.
fn client_span<'a>(spans: &'a [SpanRecord], path: &str) -> Option<&'a SpanRecord> {
    spans.iter().find(|s| {
        s.span.kind == 3
            && service_name(&s.resource).as_deref() == Some(APP)
            && attr(&s.span.attributes, "url.full").is_some_and(|u| u.contains(path))
    })
}

/// One line per span, for failure messages.
fn describe(spans: &[SpanRecord]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} {:?} kind={} trace={} span={} parent={} url={:?}\n",
                service_name(&s.resource).unwrap_or_default(),
                s.span.name,
                s.span.kind,
                hex(&s.span.trace_id),
                hex(&s.span.span_id),
                hex(&s.span.parent_span_id),
                attr(&s.span.attributes, "url.full"),
            )
        })
        .collect()
}

fn is_child(child: &SpanRecord, parent: &SpanRecord) -> bool {
    child.span.trace_id == parent.span.trace_id && child.span.parent_span_id == parent.span.span_id
}

/// The largest value the bridge exported for one web vital (reports of a vital only grow).
fn exported_vital(logs: &[LogRecordEntry], name: &str) -> f64 {
    events(logs, "browser.web_vital")
        .filter(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some(name))
        .filter_map(|l| {
            attr(&l.record.attributes, "browser.web_vital.value")?
                .parse()
                .ok()
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_is_traced_from_the_browser_to_the_database() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let ports = DemoShop::ports();
    let page_origin = format!("http://{}", ports.0);
    // The bundle's maps where the demo's own config has them (`examples/demo-shop/rum-bridge.toml`).
    let static_dir = repo_root().join("examples/demo-shop/static");
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n[[sourcemaps.local]]\n\
         url_prefix = \"{page_origin}/static/\"\ndir = {static_dir:?}\n\n\
         [[apps]]\nname = \"{APP}\"\nkey = \"{APP_KEY}\"\n\
         allowed_origins = [\"{page_origin}\"]\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    // Google's web-vitals, served from another local origin, loaded before the loader.
    let vitals_site = serve(
        axum::Router::new()
            .route(
                "/web-vitals.iife.js",
                get(|| async { javascript(npm_file("web-vitals/dist/web-vitals.iife.js")) }),
            )
            .route(
                "/collect-web-vitals.js",
                get(|| async { javascript(COLLECT_WEB_VITALS.to_owned()) }),
            ),
    )
    .await;
    let head_scripts = [
        format!("http://{vitals_site}/web-vitals.iife.js"),
        format!("http://{vitals_site}/collect-web-vitals.js"),
    ];
    let shop = DemoShop::start(ports, &bridge, rotel.grpc, &head_scripts).await;

    let browser = Browser::start().await;
    browser.goto(&format!("{page_origin}/")).await;
    browser
        .wait_for("the loader's API", "window.rumBridge")
        .await;
    browser
        .wait_for(
            "the products call made during the page load",
            "document.body.dataset.products",
        )
        .await;
    browser
        .wait_for(
            "web-vitals' LCP, FCP and TTFB",
            "['LCP', 'FCP', 'TTFB'].every((n) => n in window.__webVitals)",
        )
        .await;
    browser
        .wait_for(
            "the promo banner's layout shift",
            "window.__webVitals.CLS > 0",
        )
        .await;

    browser.click("#add-to-cart").await;
    let cart = browser
        .wait_for(
            "the cart answer",
            "document.getElementById('status').dataset.cart",
        )
        .await;
    assert_eq!(cart, "ok");
    browser
        .wait_for("web-vitals' INP of the click", "window.__webVitals.INP")
        .await;
    browser.click("#checkout").await;
    let checkout = browser
        .wait_for(
            "the checkout answer",
            "document.getElementById('status').dataset.checkout",
        )
        .await;
    assert_eq!(checkout, "503");
    browser.click("#reviews").await;
    browser
        .wait_for(
            "the partner's reviews",
            "document.getElementById('status').dataset.reviews",
        )
        .await;
    browser.click("#break").await;
    let google = browser.eval("return window.__webVitals;").await;
    browser.leave_page().await;

    // Propagation: the API got a traceparent on every call, the partner never did.
    let seen = shop.seen().await;
    let traceparent_of = |service: &str, method: &str, path: &str| -> Option<String> {
        let request = seen
            .iter()
            .find(|r| r["service"] == service && r["method"] == method && r["path"] == path)
            .unwrap_or_else(|| panic!("no {method} {path} at the {service}: {seen:?}"));
        request["traceparent"].as_str().map(str::to_owned)
    };
    assert_eq!(
        traceparent_of("partner", "GET", "/reviews"),
        None,
        "a cross-origin URL outside data-propagate gets no traceparent"
    );
    let cart_traceparent = traceparent_of("api", "POST", "/api/cart").expect("traceparent");

    let spans = poll("browser and backend spans", WAIT, || {
        let spans = sink.spans();
        let done = span(&spans, APP, "documentLoad").is_some()
            && client_span(&spans, "/api/checkout").is_some()
            && span(&spans, BACKEND, "POST /api/checkout").is_some();
        done.then_some(spans)
    })
    .await;

    // Page load: documentLoad is the child of the server span that rendered the page.
    let page_server = span(&spans, BACKEND, "GET /").expect("the page's server span");
    assert_eq!(page_server.span.kind, 2, "SERVER");
    let doc = span(&spans, APP, "documentLoad").unwrap();
    assert!(
        is_child(doc, page_server),
        "documentLoad {doc:?} under {page_server:?}"
    );

    // A call during the page load is a child of documentLoad, and the API continues it.
    let products_call = client_span(&spans, "/api/products")
        .unwrap_or_else(|| panic!("the products call's CLIENT span in\n{}", describe(&spans)));
    assert!(is_child(products_call, doc), "{products_call:?}");
    let products_server = span(&spans, BACKEND, "GET /api/products").unwrap();
    assert!(is_child(products_server, products_call));

    // The click: browser CLIENT span → API SERVER span → "database" span, one trace.
    let cart_call = client_span(&spans, "/api/cart").expect("the cart call's CLIENT span");
    assert_eq!(
        cart_traceparent,
        format!(
            "00-{}-{}-01",
            hex(&cart_call.span.trace_id),
            hex(&cart_call.span.span_id)
        ),
        "the CLIENT span has exactly the ids sent in traceparent"
    );
    assert_eq!(
        attr(&cart_call.span.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attr(&cart_call.span.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    let cart_server = span(&spans, BACKEND, "POST /api/cart").unwrap();
    assert_eq!(cart_server.span.kind, 2, "SERVER");
    assert!(
        is_child(cart_server, cart_call),
        "the API's server span is the child of the browser's CLIENT span"
    );
    let query = spans
        .iter()
        .find(|s| s.span.name == "SELECT products" && is_child(s, cart_server))
        .expect("the database span under the cart request");
    assert_eq!(
        attr(&query.span.attributes, "db.system.name").as_deref(),
        Some("sqlite")
    );
    let click = spans
        .iter()
        .find(|s| s.span.span_id == cart_call.span.parent_span_id)
        .expect("the click that started the cart call");
    assert_eq!(hex(&click.span.trace_id), hex(&cart_call.span.trace_id));

    // Checkout: the 503 is on the CLIENT span, and the TypeError thrown in the click handler
    // carries the ids of that click's span, the one active when it was thrown.
    let checkout_call = client_span(&spans, "/api/checkout").unwrap();
    assert_eq!(
        attr(&checkout_call.span.attributes, "http.response.status_code").as_deref(),
        Some("503")
    );
    assert!(is_child(
        span(&spans, BACKEND, "POST /api/checkout").unwrap(),
        checkout_call
    ));
    let with_message = |logs: &[LogRecordEntry], text: &str| {
        events(logs, "exception")
            .find(|l| {
                attr(&l.record.attributes, "exception.message").is_some_and(|m| m.contains(text))
            })
            .cloned()
    };
    let logs = poll("the two TypeErrors and five web vitals", WAIT, || {
        let logs = sink.logs();
        let done = vital_names(&logs).len() == 5
            && with_message(&logs, "pricing rules").is_some()
            && with_message(&logs, "has no discount").is_some();
        done.then_some(logs)
    })
    .await;
    let error = with_message(&logs, "pricing rules").unwrap();
    assert_eq!(
        attr(&error.record.attributes, "exception.type").as_deref(),
        Some("TypeError")
    );
    assert!(
        attr(&error.record.attributes, "exception.message")
            .is_some_and(|m| m.contains("pricing rules are undefined")),
        "{error:?}"
    );
    assert_eq!(service_name(&error.resource).as_deref(), Some(APP));
    assert_eq!(error.record.trace_id, checkout_call.span.trace_id);
    assert_eq!(error.record.span_id, checkout_call.span.parent_span_id);
    assert!(spans.iter().any(|s| s.span.span_id == error.record.span_id));

    // "Break it": the minified bundle's stack, rewritten with its source map to the original
    // file and function names; the stack as the browser sent it is kept beside it.
    let broken = with_message(&logs, "has no discount").unwrap();
    let stack = attr(&broken.record.attributes, "exception.stacktrace").unwrap_or_default();
    let minified = attr(
        &broken.record.attributes,
        "rum.exception.stacktrace.minified",
    )
    .unwrap_or_else(|| panic!("no minified stack kept: {broken:?}"));
    assert!(
        minified.contains("/static/shop.min.js:1:") && !minified.contains("parseCoupon"),
        "{minified}"
    );
    let frames: Vec<&str> = stack
        .lines()
        .filter(|l| l.trim_start().starts_with("at "))
        .collect();
    assert!(
        frames.len() >= 2
            && frames[0].contains("parseCoupon (")
            && frames[0].contains("shop.js:")
            && frames[1].contains("applyCoupon (")
            && frames[1].contains("shop.js:"),
        "resolved stack:\n{stack}\nminified:\n{minified}"
    );
    assert!(!stack.contains("shop.min.js:1:"), "{stack}");

    // Web vitals: events on the page-load trace, the histograms, and the same numbers as
    // Google's library (Event Timing durations are rounded to 8 ms, hence INP's tolerance).
    for vital in events(&logs, "browser.web_vital") {
        assert_eq!(service_name(&vital.resource).as_deref(), Some(APP));
    }
    let lcp = events(&logs, "browser.web_vital")
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("lcp"))
        .unwrap();
    assert_eq!(lcp.record.trace_id, doc.span.trace_id);
    poll_metrics(&sink, &RUM_HISTOGRAMS).await;
    for (name, tolerance) in [
        ("LCP", 1.0),
        ("FCP", 1.0),
        ("TTFB", 1.0),
        ("CLS", 0.001),
        ("INP", 8.0),
    ] {
        let theirs = google[name]
            .as_f64()
            .unwrap_or_else(|| panic!("web-vitals reported no {name}: {google}"));
        let ours = exported_vital(&logs, &name.to_lowercase());
        assert!(
            (ours - theirs).abs() <= tolerance,
            "{name}: the bridge exported {ours}, web-vitals measured {theirs} (± {tolerance})"
        );
    }

    browser.close().await;
}

/// The committed bundle is made from the committed source (`examples/demo-shop/build-bundle.sh`):
/// its map carries `static/shop.js` as it is now, and the bundle points at its map.
#[test]
fn the_demo_bundle_is_built_from_its_source() {
    let dir = repo_root().join("examples/demo-shop/static");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let map: Value = serde_json::from_str(&read("shop.min.js.map")).unwrap();
    assert_eq!(map["sources"], serde_json::json!(["shop.js"]));
    assert!(
        map["sourcesContent"][0].as_str() == Some(read("shop.js").as_str()),
        "static/shop.min.js is stale: run examples/demo-shop/build-bundle.sh"
    );
    assert!(read("shop.min.js")
        .trim_end()
        .ends_with("//# sourceMappingURL=shop.min.js.map"));
}
