//! The real Grafana Faro Web SDK (npm `@grafana/faro-web-sdk` + `@grafana/faro-web-tracing`,
//! their prebuilt browser bundles) in headless Chromium, pointed at the daemon with only its
//! `url` changed to `/collect/{app_key}`; the daemon exports to a real collector (rotel).
//!
//! The page is served from 127.0.0.1 with the server span that rendered it in
//! `Server-Timing: traceparent`. The test loads it, clicks "Add to cart" (a same-origin fetch
//! whose `traceparent` the API records, then `console.info`), clicks "Checkout" (`console.warn`,
//! `console.error`, an uncaught `TypeError`), leaves the page (hidden: Faro flushes, the last
//! web vitals go out), and checks what the collector received.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use common::browser::{javascript, npm_file, Browser};
use common::*;

const SERVER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SERVER_SPAN: &str = "b7ad6b7169203331";
const APP: &str = "faro-live-shop";
const APP_KEY: &str = "pk_faro_live";

/// The shop page: Faro initialised exactly as its README shows, with the bridge as `url`.
fn page(collect_url: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Faro live shop</title>
<script src="/faro-web-sdk.iife.js"></script>
<script src="/faro-web-tracing.iife.js"></script>
<script>
  const {{ initializeFaro, getWebInstrumentations }} = window.GrafanaFaroWebSdk;
  const {{ TracingInstrumentation }} = window.GrafanaFaroWebTracing;
  initializeFaro({{
    url: "{collect_url}",
    app: {{ name: "{APP}", version: "1.0.0", environment: "live-test" }},
    instrumentations: [...getWebInstrumentations(), new TracingInstrumentation()],
  }});
</script>
</head><body>
<h1>Faro live shop</h1>
<p>A page for the Faro SDK to measure: a heading, this text, two buttons.</p>
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
    console.info("cart updated", "SKU-123");
    window.cartUpdated = true;
  }});
  document.getElementById("checkout").addEventListener("click", () => {{
    console.warn("checkout started");
    console.error("payment form missing");
    throw new TypeError("pricing rules are undefined");
  }});
</script>
</body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faro_web_sdk_in_chromium_is_correlated_end_to_end() {
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
    let html = page(&bridge.url(&format!("/collect/{APP_KEY}")));
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
            "/faro-web-sdk.iife.js",
            get(|| async {
                javascript(npm_file(
                    "@grafana/faro-web-sdk/dist/bundle/faro-web-sdk.iife.js",
                ))
            }),
        )
        .route(
            "/faro-web-tracing.iife.js",
            get(|| async {
                javascript(npm_file(
                    "@grafana/faro-web-tracing/dist/bundle/faro-web-tracing.iife.js",
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
        .wait_for("Faro to start", "window.faro && window.faro.api")
        .await;
    browser.click("#add-to-cart").await;
    browser
        .wait_for("the cart call to complete", "window.cartUpdated")
        .await;
    browser.click("#checkout").await;
    // Faro reports the page load after the load event and exports its spans in batches a
    // second apart: both must be out before the page goes away.
    poll(
        "Faro's page load and fetch span at the collector",
        WAIT,
        || {
            let spans = sink.spans();
            let page_load = spans.iter().any(|s| s.span.name == "documentLoad");
            let call = spans.iter().any(|s| s.span.kind == 3);
            (page_load && call).then_some(())
        },
    )
    .await;
    browser.leave_page().await;

    // The fetch CLIENT span has exactly the ids the API received in `traceparent`.
    let sent = traceparents.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one traceparent on the API call: {sent:?}");
    let (call_trace, call_span) = (&sent[0][3..35], &sent[0][36..52]);

    let spans = poll("documentLoad and the fetch CLIENT span", WAIT, || {
        let spans = sink.spans();
        spans
            .iter()
            .any(|s| hex(&s.span.span_id) == call_span)
            .then_some(spans)
    })
    .await;
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
    let session = attr(&doc.span.attributes, "session.id").expect("session.id on documentLoad");
    let page_span = hex(&doc.span.span_id);

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
    assert_eq!(
        attr(&call.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );

    // Exceptions, console logs and all five web vitals.
    let logs = poll("exceptions, console logs and five vitals", WAIT, || {
        let logs = sink.logs();
        let done = vital_names(&logs).len() == 5
            && events(&logs, "exception").count() >= 2
            && events(&logs, "browser.console").count() >= 2;
        done.then_some(logs)
    })
    .await;
    let type_error = logs
        .iter()
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .expect("the uncaught TypeError");
    assert_eq!(
        attr(&type_error.record.attributes, "exception.message").as_deref(),
        Some("pricing rules are undefined")
    );
    assert_eq!(service_name(&type_error.resource).as_deref(), Some(APP));
    let stack = attr(&type_error.record.attributes, "exception.stacktrace").unwrap();
    assert!(stack.contains(&origin), "{stack}");
    assert_eq!(hex(&type_error.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&type_error.record.span_id), page_span);
    assert!(
        logs.iter().any(|l| l.record.event_name == "exception"
            && attr(&l.record.attributes, "exception.message")
                .is_some_and(|m| m.contains("payment form missing"))),
        "console.error arrives as an exception"
    );
    let warn = logs
        .iter()
        .find(|l| l.record.event_name == "browser.console" && l.record.severity_number == 13)
        .expect("console.warn as a WARN log");
    assert_eq!(
        attr(&warn.record.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    for vital in events(&logs, "browser.web_vital") {
        assert_eq!(hex(&vital.record.trace_id), SERVER_TRACE, "{vital:?}");
        assert_eq!(service_name(&vital.resource).as_deref(), Some(APP));
    }

    // Web-vital histograms with exemplars on the page load, and the HTTP client histogram.
    let metrics = poll_metrics(&sink, &RUM_HISTOGRAMS).await;
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
