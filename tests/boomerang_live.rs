//! The real Boomerang (npm `boomerangjs`, built as its docs describe: `boomerang.js` and the
//! plugins concatenated, then `BOOMR.init`) in headless Chromium, with only its `beacon_url`
//! pointed at the daemon (`/v1/boomerang?key=<app key>`); the daemon exports to a real
//! collector (rotel).
//!
//! The page is served from 127.0.0.1 with the server span that rendered it in
//! `Server-Timing: traceparent` (and a script that answers after 300 ms, so that the page paints
//! before its load event and the page-load beacon carries LCP). The test loads it, waits for the page-load beacon, clicks "Add
//! to cart" (a fetch: an AutoXHR beacon), clicks "Checkout" (an uncaught `TypeError`: an error
//! beacon), leaves the page (the unload beacon with INP), and checks what the collector got.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use common::browser::{javascript, npm_file, Browser};
use common::*;

const SERVER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SERVER_SPAN: &str = "b7ad6b7169203331";
const APP: &str = "boomerang-live-shop";
const APP_KEY: &str = "pk_boomerang_live";

/// The plugins of Boomerang's full build (`plugins.json` order) that this page exercises.
const PLUGINS: [&str; 10] = [
    "continuity",
    "auto-xhr",
    "rt",
    "painttiming",
    "navtiming",
    "restiming",
    "compression",
    "errors",
    "eventtiming",
    "bfcache",
];

/// boomerang.js, the plugins and a last plugin with `BOOMR.init`, as a Boomerang build makes.
fn boomerang_build(beacon_url: &str) -> String {
    let mut js = npm_file("boomerangjs/boomerang.js");
    for plugin in PLUGINS {
        js.push_str("\n;\n");
        js.push_str(&npm_file(&format!("boomerangjs/plugins/{plugin}.js")));
    }
    js.push_str(&format!(
        r#"
;
BOOMR.init({{
  beacon_url: "{beacon_url}",
  instrument_xhr: true,
  AutoXHR: {{ monitorFetch: true, alwaysSendXhr: true }},
  ResourceTiming: {{ enabled: true }},
  Continuity: {{ enabled: true, afterOnload: true }},
  Errors: {{ enabled: true, sendAfterOnload: true, sendInterval: 500 }},
  EventTiming: {{ enabled: true }}
}});
BOOMR.t_end = new Date().getTime();
"#
    ));
    js.replace("%boomerang_version%", "1.815.1")
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Boomerang live shop</title>
<script src="/boomerang.js"></script>
</head><body>
<h1>Boomerang live shop</h1>
<p>A page for Boomerang to measure: a heading, this text, two buttons.</p>
<button id="add-to-cart">Add to cart</button>
<button id="checkout">Checkout</button>
<script src="/slow.js" async></script>
<script>
  document.getElementById("add-to-cart").addEventListener("click", async () => {
    const end = performance.now() + 80;
    while (performance.now() < end) {}
    const response = await fetch("/api/cart", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "SKU-123", qty: 1 }),
    });
    await response.json();
    window.cartUpdated = true;
  });
  document.getElementById("checkout").addEventListener("click", function onCheckout() {
    throw new TypeError("pricing rules are undefined");
  });
</script>
</body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boomerang_in_chromium_is_correlated_end_to_end() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;

    // The page's origin must be known for the app's allowed_origins: bind its port first.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", site.local_addr().unwrap());
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n[[apps]]\nname = \"{APP}\"\nkey = \"{APP_KEY}\"\n\
         allowed_origins = [\"{origin}\"]\nenvironment = \"live-test\"\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    let traceparents: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = traceparents.clone();
    let script = boomerang_build(&bridge.url(&format!("/v1/boomerang?key={APP_KEY}")));
    let router = axum::Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [(
                        "server-timing",
                        format!("traceparent;desc=\"00-{SERVER_TRACE}-{SERVER_SPAN}-01\""),
                    )],
                    Html(PAGE),
                )
            }),
        )
        .route(
            "/boomerang.js",
            get(move || async move { javascript(script) }),
        )
        // Holds the load event back a little, so the first paint (LCP) is known when
        // Boomerang sends its page-load beacon at onload.
        .route(
            "/slow.js",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                javascript("window.slowLoaded = true;".to_owned())
            }),
        )
        .route(
            "/api/cart",
            post(move |headers: HeaderMap| async move {
                if let Some(tp) = headers.get("traceparent") {
                    seen.lock().unwrap().push(tp.to_str().unwrap().to_owned());
                }
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"items":1}"#,
                )
                    .into_response()
            }),
        );
    tokio::spawn(async move { axum::serve(site, router).await.unwrap() });

    let browser = Browser::start().await;
    browser.goto(&format!("{origin}/")).await;
    browser
        .wait_for(
            "the page-load beacon",
            "window.BOOMR && BOOMR.hasSentPageLoadBeacon && BOOMR.hasSentPageLoadBeacon()",
        )
        .await;
    poll("documentLoad at the collector", WAIT, || {
        sink.spans()
            .iter()
            .any(|s| s.span.name == "documentLoad")
            .then_some(())
    })
    .await;
    browser.click("#add-to-cart").await;
    browser
        .wait_for("the cart call to complete", "window.cartUpdated")
        .await;
    browser.click("#checkout").await;
    poll("the fetch span and the exception", WAIT, || {
        let call = sink.spans().iter().any(|s| s.span.kind == 3);
        let error = events(&sink.logs(), "exception").count() > 0;
        (call && error).then_some(())
    })
    .await;
    browser.leave_page().await;

    let spans = sink.spans();
    let loads: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "documentLoad")
        .collect();
    assert_eq!(loads.len(), 1, "one page load");
    let doc = loads[0];
    assert_eq!(hex(&doc.span.trace_id), SERVER_TRACE, "in the server trace");
    assert_eq!(
        hex(&doc.span.parent_span_id),
        SERVER_SPAN,
        "under the server span"
    );
    assert_eq!(service_name(&doc.resource).as_deref(), Some(APP));
    assert_eq!(
        attr(&doc.resource.attributes, "deployment.environment.name").as_deref(),
        Some("live-test")
    );
    let session = attr(&doc.span.attributes, "session.id").expect("session.id on documentLoad");
    let page_span = hex(&doc.span.span_id);
    assert!(spans.iter().any(|s| s.span.name == "resourceFetch"
        && hex(&s.span.parent_span_id) == page_span
        && attr(&s.span.attributes, "url.full").is_some_and(|u| u.ends_with("/boomerang.js"))));

    // Boomerang propagates no traceparent; its fetch span is a CLIENT span of the session.
    assert!(traceparents.lock().unwrap().is_empty());
    let call = spans.iter().find(|s| s.span.kind == 3).unwrap();
    assert_eq!(
        attr(&call.span.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert!(attr(&call.span.attributes, "url.full")
        .unwrap()
        .ends_with("/api/cart"));
    assert_eq!(
        attr(&call.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );

    // The exception on the page trace, and LCP, TTFB and (from the unload beacon) INP.
    let logs = poll("lcp, ttfb and inp", WAIT, || {
        let logs = sink.logs();
        let names = vital_names(&logs);
        ["lcp", "ttfb", "inp"]
            .iter()
            .all(|v| names.contains(*v))
            .then_some(logs)
    })
    .await;
    let type_error = events(&logs, "exception")
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .expect("the uncaught TypeError");
    assert_eq!(
        attr(&type_error.record.attributes, "exception.message").as_deref(),
        Some("pricing rules are undefined")
    );
    let stack = attr(&type_error.record.attributes, "exception.stacktrace").unwrap();
    assert!(stack.contains(&origin), "{stack}");
    assert_eq!(hex(&type_error.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&type_error.record.span_id), page_span);
    assert_eq!(
        attr(&type_error.record.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    for vital in events(&logs, "browser.web_vital") {
        assert_eq!(hex(&vital.record.trace_id), SERVER_TRACE, "{vital:?}");
    }
    let metrics = poll_metrics(&sink, &["browser.web_vital.lcp", "browser.web_vital.inp"]).await;
    let point = first_histogram_point(&metrics, "browser.web_vital.inp");
    assert_eq!(
        attr(&point.attributes, "rum.app.name").as_deref(),
        Some(APP)
    );
    assert_eq!(
        bridge
            .metric("rum_bridge_requests_total{route=\"/v1/boomerang\",status=\"400\"}")
            .await,
        0.0
    );

    browser.close().await;
}
