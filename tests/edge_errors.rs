//! Bad input at the edge: every refusal has the documented status and a JSON body that says
//! what was wrong, the reason is counted, and the daemon stays healthy for good traffic.

mod common;

use common::*;

const CONFIG: &str = r#"
[limits]
max_body_bytes = 65536
max_decompressed_bytes = 262144

[[apps]]
name = "shop-web"
key = "pk_shop"
allowed_origins = ["https://shop.example.com"]

[[exporters]]
name = "file"
protocol = "file"
path = "out"
"#;

const ORIGIN: &str = "https://shop.example.com";

fn otlp_json() -> String {
    r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop-web"}}]},"scopeSpans":[{"scope":{"name":"t"},"spans":[{"traceId":"4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c","spanId":"1111111111111111","name":"x","kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}]}]}]}"#.to_owned()
}

struct Case {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    reason: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_documented_status_and_counted_reason() {
    let bridge = Bridge::start(CONFIG).await;
    let good_headers = || {
        vec![
            ("content-type", "application/json".to_owned()),
            ("origin", ORIGIN.to_owned()),
            ("x-api-key", "pk_shop".to_owned()),
        ]
    };
    let cases = vec![
        Case {
            name: "oversized",
            path: "/v1/traces",
            headers: good_headers(),
            body: vec![b' '; 70_000],
            status: 413,
            reason: "too_large",
        },
        Case {
            name: "gzip bomb",
            path: "/v1/traces",
            headers: {
                let mut h = good_headers();
                h.push(("content-encoding", "gzip".to_owned()));
                h
            },
            body: gzip(&vec![b' '; 10_000_000]),
            status: 413,
            reason: "too_large_decompressed",
        },
        Case {
            name: "wrong content type",
            path: "/v1/traces",
            headers: vec![
                ("content-type", "application/xml".to_owned()),
                ("x-api-key", "pk_shop".to_owned()),
            ],
            body: b"<x/>".to_vec(),
            status: 415,
            reason: "unsupported_media_type",
        },
        Case {
            name: "invalid json",
            path: "/v1/traces",
            headers: good_headers(),
            body: b"{\"resourceSpans\": [".to_vec(),
            status: 400,
            reason: "invalid_json",
        },
        Case {
            name: "invalid json native",
            path: "/v1/rum",
            headers: vec![("content-type", "text/plain;charset=UTF-8".to_owned())],
            body: b"not json at all".to_vec(),
            status: 400,
            reason: "invalid_json",
        },
        Case {
            name: "unknown app key",
            path: "/v1/traces",
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("x-api-key", "pk_nobody".to_owned()),
            ],
            body: otlp_json().into_bytes(),
            status: 401,
            reason: "unknown_app",
        },
        Case {
            name: "unknown app key on a native beacon, refused before the body",
            path: "/v1/rum",
            headers: vec![
                ("content-type", "text/plain".to_owned()),
                ("x-api-key", "pk_nobody".to_owned()),
            ],
            body: b"not even json".to_vec(),
            status: 401,
            reason: "unknown_app",
        },
        Case {
            name: "disallowed origin",
            path: "/v1/traces",
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("origin", "https://evil.example".to_owned()),
                ("x-api-key", "pk_shop".to_owned()),
            ],
            body: otlp_json().into_bytes(),
            status: 403,
            reason: "origin_not_allowed",
        },
    ];

    for case in &cases {
        let mut req = bridge
            .client
            .post(bridge.url(case.path))
            .body(case.body.clone());
        for (k, v) in &case.headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), case.status, "{}", case.name);
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "{}",
            case.name
        );
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["reason"], case.reason, "{}: {body}", case.name);
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty())
                && body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: {body}",
            case.name
        );
        let series = format!(
            "rum_bridge_items_rejected_total{{reason=\"{}\"}}",
            case.reason
        );
        assert!(bridge.metric(&series).await >= 1.0, "{} counted", case.name);
    }

    // Still healthy, and good traffic still flows.
    let health = bridge
        .client
        .get(format!("http://{}/healthz", bridge.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mut req = bridge
        .client
        .post(bridge.url("/v1/traces"))
        .body(otlp_json());
    for (k, v) in good_headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    assert!(
        bridge
            .metric("rum_bridge_http_requests_total{route=\"/v1/traces\",status=\"413\"}")
            .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_keys_in_one_query_are_a_counted_json_400() {
    let bridge = Bridge::start(CONFIG).await;
    let series = "rum_bridge_items_rejected_total{reason=\"ambiguous_app_key\"}";
    let cases = [
        ("/v1/traces?key=pk_shop&key=pk_other", "application/json"),
        ("/v1/rum?key=pk_shop&key=pk_other", "text/plain"),
    ];
    for (n, (path, content_type)) in cases.into_iter().enumerate() {
        let resp = bridge
            .client
            .post(bridge.url(path))
            .header("content-type", content_type)
            .header("origin", ORIGIN)
            .body(otlp_json())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(body["reason"], "ambiguous_app_key", "{path}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("key")),
            "{path}: {body}"
        );
        assert_eq!(
            bridge.metric(series).await,
            (n + 1) as f64,
            "{path} counted"
        );
    }
    // The same key twice is not ambiguous.
    let resp = bridge
        .client
        .post(bridge.url("/v1/traces?key=pk_shop&key=pk_shop"))
        .header("content-type", "application/json")
        .header("origin", ORIGIN)
        .body(otlp_json())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allows_configured_origins_only() {
    let bridge = Bridge::start(CONFIG).await;
    let preflight = |origin: &'static str| {
        bridge
            .client
            .request(reqwest::Method::OPTIONS, bridge.url("/v1/traces"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, traceparent",
            )
            .send()
    };
    let ok = preflight(ORIGIN).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    assert!(ok.headers().contains_key("access-control-max-age"));
    let denied = preflight("https://evil.example").await.unwrap();
    assert_eq!(denied.status(), 403);
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
}
