//! Replays the requests the real Grafana Faro Web SDK (2.12.1, with web tracing) sent from
//! Chromium — plain and gzip — to `/collect`, through the daemon into a real collector, and
//! checks what came out: the page load under the page's server span, exceptions, logs and web
//! vitals as events on that trace, web-vital histograms with exemplars, and the embedded fetch
//! CLIENT span with the ids the browser propagated.

mod common;

use common::*;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const APP: &str = "capture-shop-faro";

/// Sends a captured Faro request to `url` with the headers the SDK sent that matter here.
async fn send(client: &reqwest::Client, url: &str, req: &Captured) -> reqwest::Response {
    let mut b = client.post(url).body(req.body.clone());
    for (k, v) in &req.headers {
        if matches!(
            k.as_str(),
            "content-type"
                | "content-encoding"
                | "origin"
                | "user-agent"
                | "referer"
                | "x-faro-session-id"
                | "idempotency-key"
        ) || k.starts_with("sec-ch-ua")
        {
            b = b.header(k, v);
        }
    }
    b.send().await.unwrap()
}

/// The `(trace id, span id)` of the `traceparent` the page sent to its API.
fn propagated(file: &str) -> (String, String) {
    let app = captured(file);
    let tp = &app[0]
        .headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .unwrap()
        .1;
    (tp[3..35].to_owned(), tp[36..52].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_faro_requests_are_correlated_end_to_end() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    // The SDK's CORS preflight (it sends custom headers).
    let resp = bridge
        .client
        .request(reqwest::Method::OPTIONS, bridge.url("/collect"))
        .header("origin", "http://127.0.0.1:18787")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,idempotency-key,x-faro-session-id",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("idempotency-key") && allowed.contains("x-faro-session-id"));

    let mut sessions = Vec::new();
    for file in ["faro.jsonl", "faro-gzip.jsonl"] {
        let requests = captured(file);
        assert!(requests.len() >= 5, "{file}");
        for req in &requests {
            let resp = send(&bridge.client, &bridge.url("/collect"), req).await;
            assert_eq!(resp.status(), 202, "{file}");
            assert_eq!(
                resp.headers()["access-control-allow-origin"],
                "http://127.0.0.1:18787"
            );
            let body: serde_json::Value =
                serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            assert_eq!(body["rejected"], 0, "{file}: {body}");
            assert!(body["accepted"].as_u64().unwrap() > 0, "{file}: {body}");
        }
        let session = requests[0]
            .headers
            .iter()
            .find(|(k, _)| k == "x-faro-session-id")
            .unwrap()
            .1
            .clone();
        sessions.push(session);
    }

    // A retry of an accepted batch (same Idempotency-Key) is acknowledged, not processed again.
    let accepted_before = bridge
        .metric("rum_bridge_items_accepted_total{kind=\"vital\"}")
        .await;
    let first = &captured("faro.jsonl")[0];
    let resp = send(&bridge.client, &bridge.url("/collect"), first).await;
    assert_eq!(resp.status(), 202);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["duplicate"], true, "{body}");
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"duplicate_batch\"}")
            .await,
        1.0
    );
    assert_eq!(
        bridge
            .metric("rum_bridge_items_accepted_total{kind=\"vital\"}")
            .await,
        accepted_before
    );

    // The key in the path (Grafana Cloud's URL shape) works too.
    let resp = bridge
        .client
        .post(bridge.url("/collect/pk_other"))
        .header("content-type", "application/json")
        .body(r#"{"meta": {"app": {"name": "other-app"}}, "logs": [{"message": "hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // documentLoad of each capture: a child of the server span that rendered the page.
    let spans = poll("both page loads and both fetch spans", WAIT, || {
        let spans = sink.spans();
        let loads = spans
            .iter()
            .filter(|s| s.span.name == "documentLoad")
            .count();
        let clients = spans.iter().filter(|s| s.span.kind == 3).count();
        (loads >= 2 && clients >= 2).then_some(spans)
    })
    .await;
    let loads: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "documentLoad")
        .collect();
    for doc in &loads {
        assert_eq!(hex(&doc.span.trace_id), SERVER_TRACE);
        assert_eq!(hex(&doc.span.parent_span_id), SERVER_SPAN);
        assert_eq!(
            attr(&doc.resource.attributes, "service.name").as_deref(),
            Some(APP)
        );
        assert_eq!(
            attr(&doc.resource.attributes, "deployment.environment.name").as_deref(),
            Some("capture")
        );
        assert!(sessions.contains(&attr(&doc.span.attributes, "session.id").unwrap()));
    }
    let page_span_ids: Vec<String> = loads.iter().map(|d| hex(&d.span.span_id)).collect();

    // The embedded fetch CLIENT span keeps exactly the ids the browser propagated.
    for file in ["faro.app-requests.jsonl", "faro-gzip.app-requests.jsonl"] {
        let (trace, span) = propagated(file);
        let client = spans
            .iter()
            .find(|s| hex(&s.span.span_id) == span)
            .unwrap_or_else(|| panic!("client span {span} of {file}"));
        assert_eq!(hex(&client.span.trace_id), trace);
        assert_eq!(client.span.kind, 3, "CLIENT");
        assert_eq!(
            attr(&client.resource.attributes, "service.name").as_deref(),
            Some(APP)
        );
        assert_eq!(
            attr(&client.span.attributes, "http.request.method").as_deref(),
            Some("POST")
        );
    }

    // Exceptions, console logs and web vitals, on the page-load trace.
    let logs = poll("exceptions, logs and all five vitals", WAIT, || {
        let logs = sink.logs();
        let vitals: std::collections::HashSet<_> = logs
            .iter()
            .filter(|l| l.record.event_name == "browser.web_vital")
            .filter_map(|l| attr(&l.record.attributes, "browser.web_vital.name"))
            .collect();
        let exceptions = logs
            .iter()
            .filter(|l| l.record.event_name == "exception")
            .count();
        let console = logs
            .iter()
            .filter(|l| l.record.event_name == "browser.console")
            .count();
        (vitals.len() == 5 && exceptions >= 4 && console >= 4).then_some(logs)
    })
    .await;
    let type_error = logs
        .iter()
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .unwrap();
    assert_eq!(
        attr(&type_error.resource.attributes, "service.name").as_deref(),
        Some(APP)
    );
    let stack = attr(&type_error.record.attributes, "exception.stacktrace").unwrap();
    assert!(
        stack.contains("at applyDiscountCode (http://127.0.0.1:18787/static/app.js:44:11)"),
        "{stack}"
    );
    // Sent in a later batch than the navigation: tied to the page load through the session.
    assert_eq!(hex(&type_error.record.trace_id), SERVER_TRACE);
    assert!(page_span_ids.contains(&hex(&type_error.record.span_id)));
    let lcp = logs
        .iter()
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("lcp"))
        .unwrap();
    assert_eq!(hex(&lcp.record.trace_id), SERVER_TRACE);
    assert_eq!(
        attr(
            &lcp.record.attributes,
            "browser.web_vital.attribution.target"
        )
        .as_deref(),
        Some("#hero")
    );
    let warn = logs
        .iter()
        .find(|l| l.record.event_name == "browser.console" && l.record.severity_number == 13)
        .unwrap();
    assert_eq!(hex(&warn.record.trace_id), SERVER_TRACE);
    assert!(sessions.contains(&attr(&warn.record.attributes, "session.id").unwrap()));

    // Web-vital histograms, with exemplars pointing at the page-load trace, and the HTTP
    // histogram from the fetch span.
    let metrics = poll_metrics(&sink, &RUM_HISTOGRAMS).await;
    let point = first_histogram_point(&metrics, "browser.web_vital.lcp");
    assert_eq!(
        attr(&point.attributes, "rum.app.name").as_deref(),
        Some(APP)
    );
    assert!(point
        .exemplars
        .iter()
        .any(|e| hex(&e.trace_id) == SERVER_TRACE && page_span_ids.contains(&hex(&e.span_id))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_key_and_origin_are_checked_before_the_body() {
    let bridge = Bridge::start(
        "[limits]\nmax_body_bytes = 1000\n\n[[apps]]\nname = \"shop\"\nkey = \"pk_shop\"\n\
         allowed_origins = [\"http://127.0.0.1:18787\"]\n",
    )
    .await;
    let post_from = |origin: &str, path: &str, body: Vec<u8>| {
        bridge
            .client
            .post(bridge.url(path))
            .header("content-type", "application/json")
            .header("origin", origin)
            .body(body)
    };
    let post = |path: &str, body: Vec<u8>| post_from("http://127.0.0.1:18787", path, body);
    let too_big = vec![b' '; 5000];
    // Without a valid key the oversized body is never read: 401, not 413 (with no key at all,
    // from an origin no app lists; from the app's own origin the app is found by it).
    let resp = post_from("https://elsewhere.example", "/collect", too_big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = post("/collect/pk_nope", too_big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = post_from("https://evil.example", "/collect/pk_shop", too_big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = post("/collect/pk_shop", too_big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let resp = post("/collect/pk_shop", b"{\"logs\": [".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let small = br#"{"meta": {"app": {"name": "ignored"}}, "logs": [{"message": "hi"}]}"#;
    let resp = post("/collect/pk_shop", small.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = post("/collect", small.to_vec())
        .header("x-api-key", "pk_shop")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(
        bridge
            .metric("rum_bridge_http_requests_total{route=\"/collect\",status=\"202\"}")
            .await,
        2.0,
        "both paths count under one route label"
    );
}

/// Hostile and malformed Faro bodies: each gets its documented status and a JSON reason, a
/// bad item is dropped and counted while the good ones of the same batch arrive, and the
/// daemon keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_faro_bodies_get_their_status_and_lose_nothing_else() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let bridge = Bridge::start(&grpc_exporter_toml(rotel.grpc)).await;
    let url = bridge.url("/collect");
    let post = |body: Vec<u8>, gzip: bool| {
        let mut req = bridge
            .client
            .post(&url)
            .header("content-type", "application/json");
        if gzip {
            req = req.header("content-encoding", "gzip");
        }
        async move {
            let resp = req.body(body).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_str(&resp.text().await.unwrap()).unwrap();
            (status, body)
        }
    };

    // Wrong types and an unknown key on every level; one good log among bad items.
    let mixed = serde_json::json!({
        "meta": {"app": {"name": "hostile-shop", "x": {"y": 1}}, "session": {"id": 42, "z": []},
                 "browser": {"brands": "Chromium;156", "q": null}, "unknown": {"a": [1]}},
        "logs": [
            {"message": "kept log line", "level": "info", "timestamp": "2026-11-28T08:00:00.000Z",
             "extra": {"k": true}},
            {"message": ["not", "a", "string"], "level": 7, "timestamp": false},
            "not an object"
        ],
        "exceptions": [{"type": 5, "value": {"v": 1}, "timestamp": []}],
        "events": {"not": "an array"},
        "measurements": [{"type": "web-vitals", "values": {"lcp": "oops"}}],
        "surprise": [[[]]]
    });
    let (status, body) = post(mixed.to_string().into_bytes(), false).await;
    assert_eq!(status, 202, "{body}");
    assert!(body["accepted"].as_u64().unwrap() >= 1, "{body}");
    assert!(body["rejected"].as_u64().unwrap() >= 2, "{body}");
    assert!(!body["errors"].as_array().unwrap().is_empty());

    let log = serde_json::json!({"message": "m", "level": "info",
                                 "timestamp": "2026-11-28T08:00:00.000Z"});
    let huge = serde_json::json!({"meta": {"app": {"name": "hostile-shop"}},
                                  "logs": vec![log; 10_000]});
    let nested = format!("{}1{}", "{\"a\":".repeat(1000), "}".repeat(1000));
    let deep = format!(
        r#"{{"meta":{{"app":{{"name":"hostile-shop"}}}},"logs":[{{"message":"m","context":{nested}}}]}}"#
    );
    let mut bad_gzip = gzip(mixed.to_string().as_bytes());
    bad_gzip.truncate(bad_gzip.len() / 2);
    for (body, zipped, status, reason) in [
        (
            gzip(huge.to_string().as_bytes()),
            true,
            413,
            "too_many_items",
        ),
        (deep.into_bytes(), false, 400, "too_deep"),
        (bad_gzip, true, 400, "invalid_gzip"),
        (b"[1,2,3]".to_vec(), false, 400, "wrong_shape"),
        (b"{\"meta\":".to_vec(), false, 400, "invalid_json"),
    ] {
        let (got, answer) = post(body, zipped).await;
        assert_eq!(
            (got, answer["reason"].as_str()),
            (status, Some(reason)),
            "{answer}"
        );
        let series = format!("rum_bridge_items_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(bridge.metric(&series).await, 1.0, "{series}");
    }

    let logs = poll("the good log of the mixed batch", WAIT, || {
        let logs = sink.logs();
        logs.iter()
            .any(|l| format!("{:?}", l.record.body).contains("kept log line"))
            .then_some(logs)
    })
    .await;
    let kept = logs
        .iter()
        .find(|l| format!("{:?}", l.record.body).contains("kept log line"))
        .unwrap();
    assert_eq!(
        service_name(&kept.resource).as_deref(),
        Some("hostile-shop")
    );
    let health = bridge
        .client
        .get(format!("http://{}/healthz", bridge.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
