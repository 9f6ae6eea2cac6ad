//! The real Splunk RUM agent (npm `@splunk/otel-web`, bundled with esbuild as its README
//! shows) in headless Chromium, with its `beaconEndpoint` at the daemon's `/v1/rum` and the app
//! key as its `rumAccessToken` (sent as `?auth=`); the daemon exports to a real collector
//! (rotel).
//!
//! The page is served from 127.0.0.1 by a "server" whose span rendered it (`Server-Timing:
//! traceparent`, which the agent reads); the bridge is on another port, so the agent's beacons
//! are cross-origin. The test loads the page, clicks "Add to cart" (a same-origin fetch whose
//! `traceparent` the API records), clicks "Checkout" (an uncaught `TypeError`), leaves the page
//! (the agent reports web vitals when the page is hidden) and checks what the collector got.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use common::browser::{javascript, Browser};
use common::*;

const SERVER_TRACE: &str = "2ac3b8d7e5f6071829304a5b6c7d8e9f";
const SERVER_SPAN: &str = "d4e5f60718293a4b";
const APP: &str = "splunk-live-shop";
const APP_KEY: &str = "pk_splunk_live";

/// The agent bundled for the browser with esbuild (both from tests/browser/node_modules), its
/// default export on `window.SplunkRum` as the CDN build has it.
fn agent_bundle() -> String {
    let browser = repo_root().join("tests/browser");
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("entry.js");
    std::fs::write(
        &entry,
        "import SplunkRum from '@splunk/otel-web';\nwindow.SplunkRum = SplunkRum;\n",
    )
    .unwrap();
    let out = dir.path().join("splunk-otel-web.js");
    let esbuild: PathBuf = browser.join("node_modules/.bin/esbuild");
    let status = std::process::Command::new(&esbuild)
        .arg(&entry)
        .args(["--bundle", "--format=iife", "--log-level=warning"])
        .arg(format!("--outfile={}", out.display()))
        .env("NODE_PATH", browser.join("node_modules"))
        .current_dir(&browser)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/install-test-deps.sh (npm ci in tests/browser)",
                esbuild.display()
            )
        });
    assert!(status.success(), "esbuild failed");
    std::fs::read_to_string(out).unwrap()
}

/// The shop page: the agent initialised as its README shows, beacons to the bridge.
fn page(bridge: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Splunk live shop</title>
<script src="/splunk-otel-web.js"></script>
<script>
  SplunkRum.init({{
    beaconEndpoint: "{bridge}/v1/rum",
    allowInsecureBeacon: true,
    rumAccessToken: "{APP_KEY}",
    applicationName: "splunk-live",
    version: "2.0.0",
    deploymentEnvironment: "live-test",
    bufferTimeout: 500,
  }});
</script>
</head><body>
<h1>Splunk live shop</h1>
<p>A page for the Splunk agent to measure: a heading, this text, two buttons.</p>
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
async fn the_splunk_rum_agent_in_chromium_is_correlated_end_to_end() {
    let bundle = agent_bundle();
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;

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
            "/splunk-otel-web.js",
            get(move || {
                let bundle = bundle.clone();
                async move { javascript(bundle) }
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
            "window.SplunkRum && window.SplunkRum.inited",
        )
        .await;
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
    let spans = poll("the fetch CLIENT span at the collector", WAIT, || {
        let spans = sink.spans();
        spans
            .iter()
            .any(|s| hex(&s.span.span_id) == call_span)
            .then_some(spans)
    })
    .await;
    browser.click("#checkout").await;
    poll("the TypeError at the collector", WAIT, || {
        events(&sink.logs(), "exception")
            .any(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
            .then_some(())
    })
    .await;
    // Hidden, the page reports its web vitals.
    browser.leave_page().await;
    let logs = poll("the page's web vitals", WAIT, || {
        let logs = sink.logs();
        let names = vital_names(&logs);
        (names.contains("lcp") && names.contains("cls")).then_some(logs)
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
    assert_eq!(
        attr(&doc.resource.attributes, "telemetry.sdk.name").as_deref(),
        Some("@splunk/otel-web")
    );
    let session = attr(&doc.span.attributes, "session.id").expect("session.id");
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
    assert_eq!(
        attr(&call.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );

    // The uncaught TypeError as an exception log record on the page-load trace.
    let type_error = events(&logs, "exception")
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .unwrap();
    assert!(attr(&type_error.record.attributes, "exception.message")
        .unwrap()
        .contains("pricing rules are undefined"));
    assert_eq!(service_name(&type_error.resource).as_deref(), Some(APP));
    assert_eq!(hex(&type_error.record.trace_id), SERVER_TRACE);
    assert_eq!(
        attr(&type_error.record.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    let lcp = events(&logs, "browser.web_vital")
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("lcp"))
        .unwrap();
    assert_eq!(hex(&lcp.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&lcp.record.span_id), page_span);

    // Web-vital histograms with exemplars on the page load.
    let metrics = poll_metrics(&sink, &["browser.web_vital.lcp"]).await;
    let point = first_histogram_point(&metrics, "browser.web_vital.lcp");
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
