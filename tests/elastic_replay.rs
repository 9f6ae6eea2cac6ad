//! Replays the requests the real Elastic RUM agent (`@elastic/apm-rum` 5.17.5) sent from
//! Chromium — gzip NDJSON posted to `/intake/v2/rum/events` and, with `apiVersion: 3`, to
//! `/intake/v3/rum/events` — through the daemon into a real collector, and checks what came
//! out: `documentLoad` under the server span the page gave the agent, the fetch CLIENT span
//! with the ids the browser sent in `traceparent`, the errors as exception log records with
//! trace ids, web-vital events and histograms, and `session.id`. Also a bad line among good
//! ones, and APM Server's answers.

mod common;

use std::io::Read;

use common::*;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const APP: &str = "shop-elastic";
const KEY: &str = "pk_elastic_capture";

/// The NDJSON lines of a captured request (the agent gzips every body).
fn ndjson(req: &Captured) -> Vec<serde_json::Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(&req.body[..])
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The trace and span id the page's fetch sent in `traceparent`.
fn fetch_ids(app_file: &str) -> (String, String) {
    let app = captured(app_file);
    let tp = &app[0]
        .headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .unwrap()
        .1;
    (tp[3..35].to_owned(), tp[36..52].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_elastic_rum_v2_requests_are_correlated_end_to_end() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n[[apps]]\nname = \"{APP}\"\nkey = \"{KEY}\"\n\
         allowed_origins = [\"http://127.0.0.1:18787\"]\nenvironment = \"capture\"\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    let requests = captured("elastic-rum.jsonl");
    assert!(requests.len() >= 3);
    // The CORS preflight a cross-origin agent would send first.
    let resp = bridge
        .client
        .request(
            reqwest::Method::OPTIONS,
            bridge.url("/intake/v2/rum/events"),
        )
        .header("origin", "http://127.0.0.1:18787")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, content-encoding",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // The key as the agent sends it with `serverUrlPrefix: '/intake/v2/rum/events?key=…'`.
    for req in &requests {
        assert_eq!(req.path, "/intake/v2/rum/events");
        let url = bridge.url(&format!("{}?key={KEY}", req.path));
        let resp = replay(&bridge.client, &url, req).await;
        // APM Server's answer to the RUM agent: 202, no body.
        assert_eq!(resp.status(), 202);
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "http://127.0.0.1:18787"
        );
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let page_load = ndjson(&requests[0])
        .into_iter()
        .find_map(|l| {
            let t = l.get("transaction")?;
            (t["type"] == "page-load").then(|| t.clone())
        })
        .unwrap();
    let session = page_load["session"]["id"].as_str().unwrap().to_owned();
    let page_span = page_load["id"].as_str().unwrap().to_owned();
    let (fetch_trace, fetch_span) = fetch_ids("elastic-rum.app-requests.jsonl");

    let spans = poll(
        "the page load, its resources and the fetch span",
        WAIT,
        || {
            let spans = sink.spans();
            let load = spans.iter().any(|s| s.span.name == "documentLoad");
            let fetch = spans.iter().any(|s| hex(&s.span.span_id) == fetch_span);
            let resources = spans
                .iter()
                .filter(|s| s.span.name == "resourceFetch")
                .count();
            (load && fetch && resources >= 3).then_some(spans)
        },
    )
    .await;
    let doc = spans
        .iter()
        .find(|s| s.span.name == "documentLoad")
        .unwrap();
    assert_eq!(hex(&doc.span.trace_id), SERVER_TRACE);
    assert_eq!(hex(&doc.span.parent_span_id), SERVER_SPAN);
    assert_eq!(hex(&doc.span.span_id), page_span);
    assert_eq!(service_name(&doc.resource).as_deref(), Some(APP));
    assert_eq!(
        attr(&doc.resource.attributes, "deployment.environment.name").as_deref(),
        Some("capture")
    );
    assert_eq!(
        attr(&doc.resource.attributes, "service.version").as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        attr(&doc.resource.attributes, "telemetry.sdk.name").as_deref(),
        Some("rum-js")
    );
    assert_eq!(
        attr(&doc.resource.attributes, "telemetry.sdk.version").as_deref(),
        Some("5.17.5")
    );
    assert_eq!(
        attr(&doc.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    let marks: Vec<&str> = doc.span.events.iter().map(|e| e.name.as_str()).collect();
    for mark in [
        "fetchStart",
        "responseEnd",
        "loadEventEnd",
        "largestContentfulPaint",
    ] {
        assert!(marks.contains(&mark), "{mark} in {marks:?}");
    }
    for child in spans
        .iter()
        .filter(|s| matches!(s.span.name.as_str(), "documentFetch" | "resourceFetch"))
    {
        assert_eq!(hex(&child.span.trace_id), SERVER_TRACE);
        assert_eq!(hex(&child.span.parent_span_id), page_span);
        assert_ne!(
            hex(&child.span.span_id),
            SERVER_SPAN,
            "the server span stays unique"
        );
    }

    // The fetch CLIENT span keeps exactly the ids the browser sent in `traceparent`, under the
    // click's user-interaction transaction.
    let client = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == fetch_span)
        .unwrap();
    assert_eq!(hex(&client.span.trace_id), fetch_trace);
    assert_eq!(client.span.kind, 3, "CLIENT");
    assert_eq!(client.span.name, "POST");
    assert_eq!(
        attr(&client.span.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    let click = spans
        .iter()
        .find(|s| s.span.span_id == client.span.parent_span_id)
        .unwrap();
    assert_eq!(click.span.name, "Click - button");
    assert_eq!(service_name(&click.resource).as_deref(), Some(APP));

    // The errors as exception log records with their trace ids: the rejection raised during
    // the page load on documentLoad, the TypeError on the trace the agent gave it.
    let type_error_trace = requests
        .iter()
        .flat_map(ndjson)
        .find_map(|l| {
            let e = l.get("error")?;
            (e["exception"]["type"] == "TypeError")
                .then(|| e["trace_id"].as_str().unwrap().to_owned())
        })
        .unwrap();
    let logs = poll("both exceptions and lcp, fcp, ttfb, cls", WAIT, || {
        let logs = sink.logs();
        let names = vital_names(&logs);
        let exceptions = events(&logs, "exception").count();
        (exceptions >= 2
            && ["lcp", "fcp", "ttfb", "cls"]
                .iter()
                .all(|v| names.contains(*v)))
        .then_some(logs)
    })
    .await;
    let rejection = events(&logs, "exception")
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("Error"))
        .unwrap();
    assert_eq!(hex(&rejection.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&rejection.record.span_id), page_span);
    assert_eq!(
        attr(&rejection.record.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    let type_error = events(&logs, "exception")
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .unwrap();
    assert_eq!(service_name(&type_error.resource).as_deref(), Some(APP));
    assert_eq!(hex(&type_error.record.trace_id), type_error_trace);
    assert!(attr(&type_error.record.attributes, "exception.message")
        .unwrap()
        .starts_with("Cannot apply discount code"));
    assert!(attr(&type_error.record.attributes, "exception.stacktrace")
        .unwrap()
        .contains("applyDiscountCode"));
    let lcp = events(&logs, "browser.web_vital")
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("lcp"))
        .unwrap();
    assert_eq!(hex(&lcp.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&lcp.record.span_id), page_span);

    // Web-vital histograms, with exemplars on the page load.
    let metrics = poll_metrics(&sink, &["browser.web_vital.lcp", "browser.web_vital.cls"]).await;
    let point = first_histogram_point(&metrics, "browser.web_vital.lcp");
    assert_eq!(
        attr(&point.attributes, "rum.app.name").as_deref(),
        Some(APP)
    );
    assert!(point
        .exemplars
        .iter()
        .any(|e| hex(&e.trace_id) == SERVER_TRACE && hex(&e.span_id) == page_span));
}

/// Intake v3 (the agent's `apiVersion: 3`): the same picture from the compressed field names,
/// in development mode (no apps: the agent's service name stands). A bad line among good ones
/// is dropped and counted; `?verbose` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_elastic_rum_v3_requests_and_a_bad_line() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let bridge = Bridge::start(&grpc_exporter_toml(rotel.grpc)).await;

    let requests = captured("elastic-rum-v3.jsonl");
    for req in &requests {
        assert_eq!(req.path, "/intake/v3/rum/events");
        let resp = replay(&bridge.client, &bridge.url(&req.path), req).await;
        assert_eq!(resp.status(), 202);
    }
    let (fetch_trace, fetch_span) = fetch_ids("elastic-rum-v3.app-requests.jsonl");
    let spans = poll("the v3 page load and fetch span", WAIT, || {
        let spans = sink.spans();
        let load = spans.iter().any(|s| s.span.name == "documentLoad");
        let fetch = spans.iter().any(|s| hex(&s.span.span_id) == fetch_span);
        (load && fetch).then_some(spans)
    })
    .await;
    let doc = spans
        .iter()
        .find(|s| s.span.name == "documentLoad")
        .unwrap();
    assert_eq!(hex(&doc.span.trace_id), SERVER_TRACE);
    assert_eq!(hex(&doc.span.parent_span_id), SERVER_SPAN);
    assert_eq!(
        service_name(&doc.resource).as_deref(),
        Some("capture-shop-elastic")
    );
    assert!(attr(&doc.span.attributes, "session.id").is_some());
    let client = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == fetch_span)
        .unwrap();
    assert_eq!(hex(&client.span.trace_id), fetch_trace);
    assert_eq!(client.span.kind, 3, "CLIENT");
    poll("the v3 exceptions and vitals", WAIT, || {
        let logs = sink.logs();
        let names = vital_names(&logs);
        let typed = events(&logs, "exception")
            .any(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"));
        (typed && names.contains("lcp") && names.contains("cls")).then_some(())
    })
    .await;

    let body = format!(
        "{{\"metadata\":{{\"service\":{{\"name\":\"hand\",\"agent\":{{\"name\":\"rum-js\",\"version\":\"5.17.5\"}}}}}}}}\n\
         {{\"transaction\":\n\
         {{\"transaction\":{{\"id\":\"0123456789abcdef\",\"trace_id\":\"{SERVER_TRACE}\",\
         \"name\":\"/cart\",\"type\":\"route-change\",\"duration\":5}}}}\n"
    );
    let resp = bridge
        .client
        .post(bridge.url("/intake/v2/rum/events?verbose"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(answer["errors"][0].as_str().unwrap().starts_with("line 2:"));
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"invalid_json\"}")
            .await,
        1.0
    );
    // No metadata first: refused whole, with a JSON body saying why.
    let resp = bridge
        .client
        .post(bridge.url("/intake/v2/rum/events"))
        .header("content-type", "application/x-ndjson")
        .body("{\"transaction\":{}}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["reason"], "wrong_shape");
    // A media type that is no NDJSON, JSON or text: 415 before the body is read.
    let resp = bridge
        .client
        .post(bridge.url("/intake/v3/rum/events"))
        .header("content-type", "application/xml")
        .body("<m/>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    poll("the handmade route-change span", WAIT, || {
        sink.spans()
            .iter()
            .any(|s| s.span.name == "/cart")
            .then_some(())
    })
    .await;
}
