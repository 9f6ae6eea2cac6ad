use std::sync::Arc;

use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use sourcemap::SourceMapBuilder;

use super::*;
use crate::config::sourcemaps::LocalMaps;

const BUNDLE_V1: &str = "https://shop.example.com/static/app.v1.min.js";
const BUNDLE_V2: &str = "https://shop.example.com/static/app.v2.min.js";

/// A map for a bundle whose line 1 holds `function n(){…}` (from src/cart.js) at column
/// `offset` and a call of `n` in `checkout` (src/checkout.js) at `offset + 40`.
fn map(offset: u32) -> ParsedMap {
    let mut b = SourceMapBuilder::new(None);
    b.add(0, offset, 41, 10, Some("src/cart.js"), None, false);
    b.add(
        0,
        offset + 40,
        9,
        2,
        Some("src/checkout.js"),
        Some("computeTotal"),
        false,
    );
    b.add(
        0,
        offset + 60,
        20,
        0,
        Some("src/main.js"),
        Some("checkout"),
        false,
    );
    let mut raw = Vec::new();
    b.into_sourcemap().to_writer(&mut raw).unwrap();
    ParsedMap::parse(&raw, u64::MAX).unwrap()
}

fn symbolicator() -> (Symbolicator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = SourcemapsConfig {
        local: vec![LocalMaps {
            url_prefix: "https://shop.example.com/static/".into(),
            dir: dir.path().to_owned(),
        }],
        ..SourcemapsConfig::default()
    };
    let s = Symbolicator::new(&config, Arc::new(Metrics::new())).unwrap();
    s.store.insert(BUNDLE_V1, Ok(Arc::new(map(100))));
    s.store.insert(BUNDLE_V2, Ok(Arc::new(map(2000))));
    (s, dir)
}

fn payload(stack: &str) -> Payload {
    let attr = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    };
    Payload {
        logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    attributes: vec![
                        attr("exception.type", "TypeError"),
                        attr("exception.stacktrace", stack),
                    ],
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
        ..Payload::default()
    }
}

fn attr(p: &Payload, key: &str) -> Option<String> {
    str_attr(&p.logs[0].scope_logs[0].log_records[0].attributes, key).map(str::to_owned)
}

#[test]
fn resolves_frames_keeps_the_minified_stack_and_leaves_unknown_frames_alone() {
    let (s, _dir) = symbolicator();
    let stack = format!(
        "TypeError: x is undefined\n    at n ({BUNDLE_V1}:1:105)\n    at e ({BUNDLE_V1}:1:142)\n    \
         at r ({BUNDLE_V1}:1:161)\n    at https://cdn.example.net/vendor.js:1:10"
    );
    let mut p = payload(&stack);
    assert!(s.missing(&p).is_empty(), "everything needed is cached");
    s.apply(&mut p);
    assert_eq!(
        attr(&p, STACKTRACE_ATTRIBUTE).unwrap(),
        "TypeError: x is undefined\n    at computeTotal (src/cart.js:42:11)\n    \
         at checkout (src/checkout.js:10:3)\n    at r (src/main.js:21:1)\n    at https://cdn.example.net/vendor.js:1:10"
    );
    assert_eq!(attr(&p, MINIFIED_ATTRIBUTE).unwrap(), stack);
    let text = s.metrics.encode();
    assert!(
        text.contains("rum_bridge_sourcemap_frames_total{reason=\"resolved\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("rum_bridge_sourcemap_frames_total{reason=\"no_source\"} 1"),
        "{text}"
    );
}

#[test]
fn the_same_bug_from_two_releases_and_columns_shares_a_fingerprint() {
    let (s, _dir) = symbolicator();
    let mut a = payload(&format!(
        "TypeError: a\n    at n ({BUNDLE_V1}:1:105)\n    at e ({BUNDLE_V1}:1:142)"
    ));
    let mut b = payload(&format!(
        "TypeError: b\n    at t ({BUNDLE_V2}:1:2003)\n    at r ({BUNDLE_V2}:1:2041)"
    ));
    let mut other = payload(&format!("RangeError: a\n    at n ({BUNDLE_V1}:1:105)"));
    s.apply(&mut a);
    s.apply(&mut b);
    s.apply(&mut other);
    let fa = attr(&a, FINGERPRINT_ATTRIBUTE).unwrap();
    assert_eq!(fa.len(), 16);
    assert_eq!(Some(fa.clone()), attr(&b, FINGERPRINT_ATTRIBUTE));
    assert_ne!(Some(fa), attr(&other, FINGERPRINT_ATTRIBUTE));
}

#[test]
fn library_frames_and_query_strings_do_not_change_the_fingerprint() {
    let (s, _dir) = symbolicator();
    let frame = |url: &str, function: &str| Frame {
        function: Some(function.into()),
        url: url.into(),
        line: 1,
        column: 1,
        style: stack::Style::At,
        original_name: true,
    };
    let app = frame("https://x.example/app.js?v=1", "render");
    let app2 = frame("https://x.example/app.js?v=2", "async render [as r]");
    let lib = frame("https://x.example/node_modules/react/index.js", "dispatch");
    let one = s.fingerprint(Some("Error"), None, &[lib.clone(), app]);
    let two = s.fingerprint(Some("Error"), None, &[app2, lib]);
    assert_eq!(one, two);
    // Without frames, the message groups, digits aside.
    assert_eq!(
        s.fingerprint(Some("Error"), Some("id 12 not found"), &[]),
        s.fingerprint(Some("Error"), Some("id 345 not found"), &[])
    );
}

#[test]
fn an_uncached_map_with_a_source_is_reported_missing() {
    let (s, _dir) = symbolicator();
    let p = payload("Error\n    at n (https://shop.example.com/static/new.js:1:1)\n    at n (https://other.example/x.js:1:1)");
    assert_eq!(
        s.missing(&p),
        vec!["https://shop.example.com/static/new.js".to_owned()]
    );
}

#[test]
fn the_mapping_url_comment_is_found_at_the_end() {
    assert_eq!(
        mapping_url(b"f()\n//# sourceMappingURL=app.js.map\n"),
        Some("app.js.map".into())
    );
    assert_eq!(mapping_url(b"f()"), None);
}

#[test]
fn one_payload_asks_for_a_bounded_number_of_loads() {
    let (s, _dir) = symbolicator();
    let stack: String = (0..50)
        .map(|i| format!("    at f (https://shop.example.com/static/chunk{i}.js:1:1)\n"))
        .collect();
    assert_eq!(s.missing(&payload(&stack)).len(), MAX_LOADS_PER_PAYLOAD);
}
