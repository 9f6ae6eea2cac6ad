//! Tests of the native decoder: every event type, leniency, limits, whole-body errors, the
//! captured web-vitals requests, the shipped examples and schema, and fuzzing.

use super::*;
use crate::model::trace_context::hex;
use proptest::prelude::*;

const SERVER_TP: &str = "00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01";
const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const EXAMPLE: &str = include_str!("../../../../examples/beacons/page-load.json");

fn decode_ok(json: &str) -> RumBatch {
    decode(json.as_bytes(), &LimitsConfig::default()).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// A minimal beacon around the given events.
fn beacon(events: &str) -> String {
    format!(r#"{{"v":1,"k":"pk_test","t0":1700000000000.5,"ev":[{events}]}}"#)
}

/// The single event of a batch that must have no rejections.
fn single(batch: RumBatch) -> RumEvent {
    assert_eq!(batch.rejected, vec![], "unexpected rejections");
    assert_eq!(batch.events.len(), 1);
    batch.events.into_iter().next().unwrap()
}

fn attr<'a>(attrs: &'a Attributes, key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn reasons(batch: &RumBatch) -> Vec<&'static str> {
    batch.rejected.iter().map(|r| r.reason.as_str()).collect()
}

#[test]
fn context_fields() {
    let batch = decode_ok(
        r#"{"v":1,"k":"pk_shop_web","sid":"s1","pvid":"pv1","url":"https://shop.example/p",
        "ref":"https://shop.example/","ua":"Mozilla/5.0",
        "br":{"brands":["Chromium 156",{"brand":"Google Chrome","version":"156"}],
              "platform":"Linux","mobile":false,"lang":"en-US"},
        "uid":"u-1","sdk":{"name":"rum-bridge-js","version":"0.1.0"},"appVersion":"1.2.3",
        "serverTp":"00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01",
        "load":{"trace":"4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c","span":"5f0e1d2c3b4a6978"},
        "t0":1795839390385.4,"sent":1795839398321.7,"consent":["analytics"],
        "attrs":{"deployment.region":"eu"},"ev":[]}"#,
    );
    let c = &batch.context;
    assert_eq!(c.app.key.as_deref(), Some("pk_shop_web"));
    assert_eq!(c.app.name, "");
    assert_eq!(c.app.version.as_deref(), Some("1.2.3"));
    assert_eq!(c.session_id.as_deref(), Some("s1"));
    assert_eq!(c.page_view_id.as_deref(), Some("pv1"));
    assert_eq!(c.page_url.as_deref(), Some("https://shop.example/p"));
    assert_eq!(c.referrer.as_deref(), Some("https://shop.example/"));
    assert_eq!(c.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(c.browser.brands, ["Chromium 156", "Google Chrome 156"]);
    assert_eq!(c.browser.platform.as_deref(), Some("Linux"));
    assert_eq!(c.browser.mobile, Some(false));
    assert_eq!(c.browser.language.as_deref(), Some("en-US"));
    assert_eq!(c.user_id.as_deref(), Some("u-1"));
    assert_eq!(c.sdk_name.as_deref(), Some("rum-bridge-js"));
    assert_eq!(c.sdk_version.as_deref(), Some("0.1.0"));
    assert_eq!(c.server_trace.unwrap().to_traceparent(), SERVER_TP);
    let span = c.page_span.unwrap();
    assert_eq!(hex(&span.trace_id), SERVER_TRACE);
    assert_eq!(hex(&span.span_id), "5f0e1d2c3b4a6978");
    assert_eq!(c.time_origin_ms, 1795839390385.4);
    assert_eq!(c.sent_at_ms, Some(1795839398321.7));
    assert_eq!(c.received_at_ms, 0.0);
    assert_eq!(c.consent.as_deref(), Some(&["analytics".to_owned()][..]));
    assert_eq!(
        attr(&c.attributes, "deployment.region"),
        Some(&AttrValue::Str("eu".into()))
    );
    assert!(batch.events.is_empty() && batch.rejected.is_empty());
}

#[test]
fn page_load_event() {
    let batch = decode_ok(&beacon(
        r#"{"type":"page_load","nav":{"name":"https://shop.example/p","type":"navigate",
        "startTime":0,"duration":1912.4,"fetchStart":2.1,"domainLookupStart":4.3,
        "domainLookupEnd":18.9,"connectStart":18.9,"secureConnectionStart":27.5,"connectEnd":61.2,
        "requestStart":61.8,"responseStart":212.6,"responseEnd":241.3,"transferSize":31870,
        "encodedBodySize":31570,"decodedBodySize":118204,"nextHopProtocol":"h2","responseStatus":200,
        "serverTiming":[{"name":"cache","duration":1,"description":"hit"},
                        {"name":"traceparent","duration":0,"description":"00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01"}],
        "domInteractive":612.4,"domContentLoadedEventStart":618,"domContentLoadedEventEnd":621.7,
        "domComplete":1907.9,"loadEventStart":1908.1,"loadEventEnd":1912.4,"redirectCount":1,
        "firstPaint":688.2,"firstContentfulPaint":690},
        "res":[{"name":"https://shop.example/app.css","initiatorType":"link",
                "renderBlockingStatus":"blocking","startTime":251,"duration":88.4,"fetchStart":251,
                "responseEnd":339.4,"transferSize":0,"serverTiming":"trace;desc=00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-0f1e2d3c4b5a6978-01"},
               {"name":"https://cdn.example/logo.svg","initiatorType":"img","startTime":530.2,"duration":41.8}]}"#,
    ));
    let RumEvent::PageLoad(pl) = single(batch) else {
        panic!("not a page load")
    };
    let n = &pl.navigation;
    assert_eq!(n.url.as_deref(), Some("https://shop.example/p"));
    assert_eq!(n.navigation_type.as_deref(), Some("navigate"));
    assert_eq!(n.timing.duration, 1912.4);
    assert_eq!(n.timing.fetch_start, 2.1);
    assert_eq!(n.timing.secure_connection_start, 27.5);
    assert_eq!(n.timing.response_start, 212.6);
    assert_eq!(n.timing.transfer_size, Some(31870));
    assert_eq!(n.timing.decoded_body_size, Some(118204));
    assert_eq!(n.timing.next_hop_protocol.as_deref(), Some("h2"));
    assert_eq!(n.timing.response_status, Some(200));
    assert_eq!(n.timing.server_trace.unwrap().to_traceparent(), SERVER_TP);
    assert_eq!(n.dom_interactive, 612.4);
    assert_eq!(n.dom_content_loaded_event_start, 618.0);
    assert_eq!(n.dom_complete, 1907.9);
    assert_eq!(n.load_event_end, 1912.4);
    assert_eq!(n.redirect_count, 1);
    assert_eq!(n.first_paint, Some(688.2));
    assert_eq!(n.first_contentful_paint, Some(690.0));
    assert_eq!(pl.resources.len(), 2);
    let css = &pl.resources[0];
    assert_eq!(css.url, "https://shop.example/app.css");
    assert_eq!(css.initiator_type.as_deref(), Some("link"));
    assert_eq!(css.render_blocking_status.as_deref(), Some("blocking"));
    assert_eq!(css.timing.duration, 88.4);
    assert_eq!(css.timing.transfer_size, Some(0));
    assert_eq!(
        hex(&css.timing.server_trace.unwrap().span_id),
        "0f1e2d3c4b5a6978"
    );
    assert_eq!(pl.resources[1].timing.response_end, 0.0, "absent means 0");
}

#[test]
fn native_vital() {
    let batch = decode_ok(&beacon(
        r##"{"type":"vital","name":"LCP","value":2810.4,"delta":100,"id":"v6-1-2",
        "rating":"needs-improvement","navigationType":"navigate","time":2810.4,
        "target":"#hero","attrs":{"element_render_delay":12.5}}"##,
    ));
    let RumEvent::Vital(v) = single(batch) else {
        panic!("not a vital")
    };
    assert_eq!(v.name, VitalName::Lcp);
    assert_eq!((v.value, v.delta), (2810.4, 100.0));
    assert_eq!(v.id, "v6-1-2");
    assert_eq!(v.rating, Rating::NeedsImprovement);
    assert_eq!(v.navigation_type.as_deref(), Some("navigate"));
    assert_eq!(v.time, Some(2810.4));
    assert_eq!(v.target.as_deref(), Some("#hero"));
    assert_eq!(
        attr(&v.attribution, "element_render_delay"),
        Some(&AttrValue::Float(12.5))
    );
}

#[test]
fn vital_defaults_rating_and_delta() {
    let batch = decode_ok(&beacon(r#"{"type":"vital","name":"inp","value":"612"}"#));
    let RumEvent::Vital(v) = single(batch) else {
        panic!("not a vital")
    };
    assert_eq!(v.name, VitalName::Inp);
    assert_eq!(v.rating, Rating::Poor, "computed from Google's thresholds");
    assert_eq!(v.delta, 612.0);
    assert_eq!(v.id, "");
    assert_eq!(v.time, None);
}

#[test]
fn web_vitals_metric_as_event_in_a_beacon() {
    // Attribution build INP, as JSON.stringify(metric) gives it (no `type`).
    let batch = decode_ok(&beacon(
        r##"{"name":"INP","value":144,"rating":"good","delta":144,
        "entries":[{"name":"pointerdown","entryType":"event","startTime":1833.9,"duration":144}],
        "id":"v6-1795839390517-5311462824085","navigationType":"navigate","navigationId":1458,
        "navigationURL":"http://127.0.0.1:18787/p/web-vitals/","navigationStartTime":0,
        "attribution":{"interactionTarget":"#add-to-cart","interactionType":"pointer",
          "interactionTime":1833.9,"nextPaintTime":1977.9,"processedEventEntries":[],
          "longAnimationFrameEntries":[{"scripts":[{"invoker":"BUTTON#add-to-cart.onclick"}]}],
          "inputDelay":1.4,"processingDuration":128.2,"presentationDelay":14.4,
          "loadState":"complete","longestScript":{"entry":{},"subpart":"processing-duration"},
          "totalScriptDuration":121.9}}"##,
    ));
    // The beacon had no page URL: web-vitals' navigationURL fills it.
    assert_eq!(
        batch.context.page_url.as_deref(),
        Some("http://127.0.0.1:18787/p/web-vitals/")
    );
    let RumEvent::Vital(v) = single(batch) else {
        panic!("not a vital")
    };
    assert_eq!(v.name, VitalName::Inp);
    assert_eq!(v.rating, Rating::Good);
    assert_eq!(v.target.as_deref(), Some("#add-to-cart"));
    assert_eq!(v.time, Some(1833.9), "interactionTime, relative to t0");
    for (key, want) in [
        ("input_delay", 1.4),
        ("processing_duration", 128.2),
        ("presentation_delay", 14.4),
        ("total_script_duration", 121.9),
        ("next_paint_time", 1977.9),
    ] {
        assert_eq!(
            attr(&v.attribution, key),
            Some(&AttrValue::Float(want)),
            "{key}"
        );
    }
    assert_eq!(
        attr(&v.attribution, "interaction_type"),
        Some(&AttrValue::Str("pointer".into()))
    );
    assert!(attr(&v.attribution, "longAnimationFrameEntries").is_none());
}

#[test]
fn beacon_server_trace_wins_over_web_vitals_attribution() {
    let other = "00-11111111111111111111111111111111-2222222222222222-01";
    let batch = decode_ok(&format!(
        r#"{{"v":1,"serverTp":"{other}","ev":[{{"name":"TTFB","value":12.2,
        "attribution":{{"navigationEntry":{{"name":"https://x/","serverTiming":[
          {{"name":"traceparent","duration":0,"description":"{SERVER_TP}"}}]}}}}}}]}}"#
    ));
    assert_eq!(batch.context.server_trace.unwrap().to_traceparent(), other);
    assert_eq!(batch.context.page_url.as_deref(), Some("https://x/"));
}

#[test]
fn interaction_event() {
    let batch = decode_ok(&beacon(
        r##"{"type":"interaction","name":"click","target":"#add-to-cart","start":3833.9,
        "dur":144,"inputDelay":1.4,"processingDuration":128.2,"presentationDelay":14.4,
        "trace":"7b3e9c1d5a2f4e6b8c0d1e2f3a4b5c6d","span":"1a2b3c4d5e6f7081","attrs":{"button":0}}"##,
    ));
    let RumEvent::Interaction(i) = single(batch) else {
        panic!("not an interaction")
    };
    assert_eq!(i.kind, "click");
    assert_eq!(i.target.as_deref(), Some("#add-to-cart"));
    assert_eq!((i.start, i.duration), (3833.9, 144.0));
    assert_eq!(i.input_delay, Some(1.4));
    assert_eq!(i.processing_duration, Some(128.2));
    assert_eq!(i.presentation_delay, Some(14.4));
    let span = i.span.unwrap();
    assert_eq!(hex(&span.trace_id), "7b3e9c1d5a2f4e6b8c0d1e2f3a4b5c6d");
    assert_eq!(hex(&span.span_id), "1a2b3c4d5e6f7081");
    assert_eq!(attr(&i.attributes, "button"), Some(&AttrValue::Int(0)));
}

#[test]
fn http_event() {
    let batch = decode_ok(&beacon(
        r#"{"type":"http","method":"POST","url":"https://shop.example/api/cart","status":200,
        "start":3962.3,"dur":83.7,"trace":"7b3e9c1d5a2f4e6b8c0d1e2f3a4b5c6d",
        "span":"2b3c4d5e6f708192","parent":"1a2b3c4d5e6f7081",
        "serverTp":"00-7b3e9c1d5a2f4e6b8c0d1e2f3a4b5c6d-9c8d7e6f5a4b3c2d-01",
        "initiator":"xhr","reqSize":28,"resSize":142,
        "timing":{"startTime":3962.3,"duration":83.7,"requestStart":3963,"responseStart":4040.1}},
        {"type":"http","url":"https://api.example/x","start":1,"status":0,"error":"network",
         "initiator":"fetch"}"#,
    ));
    assert_eq!(batch.rejected, vec![]);
    let [RumEvent::HttpCall(h), RumEvent::HttpCall(failed)] = &batch.events[..] else {
        panic!("not two http calls: {:?}", batch.events)
    };
    assert_eq!(h.method, "POST");
    assert_eq!(h.url, "https://shop.example/api/cart");
    assert_eq!(h.status, Some(200));
    assert_eq!((h.start, h.duration), (3962.3, 83.7));
    let span = h.span.unwrap();
    assert_eq!(hex(&span.trace_id), "7b3e9c1d5a2f4e6b8c0d1e2f3a4b5c6d");
    assert_eq!(hex(&span.span_id), "2b3c4d5e6f708192");
    assert_eq!(
        h.parent_span_id.map(|p| hex(&p)).as_deref(),
        Some("1a2b3c4d5e6f7081")
    );
    assert_eq!(
        h.server_trace.map(|t| hex(&t.span_id)).as_deref(),
        Some("9c8d7e6f5a4b3c2d")
    );
    assert_eq!(h.initiator.as_deref(), Some("xmlhttprequest"));
    assert_eq!(
        (h.request_body_size, h.response_body_size),
        (Some(28), Some(142))
    );
    assert_eq!(h.timing.as_ref().unwrap().response_start, 4040.1);
    assert_eq!(failed.method, "GET", "fetch's default");
    assert_eq!(failed.status, None, "0 means no response");
    assert_eq!(failed.error_type.as_deref(), Some("network"));
    assert_eq!(failed.initiator.as_deref(), Some("fetch"));
    assert!(failed.span.is_none() && failed.timing.is_none());
}

#[test]
fn error_log_and_custom_events() {
    let batch = decode_ok(&beacon(
        r#"{"type":"error","time":6120.4,"name":"TypeError","message":"boom","stack":"at f (a.js:1:2)",
         "handled":true,"trace":"3c4d5e6f708192a3b4c5d6e7f8091a2b","span":"3d4e5f60718293a4"},
        {"type":"error","time":1000,"message":"Recommendations service unavailable"},
        {"type":"log","time":4046.1,"level":"warn","message":"checkout started","attrs":{"code":"SPRING25"}},
        {"type":"log","time":1,"level":"verbose","message":"unknown level is info"},
        {"type":"custom","time":4046.5,"name":"add_to_cart","attrs":{"qty":1,"price":49.9,"vip":true}}"#,
    ));
    assert_eq!(batch.rejected, vec![]);
    let [RumEvent::Error(e), RumEvent::Error(rejection), RumEvent::Log(warn), RumEvent::Log(info), RumEvent::Custom(c)] =
        &batch.events[..]
    else {
        panic!("unexpected events: {:?}", batch.events)
    };
    assert_eq!(e.time, 6120.4);
    assert_eq!(e.error_type.as_deref(), Some("TypeError"));
    assert_eq!(e.message.as_deref(), Some("boom"));
    assert_eq!(e.stack.as_deref(), Some("at f (a.js:1:2)"));
    assert!(e.handled);
    assert_eq!(hex(&e.active_span.unwrap().span_id), "3d4e5f60718293a4");
    assert_eq!(rejection.error_type, None);
    assert!(!rejection.handled, "unhandled by default");
    assert_eq!(warn.severity, Severity::Warn);
    assert_eq!(warn.message, "checkout started");
    assert_eq!(
        attr(&warn.attributes, "code"),
        Some(&AttrValue::Str("SPRING25".into()))
    );
    assert_eq!(info.severity, Severity::Info);
    assert_eq!((c.time, c.name.as_str()), (4046.5, "add_to_cart"));
    assert_eq!(attr(&c.attributes, "qty"), Some(&AttrValue::Int(1)));
    assert_eq!(attr(&c.attributes, "price"), Some(&AttrValue::Float(49.9)));
    assert_eq!(attr(&c.attributes, "vip"), Some(&AttrValue::Bool(true)));
}

#[test]
fn bad_items_are_rejected_and_the_rest_kept() {
    let batch = decode_ok(&beacon(
        r#"{"type":"custom","time":1,"name":"first"},
        {"type":"http","url":"/a","start":1,"status":"abc"},
        42,
        null,
        {"type":"teleport","time":1},
        {"type":"log","time":2},
        {"type":"interaction","name":"click","start":"NaN"},
        {"type":"page_load","nav":{"fetchStart":{}}},
        {"type":"vital","name":"FID","value":3},
        {"time":5},
        {"type":"error","time":3},
        {"type":"custom","time":9,"name":"last"}"#,
    ));
    let kept: Vec<_> = batch
        .events
        .iter()
        .map(|e| match e {
            RumEvent::Custom(c) => c.name.as_str(),
            other => panic!("kept a bad event: {other:?}"),
        })
        .collect();
    assert_eq!(kept, ["first", "last"]);
    assert_eq!(
        reasons(&batch),
        [
            "invalid_field",
            "not_an_object",
            "not_an_object",
            "unknown_type",
            "missing_field",
            "invalid_number",
            "invalid_field",
            "unsupported_vital",
            "unknown_type",
            "missing_field",
        ]
    );
    let details: Vec<&str> = batch.rejected.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "event 1 (http): `status` must be a non-negative whole number, got a string that is not a number",
            "event 2: must be an object, got a number",
            "event 3: must be an object, got null",
            "event 4 (teleport): unknown type `teleport`",
            "event 5 (log): `message` is required",
            "event 6 (interaction): `start` must be a number, got a non-finite number",
            "event 7 (page_load): `nav.fetchStart` must be a number, got an object",
            "event 8 (vital): vital `FID` is not supported (LCP, INP, CLS, FCP and TTFB are)",
            "event 9: has no `type` and is not a web-vitals metric",
            "event 10 (error): `message` or `name` is required",
        ]
    );
}

#[test]
fn invalid_ids_are_ignored_not_fatal() {
    let batch = decode_ok(
        r#"{"v":1,"serverTp":"00-zz","load":{"trace":"00000000000000000000000000000000","span":"5f0e1d2c3b4a6978"},
        "ev":[{"type":"http","url":"/a","start":1,"trace":"xyz","span":"2b3c4d5e6f708192",
        "parent":"0000000000000000","serverTp":"garbage"},
        {"type":"interaction","name":"click","start":1,"trace":"7B3E9C1D5A2F4E6B8C0D1E2F3A4B5C6D","span":"1a2b3c4d5e6f7081"}]}"#,
    );
    assert_eq!(batch.rejected, vec![]);
    assert!(batch.context.server_trace.is_none());
    assert!(batch.context.page_span.is_none());
    let [RumEvent::HttpCall(h), RumEvent::Interaction(i)] = &batch.events[..] else {
        panic!("{:?}", batch.events)
    };
    assert!(h.span.is_none() && h.parent_span_id.is_none() && h.server_trace.is_none());
    assert!(i.span.is_some(), "upper-case hex is accepted");
}

#[test]
fn numbers_as_strings_are_coerced() {
    let batch = decode_ok(
        r#"{"v":"1","t0":"1700000000000","ev":[{"type":"http","url":"/a","start":"12.5",
        "dur":" 3 ","status":"404","reqSize":"10"}]}"#,
    );
    assert_eq!(batch.context.time_origin_ms, 1_700_000_000_000.0);
    let RumEvent::HttpCall(h) = single(batch) else {
        panic!("not http")
    };
    assert_eq!((h.start, h.duration, h.status), (12.5, 3.0, Some(404)));
    assert_eq!(h.request_body_size, Some(10));
}

/// Booleans follow the shared rule (`src/receive/lenient/scalar.rs`): `"true"`/`"false"` in any
/// case, as Faro's readers always took them.
#[test]
fn boolean_strings_are_coerced_in_any_case() {
    let batch = decode_ok(&beacon(
        r#"{"type":"error","time":1,"message":"boom","handled":"TRUE"}"#,
    ));
    let RumEvent::Error(e) = single(batch) else {
        panic!("not an error event")
    };
    assert!(e.handled);
}

#[test]
fn unknown_keys_are_ignored() {
    let batch = decode_ok(
        r#"{"v":1,"future":{"deep":[1,{"x":null}]},"ev":[{"type":"custom","time":1,"name":"n",
        "newField":[{"a":1}],"attrs":{"ok":1,"nested":{"a":1},"list":[1],"nothing":null}}],
        "br":{"brands":[],"wow":1},"sdk":{"name":"x","build":7},"load":{"trace":"a","extra":1}}"#,
    );
    let RumEvent::Custom(c) = single(batch) else {
        panic!("not custom")
    };
    assert_eq!(c.attributes, vec![("ok".to_owned(), AttrValue::Int(1))]);
}

#[test]
fn wrong_context_field_types_drop_only_that_field() {
    let batch =
        decode_ok(r#"{"v":1,"sid":{"x":1},"pvid":"pv","br":"Chrome","consent":"all","ev":[]}"#);
    assert_eq!(batch.context.session_id, None);
    assert_eq!(batch.context.page_view_id.as_deref(), Some("pv"));
    assert!(batch.context.browser.brands.is_empty());
    assert_eq!(batch.context.consent, None);
}

#[test]
fn the_pages_sampling_decision_is_read() {
    for (smp, expected) in [
        ("true", Some(true)),
        ("false", Some(false)),
        ("\"x\"", None),
    ] {
        let batch = decode_ok(&format!(r#"{{"v":1,"sid":"s","smp":{smp},"ev":[]}}"#));
        assert_eq!(batch.context.sampled, expected, "{smp}");
    }
    assert_eq!(
        decode_ok(r#"{"v":1,"sid":"s","ev":[]}"#).context.sampled,
        None
    );
}

#[test]
fn event_count_is_capped() {
    let limits = LimitsConfig {
        max_events_per_batch: 2,
        ..LimitsConfig::default()
    };
    let ev = r#"{"type":"custom","time":1,"name":"a"}"#;
    let body = beacon(&[ev; 4].join(","));
    let batch = decode(body.as_bytes(), &limits).unwrap();
    assert_eq!(batch.events.len(), 2);
    assert_eq!(reasons(&batch), ["too_many_items", "too_many_items"]);
    assert_eq!(
        batch.rejected[0].detail,
        "event 2: beyond max_events_per_batch (2)"
    );
    // More than twice the cap: the beacon is refused as a whole.
    let body = beacon(&[ev; 5].join(","));
    let err = decode(body.as_bytes(), &limits).unwrap_err();
    assert_eq!(err, NativeError::TooManyEvents { count: 5, max: 2 });
    assert_eq!(err.reason(), "too_many_items");
    // The cap is per body, even when `ev` is repeated.
    let repeated = format!(r#"{{"v":1,"ev":[{ev},{ev}],"ev":[{ev},{ev}]}}"#);
    let batch = decode(repeated.as_bytes(), &limits).unwrap();
    assert_eq!(batch.events.len(), 2);
    assert_eq!(reasons(&batch), ["too_many_items", "too_many_items"]);
    // Bare arrays are capped the same way.
    let body = format!("[{}]", [ev; 3].join(","));
    let batch = decode(body.as_bytes(), &limits).unwrap();
    assert_eq!((batch.events.len(), batch.rejected.len()), (2, 1));
}

#[test]
fn resources_keep_the_longest_in_start_order() {
    let limits = LimitsConfig {
        max_resources_per_page_load: 3,
        ..LimitsConfig::default()
    };
    let durations = [5.0, 50.0, 1.0, 40.0, 30.0, 2.0];
    let res: Vec<String> = durations
        .iter()
        .enumerate()
        .map(|(i, d)| format!(r#"{{"name":"/r{i}","startTime":{i},"duration":{d}}}"#))
        .collect();
    let body = beacon(&format!(
        r#"{{"type":"page_load","nav":{{}},"res":[{},{{"duration":9}},"x",{{"name":"/bad","duration":"y"}}]}}"#,
        res.join(",")
    ));
    let batch = decode(body.as_bytes(), &limits).unwrap();
    let RumEvent::PageLoad(pl) = single(batch) else {
        panic!("not a page load")
    };
    let urls: Vec<&str> = pl.resources.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(urls, ["/r1", "/r3", "/r4"]);
}

#[test]
fn long_strings_are_truncated() {
    let limits = LimitsConfig {
        max_attribute_value_len: 8,
        ..LimitsConfig::default()
    };
    let body = beacon(
        r#"{"type":"error","time":1,"message":"0123456789abc","stack":"ééééé",
        "attrs":{"k":"0123456789"}}"#,
    )
    .replace(r#""k":"pk_test""#, r#""k":"pk_0123456789""#);
    let batch = decode(body.as_bytes(), &limits).unwrap();
    assert_eq!(batch.context.app.key.as_deref(), Some("pk_01234"));
    let RumEvent::Error(e) = single(batch) else {
        panic!("not an error")
    };
    assert_eq!(e.message.as_deref(), Some("01234567"));
    assert_eq!(e.stack.as_deref(), Some("éééé"), "cut at a char boundary");
    assert_eq!(
        attr(&e.attributes, "k"),
        Some(&AttrValue::Str("01234567".into()))
    );
}

#[test]
fn attribute_count_is_capped() {
    let attrs: Vec<String> = (0..MAX_ATTRIBUTES + 10)
        .map(|i| format!(r#""a{i}":{i}"#))
        .collect();
    let batch = decode_ok(&beacon(&format!(
        r#"{{"type":"custom","time":1,"name":"n","attrs":{{{}}}}}"#,
        attrs.join(",")
    )));
    let RumEvent::Custom(c) = single(batch) else {
        panic!("not custom")
    };
    assert_eq!(c.attributes.len(), MAX_ATTRIBUTES);
    assert_eq!(c.dropped_attributes, 10, "what is left out is counted");
    assert_eq!(
        c.attributes[MAX_ATTRIBUTES - 1].0,
        "a63",
        "the first ones are kept"
    );
}

#[test]
fn context_attributes_beyond_the_cap_are_counted() {
    let attrs: Vec<String> = (0..100).map(|i| format!(r#""c{i}":"v""#)).collect();
    let body = format!(
        r#"{{"v":1,"attrs":{{{}}},"ev":[{{"type":"custom","time":1,"name":"n"}}]}}"#,
        attrs.join(",")
    );
    let batch = decode_ok(&body);
    assert_eq!(batch.context.attributes.len(), MAX_ATTRIBUTES);
    assert_eq!(batch.context.dropped_attributes, 36);
}

#[test]
fn whole_body_errors() {
    let cases: &[(&[u8], &str, &str)] = &[
        (b"", "invalid_json", "body is not valid JSON: EOF"),
        (b"{\"v\":1,", "invalid_json", "body is not valid JSON"),
        (b"{\"v\":1} x", "invalid_json", "trailing characters"),
        (b"\xff\xfe", "invalid_json", "invalid UTF-8 at byte 0"),
        (b"\"hello\"", "wrong_shape", "got a string"),
        (b"42", "wrong_shape", "got a number"),
        (b"null", "wrong_shape", "got null"),
        (b"{\"v\":2,\"ev\":[]}", "unsupported_version", "`v` = 2;"),
        (
            b"{\"v\":\"x\"}",
            "unsupported_version",
            "a string that is not a number",
        ),
        (
            b"{\"v\":1,\"ev\":{}}",
            "wrong_shape",
            "`ev` must be an array of events, got an object",
        ),
        (b"{\"v\":1,\"t0\":-5}", "invalid_time_origin", "got -5"),
        (
            b"{\"v\":1,\"t0\":true}",
            "invalid_time_origin",
            "got a boolean",
        ),
    ];
    for (body, reason, message) in cases {
        let err = decode(body, &LimitsConfig::default()).unwrap_err();
        assert_eq!(err.reason(), *reason, "{err}");
        assert!(err.to_string().contains(message), "{err} lacks {message}");
    }
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    let err = decode(deep.as_bytes(), &LimitsConfig::default()).unwrap_err();
    assert_eq!(err, NativeError::TooDeep);
    assert_eq!(err.reason(), "too_deep");
    let ok = format!(
        "[{}{}]",
        "[".repeat(MAX_DEPTH - 2),
        "]".repeat(MAX_DEPTH - 2)
    );
    assert!(decode(ok.as_bytes(), &LimitsConfig::default()).is_ok());
}

#[test]
fn bare_metric_with_page_fields_alongside() {
    // A page that sends the metric plus its own correlation fields next to it.
    let batch = decode_ok(
        r##"{"name":"CLS","value":0.05,"rating":"good","delta":0.05,"id":"v5-1-2",
        "navigationType":"navigate","entries":[],"sid":"s-9","url":"https://shop.example/",
        "serverTp":"00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01",
        "attribution":{"largestShiftTarget":"#promo","largestShiftTime":399.3,"largestShiftValue":0.05}}"##,
    );
    assert_eq!(batch.context.session_id.as_deref(), Some("s-9"));
    assert_eq!(
        batch.context.page_url.as_deref(),
        Some("https://shop.example/")
    );
    assert_eq!(batch.context.sdk_name.as_deref(), Some("web-vitals"));
    assert!(batch.context.server_trace.is_some());
    let RumEvent::Vital(v) = single(batch) else {
        panic!("not a vital")
    };
    assert_eq!(v.name, VitalName::Cls);
    assert_eq!(v.target.as_deref(), Some("#promo"));
    assert_eq!(v.time, None, "no t0: relative times cannot be placed");
}

#[test]
fn bare_v4_lcp_uses_element_as_target() {
    let batch = decode_ok(
        r#"{"name":"LCP","value":2810.4,"rating":"needs-improvement","delta":2810.4,
        "id":"v4-1-2","navigationType":"navigate","entries":[],
        "attribution":{"element":"main>img.hero","url":"https://cdn/hero.avif","timeToFirstByte":420,
        "resourceLoadDelay":610.2,"resourceLoadDuration":1500.1,"elementRenderDelay":280.1}}"#,
    );
    let RumEvent::Vital(v) = single(batch) else {
        panic!("not a vital")
    };
    assert_eq!(v.target.as_deref(), Some("main>img.hero"));
    assert_eq!(
        attr(&v.attribution, "url"),
        Some(&AttrValue::Str("https://cdn/hero.avif".into()))
    );
    assert_eq!(
        attr(&v.attribution, "resource_load_duration"),
        Some(&AttrValue::Float(1500.1))
    );
}

#[test]
fn vital_times_follow_the_metric() {
    let t = |event: &str| {
        let RumEvent::Vital(v) = single(decode_ok(&beacon(event))) else {
            panic!("not a vital")
        };
        v.time
    };
    assert_eq!(t(r#"{"name":"TTFB","value":12.5}"#), Some(12.5));
    assert_eq!(
        t(r#"{"name":"LCP","value":268,"entries":[{"startTime":132},{"startTime":268}]}"#),
        Some(268.0)
    );
    assert_eq!(
        t(r#"{"name":"FCP","value":30,"navigationStartTime":1000}"#),
        Some(1030.0),
        "soft navigation: value is measured from its start"
    );
    assert_eq!(
        t(
            r#"{"name":"CLS","value":0.1,"entries":[{"startTime":5}],"attribution":{"largestShiftTime":399.3}}"#
        ),
        Some(399.3)
    );
    assert_eq!(t(r#"{"name":"CLS","value":0,"entries":[]}"#), None);
    assert_eq!(
        t(r#"{"name":"INP","value":8,"time":77}"#),
        Some(77.0),
        "explicit wins"
    );
}

/// One captured web-vitals request: its path and its body.
fn web_vitals_captures() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/real-clients/web-vitals.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["path"].as_str().unwrap().to_owned(),
                v["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn web_vitals_captures_replay() {
    let captures = web_vitals_captures();
    assert!(captures.len() >= 2);
    let mut seen = std::collections::HashSet::new();
    for (path, body) in &captures {
        let batch = decode_ok(body);
        assert_eq!(batch.rejected, vec![], "{path}");
        let metrics: Vec<serde_json::Value> = match path.as_str() {
            "/collect-webvitals/metric" => vec![serde_json::from_str(body).unwrap()],
            "/collect-webvitals/batch" => serde_json::from_str(body).unwrap(),
            other => panic!("unexpected path {other}"),
        };
        assert_eq!(batch.events.len(), metrics.len(), "{path}");
        assert_eq!(batch.context.sdk_name.as_deref(), Some("web-vitals"));
        assert_eq!(
            batch.context.page_url.as_deref(),
            Some("http://127.0.0.1:18787/p/web-vitals/")
        );
        let mut carries_server_trace = false;
        for (event, metric) in batch.events.iter().zip(&metrics) {
            let RumEvent::Vital(v) = event else {
                panic!("not a vital: {event:?}")
            };
            let name = metric["name"].as_str().unwrap();
            seen.insert(name.to_owned());
            assert_eq!(v.name.as_str(), name.to_ascii_lowercase());
            assert_eq!(v.value, metric["value"].as_f64().unwrap());
            assert_eq!(v.delta, metric["delta"].as_f64().unwrap());
            assert_eq!(v.rating.as_str(), metric["rating"].as_str().unwrap());
            assert_eq!(v.id, metric["id"].as_str().unwrap());
            assert_eq!(v.navigation_type.as_deref(), Some("navigate"));
            assert_eq!(v.time, None, "bare bodies have no time origin");
            match v.name {
                VitalName::Inp => {
                    assert_eq!(v.target.as_deref(), Some("#add-to-cart"));
                    assert!(attr(&v.attribution, "input_delay").is_some());
                    assert!(attr(&v.attribution, "processing_duration").is_some());
                    assert!(attr(&v.attribution, "presentation_delay").is_some());
                }
                VitalName::Cls if v.value > 0.0 => {
                    assert_eq!(v.target.as_deref(), Some("#hero"))
                }
                VitalName::Ttfb | VitalName::Fcp | VitalName::Lcp => carries_server_trace = true,
                _ => {}
            }
        }
        if carries_server_trace {
            let tc = batch.context.server_trace.expect("server trace recovered");
            assert_eq!(hex(&tc.trace_id), SERVER_TRACE, "{path}");
            assert_eq!(hex(&tc.span_id), SERVER_SPAN, "{path}");
        }
    }
    for name in ["TTFB", "FCP", "LCP", "CLS", "INP"] {
        assert!(seen.contains(name), "no {name} in the captures");
    }
}

#[test]
fn example_page_load_beacon_decodes_fully() {
    assert!((7_000..10_000).contains(&EXAMPLE.len()), "about 8 KB");
    let batch = decode_ok(EXAMPLE);
    assert_eq!(batch.rejected, vec![]);
    let kinds: Vec<&str> = batch.events.iter().map(RumEvent::kind).collect();
    assert_eq!(
        kinds,
        [
            "page_load",
            "vital",
            "vital",
            "vital",
            "vital",
            "vital",
            "interaction",
            "http",
            "error",
            "log",
            "custom"
        ]
    );
    let RumEvent::PageLoad(pl) = &batch.events[0] else {
        unreachable!()
    };
    assert_eq!(pl.resources.len(), 20);
    assert_eq!(
        batch.context.server_trace.unwrap().to_traceparent(),
        SERVER_TP
    );
    assert_eq!(
        pl.navigation.timing.server_trace.unwrap().to_traceparent(),
        SERVER_TP
    );
    assert_eq!(
        hex(&batch.context.page_span.unwrap().trace_id),
        SERVER_TRACE
    );
    assert!(batch.context.time_origin_ms > 1.7e12);
}

/// The JSON code blocks of the format documentation.
fn doc_examples() -> Vec<String> {
    let doc = include_str!("../../../../docs/beacon-format.md");
    doc.split("```json\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}

#[test]
fn documented_examples_decode_without_rejections() {
    let examples = doc_examples();
    assert!(examples.len() >= 3, "the doc shows examples");
    for example in examples {
        let batch = decode_ok(&example);
        assert_eq!(batch.rejected, vec![], "{example}");
        assert!(!batch.events.is_empty(), "{example}");
    }
}

/// Every property the schema declares for beacons, events and timing entries is one the decoder
/// reads (so the schema documents no key that would be silently ignored).
#[test]
fn schema_properties_are_read_by_the_decoder() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../../schema/rum-beacon-v1.schema.json")).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let defs = schema["$defs"].as_object().unwrap();
    let props = |def: &str| -> Vec<String> {
        defs[def]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("$defs/{def} has properties"))
            .keys()
            .cloned()
            .collect()
    };
    let mut checked = 0;
    for def in [
        "beacon",
        "pageLoad",
        "vital",
        "interaction",
        "http",
        "error",
        "log",
        "custom",
    ] {
        for key in props(def) {
            let parsed: Key =
                serde_json::from_value(serde_json::Value::String(key.clone())).unwrap();
            assert_ne!(parsed, Key::Other, "$defs/{def}/{key} is not read");
            checked += 1;
        }
    }
    for def in ["navigationTiming", "resourceTiming"] {
        for key in props(def) {
            let parsed: TimingKey =
                serde_json::from_value(serde_json::Value::String(key.clone())).unwrap();
            assert_ne!(parsed, TimingKey::Other, "$defs/{def}/{key} is not read");
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} properties checked");
}

/// Replaces the value at a random position of a JSON tree.
fn mutate(value: &mut serde_json::Value, path: &[usize], replacement: serde_json::Value) {
    let Some((&step, rest)) = path.split_first() else {
        *value = replacement;
        return;
    };
    let child = match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step % map.len()).unwrap().clone();
            map.get_mut(&key)
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            let len = items.len();
            items.get_mut(step % len)
        }
        _ => None,
    };
    match child {
        Some(child) => mutate(child, rest, replacement),
        None => *value = replacement,
    }
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(|s| json!(s)),
        Just(json!("NaN")),
        Just(json!("-Infinity")),
        Just(json!(
            "00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01"
        )),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{"a": [1, {"b": null}]}])),
        Just(json!({"type": "log", "time": "1", "message": 5})),
    ]
}

/// Bounds every decoded batch must respect, whatever the input.
fn check_invariants(batch: &RumBatch, limits: &LimitsConfig) {
    assert!(batch.events.len() <= limits.max_events_per_batch);
    assert!(batch.rejected.len() <= limits.max_events_per_batch * 2);
    for event in &batch.events {
        if let RumEvent::PageLoad(pl) = event {
            assert!(pl.resources.len() <= limits.max_resources_per_page_load);
            for r in &pl.resources {
                assert!(r.url.len() <= limits.max_attribute_value_len);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let limits = LimitsConfig::default();
        if let Ok(batch) = decode(&body, &limits) {
            check_invariants(&batch, &limits);
        }
    }

    #[test]
    fn never_panics_on_mutated_beacons(
        mutations in proptest::collection::vec(
            (proptest::collection::vec(any::<usize>(), 0..6), json_leaf()), 1..6),
        cut in proptest::option::of(0usize..9000),
    ) {
        let limits = LimitsConfig {
            max_events_per_batch: 8,
            max_resources_per_page_load: 5,
            max_attribute_value_len: 24,
            ..LimitsConfig::default()
        };
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        for (path, leaf) in mutations {
            mutate(&mut value, &path, leaf);
        }
        let mut body = serde_json::to_vec(&value).unwrap();
        if let Some(cut) = cut {
            body.truncate(cut);
        }
        if let Ok(batch) = decode(&body, &limits) {
            check_invariants(&batch, &limits);
        }
    }
}
