//! `[faro] compat = "faro-contrib"` end to end: the requests the real Faro Web SDK sent are
//! replayed through the daemon into a real collector, and what arrives is what
//! collector-contrib's faro receiver would have produced — one log record per Faro item with a
//! logfmt body that parses back (with `kind`, `hash`, the app and the trace ids), `kind` and
//! `hash` attributes — instead of the bridge's semantic records, with spans, metrics, privacy
//! rules and sampling as usual.

mod common;

use std::collections::HashMap;

use common::*;
use rum_bridge::convert::faro_contrib::exception_hash;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const APP: &str = "capture-shop-faro";

/// Reads a logfmt line as go-logfmt's decoder does for what the bridge writes.
fn logfmt(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next().expect("unterminated quoted value") {
                    '"' => break,
                    '\\' => match chars.next().expect("dangling escape") {
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        'r' => value.push('\r'),
                        'u' => {
                            let hex: String = chars.by_ref().take(4).collect();
                            let code = u32::from_str_radix(&hex, 16).unwrap();
                            value.push(char::from_u32(code).unwrap());
                        }
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != ' ') {
                value.push(c);
                chars.next();
            }
        }
        assert!(
            out.insert(key.clone(), value).is_none(),
            "duplicate key {key}"
        );
    }
}

fn body(entry: &LogRecordEntry) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match entry.record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("not a string body: {other:?}"),
    }
}

/// The records of `app`, with their bodies parsed.
fn records_of(sink: &Sink, app: &str) -> Vec<(LogRecordEntry, HashMap<String, String>)> {
    sink.logs()
        .into_iter()
        .filter(|l| service_name(&l.resource).as_deref() == Some(app))
        .map(|l| {
            let kv = logfmt(&body(&l));
            (l, kv)
        })
        .collect()
}

async fn post_json(bridge: &Bridge, json: &str) {
    let resp = bridge
        .client
        .post(bridge.url("/collect"))
        .header("content-type", "application/json")
        .body(json.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_faro_requests_come_out_as_contrib_records() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[faro]\ncompat = \"faro-contrib\"\n\n[metrics]\ninterval = \"1s\"\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    let requests = captured("faro.jsonl");
    for req in &requests {
        let resp = replay(&bridge.client, &bridge.url("/collect"), req).await;
        assert_eq!(resp.status(), 202);
    }
    // Personal data in a Faro payload: the same rules as for the bridge's own records.
    post_json(
        &bridge,
        r#"{"meta": {"app": {"name": "private-app"}, "session": {"id": "s-1"},
                     "user": {"id": "u-1", "email": "alice@example.com", "username": "alice"},
                     "page": {"url": "https://shop.example.com/orders/12345?email=bob@example.com"}},
            "logs": [{"message": "mail carol@example.com", "level": "warn",
                      "timestamp": "2026-11-28T04:15:54.930Z"}]}"#,
    )
    .await;

    let kinds = ["log", "exception", "measurement", "event"];
    let has = |records: &[(LogRecordEntry, HashMap<String, String>)], key: &str, value: &str| {
        records
            .iter()
            .any(|(_, kv)| kv.get(key).map(String::as_str) == Some(value))
    };
    let records = poll(
        "records of every kind, the TypeError, navigation and LCP",
        WAIT,
        || {
            let records = records_of(&sink, APP);
            (kinds.iter().all(|k| has(&records, "kind", k))
                && has(&records, "type", "TypeError")
                && has(&records, "event_name", "faro.performance.navigation")
                && records.iter().any(|(_, kv)| kv.contains_key("value_lcp")))
            .then_some(records)
        },
    )
    .await;

    let stack_frame = regex::Regex::new(r"^(.+)?\s\(((.+)\|)?(.+)?:(\d+)?:(\d+)?\)$").unwrap();
    for (entry, kv) in &records {
        let kind = attr(&entry.record.attributes, "kind").expect("a kind attribute");
        assert_eq!(kv["kind"], kind, "{kv:?}");
        assert!(kinds.contains(&kind.as_str()));
        assert!(entry.record.event_name.is_empty(), "no semantic events");
        assert_eq!(kv["app_name"], APP);
        assert_eq!(kv["app_environment"], "capture");
        assert_eq!(kv["sdk_name"], "faro-web");
        assert!(kv["timestamp"].starts_with("2026-11-28T04:1"), "{kv:?}");
        assert!(kv.contains_key("session_id"));
        // The body's ids are the record's.
        if let Some(trace) = kv.get("traceID") {
            assert_eq!(*trace, hex(&entry.record.trace_id));
            assert_eq!(kv["spanID"], hex(&entry.record.span_id));
        }
        if kind == "exception" {
            assert_eq!(kv["level"], "error");
            let hash: u64 = attr(&entry.record.attributes, "hash")
                .expect("a hash attribute")
                .parse()
                .expect("a decimal hash");
            assert_eq!(hash, exception_hash(&kv["value"]));
            // What the Faro exporter parses back: `Type: value`, then whole frames only.
            let prefix = format!("{}: {}", kv["type"], kv["value"]);
            let frames = kv["stacktrace"].strip_prefix(&prefix).expect("type: value");
            for frame in frames.split("\n  at ").filter(|f| !f.is_empty()) {
                assert!(stack_frame.is_match(frame), "{frame:?}");
            }
        }
    }
    let resource = &records[0].0.resource.attributes;
    assert_eq!(
        attr(resource, "deployment.environment.name").as_deref(),
        Some("capture")
    );
    assert_eq!(
        attr(resource, "deployment.environment").as_deref(),
        Some("capture")
    );

    let type_error = records
        .iter()
        .map(|(_, kv)| kv)
        .find(|kv| kv["kind"] == "exception" && kv["type"] == "TypeError")
        .expect("the TypeError");
    assert!(
        type_error["stacktrace"]
            .contains("\n  at applyDiscountCode (http://127.0.0.1:18787/static/app.js:44:11)"),
        "{}",
        type_error["stacktrace"]
    );
    // The navigation event carries the page's server span, in the body and on the record.
    let (navigation, kv) = records
        .iter()
        .find(|(_, kv)| {
            kv.get("event_name").map(String::as_str) == Some("faro.performance.navigation")
        })
        .expect("the navigation event");
    assert_eq!(kv["traceID"], SERVER_TRACE);
    assert_eq!(kv["spanID"], SERVER_SPAN);
    assert_eq!(hex(&navigation.record.trace_id), SERVER_TRACE);
    assert_eq!(kv["level"], "info");
    let lcp = records
        .iter()
        .map(|(_, kv)| kv)
        .find(|kv| kv["kind"] == "measurement" && kv.contains_key("value_lcp"))
        .expect("the LCP measurement");
    assert_eq!(lcp["type"], "web-vitals");
    let value: f64 = lcp["value_lcp"].parse().unwrap();
    assert_eq!(format!("{value:.6}"), lcp["lcp"]);

    // Spans and metrics are unchanged: the page load under the server span, the histograms.
    let spans = poll("the page load span", WAIT, || {
        let spans = sink.spans();
        spans
            .iter()
            .any(|s| s.span.name == "documentLoad")
            .then_some(spans)
    })
    .await;
    let doc = spans
        .iter()
        .find(|s| s.span.name == "documentLoad")
        .unwrap();
    assert_eq!(hex(&doc.span.parent_span_id), SERVER_SPAN);
    poll_metrics(&sink, &["browser.web_vital.lcp"]).await;

    // Privacy: the user's e-mail and name never appear, the id is hashed, URLs and messages
    // scrubbed.
    let private = poll("the private app's record", WAIT, || {
        records_of(&sink, "private-app").pop()
    })
    .await;
    let (entry, kv) = private;
    let text = body(&entry);
    assert!(
        !text.contains("alice") && !text.contains("@example.com"),
        "{text}"
    );
    assert_eq!(kv["message"], "mail [email]");
    assert_eq!(kv["level"], "warn");
    assert_eq!(
        kv["page_url"],
        "https://shop.example.com/orders/{id}?email=REDACTED"
    );
    assert_ne!(kv["user_id"], "u-1");
    assert_eq!(kv["user_id"].len(), 32);
    assert!(!kv.contains_key("user_email") && !kv.contains_key("user_username"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_out_sessions_keep_only_their_exceptions() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[faro]\ncompat = \"faro-contrib\"\n\n[sampling]\ndefault_rate = 0.0\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;
    post_json(
        &bridge,
        r#"{"meta": {"app": {"name": "sampled-app"}, "session": {"id": "s-2"}},
            "logs": [{"message": "dropped"}],
            "events": [{"name": "checkout"}],
            "exceptions": [{"type": "Error", "value": "kept"}],
            "measurements": [{"type": "custom", "values": {"n": 1}}]}"#,
    )
    .await;
    // The records of one request leave in one export, so once one is here all are.
    let records = poll("the exception", WAIT, || {
        let records = records_of(&sink, "sampled-app");
        (!records.is_empty()).then_some(records)
    })
    .await;
    let kinds: Vec<&str> = records.iter().map(|(_, kv)| kv["kind"].as_str()).collect();
    assert_eq!(kinds, ["exception"], "{records:?}");
    assert_eq!(records[0].1["value"], "kept");
    assert_eq!(
        bridge
            .metric("rum_bridge_items_dropped_total{reason=\"sampled_out\"}")
            .await,
        3.0
    );
}
