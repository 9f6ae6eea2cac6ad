//! Which app a request is for when the agent cannot send our key, and renamed routes, through
//! the daemon and a real collector (docs/apps.md): the path form `/a/{app_key}/<route>` on every
//! route (the key never shown back or counted), the one app listing the `Origin` (several:
//! refused and counted), and `[routes]` renames and prefix (old names `404`, the served loader
//! posting to the renamed native route, in Chromium too).

mod common;

use axum::response::Html;
use axum::routing::get;
use common::browser::Browser;
use common::*;
use serde_json::Value;

const SHOP: &str = "https://shop.example.com";
const BLOG: &str = "https://blog.example.com";
const SHARED: &str = "https://shared.example.com";

fn app(name: &str, key: &str, origins: &[&str]) -> String {
    let origins: Vec<String> = origins.iter().map(|o| format!("{o:?}")).collect();
    format!(
        "[[apps]]\nname = \"{name}\"\nkey = \"{key}\"\nallowed_origins = [{}]\n\n",
        origins.join(", ")
    )
}

/// A collector (rotel, forwarding to the sink) and a bridge exporting to it.
async fn start(extra_toml: &str) -> (Sink, Rotel, Bridge) {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let bridge = Bridge::start(&format!("{extra_toml}\n{}", grpc_exporter_toml(rotel.grpc))).await;
    (sink, rotel, bridge)
}

fn otlp_trace(trace_id: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[]}},"scopeSpans":[{{"spans":[{{
        "traceId":"{trace_id}","spanId":"1111111111111111","name":"t","kind":1,
        "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}}]}}]}}]}}"#
    )
}

fn otlp_log(body: &str) -> String {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[]}},"scopeLogs":[{{"logRecords":[{{
        "timeUnixNano":"1700000000000000000","severityNumber":9,"body":{{"stringValue":"{body}"}}}}]}}]}}]}}"#
    )
}

/// `examples/beacons/page-load.json` without its key (`k`), with its page-load trace id set.
fn native_beacon(key: Option<&str>, trace_id: &str) -> Vec<u8> {
    let text = std::fs::read(repo_root().join("examples/beacons/page-load.json")).unwrap();
    let mut beacon: Value = serde_json::from_slice(&text).unwrap();
    match key {
        Some(k) => beacon["k"] = Value::from(k),
        None => {
            beacon.as_object_mut().unwrap().remove("k");
        }
    }
    beacon["load"]["trace"] = Value::from(trace_id);
    serde_json::to_vec(&beacon).unwrap()
}

const FARO: &str = r#"{"meta": {"app": {"name": "claimed"}}, "logs": [{"message": "via faro"}]}"#;

fn zipkin(trace_id: &str) -> String {
    format!(
        r#"[{{"traceId":"{trace_id}","id":"2222222222222222","name":"click","timestamp":1700000000000000,
        "duration":1000,"localEndpoint":{{"serviceName":"claimed"}},"tags":{{"component":"user-interaction"}}}}]"#
    )
}

/// Posts `body` as `content_type` from `origin` (if any) and returns the status and body.
async fn post(
    bridge: &Bridge,
    path: &str,
    origin: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = bridge
        .client
        .post(bridge.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, resp.text().await.unwrap(), headers)
}

/// The `service.name` of the span with `trace_id` at the collector, once it is there.
async fn service_of_trace(sink: &Sink, trace_id: &str) -> String {
    poll(&format!("trace {trace_id} at the collector"), WAIT, || {
        sink.spans()
            .into_iter()
            .find(|s| hex(&s.span.trace_id) == trace_id)
            .map(|s| service_name(&s.resource).unwrap_or_default())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_form_key_works_on_every_route_and_is_never_shown() {
    let apps = app("shop", "pk_shop", &[SHOP]) + &app("blog", "pk_blog", &[BLOG]);
    let (sink, _rotel, bridge) = start(&apps).await;

    // Native beacon with no key in the body, from the blog's page.
    let native_trace = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d01";
    let (status, body, _) = post(
        &bridge,
        "/a/pk_blog/v1/rum",
        Some(BLOG),
        "text/plain;charset=UTF-8",
        native_beacon(None, native_trace),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // OTLP, Faro and Zipkin with no key but the path's, and no Origin (server-side senders).
    let (status, body, _) = post(
        &bridge,
        "/a/pk_blog/v1/traces",
        None,
        "application/json",
        otlp_trace("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = post(
        &bridge,
        "/a/pk_blog/v1/logs",
        None,
        "application/json",
        otlp_log("via path"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = post(
        &bridge,
        "/a/pk_blog/collect",
        None,
        "application/json",
        FARO,
    )
    .await;
    assert_eq!(
        (status, body.contains("\"accepted\":1")),
        (202, true),
        "{body}"
    );
    let (status, body, _) = post(
        &bridge,
        "/a/pk_blog/api/v2/spans",
        None,
        "application/json",
        zipkin("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb03"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // A header key comes first: the path's is only for agents that cannot send one.
    let resp = bridge
        .client
        .post(bridge.url("/a/pk_blog/v1/traces"))
        .header("content-type", "application/json")
        .header("x-api-key", "pk_shop")
        .body(otlp_trace("cccccccccccccccccccccccccccccc04"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    assert_eq!(service_of_trace(&sink, native_trace).await, "blog");
    assert_eq!(
        service_of_trace(&sink, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02").await,
        "blog"
    );
    assert_eq!(
        service_of_trace(&sink, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb03").await,
        "blog"
    );
    assert_eq!(
        service_of_trace(&sink, "cccccccccccccccccccccccccccccc04").await,
        "shop"
    );
    let log_services = poll("the OTLP and Faro logs at the collector", WAIT, || {
        let logs = sink.logs();
        let otlp = logs
            .iter()
            .find(|l| format!("{:?}", l.record.body).contains("via path"))?;
        let faro = logs
            .iter()
            .find(|l| format!("{:?}", l.record.body).contains("via faro"))?;
        Some((service_name(&otlp.resource), service_name(&faro.resource)))
    })
    .await;
    assert_eq!(
        log_services,
        (Some("blog".to_owned()), Some("blog".to_owned()))
    );

    // An unknown key in the path: refused before the body, and not shown back whole.
    let (status, body, _) = post(
        &bridge,
        "/a/pk_not_configured_secret/v1/traces",
        None,
        "application/json",
        otlp_trace("dddddddddddddddddddddddddddddd05"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["reason"], "unknown_app");
    assert_eq!(
        error["detail"],
        "app key `pk_n…` (24 characters) is not configured"
    );
    assert!(!body.contains("secret"), "{body}");
    // Not a route: 404, whatever the key.
    for path in ["/a/pk_blog/v1/nope", "/a/pk_blog", "/a//v1/rum"] {
        let (status, _, _) = post(&bridge, path, None, "application/json", "{}").await;
        assert_eq!(status, 404, "{path}");
    }

    // Counted under the route's name; no key in any series.
    let metrics = bridge.metrics_text().await;
    for series in [
        "rum_bridge_http_requests_total{route=\"/v1/rum\",status=\"202\"} 1",
        "rum_bridge_http_requests_total{route=\"/v1/traces\",status=\"202\"} 2",
        "rum_bridge_http_requests_total{route=\"/v1/traces\",status=\"401\"} 1",
        "rum_bridge_http_requests_total{route=\"/collect\",status=\"202\"} 1",
        "rum_bridge_http_requests_total{route=\"/api/v2/spans\",status=\"202\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    assert!(!metrics.contains("pk_"), "an app key in the metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_one_app_listing_the_origin_is_used_and_two_are_refused() {
    let apps = app("shop", "pk_shop", &[SHOP])
        + &app("blog", "pk_blog", &[BLOG, SHARED])
        + &app("news", "pk_news", &[SHARED])
        + &app("anywhere", "pk_any", &["*"]);
    let (sink, _rotel, bridge) = start(&apps).await;

    // One app lists the origin: it is the app, on every route, and CORS answers for it.
    let (status, body, headers) = post(
        &bridge,
        "/v1/traces",
        Some(SHOP),
        "application/json",
        otlp_trace("eeeeeeeeeeeeeeeeeeeeeeeeeeeeee01"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(headers["access-control-allow-origin"], SHOP);
    let native_trace = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d02";
    let (status, body, _) = post(
        &bridge,
        "/v1/rum",
        Some(BLOG),
        "text/plain;charset=UTF-8",
        native_beacon(None, native_trace),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = post(&bridge, "/collect", Some(BLOG), "application/json", FARO).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        service_of_trace(&sink, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeee01").await,
        "shop"
    );
    assert_eq!(service_of_trace(&sink, native_trace).await, "blog");
    let faro_service = poll("the Faro log at the collector", WAIT, || {
        sink.logs()
            .iter()
            .find(|l| format!("{:?}", l.record.body).contains("via faro"))
            .map(|l| service_name(&l.resource))
    })
    .await;
    assert_eq!(faro_service.as_deref(), Some("blog"));

    // Two apps list it: which one is meant is a guess, so the request is refused, on every route.
    for (path, content_type, body) in [
        (
            "/v1/traces",
            "application/json",
            otlp_trace("ffffffffffffffffffffffffffffff03"),
        ),
        ("/collect", "application/json", FARO.to_owned()),
        (
            "/api/v2/spans",
            "text/plain",
            zipkin("ffffffffffffffffffffffffffffff04"),
        ),
    ] {
        let (status, text, _) = post(&bridge, path, Some(SHARED), content_type, body).await;
        assert_eq!(status, 400, "{path}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["reason"], "ambiguous_origin", "{path}");
        let detail = error["detail"].as_str().unwrap();
        assert!(
            detail.contains("https://shared.example.com")
                && detail.contains("2 apps (blog, news)")
                && detail.contains("x-api-key"),
            "{path}: {detail}"
        );
        assert!(!detail.contains("pk_"), "keys are not listed: {detail}");
    }
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"ambiguous_origin\"}")
            .await,
        3.0
    );
    // A key settles it.
    let (status, body, _) = post(
        &bridge,
        "/v1/traces?key=pk_news",
        Some(SHARED),
        "application/json",
        otlp_trace("ffffffffffffffffffffffffffffff05"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        service_of_trace(&sink, "ffffffffffffffffffffffffffffff05").await,
        "news"
    );

    // No app lists it (`*` lists no origin in particular), or no Origin at all: unknown app.
    for origin in [Some("https://elsewhere.example"), None] {
        let (status, text, _) = post(
            &bridge,
            "/v1/traces",
            origin,
            "application/json",
            otlp_trace("ffffffffffffffffffffffffffffff06"),
        )
        .await;
        assert_eq!(status, 401, "{origin:?}: {text}");
        assert!(text.contains("\"reason\":\"unknown_app\""), "{text}");
    }
}

const RENAMED: &str = r#"
[routes]
prefix = "/t"
loader = "/s/app.js"
native = "/in/b"
otlp_traces = "/o/traces"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_routes_answer_at_their_new_names_only() {
    let config = format!("{RENAMED}\n{}", app("shop", "pk_shop_web", &[SHOP]));
    let (sink, _rotel, bridge) = start(&config).await;

    // The loader, at its new place, posts to the native route's new place.
    let resp = bridge
        .client
        .get(bridge.url("/t/s/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let script = resp.text().await.unwrap();
    assert!(
        script.contains("new URL(\"../in/b\","),
        "{}",
        &script[..300]
    );
    assert!(!script.contains("\"v1/rum\""));

    let native_trace = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d11";
    let beacon = native_beacon(Some("pk_shop_web"), native_trace);
    let (status, body, _) =
        post(&bridge, "/t/in/b", Some(SHOP), "text/plain", beacon.clone()).await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = post(
        &bridge,
        "/t/o/traces?key=pk_shop_web",
        None,
        "application/json",
        otlp_trace("1111111111111111111111111111aa12"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // Not renamed, only prefixed; the path form lives under the prefix too.
    let (status, body, _) = post(
        &bridge,
        "/t/a/pk_shop_web/v1/logs",
        None,
        "application/json",
        otlp_log("under the prefix"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let preflight = bridge
        .client
        .request(reqwest::Method::OPTIONS, bridge.url("/t/in/b"))
        .header("origin", SHOP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);

    assert_eq!(service_of_trace(&sink, native_trace).await, "shop");
    assert_eq!(
        service_of_trace(&sink, "1111111111111111111111111111aa12").await,
        "shop"
    );

    // The old names, with or without the prefix, and the new names without it: 404.
    for path in ["/rum.js", "/t/rum.js", "/s/app.js"] {
        let resp = bridge.client.get(bridge.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "GET {path}");
    }
    for path in [
        "/v1/rum",
        "/t/v1/rum",
        "/in/b",
        "/v1/traces?key=pk_shop_web",
        "/t/v1/traces?key=pk_shop_web",
        "/v1/logs?key=pk_shop_web",
        "/a/pk_shop_web/v1/logs",
        "/collect",
    ] {
        let (status, _, _) = post(&bridge, path, Some(SHOP), "text/plain", beacon.clone()).await;
        assert_eq!(status, 404, "POST {path}");
    }
    let metrics = bridge.metrics_text().await;
    for series in [
        "rum_bridge_http_requests_total{route=\"/rum.js\",status=\"200\"} 1",
        "rum_bridge_http_requests_total{route=\"/v1/rum\",status=\"202\"} 1",
        "rum_bridge_http_requests_total{route=\"/v1/traces\",status=\"202\"} 1",
        "rum_bridge_http_requests_total{route=\"/v1/logs\",status=\"202\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_renamed_loader_posts_to_the_renamed_route() {
    // The page's origin must be known for the app's allowed_origins: bind its port first.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", site.local_addr().unwrap());
    let config = format!("{RENAMED}\n{}", app("live", "pk_live", &[&origin]));
    let (sink, _rotel, bridge) = start(&config).await;

    let html = format!(
        "<!doctype html><html><head><script src=\"{}\" data-app=\"pk_live\"></script></head>\
         <body><h1>Renamed routes</h1></body></html>",
        bridge.url("/t/s/app.js")
    );
    let router = axum::Router::new().route("/", get(move || async move { Html(html) }));
    tokio::spawn(async move { axum::serve(site, router).await.unwrap() });

    let browser = Browser::start().await;
    browser.goto(&format!("{origin}/")).await;
    browser
        .wait_for("the loader to start", "window.rumBridge")
        .await;
    // Hidden, the page sends what the loader holds.
    browser.leave_page().await;
    let doc = poll("the page load at the collector", WAIT, || {
        sink.spans()
            .into_iter()
            .find(|s| s.span.name == "documentLoad")
    })
    .await;
    assert_eq!(service_name(&doc.resource).as_deref(), Some("live"));
    // Its beacons went to `/t/in/b` (the old `/v1/rum` is 404 here), all accepted.
    let metrics = bridge.metrics_text().await;
    let native: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("rum_bridge_http_requests_total{route=\"/v1/rum\""))
        .collect();
    assert!(
        !native.is_empty() && native.iter().all(|l| l.contains("status=\"202\"")),
        "{native:?}"
    );
    browser.close().await;
}

#[test]
fn a_bad_routes_table_stops_start_up_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rb.toml");
    std::fs::write(
        &path,
        "[routes]\nprefix = \"/t\"\nnative = \"/b\"\nzipkin = \"/b\"\nloader = \"rum.js\"\nfaro = \"/a/f\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bridge_binary())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "rb.toml:5: routes.loader: \"rum.js\" must start with \"/\"",
        "rb.toml:4: routes.zipkin: \"/b\" is also routes.native (\"/b\")",
        "rb.toml:6: routes.faro: \"/a/f\" overlaps routes.app_key_path (\"/a\")",
    ] {
        assert!(err.contains(expected), "{expected} in:\n{err}");
    }

    std::fs::write(&path, "[routes]\nnativ = \"/b\"\n").unwrap();
    let out = std::process::Command::new(bridge_binary())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `nativ`"), "{err}");
}

/// With every log line on (`RUST_LOG=trace`), path-form requests, accepted and refused, leave no
/// key in the daemon's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_keys_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, admin) = (free_port(), free_port());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{ingest}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\n{}",
        app("blog", "pk_blog_key", &[BLOG])
    );
    std::fs::write(dir.path().join("rb.toml"), config).unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(bridge_binary())
        .args(["run", "--config", "rb.toml"])
        .current_dir(dir.path())
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("RUM_BRIDGE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let client = http_client();
    let deadline = std::time::Instant::now() + WAIT;
    let readyz = format!("http://127.0.0.1:{admin}/readyz");
    while !client
        .get(&readyz)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge did not become ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let url = |path: &str| format!("http://127.0.0.1:{ingest}{path}");
    let mut statuses = Vec::new();
    for path in [
        "/a/pk_blog_key/v1/traces",
        "/a/pk_unknown_key/v1/traces",
        "/a/pk_blog_key/v1/nope",
    ] {
        let resp = client
            .post(url(path))
            .header("content-type", "application/json")
            .body(otlp_trace("abababababababababababababab0001"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [202, 401, 404]);
    terminate(&mut child, "rum-bridge").await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 3, "the log was written:\n{text}");
    for key in ["pk_blog_key", "pk_unknown_key"] {
        assert!(!text.contains(key), "{key} in the log:\n{text}");
    }
}
