//! Privacy end to end: OTLP/HTTP JSON traces and logs full of personal data go through the
//! real daemon into a real collector; none of it may arrive, while the rest of the telemetry
//! does.

mod common;

use common::*;
use rum_bridge::config::privacy::UserIdMode;
use rum_bridge::process::pii::UserIds;
use serde_json::json;

const EMAIL: &str = "alice.smith@example.com";
const EMAIL_ENCODED: &str = "alice.smith%40example.com";
const CARD: &str = "4111 1111 1111 1111";
const CARD_PLAIN: &str = "5500005555555559";
const BEARER: &str = "sk_live_51HxYzAbC123";
const JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const USER_NUMBER: &str = "9876543210";
const ORDER_UUID: &str = "550e8400-e29b-41d4-a716-446655440000";
const RESET_TOKEN: &str = "a8Fk29xQ7mP3zL0w";
const CLIENT_IP: &str = "203.0.113.77";
const SPOOFED_IP: &str = "198.51.100.23";
const PASSWORD: &str = "hunter2pw";
const USER_ID: &str = "customer-31337";
const USER_ID_KEY: &str = "test-key-0123456789abcdef";

const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";

fn s(key: &str, value: &str) -> serde_json::Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn traces() -> serde_json::Value {
    let url = format!(
        "https://bob:{PASSWORD}@api.example.com/users/{USER_NUMBER}/orders/{ORDER_UUID}?email={EMAIL_ENCODED}&jwt={JWT}&utm_source=newsletter#frag-{RESET_TOKEN}"
    );
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                s("service.name", "privacy-shop"),
                s("app.owner", EMAIL),
            ]},
            "scopeSpans": [{
                "scope": { "name": "@opentelemetry/instrumentation-fetch" },
                "spans": [
                    {
                        "traceId": TRACE_ID,
                        "spanId": "051581bf3cb55c13",
                        "name": "HTTP GET",
                        "kind": 3,
                        "startTimeUnixNano": "1700000000000000000",
                        "endTimeUnixNano": "1700000000100000000",
                        "attributes": [
                            s("http.method", "GET"),
                            s("http.url", &url),
                            s("user.id", USER_ID),
                            s("http.request.header.authorization", &format!("Bearer {BEARER}")),
                            s("component", "fetch"),
                        ],
                    },
                    {
                        "traceId": TRACE_ID,
                        "spanId": "051581bf3cb55c14",
                        "name": format!("reset for {EMAIL}"),
                        "kind": 1,
                        "startTimeUnixNano": "1700000000000000000",
                        "endTimeUnixNano": "1700000000100000000",
                        "attributes": [
                            s("browser.css_selector", "#checkout-button"),
                            s("page.url", &format!("https://shop.example.com/reset/{RESET_TOKEN}")),
                        ],
                        "events": [{
                            "name": "exception",
                            "timeUnixNano": "1700000000050000000",
                            "attributes": [
                                s("exception.type", "TypeError"),
                                s("exception.message", &format!("payment failed for {CARD} from {CLIENT_IP}")),
                                s("exception.stacktrace", &format!("TypeError: {EMAIL}\n    at pay (https://shop.example.com/app.js:10:5)")),
                            ],
                        }],
                    }
                ]
            }]
        }]
    })
}

fn logs() -> serde_json::Value {
    json!({
        "resourceLogs": [{
            "resource": { "attributes": [ s("service.name", "privacy-shop") ] },
            "scopeLogs": [{
                "scope": { "name": "console" },
                "logRecords": [
                    {
                        "timeUnixNano": "1700000000000000000",
                        "severityNumber": 9,
                        "body": { "stringValue": format!("checkout by {EMAIL} with card {CARD_PLAIN}") },
                        "attributes": [
                            s("session.id", "sess-visible-1"),
                            s("url.full", &format!("https://shop.example.com/account/{USER_NUMBER}?token={BEARER}")),
                        ],
                        "traceId": TRACE_ID,
                        "spanId": "051581bf3cb55c14",
                    },
                    {
                        "timeUnixNano": "1700000000000000000",
                        "severityNumber": 17,
                        "eventName": "exception",
                        "body": { "kvlistValue": { "values": [
                            s("message", &format!("Authorization: Bearer {BEARER}; token {JWT}")),
                        ]}},
                        "attributes": [ s("enduser.id", USER_ID) ],
                    }
                ]
            }]
        }]
    })
}

/// A native beacon from the loader on a page whose URL, calls, errors and logs carry PII.
fn native_beacon() -> serde_json::Value {
    json!({
        "v": 1, "sid": "sess-native-1", "pvid": "pv-native-1",
        "url": format!("https://shop.example.com/orders/{ORDER_UUID}?email={EMAIL_ENCODED}&utm_source=mail"),
        "uid": USER_ID,
        "t0": 1_795_839_390_385.4_f64,
        "consent": ["analytics", "performance"],
        "load": {"trace": "6a1e0c8f3b2d4e5f9a8b7c6d5e4f3a2b", "span": "6a1e0c8f3b2d4e5f"},
        "ev": [
            {"type": "page_load", "nav": {"type": "navigate", "startTime": 0, "duration": 900,
             "responseStart": 120, "responseEnd": 150, "loadEventEnd": 900}},
            {"type": "http", "method": "GET", "status": 200, "start": 300, "dur": 40,
             "url": format!("https://api.example.com/users/{USER_NUMBER}/cart?session={RESET_TOKEN}"),
             "trace": "6a1e0c8f3b2d4e5f9a8b7c6d5e4f3a2b", "span": "7b2f1d9e4c3a5b60"},
            {"type": "error", "time": 400, "name": "Error",
             "message": format!("card {CARD} declined for {EMAIL}"),
             "stack": format!("Error: card declined for {EMAIL}\n    at pay (https://shop.example.com/app.js?v={RESET_TOKEN}:1:2)")},
            {"type": "log", "time": 410, "level": "warn",
             "message": format!("retrying with Authorization: Bearer {BEARER}")},
            {"type": "custom", "time": 420, "name": "signup",
             "attrs": {"contact": EMAIL, "plan": "pro"}}
        ]
    })
}

/// A Grafana Faro payload with PII in meta, exceptions, logs and events.
fn faro_payload() -> serde_json::Value {
    json!({
        "meta": {
            "app": {"name": "privacy-faro", "version": "1.0.0"},
            "session": {"id": "sess-faro-1"},
            "page": {"url": format!("https://shop.example.com/reset/{RESET_TOKEN}?email={EMAIL_ENCODED}")},
            "user": {"id": USER_ID, "email": EMAIL, "username": "alice.smith"}
        },
        "logs": [{"message": format!("paid with {CARD_PLAIN}"), "level": "info",
                  "timestamp": "2026-11-28T08:00:00.000Z", "context": {"jwt": JWT}}],
        "exceptions": [{"type": "TypeError", "value": format!("no account for {EMAIL}"),
                        "timestamp": "2026-11-28T08:00:01.000Z",
                        "stacktrace": {"frames": [{"filename": "https://shop.example.com/app.js",
                                                   "function": "lookup", "lineno": 3, "colno": 7}]}}],
        "events": [{"name": "faro-signup", "timestamp": "2026-11-28T08:00:02.000Z",
                    "attributes": {"who": EMAIL, "ip": CLIENT_IP}}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_never_reaches_the_collector() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    // Keys before the first table header land in the harness's [server] table.
    let config = format!(
        "trusted_proxies = [\"127.0.0.1\"]\n[privacy]\nexport_client_ip = true\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start_with_env(&config, &[("RUM_BRIDGE_USER_ID_KEY", USER_ID_KEY)]).await;

    for (path, body) in [
        ("/v1/traces", traces()),
        ("/v1/logs", logs()),
        ("/v1/rum", native_beacon()),
        ("/collect", faro_payload()),
    ] {
        let resp = bridge
            .client
            .post(bridge.url(path))
            .header("content-type", "application/json")
            // The first entry is forged by the client; the proxy (127.0.0.1) appended the
            // second, the client's real address.
            .header("x-forwarded-for", format!("{SPOOFED_IP}, {CLIENT_IP}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{path}: {}", resp.text().await.unwrap());
    }

    poll(
        "spans and logs of every format at the collector",
        WAIT,
        || {
            let spans = sink.spans();
            let logs = sink.logs();
            let service = |name: &str| {
                logs.iter()
                    .any(|l| attr(&l.resource.attributes, "service.name").as_deref() == Some(name))
            };
            (spans.iter().any(|s| s.span.name == "documentLoad")
                && spans.len() >= 4
                && logs.len() >= 7
                && service("privacy-faro"))
            .then_some(())
        },
    )
    .await;
    let exported = {
        let r = sink.received.lock().unwrap();
        format!("{:?}\n{:?}", r.traces, r.logs)
    };

    for secret in [
        EMAIL,
        EMAIL_ENCODED,
        "alice.smith",
        CARD,
        CARD_PLAIN,
        BEARER,
        JWT,
        "eyJhbGciOiJIUzI1NiJ9",
        USER_NUMBER,
        ORDER_UUID,
        RESET_TOKEN,
        CLIENT_IP,
        SPOOFED_IP,
        PASSWORD,
        "bob:",
        USER_ID,
        "frag-",
        "alice",
    ] {
        assert!(
            !exported.contains(secret),
            "{secret:?} reached the collector:\n{exported}"
        );
    }

    // What is not personal data arrives intact.
    let spans = sink.spans();
    let fetch = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == "051581bf3cb55c13")
        .expect("fetch span");
    assert_eq!(fetch.span.name, "GET");
    assert_eq!(hex(&fetch.span.trace_id), TRACE_ID);
    let attrs = &fetch.span.attributes;
    assert_eq!(
        attr(attrs, "url.full").as_deref(),
        Some(
            "https://REDACTED:REDACTED@api.example.com/users/{id}/orders/{id}\
             ?email=REDACTED&jwt=REDACTED&utm_source=newsletter"
        )
    );
    assert_eq!(
        attr(attrs, "url.template").as_deref(),
        Some("/users/{id}/orders/{id}")
    );
    assert_eq!(attr(attrs, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(attrs, "component").as_deref(), Some("fetch"));
    let expected_user = UserIds::new(UserIdMode::Hash, Some(USER_ID_KEY)).hash(USER_ID);
    assert_eq!(attr(attrs, "user.id"), Some(expected_user.clone()));
    assert_eq!(
        attr(&fetch.resource.attributes, "service.name").as_deref(),
        Some("privacy-shop")
    );
    assert_eq!(
        attr(&fetch.resource.attributes, "app.owner").as_deref(),
        Some("[email]")
    );
    // The client's address, found through the trusted proxy and truncated to its /24.
    assert_eq!(
        attr(&fetch.resource.attributes, "client.address").as_deref(),
        Some("203.0.113.0")
    );

    let reset = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == "051581bf3cb55c14")
        .expect("reset span");
    assert_eq!(reset.span.name, "reset for [email]");
    assert_eq!(
        attr(&reset.span.attributes, "browser.css_selector").as_deref(),
        Some("#checkout-button")
    );
    let exception = &reset.span.events[0].attributes;
    assert_eq!(
        attr(exception, "exception.message").as_deref(),
        Some("payment failed for [card] from [ip]")
    );
    assert_eq!(
        attr(exception, "exception.type").as_deref(),
        Some("TypeError")
    );
    assert!(attr(exception, "exception.stacktrace")
        .unwrap()
        .contains("at pay (https://shop.example.com/app.js:10:5)"));

    let logs = sink.logs();
    let console = logs
        .iter()
        .find(|l| l.record.severity_number == 9)
        .expect("console log");
    assert_eq!(
        format!("{:?}", console.record.body),
        format!(
            "{:?}",
            Some(string_value("checkout by [email] with card [card]"))
        )
    );
    assert_eq!(
        attr(&console.record.attributes, "session.id").as_deref(),
        Some("sess-visible-1")
    );
    assert_eq!(
        attr(&console.record.attributes, "url.full").as_deref(),
        Some("https://shop.example.com/account/{id}?token=REDACTED")
    );
    let exception_log = logs
        .iter()
        .find(|l| l.record.severity_number == 17)
        .expect("exception log");
    assert_eq!(
        attr(&exception_log.record.attributes, "enduser.id"),
        Some(expected_user)
    );
    assert!(format!("{:?}", exception_log.record.body).contains("Bearer [token]; token [jwt]"));

    // The native page load arrives with its URL templated and its query redacted.
    let page = spans
        .iter()
        .find(|s| s.span.name == "documentLoad")
        .expect("documentLoad");
    assert_eq!(
        attr(&page.span.attributes, "url.full").as_deref(),
        Some("https://shop.example.com/orders/{id}?email=REDACTED&utm_source=mail")
    );
    let call = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == "7b2f1d9e4c3a5b60")
        .expect("native HTTP call");
    assert_eq!(
        attr(&call.span.attributes, "url.template").as_deref(),
        Some("/users/{id}/cart")
    );
    let faro_exception = logs
        .iter()
        .find(|l| {
            attr(&l.resource.attributes, "service.name").as_deref() == Some("privacy-faro")
                && attr(&l.record.attributes, "exception.type").as_deref() == Some("TypeError")
        })
        .expect("Faro exception");
    assert_eq!(
        attr(&faro_exception.record.attributes, "exception.message").as_deref(),
        Some("no account for [email]")
    );

    // Stack frames keep their file and position; only the query value goes.
    assert!(logs.iter().any(|l| {
        attr(&l.record.attributes, "exception.stacktrace").is_some_and(|st| {
            st.contains("at pay (https://shop.example.com/app.js?v=REDACTED:1:2)")
        })
    }));

    for rule in ["email", "card", "bearer", "jwt", "ipv4"] {
        let series = format!("rum_bridge_privacy_redactions_total{{rule=\"{rule}\"}}");
        assert!(bridge.metric(&series).await >= 1.0, "{series}");
    }
}

fn string_value(text: &str) -> opentelemetry_proto::tonic::common::v1::AnyValue {
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
    AnyValue {
        value: Some(Value::StringValue(text.to_owned())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_get_429_with_retry_after() {
    let bridge =
        Bridge::start("[rate_limits]\nper_ip_requests_per_second = 1\nper_ip_burst = 2\n").await;
    let send = || async {
        bridge
            .client
            .post(bridge.url("/v1/traces"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap()
    };
    assert_eq!(send().await.status(), 202);
    assert_eq!(send().await.status(), 202);
    let refused = send().await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["reason"], "rate_limited_ip");
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"rate_limited_ip\"}")
            .await,
        1.0
    );
}

/// A City database made here: 203.0.113.0/24 is Lyon, France.
fn write_geo_database(path: &std::path::Path) {
    #[derive(serde::Serialize)]
    struct Code {
        iso_code: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Continent {
        code: &'static str,
    }
    #[derive(serde::Serialize)]
    struct City {
        names: std::collections::BTreeMap<&'static str, &'static str>,
    }
    #[derive(serde::Serialize)]
    struct Record {
        continent: Continent,
        country: Code,
        subdivisions: Vec<Code>,
        city: City,
    }
    let mut writer = mmdb_writer::Writer::new("GeoIP2-City");
    let lyon = Record {
        continent: Continent { code: "EU" },
        country: Code { iso_code: "FR" },
        subdivisions: vec![Code { iso_code: "ARA" }],
        city: City {
            names: [("en", "Lyon")].into(),
        },
    };
    writer
        .insert("203.0.113.0/24".parse::<ipnet::IpNet>().unwrap(), &lyon)
        .unwrap();
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_attributes_come_from_the_client_address_which_stays_private() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("city.mmdb");
    write_geo_database(&db);
    let config = format!(
        "trusted_proxies = [\"127.0.0.1\"]\n[metrics]\ninterval = \"1s\"\n[geo]\ndatabase = {:?}\n\n{}",
        db.to_str().unwrap(),
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;
    for (path, body) in [("/v1/rum", native_beacon()), ("/v1/traces", traces())] {
        let resp = bridge
            .client
            .post(bridge.url(path))
            .header("content-type", "application/json")
            .header("x-forwarded-for", CLIENT_IP)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{path}");
    }
    let spans = poll("native and OTLP spans", WAIT, || {
        let spans = sink.spans();
        (spans.iter().any(|s| s.span.name == "documentLoad")
            && spans
                .iter()
                .any(|s| hex(&s.span.span_id) == "051581bf3cb55c13"))
        .then_some(spans)
    })
    .await;
    for name in ["documentLoad", "GET"] {
        let span = spans.iter().find(|s| s.span.name == name).unwrap();
        let resource = &span.resource.attributes;
        assert_eq!(
            attr(resource, "geo.country.iso_code").as_deref(),
            Some("FR"),
            "{name}"
        );
        assert_eq!(
            attr(resource, "geo.region.iso_code").as_deref(),
            Some("FR-ARA")
        );
        assert_eq!(attr(resource, "geo.locality.name").as_deref(), Some("Lyon"));
        assert_eq!(attr(resource, "geo.continent.code").as_deref(), Some("EU"));
        assert_eq!(
            attr(resource, "client.address"),
            None,
            "not exported by default"
        );
    }
    // The web-vital histograms are split by country.
    let metrics = poll("the page-view counter with its country", WAIT, || {
        let metrics = sink.metrics();
        metrics
            .iter()
            .any(|m| m.name == "rum.page_views")
            .then_some(metrics)
    })
    .await;
    let page_views = metrics.iter().find(|m| m.name == "rum.page_views").unwrap();
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) = &page_views.data
    else {
        panic!("rum.page_views is a sum");
    };
    assert!(sum
        .data_points
        .iter()
        .any(|p| attr(&p.attributes, "geo.country.iso_code").as_deref() == Some("FR")));
    let exported = format!("{:?}", sink.received.lock().unwrap().traces);
    assert!(!exported.contains(CLIENT_IP));
}
