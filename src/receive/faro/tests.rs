//! Decoder tests: the captured Faro SDK requests, lenience per item, coercions, the mapping of
//! the fields Alloy drops, limits and hostile input.

use proptest::prelude::*;

use super::decode::*;
use crate::config::{FaroCompat, LimitsConfig};
use crate::model::trace_context::hex;
use crate::model::RumEvent;
use crate::model::{AttrValue, PageLoad, Rating, Severity, VitalName};

const RECEIVED: f64 = 1_800_000_000_000.0;

fn limits() -> LimitsConfig {
    LimitsConfig::default()
}

fn decode_str(json: &str) -> FaroBatch {
    decode(json.as_bytes(), &limits(), RECEIVED, FaroCompat::None).unwrap()
}

/// The bodies of a capture file, decompressed.
fn captured(file: &str) -> Vec<String> {
    static FARO: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    if file == "faro.jsonl" {
        return FARO.get_or_init(|| read_captured(file)).clone();
    }
    read_captured(file)
}

fn read_captured(file: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/real-clients/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v.get("body_decompressed")
                .unwrap_or(&v["body"])
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn attr<'a>(attrs: &'a [(String, AttrValue)], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn s(v: &str) -> AttrValue {
    AttrValue::Str(v.into())
}

#[test]
fn every_captured_request_decodes_without_rejections() {
    for file in ["faro.jsonl", "faro-gzip.jsonl"] {
        let bodies = captured(file);
        assert!(bodies.len() >= 5, "{file}");
        let mut kinds = std::collections::BTreeSet::new();
        let mut spans = 0;
        for body in &bodies {
            let d = decode_str(body);
            assert!(
                d.batch.rejected.is_empty(),
                "{file}: {:?}",
                d.batch.rejected
            );
            let ctx = &d.batch.context;
            assert_eq!(ctx.app.name, "capture-shop-faro");
            assert_eq!(ctx.app.version.as_deref(), Some("1.0.0"));
            assert_eq!(ctx.app.environment.as_deref(), Some("capture"));
            assert!(ctx.session_id.is_some());
            assert_eq!(ctx.time_origin_ms, 0.0);
            kinds.extend(d.batch.events.iter().map(RumEvent::kind));
            spans += d.span_count;
        }
        let want = ["custom", "error", "log", "page_load", "vital"];
        assert!(want.iter().all(|k| kinds.contains(k)), "{file}: {kinds:?}");
        assert_eq!(spans, 1, "{file}: the fetch CLIENT span");
    }
}

#[test]
fn captured_navigation_batch() {
    let d = decode_str(&captured("faro.jsonl")[0]);
    let ctx = &d.batch.context;
    assert!(d.has_navigation);
    let server = ctx.server_trace.unwrap();
    assert_eq!(hex(&server.trace_id), "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c");
    assert_eq!(hex(&server.span_id), "a1b2c3d4e5f60718");
    assert!(server.sampled());
    assert_eq!(ctx.page_view_id.as_deref(), Some("M87SvLGkZz"));
    assert_eq!(ctx.session_id.as_deref(), Some("sTWv8ksKJV"));
    assert_eq!(
        ctx.page_url.as_deref(),
        Some("http://127.0.0.1:18787/p/faro/")
    );
    assert_eq!(ctx.sdk_name.as_deref(), Some("faro-web"));
    assert_eq!(ctx.sdk_version.as_deref(), Some("2.12.1"));
    assert_eq!(ctx.browser.brands, ["Not:A-Brand 8", "Chromium 156"]);
    assert_eq!(ctx.browser.platform.as_deref(), Some("Linux"));
    assert_eq!(ctx.browser.mobile, Some(false));
    assert_eq!(ctx.browser.language.as_deref(), Some("en-US"));
    assert!(ctx
        .user_agent
        .as_deref()
        .unwrap()
        .contains("HeadlessChrome"));
    assert_eq!(attr(&ctx.attributes, "os.name"), Some(&s("Linux")));
    assert_eq!(
        attr(&ctx.attributes, "user_agent.name"),
        Some(&s("Chrome Headless"))
    );

    let events = &d.batch.events;
    let start = events
        .iter()
        .find_map(|e| match e {
            RumEvent::Custom(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(start.name, "session.start");
    assert_eq!(start.time, 1_795_839_354_841.0);
    assert_eq!(
        attr(&start.attributes, "faro.event.domain"),
        Some(&s("browser"))
    );
    let page_load = events
        .iter()
        .find_map(|e| match e {
            RumEvent::PageLoad(p) => Some(p),
            _ => None,
        })
        .unwrap();
    let nav = &page_load.navigation;
    assert_eq!(nav.timing.start_time, 1_795_839_354_564.0);
    assert_eq!(nav.load_event_end - nav.timing.start_time, 391.0);
    assert_eq!(nav.timing.server_trace, Some(server));
    let vitals: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RumEvent::Vital(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(vitals.len(), 2);
    let fcp = vitals[0];
    assert_eq!(fcp.name, VitalName::Fcp);
    assert_eq!((fcp.value, fcp.delta), (356.0, 356.0));
    assert_eq!(fcp.id, "v6-1795839354823-7649683334545");
    assert_eq!(fcp.rating, Rating::Good);
    assert_eq!(fcp.navigation_type.as_deref(), Some("navigate"));
    assert_eq!(fcp.time, Some(1_795_839_354_930.0));
    assert_eq!(
        attr(&fcp.attribution, "first_byte_to_fcp"),
        Some(&AttrValue::Float(323.200_000_000_186_26))
    );
    assert_eq!(
        attr(&fcp.attribution, "load_state"),
        Some(&s("dom-content-loaded"))
    );
    assert_eq!(vitals[1].name, VitalName::Ttfb);
}

#[test]
fn captured_exception_has_a_v8_stack() {
    let d = decode_str(&captured("faro.jsonl")[4]);
    let error = d
        .batch
        .events
        .iter()
        .find_map(|e| match e {
            RumEvent::Error(e) => Some(e),
            _ => None,
        })
        .unwrap();
    assert_eq!(error.error_type.as_deref(), Some("TypeError"));
    assert_eq!(
        error.message.as_deref(),
        Some("Cannot apply discount code \"SPRING25\": pricing rules are undefined")
    );
    assert_eq!(
        error.stack.as_deref(),
        Some(
            "TypeError: Cannot apply discount code \"SPRING25\": pricing rules are undefined\n    \
             at applyDiscountCode (http://127.0.0.1:18787/static/app.js:44:11)\n    \
             at HTMLButtonElement.onCheckoutClick (http://127.0.0.1:18787/static/app.js:49:5)"
        )
    );
    let log = d
        .batch
        .events
        .iter()
        .find_map(|e| match e {
            RumEvent::Log(l) => Some(l),
            _ => None,
        })
        .unwrap();
    assert_eq!(log.severity, Severity::Warn);
    assert_eq!(log.message, "checkout started with code SPRING25");
    // No navigation here: the page view comes from the session's memory at the edge.
    assert!(!d.has_navigation && d.batch.context.page_view_id.is_none());
}

#[test]
fn captured_late_vitals_and_resource() {
    let bodies = captured("faro.jsonl");
    let d = decode_str(&bodies[2]);
    assert_eq!(d.batch.context.page_view_id.as_deref(), Some("M87SvLGkZz"));
    let resource = d
        .batch
        .events
        .iter()
        .find_map(|e| match e {
            RumEvent::Custom(c) if c.name == "faro.performance.resource" => Some(c),
            _ => None,
        })
        .expect("no navigation in this batch: the resource stays an event");
    let backend = resource.active_span.unwrap();
    assert_eq!(hex(&backend.span_id), "a46f5d6b3fcb20fa");
    assert_eq!(
        attr(&resource.attributes, "name"),
        Some(&s("http://127.0.0.1:18787/api/cart"))
    );

    let d = decode_str(&bodies[5]);
    let inp = d
        .batch
        .events
        .iter()
        .find_map(|e| match e {
            RumEvent::Vital(v) if v.name == VitalName::Inp => Some(v),
            _ => None,
        })
        .unwrap();
    assert_eq!(inp.target.as_deref(), Some("#add-to-cart"));
    assert_eq!(
        attr(&inp.attribution, "input_delay"),
        Some(&AttrValue::Float(0.800_000_000_279_396_8))
    );
    assert_eq!(
        attr(&inp.attribution, "interaction_type"),
        Some(&s("pointer"))
    );
    assert!(attr(&inp.attribution, "delta").is_none());
    assert!(attr(&inp.attribution, "inp").is_none());
}

#[test]
fn captured_traces_keep_their_ids() {
    let d = decode_str(&captured("faro.jsonl")[3]);
    let span = &d.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(hex(&span.trace_id), "53bec1249f39358c9a2ff01d99e6d9cb");
    assert_eq!(hex(&span.span_id), "661914a080cc7e33");
    assert_eq!(span.kind, 3);
    let tracing_event = d
        .batch
        .events
        .iter()
        .find_map(|e| match e {
            RumEvent::Custom(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(tracing_event.name, "faro.tracing.fetch");
    assert_eq!(
        hex(&tracing_event.active_span.unwrap().span_id),
        "661914a080cc7e33"
    );
}

#[test]
fn one_bad_item_costs_only_itself() {
    let d = decode_str(
        r#"{"logs": [5, {"message": 1, "level": "warning", "timestamp": "2026-11-28T04:15:56.926Z"},
                     {"message": "a", "message": "b"}, "text", null,
                     {"message": "x", "level": "LOG", "timestamp": "not a time"},
                     {"message": "y", "level": "verbose", "context": {"k": 1, "n": null}}],
            "events": [{"domain": "browser"}, {"name": ""}, {"name": "route_change"}]}"#,
    );
    let logs: Vec<_> = d
        .batch
        .events
        .iter()
        .filter_map(|e| match e {
            RumEvent::Log(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 3);
    assert_eq!(
        (logs[0].message.as_str(), logs[0].severity),
        ("1", Severity::Warn)
    );
    assert_eq!(logs[0].time, 1_795_839_356_926.0);
    assert_eq!(
        (logs[1].severity, logs[1].time),
        (Severity::Info, RECEIVED),
        "`log` is INFO; an unreadable timestamp is the receive time"
    );
    assert_eq!(logs[2].severity, Severity::Info, "unknown levels are INFO");
    assert_eq!(logs[2].attributes, vec![("k".into(), s("1"))]);
    let details: Vec<_> = d.batch.rejected.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(details.len(), 6, "{details:?}");
    for (detail, at) in details.iter().zip([
        "logs[0]",
        "logs[2]",
        "logs[3]",
        "logs[4]",
        "events[0]",
        "events[1]",
    ]) {
        assert!(detail.starts_with(at), "{detail} should start with {at}");
    }
    assert!(details[1].contains("duplicate field"), "{}", details[1]);
    assert!(d.batch.rejected.iter().all(|r| r.reason == "invalid_item"));
    assert_eq!(
        d.batch.events.len(),
        4,
        "three logs and the route_change event"
    );
}

#[test]
fn numbers_as_strings_and_strings_as_numbers_are_coerced() {
    let d = decode_str(
        r#"{"meta": {"app": {"name": "shop", "version": 2}, "browser": {"mobile": "true",
                     "viewportWidth": 1280}, "session": {"id": 12345}},
            "measurements": [{"type": "web-vitals", "values": {"lcp": "2600.5", "delta": "10"},
                              "context": {"rating": 7}, "timestamp": 1795839354930}],
            "exceptions": [{"type": "Error", "value": "boom", "stacktrace": {"frames": [
                {"filename": "app.js", "function": "?", "lineno": "44", "colno": 7.0},
                {"module": "vendor", "function": "", "lineno": null}, "junk"]}}]}"#,
    );
    let ctx = &d.batch.context;
    assert_eq!(ctx.app.version.as_deref(), Some("2"));
    assert_eq!(ctx.browser.mobile, Some(true));
    assert_eq!(ctx.session_id.as_deref(), Some("12345"));
    let RumEvent::Vital(lcp) = &d.batch.events[1] else {
        panic!()
    };
    assert_eq!((lcp.value, lcp.delta), (2600.5, 10.0));
    assert_eq!(
        lcp.rating,
        Rating::NeedsImprovement,
        "computed: `7` is no rating"
    );
    assert_eq!(lcp.time, Some(1_795_839_354_930.0));
    let RumEvent::Error(e) = &d.batch.events[0] else {
        panic!()
    };
    assert_eq!(
        e.stack.as_deref(),
        Some("Error: boom\n    at app.js:44:7\n    at vendor")
    );
    assert!(d.batch.rejected.is_empty(), "{:?}", d.batch.rejected);
}

#[test]
fn fields_alloy_drops_are_mapped() {
    let d = decode_str(
        r#"{"meta": {
              "app": {"name": "shop", "namespace": "web", "bundleId": "b-7f3a", "release": "r1"},
              "browser": {"os": "Mac OS 14.5", "brands": "Chromium 128, Google Chrome 128"},
              "os": {"version": "14.5", "build_id": "23F79", "detail": "macOS Sonoma"},
              "device": {"manufacturer": "Apple", "model_identifier": "Mac15,3",
                         "model_name": "MacBook Pro", "brand": "Apple", "is_physical": true,
                         "type": "desktop"},
              "k6": {"isK6Browser": true, "testRunId": "run-1"},
              "user": {"id": "u-123", "email": "ada@example.com", "username": "ada"},
              "session": {"id": "s1", "attributes": {"previousSession": "s0"}},
              "geo": {"country_iso": "XX"}},
            "exceptions": [{"type": "TypeError", "value": "x", "fatal": "true",
                            "fingerprint": "cart-id-null",
                            "action": {"name": "checkout", "id": "a1", "parentId": "a0"},
                            "trace": {"trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
                                      "span_id": "00f067aa0ba902b7"}}],
            "events": [{"name": "session_start"},
                       {"name": "faro.user.action", "attributes": {"userActionName": "checkout-click",
                        "userActionDuration": "412", "userActionTrigger": "pointerdown"}}]}"#,
    );
    let ctx = &d.batch.context;
    assert_eq!(ctx.browser.platform.as_deref(), Some("Mac OS 14.5"));
    assert_eq!(ctx.browser.brands, ["Chromium 128", "Google Chrome 128"]);
    assert_eq!(ctx.user_id.as_deref(), Some("u-123"));
    for (key, value) in [
        ("service.namespace", s("web")),
        ("faro.app.bundle_id", s("b-7f3a")),
        ("faro.app.release", s("r1")),
        ("os.version", s("14.5")),
        ("os.build_id", s("23F79")),
        ("os.description", s("macOS Sonoma")),
        ("device.manufacturer", s("Apple")),
        ("device.model.identifier", s("Mac15,3")),
        ("device.model.name", s("MacBook Pro")),
        ("faro.device.brand", s("Apple")),
        ("faro.device.type", s("desktop")),
        ("faro.device.is_physical", AttrValue::Bool(true)),
        ("user_agent.synthetic.type", s("test")),
        ("faro.k6.test_run_id", s("run-1")),
    ] {
        assert_eq!(attr(&ctx.attributes, key), Some(&value), "{key}");
    }
    let all = format!("{ctx:?}");
    assert!(
        !all.contains("ada") && !all.contains("XX"),
        "personal data and client geo are not kept"
    );

    let RumEvent::Error(e) = &d.batch.events[0] else {
        panic!()
    };
    assert_eq!(
        hex(&e.active_span.unwrap().trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    for (key, value) in [
        ("faro.exception.fatal", AttrValue::Bool(true)),
        ("faro.exception.fingerprint", s("cart-id-null")),
        ("faro.action.name", s("checkout")),
        ("faro.action.id", s("a1")),
        ("faro.action.parent_id", s("a0")),
    ] {
        assert_eq!(attr(&e.attributes, key), Some(&value), "{key}");
    }
    assert!(e.stack.is_none(), "no frames, no stack trace");
    let RumEvent::Custom(start) = &d.batch.events[1] else {
        panic!()
    };
    assert_eq!(start.name, "session.start");
    assert_eq!(
        attr(&start.attributes, "session.previous_id"),
        Some(&s("s0"))
    );
    let RumEvent::Interaction(click) = &d.batch.events[2] else {
        panic!()
    };
    assert_eq!(
        (click.kind.as_str(), click.duration),
        ("pointerdown", 412.0)
    );
}

#[test]
fn brands_as_objects_without_versions() {
    let d = decode_str(
        r#"{"meta": {"browser": {"brands": [{"brand": "A"}, {"version": "1"}, 3,
                                             {"brand": "B", "version": 2}]}}}"#,
    );
    assert_eq!(d.batch.context.browser.brands, ["A", "B 2"]);
}

#[test]
fn resources_join_the_page_load_of_their_batch() {
    let resource = r#"{"name": "faro.performance.resource", "timestamp": "2026-11-28T04:15:55.000Z",
        "attributes": {"name": "http://x/app.js", "duration": "20", "initiatorType": "script"},
        "trace": {"trace_id": "53bec1249f39358c9a2ff01d99e6d9cb", "span_id": "a46f5d6b3fcb20fa"}}"#;
    let navigation = r#"{"name": "faro.performance.navigation",
        "timestamp": "2026-11-28T04:15:54.564Z", "attributes": {"duration": "391"}}"#;
    let mut limits = limits();
    limits.max_resources_per_page_load = 2;
    let json = format!(r#"{{"events": [{resource}, {resource}, {resource}, {navigation}]}}"#);
    let d = decode(json.as_bytes(), &limits, RECEIVED, FaroCompat::None).unwrap();
    assert_eq!(d.batch.events.len(), 1);
    let RumEvent::PageLoad(PageLoad { resources, .. }) = &d.batch.events[0] else {
        panic!()
    };
    assert_eq!(resources.len(), 2);
    assert_eq!(resources[0].url, "http://x/app.js");
    assert_eq!(
        hex(&resources[0].timing.server_trace.unwrap().span_id),
        "a46f5d6b3fcb20fa"
    );
    assert_eq!(d.batch.rejected.len(), 1);
    assert_eq!(d.batch.rejected[0].reason, "too_many_resources");
    assert!(
        d.batch.context.server_trace.is_none(),
        "the navigation had no trace"
    );
}

#[test]
fn other_measurements_are_custom_events() {
    let d = decode_str(
        r#"{"measurements": [{"type": "cart", "values": {"items": 3, "total": "42.5"},
                              "context": {"currency": "EUR"}},
                             {"type": "web-vitals", "values": {"fid": 3}}]}"#,
    );
    for event in &d.batch.events {
        let RumEvent::Custom(c) = event else {
            panic!("{event:?}")
        };
        assert_eq!(c.name, "faro.measurement");
    }
    let RumEvent::Custom(cart) = &d.batch.events[0] else {
        panic!()
    };
    assert_eq!(
        attr(&cart.attributes, "faro.measurement.type"),
        Some(&s("cart"))
    );
    assert_eq!(
        attr(&cart.attributes, "total"),
        Some(&AttrValue::Float(42.5))
    );
    assert_eq!(attr(&cart.attributes, "currency"), Some(&s("EUR")));
}

#[test]
fn wrong_section_and_meta_types_cost_only_themselves() {
    let d = decode_str(
        r#"{"meta": 5, "logs": {"message": "x"}, "exceptions": null, "events": "x",
            "measurements": [{"type": "web-vitals", "values": {"cls": 0.1}}],
            "traces": [], "unknown": {"deep": [[[]]]}}"#,
    );
    assert_eq!(d.batch.events.len(), 1);
    let reasons: Vec<_> = d.batch.rejected.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            "invalid_meta",
            "invalid_section",
            "invalid_section",
            "invalid_traces"
        ]
    );
}

#[test]
fn whole_body_refusals() {
    for bad in ["", "{", "{\"logs\": [1,]}", "\u{feff}{}", "{} {}"] {
        let err = decode(bad.as_bytes(), &limits(), RECEIVED, FaroCompat::None).unwrap_err();
        assert_eq!(err.reason(), "invalid_json", "{bad:?}");
    }
    for bad in ["[]", " null", "\"text\"", "12", "true"] {
        let err = decode(bad.as_bytes(), &limits(), RECEIVED, FaroCompat::None).unwrap_err();
        assert_eq!(err.reason(), "wrong_shape", "{bad:?}");
    }
    assert!(decode(b"{\"logs\": [\xff]}", &limits(), RECEIVED, FaroCompat::None).is_err());
    let empty = decode_str("{}");
    assert!(empty.batch.events.is_empty() && empty.batch.rejected.is_empty());
}

#[test]
fn items_beyond_the_limit_are_rejected_and_far_beyond_refused() {
    let mut limits = limits();
    limits.max_events_per_batch = 10;
    let logs = |n: usize| vec![r#"{"message": "m"}"#; n].join(",");
    let span = r#"{"traceId": "53bec1249f39358c9a2ff01d99e6d9cb", "spanId": "661914a080cc7e33"}"#;
    let json = format!(
        r#"{{"logs": [{}], "events": [{}], "traces": {{"resourceSpans": [{{"scopeSpans": [{{"spans": [{span}, {span}]}}]}}]}}}}"#,
        logs(8),
        r#"{"name": "a"}, {"name": "b"}, {"name": "c"}"#
    );
    let d = decode(json.as_bytes(), &limits, RECEIVED, FaroCompat::None).unwrap();
    assert_eq!(d.batch.events.len(), 10);
    assert_eq!(d.span_count, 0);
    assert_eq!(d.batch.rejected.len(), 3);
    assert!(d
        .batch
        .rejected
        .iter()
        .all(|r| r.reason == "too_many_items"));

    let json = format!(r#"{{"logs": [{}]}}"#, logs(21));
    let err = decode(json.as_bytes(), &limits, RECEIVED, FaroCompat::None).unwrap_err();
    assert_eq!(err.reason(), "too_many_items");
    // A huge array is counted, not stored.
    let json = format!(r#"{{"logs": [{}]}}"#, vec!["0"; 200_000].join(","));
    assert!(decode(json.as_bytes(), &limits, RECEIVED, FaroCompat::None).is_err());
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    use crate::receive::body::MAX_JSON_DEPTH;
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for depth in [MAX_JSON_DEPTH, 100_000] {
        let json = format!(
            r#"{{"unknown": {0}, "logs": [{{"message": "m", "context": {{"k": {0}}}}}]}}"#,
            deep(depth)
        );
        let err = decode(json.as_bytes(), &limits(), RECEIVED, FaroCompat::None).unwrap_err();
        assert_eq!(err.reason(), "too_deep");
    }
    // Brackets inside strings do not count; shallow unknown containers are skipped.
    let json = format!(
        r#"{{"unknown": {0}, "logs": [{{"message": "{1}", "context": {{"k": "v"}}}}]}}"#,
        deep(MAX_JSON_DEPTH - 3),
        "[".repeat(1000)
    );
    assert_eq!(decode_str(&json).batch.events.len(), 1);
}

#[test]
fn bad_gzip_is_an_error_not_a_panic() {
    use crate::receive::body::gunzip_limited;
    use std::io::Write;
    let body = captured("faro.jsonl")[0].clone();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).unwrap();
    let gz = encoder.finish().unwrap();
    let ok = gunzip_limited(&gz, 1 << 20).unwrap();
    assert!(decode(&ok, &limits(), RECEIVED, FaroCompat::None).is_ok());
    for bad in [
        &gz[..gz.len() / 2],
        &gz[10..],
        b"not gzip at all".as_slice(),
    ] {
        let err = gunzip_limited(bad, 1 << 20).unwrap_err();
        assert_eq!(err.reason(), "invalid_gzip");
    }
}

/// Arbitrary JSON values, nested a few levels, with Faro's key names mixed in.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = prop_oneof![
        Just("meta".to_owned()),
        Just("logs".to_owned()),
        Just("events".to_owned()),
        Just("measurements".to_owned()),
        Just("exceptions".to_owned()),
        Just("traces".to_owned()),
        Just("resourceSpans".to_owned()),
        Just("scopeSpans".to_owned()),
        Just("spans".to_owned()),
        Just("traceId".to_owned()),
        Just("spanId".to_owned()),
        Just("name".to_owned()),
        Just("values".to_owned()),
        Just("context".to_owned()),
        Just("attributes".to_owned()),
        Just("timestamp".to_owned()),
        Just("trace".to_owned()),
        Just("stacktrace".to_owned()),
        Just("frames".to_owned()),
        Just("brands".to_owned()),
        Just("type".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(Value::String("faro.performance.navigation".into())),
        Just(Value::String("web-vitals".into())),
        Just(Value::String("2026-11-28T04:15:54.564Z".into())),
        Just(Value::String("53bec1249f39358c9a2ff01d99e6d9cb".into())),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kvs| Value::Object(kvs.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&body, &limits(), RECEIVED, FaroCompat::None);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        let _ = decode(&body, &limits(), RECEIVED, FaroCompat::None);
        let wrapped = serde_json::json!({"meta": value, "logs": [value], "events": [value],
            "measurements": [value], "exceptions": [value], "traces": value});
        let _ = decode(&serde_json::to_vec(&wrapped).unwrap(), &limits(), RECEIVED, FaroCompat::None);
    }

    #[test]
    fn mutated_captures_never_panic(index in 0usize..6, cut in 0usize..4000, byte in any::<u8>()) {
        let mut body = captured("faro.jsonl")[index].clone().into_bytes();
        let at = cut % body.len();
        body[at] = byte;
        let _ = decode(&body, &limits(), RECEIVED, FaroCompat::None);
        let _ = decode(&body[..at], &limits(), RECEIVED, FaroCompat::None);
    }
}

fn decode_contrib(json: &str) -> FaroBatch {
    decode(
        json.as_bytes(),
        &limits(),
        RECEIVED,
        FaroCompat::FaroContrib,
    )
    .unwrap()
}

#[test]
fn contrib_records_are_kept_only_when_asked_for() {
    let json = r#"{"logs": [{"message": "hi"}]}"#;
    assert!(decode_str(json).contrib.is_none());
    assert_eq!(decode_contrib(json).contrib.unwrap().records.len(), 1);
}

#[test]
fn contrib_records_keep_each_item_as_sent_and_point_at_its_model_event() {
    use crate::model::faro_contrib::{Brands, Frame, Kind};
    let json = r#"{
      "meta": {"sdk": {"name": "faro-web", "version": "2.12.1",
                       "integrations": [{"name": "tracing", "version": "2.12.1"},
                                        {"name": "bad,name", "version": "1"}]},
               "user": {"id": "u1", "email": "alice@example.com", "username": "alice"},
               "session": {"id": "s1", "attributes": {"isSampled": "true"}},
               "page": {"id": "p1", "url": "https://shop.example.com/", "attributes": {"b": "2", "a": "1"}},
               "browser": {"name": "Chrome", "version": "156.0.0.0", "os": "Linux",
                           "viewportWidth": 1280, "viewportHeight": "720",
                           "brands": [{"brand": "Chromium", "version": "156"}, {}, {"version": "8"}]},
               "k6": {"isK6Browser": true}, "view": {"name": "cart"},
               "geo": {"city": "Berlin"}},
      "logs": [{"message": "m", "context": {"z": "1", "a": "2", "a": "3"},
                "action": {"name": "checkout", "parentId": "a1"},
                "trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}},
               {"message": "warned", "level": "warn", "timestamp": "2026-11-28T04:15:54.930Z"}],
      "exceptions": [{"type": "TypeError", "value": "boom",
                      "stacktrace": {"frames": [{"function": "f\n  at g", "filename": "a.js",
                                                 "lineno": 3, "colno": -1},
                                                {"filename": "b.js", "module": "m"}]}}],
      "measurements": [{"type": "web-vitals", "values": {"lcp": 2310.5, "delta": 1, "bad": "x"},
                        "context": {"rating": "good"}}],
      "events": [{"name": "faro.performance.resource", "attributes": {"name": "https://cdn.example/x.js"}},
                 {"name": "faro.performance.navigation", "domain": "browser",
                  "attributes": {"name": "https://shop.example.com/", "duration": "100"}},
                 {"domain": "browser"},
                 {"name": "checkout", "domain": "browser"}]
    }"#;
    let d = decode_contrib(json);
    let contrib = d.contrib.unwrap();
    let kinds: Vec<Kind> = contrib.records.iter().map(|r| r.kind).collect();
    use Kind::*;
    assert_eq!(
        kinds,
        [Log, Log, Exception, Measurement, Event, Event, Event],
        "the event without a name is rejected in both outputs"
    );
    assert_eq!(d.batch.rejected.len(), 1);
    // Each record points at the model event made from the same item; the resource entry is
    // folded into the page load, so it has none.
    let events: Vec<Option<usize>> = contrib.records.iter().map(|r| r.event).collect();
    assert_eq!(
        events,
        [Some(0), Some(1), Some(2), Some(3), None, Some(4), Some(5)]
    );
    assert!(matches!(d.batch.events[2], RumEvent::Error(_)));
    assert!(matches!(d.batch.events[3], RumEvent::Vital(_)));
    assert!(matches!(d.batch.events[4], RumEvent::PageLoad(_)));

    let log = &contrib.records[0];
    assert_eq!(
        log.text,
        [("level", "info".to_owned()), ("message", "m".to_owned())],
        "level defaults to info"
    );
    assert_eq!(
        log.context,
        [
            ("a".to_owned(), "3".to_owned()),
            ("z".to_owned(), "1".to_owned())
        ]
    );
    assert_eq!(
        log.action,
        [
            ("action_name", "checkout".to_owned()),
            ("action_parent_id", "a1".to_owned())
        ]
    );
    assert_eq!(hex(&log.span.unwrap().span_id), "00f067aa0ba902b7");
    assert_eq!(log.time, RECEIVED);
    assert_eq!(contrib.records[1].text[0].1, "warn", "the level as sent");
    assert_eq!(contrib.records[1].time, 1_795_839_354_930.0);

    let exception = &contrib.records[2];
    assert_eq!(
        exception.frames,
        [
            Frame {
                function: "f   at g".into(),
                filename: "a.js".into(),
                lineno: 3,
                ..Default::default()
            },
            Frame {
                module: "m".into(),
                filename: "b.js".into(),
                ..Default::default()
            }
        ]
    );
    let measurement = &contrib.records[3];
    assert_eq!(
        measurement.values,
        [("delta".to_owned(), 1.0), ("lcp".to_owned(), 2310.5)]
    );
    assert_eq!(contrib.records[4].url_key, Some("name"));
    assert_eq!(contrib.records[5].url_key, Some("name"));
    assert_eq!(contrib.records[6].url_key, None);
    assert_eq!(
        contrib.records[6].text,
        [
            ("event_name", "checkout".to_owned()),
            ("event_domain", "browser".to_owned())
        ]
    );

    let meta = &contrib.meta;
    assert_eq!(
        meta.sdk_integrations,
        [("tracing".to_owned(), "2.12.1".to_owned())]
    );
    assert_eq!(meta.page_id.as_deref(), Some("p1"));
    assert_eq!(
        meta.page_attributes,
        [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned())
        ]
    );
    assert_eq!(
        meta.session_attributes,
        [("isSampled".to_owned(), "true".to_owned())]
    );
    assert_eq!(meta.browser_os.as_deref(), Some("Linux"));
    assert_eq!(meta.viewport_width.as_deref(), Some("1280"));
    assert_eq!(
        meta.brands,
        Brands::List(vec![
            ("Chromium".into(), "156".into()),
            (String::new(), "8".into())
        ])
    );
    assert!(meta.k6_browser);
    assert_eq!(meta.view_name.as_deref(), Some("cart"));
    // The model is unchanged by the contrib output.
    assert_eq!(d.batch.context.browser.brands, ["Chromium 156"]);
}

#[test]
fn every_captured_request_gives_contrib_records() {
    for body in captured("faro.jsonl") {
        let d = decode(
            body.as_bytes(),
            &limits(),
            RECEIVED,
            FaroCompat::FaroContrib,
        )
        .unwrap();
        let contrib = d.contrib.unwrap();
        assert!(!contrib.records.is_empty(), "{body}");
        for r in &contrib.records {
            if let Some(i) = r.event {
                assert!(i < d.batch.events.len());
            }
        }
    }
}
