//! Replays the requests the real Boomerang (`boomerangjs` 1.815.1 with its standard plugins)
//! sent from Chromium — form-urlencoded `sendBeacon` POSTs and, with `beacon_type: "GET"`,
//! image beacons to `beacon_url` `/v1/boomerang?key=<app key>` — through the daemon into a real
//! collector, and checks what came out: `documentLoad` under the server span from the page's
//! Server-Timing (read from `restiming`/`servertiming`), its `resourceFetch` children, the fetch
//! CLIENT span (Boomerang propagates no `traceparent`: the span links to the backend span from
//! the response's Server-Timing instead), the errors as exception log records on the page
//! trace, web-vital events and histograms, and `session.id`. Also a bad part among good ones.

mod common;

use common::*;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const APP: &str = "shop-boomerang";
const KEY: &str = "pk_boomerang_capture";

/// One captured request: method, query and the request itself.
fn lines(file: &str) -> Vec<(String, String, Captured)> {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/real-clients").join(file))
        .unwrap();
    let meta: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["method"].as_str().unwrap().to_owned(),
                v["query"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    meta.into_iter()
        .zip(captured(file))
        .map(|((m, q), c)| (m, q, c))
        .collect()
}

/// Sends a captured image beacon as the browser did (no `Origin` on a same-origin image).
async fn replay_get(bridge: &Bridge, path: &str, query: &str, req: &Captured) -> reqwest::Response {
    let mut b = bridge.client.get(bridge.url(&format!("{path}?{query}")));
    for (k, v) in &req.headers {
        if matches!(k.as_str(), "user-agent" | "referer") || k.starts_with("sec-ch-ua") {
            b = b.header(k, v);
        }
    }
    b.send().await.unwrap()
}

/// The `rt.si` the beacons carried.
fn captured_session(file: &str) -> String {
    let (method, query, first) = lines(file).remove(0);
    let data = if method == "GET" {
        query.into_bytes()
    } else {
        first.body
    };
    url::form_urlencoded::parse(&data)
        .find(|(k, _)| k == "rt.si")
        .unwrap()
        .1
        .into_owned()
}

async fn start() -> (Sink, Rotel, Bridge) {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n[[apps]]\nname = \"{APP}\"\nkey = \"{KEY}\"\n\
         allowed_origins = [\"http://127.0.0.1:18787\"]\nenvironment = \"capture\"\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;
    (sink, rotel, bridge)
}

/// Replays a whole capture, then checks the collector's view of it.
async fn replay_and_check(file: &str) {
    let (sink, _rotel, bridge) = start().await;
    let requests = lines(file);
    assert!(requests.len() >= 3);
    for (method, query, req) in &requests {
        assert!(query.contains(&format!("key={KEY}")), "{query}");
        assert_eq!(req.path, "/v1/boomerang");
        if method == "GET" {
            let resp = replay_get(&bridge, &req.path, query, req).await;
            assert_eq!(resp.status(), 204, "image beacons get No Content");
        } else {
            let url = bridge.url(&format!("{}?{query}", req.path));
            let resp = replay(&bridge.client, &url, req).await;
            assert_eq!(resp.status(), 202);
            let body: serde_json::Value =
                serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            assert_eq!(body["rejected"], 0, "{body}");
            assert!(body["accepted"].as_u64().unwrap() > 0, "{body}");
        }
    }
    assert_eq!(
        bridge
            .metric("rum_bridge_requests_total{route=\"/v1/boomerang\",status=\"400\"}")
            .await,
        0.0
    );
    let session = captured_session(file);
    let backend_span = {
        let app = file.replace(".jsonl", ".app-requests.jsonl");
        let text =
            std::fs::read_to_string(repo_root().join("tests/fixtures/real-clients").join(app))
                .unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        v["server_span"]["span_id"].as_str().unwrap().to_owned()
    };

    let spans = poll(
        "the page load, its resources and the fetch span",
        WAIT,
        || {
            let spans = sink.spans();
            let load = spans.iter().any(|s| s.span.name == "documentLoad");
            let fetch = spans.iter().any(|s| s.span.kind == 3);
            let resources = spans
                .iter()
                .filter(|s| s.span.name == "resourceFetch")
                .count();
            (load && fetch && resources >= 3).then_some(spans)
        },
    )
    .await;
    let loads: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "documentLoad")
        .collect();
    assert_eq!(loads.len(), 1, "the unload beacon adds no second page load");
    let doc = loads[0];
    assert_eq!(hex(&doc.span.trace_id), SERVER_TRACE);
    assert_eq!(hex(&doc.span.parent_span_id), SERVER_SPAN);
    assert_eq!(service_name(&doc.resource).as_deref(), Some(APP));
    assert_eq!(
        attr(&doc.resource.attributes, "telemetry.sdk.name").as_deref(),
        Some("boomerangjs")
    );
    assert_eq!(
        attr(&doc.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    assert!(doc
        .span
        .events
        .iter()
        .any(|e| e.name == "domContentLoadedEventEnd"));
    let page_span = hex(&doc.span.span_id);
    for child in spans.iter().filter(|s| s.span.name == "resourceFetch") {
        assert_eq!(hex(&child.span.trace_id), SERVER_TRACE);
        assert_eq!(hex(&child.span.parent_span_id), page_span);
    }
    assert!(spans.iter().any(|s| s.span.name == "resourceFetch"
        && attr(&s.span.attributes, "url.full").is_some_and(|u| u.ends_with("/hero.png"))));

    // The fetch: a CLIENT span linked to the backend span the response's Server-Timing named.
    let client = spans.iter().find(|s| s.span.kind == 3).unwrap();
    assert_eq!(
        attr(&client.span.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert!(client
        .span
        .links
        .iter()
        .any(|l| hex(&l.span_id) == backend_span));
    assert_eq!(
        attr(&client.span.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );

    // Both errors as exception records on the page trace (they came in later beacons).
    let logs = poll("both exceptions and lcp, inp, cls, ttfb", WAIT, || {
        let logs = sink.logs();
        let names = vital_names(&logs);
        let exceptions = events(&logs, "exception").count();
        (exceptions >= 2
            && ["lcp", "inp", "cls", "ttfb"]
                .iter()
                .all(|v| names.contains(*v)))
        .then_some(logs)
    })
    .await;
    let type_error = events(&logs, "exception")
        .find(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError"))
        .unwrap();
    assert_eq!(hex(&type_error.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&type_error.record.span_id), page_span);
    assert!(attr(&type_error.record.attributes, "exception.message")
        .unwrap()
        .contains("pricing rules are undefined"));
    assert!(attr(&type_error.record.attributes, "exception.stacktrace")
        .unwrap()
        .contains("at applyDiscountCode (http://127.0.0.1:18787/p/"));
    assert_eq!(
        attr(&type_error.record.attributes, "session.id").as_deref(),
        Some(session.as_str())
    );
    let inp = events(&logs, "browser.web_vital")
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("inp"))
        .unwrap();
    assert_eq!(hex(&inp.record.trace_id), SERVER_TRACE);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_boomerang_sendbeacon_posts_are_correlated_end_to_end() {
    replay_and_check("boomerang.jsonl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_boomerang_image_beacons_are_correlated_end_to_end() {
    replay_and_check("boomerang-get.jsonl").await;
}

/// The key is checked before the body; a bad part of a beacon is dropped and counted, the rest
/// kept; something that is no beacon, or no form, is refused with a JSON reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boomerang_refusals_and_a_bad_part_among_good_ones() {
    let (sink, _rotel, bridge) = start().await;
    let (_, _, mut first) = lines("boomerang.jsonl").remove(0);
    // No key, from an origin no app lists (from the app's own origin, the origin names the
    // app: docs/apps.md).
    let own_origin = first.headers.clone();
    for (k, v) in first.headers.iter_mut() {
        if k == "origin" {
            *v = "https://elsewhere.example".into();
        }
    }
    let resp = replay(&bridge.client, &bridge.url("/v1/boomerang"), &first).await;
    assert_eq!(resp.status(), 401);
    first.headers = own_origin;
    let resp = replay(
        &bridge.client,
        &bridge.url("/v1/boomerang?key=pk_other"),
        &first,
    )
    .await;
    assert_eq!(resp.status(), 401);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let query = format!(
        "key={KEY}&v=1.815.1&rt.si=s-handmade&pid=p1&u=http%3A%2F%2F127.0.0.1%3A18787%2Fh\
         &nt_nav_st={now}&nt_res_st={}&nt_load_end={}&restiming=%7Bbroken\
         &err=~(~(m~'handmade*20boom~t~'RangeError))",
        now + 20,
        now + 90
    );
    let resp = bridge
        .client
        .get(bridge.url(&format!("/v1/boomerang?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"invalid_json\"}")
            .await,
        1.0
    );
    let resp = bridge
        .client
        .post(bridge.url(&format!("/v1/boomerang?key={KEY}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("hello=world")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["reason"], "wrong_shape");
    let resp = bridge
        .client
        .post(bridge.url(&format!("/v1/boomerang?key={KEY}")))
        .header("content-type", "application/xml")
        .body("<beacon/>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    // The good parts of the handmade beacon arrived.
    let logs = poll("the handmade exception", WAIT, || {
        let logs = sink.logs();
        let found = events(&logs, "exception")
            .any(|l| attr(&l.record.attributes, "exception.type").as_deref() == Some("RangeError"));
        found.then_some(logs)
    })
    .await;
    let record = events(&logs, "exception").next().unwrap();
    assert_eq!(
        attr(&record.record.attributes, "session.id").as_deref(),
        Some("s-handmade")
    );
    poll("the handmade page load", WAIT, || {
        sink.spans()
            .iter()
            .any(|s| s.span.name == "documentLoad")
            .then_some(())
    })
    .await;
}
