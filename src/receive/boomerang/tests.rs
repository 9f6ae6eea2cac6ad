//! The Boomerang decoder on the real `boomerangjs` captures (sendBeacon POSTs and GET image
//! beacons) and on small handmade beacons.

use serde_json::Value as Json;

use super::{decode, is_beacon, parse_params, BoomerangBatch, Params};
use crate::config::LimitsConfig;
use crate::model::trace_context::hex;
use crate::model::{Reason, RumEvent, VitalName};

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";

fn fixture(name: &str) -> Vec<Json> {
    let path = format!(
        "{}/tests/fixtures/real-clients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every beacon of a capture, its parameters read as the handler reads them.
fn capture(name: &str) -> Vec<BoomerangBatch> {
    fixture(name)
        .iter()
        .map(|line| {
            assert_eq!(line["path"], "/v1/boomerang");
            let mut params = parse_params(line["query"].as_str().unwrap().as_bytes());
            params.extend(parse_params(line["body"].as_str().unwrap().as_bytes()));
            assert!(params.iter().all(|(k, _)| k != "key"), "the key is no data");
            let p = Params(&params);
            assert!(is_beacon(&p));
            let out = decode(&p, &LimitsConfig::default());
            assert!(out.batch.rejected.is_empty(), "{:?}", out.batch.rejected);
            out
        })
        .collect()
}

fn vitals(batches: &[BoomerangBatch]) -> Vec<(VitalName, f64)> {
    batches
        .iter()
        .flat_map(|b| &b.batch.events)
        .filter_map(|e| match e {
            RumEvent::Vital(v) => Some((v.name, v.value)),
            _ => None,
        })
        .collect()
}

fn check_capture(name: &str) {
    let batches = capture(name);
    // Exactly one page load, even though the unload beacon repeats its timers.
    let loads: Vec<_> = batches
        .iter()
        .flat_map(|b| &b.batch.events)
        .filter_map(|e| match e {
            RumEvent::PageLoad(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(loads.len(), 1);
    assert_eq!(batches.iter().filter(|b| b.has_navigation).count(), 1);
    let first = &batches[0];
    assert!(first.has_navigation);
    let ctx = &first.batch.context;
    let server = ctx.server_trace.expect("server span from servertiming");
    assert_eq!(hex(&server.trace_id), SERVER_TRACE);
    assert_eq!(hex(&server.span_id), SERVER_SPAN);
    assert_eq!(ctx.sdk_name.as_deref(), Some("boomerangjs"));
    assert_eq!(ctx.sdk_version.as_deref(), Some("1.815.1"));
    assert!(ctx.time_origin_ms > 1.7e12);
    let nav = &loads[0].navigation;
    assert_eq!(nav.navigation_type.as_deref(), Some("navigate"));
    assert!(nav.timing.fetch_start > 0.0 && nav.timing.fetch_start < 100.0);
    assert!(nav.timing.response_start >= nav.timing.request_start);
    assert!(nav.load_event_end >= nav.dom_complete && nav.dom_complete > 0.0);
    assert_eq!(nav.timing.next_hop_protocol.as_deref(), Some("http/1.1"));
    // Three resources; the navigation entry is the page, not a resource.
    let resources = &loads[0].resources;
    assert_eq!(resources.len(), 3, "{resources:?}");
    assert!(resources.iter().any(|r| r.url.ends_with("/hero.png")
        && r.initiator_type.as_deref() == Some("img")
        && r.timing.response_end > r.timing.start_time));

    // Same session and page view on every beacon.
    for b in &batches {
        assert_eq!(b.batch.context.session_id, ctx.session_id);
        assert_eq!(b.batch.context.page_view_id, ctx.page_view_id);
        assert_eq!(b.batch.context.page_url, ctx.page_url);
        assert!(b.newest_ms.is_some());
    }

    // Both errors, with their types, messages and frames rebuilt as a stack.
    let errors: Vec<_> = batches
        .iter()
        .flat_map(|b| &b.batch.events)
        .filter_map(|e| match e {
            RumEvent::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2);
    let type_error = errors
        .iter()
        .find(|e| e.error_type.as_deref() == Some("TypeError"))
        .unwrap();
    assert!(type_error
        .message
        .as_deref()
        .unwrap()
        .contains("\"SPRING25\": pricing rules are undefined"));
    let stack = type_error.stack.as_deref().unwrap();
    assert!(
        stack.contains("\n    at applyDiscountCode (http://127.0.0.1:18787/p/"),
        "{stack}"
    );
    assert!(stack.contains("/app.js:10:7)"), "{stack}");
    assert!(!type_error.handled);
    let rejection = errors
        .iter()
        .find(|e| e.error_type.as_deref() == Some("Error"))
        .unwrap();
    assert!(rejection
        .attributes
        .iter()
        .any(|(k, v)| k == "boomerang.error.via"
            && *v == crate::model::AttrValue::Str("unhandled_rejection".into())));

    // Web vitals: LCP and TTFB from the page load, CLS once (the beacon with the shifts), INP
    // once (the unload beacon's final value, not the incremental ones).
    let v = vitals(&batches);
    let count = |n: VitalName| v.iter().filter(|(name, _)| *name == n).count();
    assert_eq!(count(VitalName::Lcp), 1);
    assert_eq!(count(VitalName::Ttfb), 1);
    assert_eq!(count(VitalName::Cls), 1);
    assert_eq!(count(VitalName::Inp), 1);
    let cls = v.iter().find(|(n, _)| *n == VitalName::Cls).unwrap().1;
    assert!(cls > 0.05 && cls < 0.2, "{cls}");
    let inp = v.iter().find(|(n, _)| *n == VitalName::Inp).unwrap().1;
    assert!(inp >= 120.0, "the 120 ms busy click: {inp}");

    // The fetch, from its xhr beacon, with the backend span from its Server-Timing as a link.
    let call = batches
        .iter()
        .flat_map(|b| &b.batch.events)
        .find_map(|e| match e {
            RumEvent::HttpCall(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(call.method, "POST");
    assert!(call.url.ends_with("/api/cart"));
    assert_eq!(call.initiator.as_deref(), Some("fetch"));
    assert!(call.duration >= 80.0);
    assert!(call.span.is_none(), "boomerang propagates no traceparent");
    let backend = fixture(&name.replace(".jsonl", ".app-requests.jsonl"))[0]["server_span"]
        ["span_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(hex(&call.server_trace.unwrap().span_id), backend);
}

#[test]
fn sendbeacon_capture_decodes_completely() {
    check_capture("boomerang.jsonl");
}

#[test]
fn image_beacon_capture_decodes_completely() {
    check_capture("boomerang-get.jsonl");
}

fn beacon(query: &str) -> BoomerangBatch {
    let params = parse_params(query.as_bytes());
    decode(&Params(&params), &LimitsConfig::default())
}

#[test]
fn a_bad_part_is_dropped_and_counted_the_rest_kept() {
    let out = beacon(
        "v=1.815.1&rt.si=s1&pid=p1&u=http%3A%2F%2Fa%2F&nt_nav_st=1000&nt_res_st=1100\
         &nt_load_end=1500&restiming=%7Bnot-json&servertiming=~(~bogus\
         &err=~(~(m~'ok~t~'Error)~7)&pt.lcp=-5",
    );
    let reasons: Vec<Reason> = out.batch.rejected.iter().map(|r| r.reason).collect();
    assert!(reasons.contains(&Reason::InvalidJson), "{reasons:?}");
    assert!(reasons.contains(&Reason::InvalidField), "{reasons:?}");
    assert!(reasons.contains(&Reason::InvalidItem), "{reasons:?}");
    assert!(reasons.contains(&Reason::InvalidNumber), "{reasons:?}");
    assert!(out.has_navigation);
    let kinds: Vec<&str> = out.batch.events.iter().map(RumEvent::kind).collect();
    assert_eq!(kinds, ["page_load", "vital", "error"]);
}

#[test]
fn unload_beacon_adds_no_second_page_load_and_other_initiators_map() {
    let quit = beacon(
        "v=1&pid=p&u=http%3A%2F%2Fa%2F&rt.tstart=1000&rt.end=1500&t_done=500&rt.quit=&et.inp=88",
    );
    assert!(!quit.has_navigation);
    let early = beacon(
        "v=1&pid=p&u=http%3A%2F%2Fa%2F&early=1&nt_nav_st=1000&nt_res_st=1100&r=http%3A%2F%2Fref%2F",
    );
    assert!(!early.has_navigation && early.batch.events.is_empty());
    assert_eq!(early.batch.context.referrer.as_deref(), Some("http://ref/"));
    assert_eq!(vitals(&[quit]), [(VitalName::Inp, 88.0)]);
    let spa = beacon("v=1&pid=p&u=http%3A%2F%2Fa%2Fx&http.initiator=spa&rt.tstart=10&rt.end=30");
    assert!(
        matches!(&spa.batch.events[0], RumEvent::Interaction(i) if i.kind == "spa_navigation" && i.duration == 20.0)
    );
    let custom = beacon("v=1&pid=p&http.initiator=api_custom_metric&rt.tstart=10");
    assert!(
        matches!(&custom.batch.events[0], RumEvent::Custom(c) if c.name == "boomerang.api_custom_metric")
    );
    let failed = beacon(
        "v=1&pid=p&u=http%3A%2F%2Fa%2Fapi&pgu=http%3A%2F%2Fa%2F&http.initiator=xhr\
         &rt.tstart=10&rt.end=30&http.errno=503",
    );
    assert_eq!(failed.batch.context.page_url.as_deref(), Some("http://a/"));
    assert!(matches!(&failed.batch.events[0], RumEvent::HttpCall(c) if c.status == Some(503)));
    assert!(!is_beacon(&Params(&parse_params(b"hello=world"))));
}

/// A cheap stand-in for the fuzzer on stable: the captured beacons with their values cut,
/// spliced and sprinkled with the characters the formats give meaning to (and multi-byte ones)
/// decode without panicking.
#[test]
fn mutated_captured_beacons_never_panic() {
    const NOISE: [&str; 14] = [
        "~", "(", ")", "'", "*", "**", "|", ",", "é", "😀", "*3", "!", "*é", "~é",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let limits = LimitsConfig::default();
    for line in fixture("boomerang.jsonl")
        .iter()
        .chain(&fixture("boomerang-get.jsonl"))
    {
        let mut params = parse_params(line["query"].as_str().unwrap().as_bytes());
        params.extend(parse_params(line["body"].as_str().unwrap().as_bytes()));
        for _ in 0..400 {
            let mut mutated = params.clone();
            // Half of the cuts go to the values with a structure of their own.
            let structured: Vec<usize> = (0..params.len())
                .filter(|&i| matches!(params[i].0.as_str(), "restiming" | "servertiming" | "err"))
                .collect();
            for _ in 0..1 + next(4) {
                let i = if structured.is_empty() || next(2) == 0 {
                    next(mutated.len())
                } else {
                    structured[next(structured.len())]
                };
                let value = &mut mutated[i].1;
                let chars: Vec<char> = value.chars().collect();
                let at = next(chars.len() + 1);
                let mut out: String = chars[..at].iter().collect();
                match next(3) {
                    0 => {} // cut
                    1 => {
                        out.push_str(NOISE[next(NOISE.len())]);
                        out.extend(&chars[at..]);
                    }
                    _ => out.extend(chars.iter().skip(at + 1 + next(3))),
                }
                *value = out;
            }
            let _ = decode(&Params(&mutated), &limits);
        }
    }
}
