//! Replays the requests the real Splunk RUM agent (`@splunk/otel-web` 2.5.1) sent from Chromium
//! — Zipkin v2 JSON span arrays posted to its `beaconEndpoint` `/v1/rum?auth=<token>` — through
//! the daemon into a real collector, and checks what came out: `documentLoad` under the server
//! span from the page's Server-Timing, the fetch CLIENT span with the ids the browser sent in
//! `traceparent`, the errors as exception log records on the page trace, web-vital events and
//! histograms, and `session.id`. Also Zipkin's own route with a bad item among good ones.

mod common;

use common::*;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const APP: &str = "shop-splunk";
const TOKEN: &str = "pk_splunk_capture";

/// The query strings of the capture (the agent's `?auth=<rumAccessToken>`).
fn queries(file: &str) -> Vec<String> {
    std::fs::read_to_string(repo_root().join("tests/fixtures/real-clients").join(file))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["query"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The session id the agent put on its spans (`splunk.rumSessionId`).
fn captured_session() -> String {
    let first = &captured("splunk-rum.jsonl")[0];
    let spans: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    spans[0]["tags"]["splunk.rumSessionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_splunk_rum_requests_are_correlated_end_to_end() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n[[apps]]\nname = \"{APP}\"\nkey = \"{TOKEN}\"\n\
         allowed_origins = [\"http://127.0.0.1:18787\"]\nenvironment = \"capture\"\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    let requests = captured("splunk-rum.jsonl");
    let queries = queries("splunk-rum.jsonl");
    assert!(requests.len() >= 3);
    // With a wrong token (apps are configured) the agent is refused before its body is read.
    let resp = replay(
        &bridge.client,
        &bridge.url("/v1/rum?auth=wrong"),
        &requests[0],
    )
    .await;
    assert_eq!(resp.status(), 401);
    for (req, query) in requests.iter().zip(&queries) {
        assert_eq!(query, &format!("auth={TOKEN}"));
        let url = bridge.url(&format!("{}?{query}", req.path));
        let resp = replay(&bridge.client, &url, req).await;
        assert_eq!(resp.status(), 202);
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["rejected"], 0, "{body}");
        assert!(body["accepted"].as_u64().unwrap() > 0, "{body}");
    }
    let session = captured_session();
    let (fetch_trace, fetch_span) = {
        let app = captured("splunk-rum.app-requests.jsonl");
        let tp = &app[0]
            .headers
            .iter()
            .find(|(k, _)| k == "traceparent")
            .unwrap()
            .1;
        (tp[3..35].to_owned(), tp[36..52].to_owned())
    };

    // documentLoad: a child of the server span named by the page's Server-Timing; its
    // documentFetch and resourceFetch children follow it into the server trace.
    let spans = poll(
        "the page load, its children and the fetch span",
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
    assert_eq!(service_name(&doc.resource).as_deref(), Some(APP));
    assert_eq!(
        attr(&doc.resource.attributes, "deployment.environment.name").as_deref(),
        Some("capture")
    );
    assert_eq!(
        attr(&doc.resource.attributes, "telemetry.sdk.name").as_deref(),
        Some("@splunk/otel-web")
    );
    assert_eq!(
        attr(&doc.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    let page_span = hex(&doc.span.span_id);
    for child in spans
        .iter()
        .filter(|s| matches!(s.span.name.as_str(), "documentFetch" | "resourceFetch"))
    {
        assert_eq!(
            hex(&child.span.trace_id),
            SERVER_TRACE,
            "{}",
            child.span.name
        );
        assert_eq!(hex(&child.span.parent_span_id), page_span);
    }

    // The fetch CLIENT span keeps exactly the ids the browser sent in `traceparent`.
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
    assert_eq!(
        attr(&client.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    // longtask, click and session.start stay spans.
    for name in ["longtask", "click", "session.start"] {
        assert!(spans.iter().any(|s| s.span.name == name), "{name}");
    }
    assert!(!spans
        .iter()
        .any(|s| matches!(s.span.name.as_str(), "webvitals" | "onerror")));

    // The errors as exception log records, tied to the page trace through the session (they
    // came in later requests than documentLoad); web-vital events likewise.
    let logs = poll("both exceptions and lcp, inp, cls", WAIT, || {
        let logs = sink.logs();
        let names = vital_names(&logs);
        let exceptions = events(&logs, "exception").count();
        (exceptions >= 2 && ["lcp", "inp", "cls"].iter().all(|v| names.contains(*v)))
            .then_some(logs)
    })
    .await;
    let type_error = events(&logs, "exception")
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .unwrap();
    assert_eq!(service_name(&type_error.resource).as_deref(), Some(APP));
    assert_eq!(hex(&type_error.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&type_error.record.span_id), page_span);
    assert!(attr(&type_error.record.attributes, "exception.message")
        .unwrap()
        .contains("pricing rules are undefined"));
    assert!(attr(&type_error.record.attributes, "exception.stacktrace")
        .unwrap()
        .contains("applyDiscountCode"));
    assert_eq!(
        attr(&type_error.record.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    let lcp = events(&logs, "browser.web_vital")
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("lcp"))
        .unwrap();
    assert_eq!(hex(&lcp.record.trace_id), SERVER_TRACE);

    // Web-vital histograms, with exemplars on the page-load trace.
    let metrics = poll_metrics(
        &sink,
        &[
            "browser.web_vital.lcp",
            "browser.web_vital.inp",
            "browser.web_vital.cls",
        ],
    )
    .await;
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

/// Zipkin's own route: any Zipkin sender, key in `?key=`/`?auth=`/`x-api-key`; a bad span is
/// dropped and counted, the good ones arrive; a body that is no span array is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_route_keeps_good_spans_and_counts_bad_ones() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let bridge = Bridge::start(&grpc_exporter_toml(rotel.grpc)).await;
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let body = format!(
        r#"[{{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "name": "get /api",
             "kind": "SERVER", "timestamp": {now_us}, "duration": 1431,
             "localEndpoint": {{"serviceName": "backend"}},
             "annotations": [{{"timestamp": {now_us}, "value": "ws"}}],
             "tags": {{"http.method": "GET", "error": "boom"}}}},
            {{"traceId": "5af7183fb1d4cf5f", "id": "not-hex"}}]"#
    );
    let resp = bridge
        .client
        .post(bridge.url("/api/v2/spans?auth=pk_any"))
        .header("content-type", "application/json")
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
    assert!(answer["errors"][0].as_str().unwrap().contains("span 1"));
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"invalid_span\"}")
            .await,
        1.0
    );
    let resp = bridge
        .client
        .post(bridge.url("/api/v2/spans"))
        .header("content-type", "application/json")
        .body(r#"{"not": "spans"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["reason"], "wrong_shape");

    let spans = poll("the good Zipkin span", WAIT, || {
        let spans = sink.spans();
        spans
            .iter()
            .any(|s| s.span.name == "get /api")
            .then_some(spans)
    })
    .await;
    let span = spans.iter().find(|s| s.span.name == "get /api").unwrap();
    assert_eq!(hex(&span.span.trace_id), "00000000000000005af7183fb1d4cf5f");
    assert_eq!(span.span.kind, 2, "SERVER");
    assert_eq!(span.span.status.as_ref().unwrap().code, 2, "ERROR");
    assert_eq!(span.span.events[0].name, "ws");
    assert_eq!(
        span.span.end_time_unix_nano - span.span.start_time_unix_nano,
        1_431_000
    );
    // Development mode: the client's service name stands.
    assert_eq!(service_name(&span.resource).as_deref(), Some("backend"));
}
