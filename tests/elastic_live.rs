//! The real Elastic RUM agent (npm `@elastic/apm-rum`, its prebuilt UMD bundle) in headless
//! Chromium, pointed at the daemon with `serverUrl` (and the app key in `serverUrlPrefix`); the
//! daemon exports to a real collector (rotel).
//!
//! The page is served from 127.0.0.1 by a "server" whose span rendered it: the page hands its
//! ids to the agent as `pageLoadTraceId`/`pageLoadSpanId`, as a server-rendered page does. The
//! bridge is on another port, so the agent goes through the CORS preflight. The test loads
//! the page, clicks "Add to cart" (a same-origin fetch whose `traceparent` the API records),
//! clicks "Checkout" (an uncaught `TypeError`), and checks what the collector received.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use common::browser::{javascript, npm_file, Browser};
use common::*;

const SERVER_TRACE: &str = "1bf2a7c6d4e5f60718293a4b5c6d7e8f";
const SERVER_SPAN: &str = "c3d4e5f607182930";
const APP: &str = "elastic-live-shop";
const APP_KEY: &str = "pk_elastic_live";

/// The shop page: the agent initialised as its README shows, with the bridge as `serverUrl`.
fn page(bridge: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Elastic live shop</title>
<script src="/elastic-apm-rum.umd.min.js"></script>
<script>
  elasticApm.init({{
    serverUrl: "{bridge}",
    serverUrlPrefix: "/intake/v2/rum/events?key={APP_KEY}",
    serviceName: "elastic-live",
    serviceVersion: "2.0.0",
    environment: "live-test",
    session: true,
    pageLoadTraceId: "{SERVER_TRACE}",
    pageLoadSpanId: "{SERVER_SPAN}",
    pageLoadSampled: true,
  }});
</script>
</head><body>
<h1>Elastic live shop</h1>
<p>A page for the Elastic agent to measure: a heading, this text, two buttons.</p>
<button id="add-to-cart">Add to cart</button>
<button id="checkout">Checkout</button>
<script>
  document.getElementById("add-to-cart").addEventListener("click", async () => {{
    const response = await fetch("/api/cart", {{
      method: "POST",
      headers: {{ "content-type": "application/json" }},
      body: JSON.stringify({{ sku: "SKU-123", qty: 1 }}),
    }});
    await response.json();
    window.cartUpdated = true;
  }});
  document.getElementById("checkout").addEventListener("click", () => {{
    throw new TypeError("pricing rules are undefined");
  }});
</script>
</body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elastic_rum_agent_in_chromium_is_correlated_end_to_end() {
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
    let html = page(bridge.url("").trim_end_matches('/'));
    let router = axum::Router::new()
        .route(
            "/",
            get(move || async move {
                (
                    [(
                        "server-timing",
                        format!("traceparent;desc=\"00-{SERVER_TRACE}-{SERVER_SPAN}-01\""),
                    )],
                    Html(html),
                )
            }),
        )
        .route(
            "/elastic-apm-rum.umd.min.js",
            get(|| async {
                javascript(npm_file(
                    "@elastic/apm-rum/dist/bundles/elastic-apm-rum.umd.min.js",
                ))
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
            "the agent to start",
            "window.elasticApm && window.elasticApm.isActive()",
        )
        .await;
    // The agent sends the page load shortly after the load event.
    poll("the page load at the collector", WAIT, || {
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
    let sent = traceparents.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one traceparent on the API call: {sent:?}");
    let (call_trace, call_span) = (sent[0][3..35].to_owned(), sent[0][36..52].to_owned());
    // The click's transaction (with the fetch span) ends after the call; then it is sent.
    let spans = poll("the fetch CLIENT span at the collector", WAIT, || {
        let spans = sink.spans();
        spans
            .iter()
            .any(|s| hex(&s.span.span_id) == call_span)
            .then_some(spans)
    })
    .await;
    browser.click("#checkout").await;
    let logs = poll("the TypeError and the page-load vitals", WAIT, || {
        let logs = sink.logs();
        let error = events(&logs, "exception")
            .any(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"));
        let names = vital_names(&logs);
        (error && names.contains("ttfb") && names.contains("fcp")).then_some(logs)
    })
    .await;
    browser.leave_page().await;

    let doc = spans
        .iter()
        .find(|s| s.span.name == "documentLoad")
        .unwrap();
    assert_eq!(
        hex(&doc.span.trace_id),
        SERVER_TRACE,
        "page load in the server trace"
    );
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
    assert_eq!(
        attr(&doc.resource.attributes, "telemetry.sdk.name").as_deref(),
        Some("rum-js")
    );
    assert!(attr(&doc.span.attributes, "session.id").is_some());
    assert!(doc.span.events.iter().any(|e| e.name == "loadEventEnd"));
    assert!(spans
        .iter()
        .all(|s| s.span.name == "documentLoad" || hex(&s.span.span_id) != SERVER_SPAN));
    let page_span = hex(&doc.span.span_id);

    // The fetch CLIENT span has exactly the ids the API received in `traceparent`.
    let call = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == call_span)
        .unwrap();
    assert_eq!(call.span.kind, 3, "CLIENT");
    assert_eq!(hex(&call.span.trace_id), call_trace);
    assert_eq!(service_name(&call.resource).as_deref(), Some(APP));
    assert_eq!(
        attr(&call.span.attributes, "http.request.method").as_deref(),
        Some("POST")
    );

    // The uncaught TypeError as an exception log record with trace ids.
    let type_error = events(&logs, "exception")
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .unwrap();
    assert_eq!(
        attr(&type_error.record.attributes, "exception.message").as_deref(),
        Some("pricing rules are undefined")
    );
    assert_eq!(service_name(&type_error.resource).as_deref(), Some(APP));
    assert_eq!(type_error.record.trace_id.len(), 16);
    assert_eq!(type_error.record.span_id.len(), 8);
    let stack = attr(&type_error.record.attributes, "exception.stacktrace").unwrap();
    assert!(stack.contains(&origin), "{stack}");
    for vital in events(&logs, "browser.web_vital") {
        assert_eq!(hex(&vital.record.trace_id), SERVER_TRACE, "{vital:?}");
        assert_eq!(hex(&vital.record.span_id), page_span);
    }

    // Web-vital histograms with exemplars on the page load.
    let metrics = poll_metrics(&sink, &["browser.web_vital.ttfb"]).await;
    let point = first_histogram_point(&metrics, "browser.web_vital.ttfb");
    assert_eq!(
        attr(&point.attributes, "rum.app.name").as_deref(),
        Some(APP)
    );
    assert!(point
        .exemplars
        .iter()
        .any(|e| hex(&e.trace_id) == SERVER_TRACE && hex(&e.span_id) == page_span));

    browser.close().await;
}
