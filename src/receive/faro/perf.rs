//! Faro's performance and user-action events → page loads and interactions.
//!
//! `faro.performance.navigation` and `faro.performance.resource` do not carry the
//! `PerformanceResourceTiming` marks, only durations between them, as strings (docs/faro-mapping.md#performance-events;
//! faro-web-sdk `performanceUtils.ts`):
//!
//! | Faro attribute | is |
//! | --- | --- |
//! | `duration` | `duration` (navigation: `loadEventEnd`; resource: `responseEnd − startTime`) |
//! | `ttfb` | navigation: `responseStart − activationStart` |
//! | `requestTime`, `responseTime`, `fetchTime` | `responseStart − requestStart`, `responseEnd − responseStart`, `responseEnd − fetchStart` |
//! | `dnsLookupTime`, `tcpHandshakeTime` | `domainLookupEnd − domainLookupStart`, `connectEnd − connectStart` |
//! | `pageLoadTime`, `domProcessingTime`, `onLoadTime` | `domComplete − fetchStart`, `domComplete − domInteractive`, `loadEventEnd − loadEventStart` |
//!
//! The event timestamp is the entry's start (`timeOrigin + startTime`), so the marks are rebuilt
//! from it: `responseStart` (navigation, from `ttfb`) or `responseEnd` (resource, from
//! `duration`) anchors the rest. DNS and TCP are placed right after `fetchStart` (no redirect,
//! one connection), and only when they fit before `requestStart`. Marks that cannot be rebuilt
//! or come out inconsistent stay 0 ("not reached") and become no span event. Faro's
//! `tlsNegotiationTime` is not used: it is computed against a `secureConnectionStart` of 0 on
//! plain HTTP and is then meaningless (e.g. 2264 ms for a 90 ms fetch in the captures).

use crate::model::{
    AttrValue, Attributes, Interaction, NavigationTiming, ResourceTiming, ResourceTimingPhases,
    TraceContext,
};

/// The `faro.user.action` attributes the interaction mapping consumes.
const USER_ACTION_KEYS: [&str; 6] = [
    "userActionName",
    "userActionStartTime",
    "userActionEndTime",
    "userActionDuration",
    "userActionTrigger",
    "userActionImportance",
];

/// A navigation entry from a `faro.performance.navigation` event that started at `start`
/// (ms on the batch's time axis).
pub(super) fn navigation(
    attrs: &[(String, String)],
    start: f64,
    server: Option<TraceContext>,
) -> NavigationTiming {
    let a = Attrs(attrs);
    let response_start = a.num("ttfb").map(|ttfb| start + ttfb);
    let response_end = response_start
        .zip(a.num("responseTime"))
        .map(|(s, d)| s + d);
    let mut timing = phases(&a, start, response_start, response_end);
    timing.server_trace = server;
    let fetch_start = if timing.fetch_start > 0.0 {
        timing.fetch_start
    } else {
        start
    };
    let dom_complete = a.num("pageLoadTime").map(|d| fetch_start + d);
    let dom_interactive = dom_complete
        .zip(a.num("domProcessingTime"))
        .map(|(c, d)| c - d);
    let load_event_end = a.num("duration").map(|d| start + d);
    let load_event_start = load_event_end.zip(a.num("onLoadTime")).map(|(e, d)| e - d);
    NavigationTiming {
        navigation_type: a.text("type"),
        url: a.text("name"),
        timing,
        dom_interactive: mark(dom_interactive, start),
        dom_complete: mark(dom_complete, start),
        load_event_start: mark(load_event_start, start),
        load_event_end: mark(load_event_end, start),
        ..Default::default()
    }
}

/// A resource entry from a `faro.performance.resource` event that started at `start`.
pub(super) fn resource(
    attrs: &[(String, String)],
    start: f64,
    server: Option<TraceContext>,
) -> ResourceTiming {
    let a = Attrs(attrs);
    let response_end = a.num("duration").map(|d| start + d);
    let response_start = response_end.zip(a.num("responseTime")).map(|(e, d)| e - d);
    let mut timing = phases(&a, start, response_start, response_end);
    timing.server_trace = server;
    ResourceTiming {
        url: a.text("name").unwrap_or_default(),
        initiator_type: a.text("initiatorType"),
        render_blocking_status: a.text("renderBlockingStatus"),
        timing,
    }
}

/// The phases shared by both entry types, rebuilt around the anchors.
fn phases(
    a: &Attrs,
    start: f64,
    response_start: Option<f64>,
    response_end: Option<f64>,
) -> ResourceTimingPhases {
    let request_start = response_start.zip(a.num("requestTime")).map(|(s, d)| s - d);
    let fetch_start = response_end.zip(a.num("fetchTime")).map(|(e, d)| e - d);
    // Each mark must not precede the one before it.
    let fetch_start = fetch_start.filter(|f| *f >= start);
    let request_start = request_start.filter(|r| fetch_start.is_none_or(|f| *r >= f));
    let response_start = response_start.filter(|s| request_start.is_none_or(|r| *s >= r));
    let response_end = response_end.filter(|e| response_start.is_none_or(|s| *e >= s));
    let mut t = ResourceTimingPhases {
        start_time: start,
        duration: a.num("duration").unwrap_or(0.0).max(0.0),
        fetch_start: mark(fetch_start, start),
        request_start: mark(request_start, start),
        response_start: mark(response_start, start),
        response_end: mark(response_end, start),
        transfer_size: a.size("transferSize"),
        encoded_body_size: a.size("encodedBodySize"),
        decoded_body_size: a.size("decodedBodySize"),
        next_hop_protocol: a.text("protocol"),
        response_status: a
            .num("responseStatus")
            .filter(|s| (0.0..1000.0).contains(s))
            .map(|s| s as u16),
        ..Default::default()
    };
    if let (Some(fetch), Some(request), Some(dns), Some(tcp)) = (
        fetch_start,
        request_start,
        a.num("dnsLookupTime"),
        a.num("tcpHandshakeTime"),
    ) {
        if dns >= 0.0 && tcp >= 0.0 && fetch + dns + tcp <= request {
            t.domain_lookup_start = fetch;
            t.domain_lookup_end = fetch + dns;
            t.connect_start = fetch + dns;
            t.connect_end = fetch + dns + tcp;
        }
    }
    t
}

/// A rebuilt mark, or 0 ("not reached") when unknown or before the entry started.
fn mark(value: Option<f64>, start: f64) -> f64 {
    value
        .filter(|v| v.is_finite() && *v >= start)
        .unwrap_or(0.0)
}

/// A `faro.user.action` event (`userActionName`, `…StartTime`, `…Duration`, `…Trigger`, …) at
/// `time`; the action's own attributes are kept.
pub(super) fn interaction(attrs: Vec<(String, String)>, time: f64) -> Interaction {
    let a = Attrs(&attrs);
    let start = a.num("userActionStartTime").unwrap_or(time);
    let duration = a
        .num("userActionDuration")
        .or_else(|| a.num("userActionEndTime").map(|end| end - start))
        .filter(|d| *d >= 0.0)
        .unwrap_or(0.0);
    let kind = a
        .text("userActionTrigger")
        .unwrap_or_else(|| "user_action".to_owned());
    let mut attributes: Attributes = Vec::with_capacity(attrs.len());
    if let Some(name) = a.text("userActionName") {
        attributes.push(("faro.action.name".into(), AttrValue::Str(name)));
    }
    if let Some(importance) = a.text("userActionImportance") {
        attributes.push(("faro.action.importance".into(), AttrValue::Str(importance)));
    }
    attributes.extend(
        attrs
            .into_iter()
            .filter(|(k, _)| !USER_ACTION_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k, AttrValue::Str(v))),
    );
    Interaction {
        kind,
        start,
        duration,
        attributes,
        ..Default::default()
    }
}

/// Faro event attributes (all strings), looked up by key.
struct Attrs<'a>(&'a [(String, String)]);

impl Attrs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// A finite number (Faro sends them as strings; `"null"` and `""` are absent).
    fn num(&self, key: &str) -> Option<f64> {
        self.get(key)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }

    fn size(&self, key: &str) -> Option<u64> {
        self.num(key)
            .filter(|v| *v >= 0.0 && *v <= u64::MAX as f64)
            .map(|v| v as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const T0: f64 = 1_795_839_354_564.0;

    /// The navigation event of `faro.jsonl` (first request).
    fn captured_navigation() -> Vec<(String, String)> {
        attrs(&[
            ("name", "http://127.0.0.1:18787/p/faro/"),
            ("duration", "391"),
            ("tcpHandshakeTime", "0"),
            ("dnsLookupTime", "0"),
            ("tlsNegotiationTime", "2"),
            ("responseStatus", "200"),
            ("requestTime", "25"),
            ("responseTime", "14"),
            ("fetchTime", "45"),
            ("decodedBodySize", "1720"),
            ("encodedBodySize", "1720"),
            ("protocol", "http/1.1"),
            ("ttfb", "33"),
            ("transferSize", "2020"),
            ("pageLoadTime", "388"),
            ("domProcessingTime", "39"),
            ("onLoadTime", "0"),
            ("type", "navigate"),
        ])
    }

    #[test]
    fn navigation_marks_are_rebuilt_from_durations() {
        let nav = navigation(&captured_navigation(), T0, None);
        let t = &nav.timing;
        let rel = |v: f64| v - T0;
        assert_eq!(rel(t.response_start), 33.0);
        assert_eq!(rel(t.response_end), 47.0);
        assert_eq!(rel(t.request_start), 8.0);
        assert_eq!(rel(t.fetch_start), 2.0);
        assert_eq!((rel(t.domain_lookup_start), rel(t.connect_end)), (2.0, 2.0));
        assert_eq!(rel(nav.dom_complete), 390.0);
        assert_eq!(rel(nav.dom_interactive), 351.0);
        assert_eq!(rel(nav.load_event_end), 391.0);
        assert_eq!(rel(nav.load_event_start), 391.0);
        assert_eq!(t.response_status, Some(200));
        assert_eq!(t.transfer_size, Some(2020));
        assert_eq!(t.next_hop_protocol.as_deref(), Some("http/1.1"));
        assert_eq!(nav.navigation_type.as_deref(), Some("navigate"));
        assert_eq!(nav.url.as_deref(), Some("http://127.0.0.1:18787/p/faro/"));
        assert_eq!(t.secure_connection_start, 0.0, "tlsNegotiationTime unused");
    }

    #[test]
    fn inconsistent_or_missing_durations_leave_marks_unset() {
        // fetchTime larger than everything: fetchStart would precede the entry's start.
        let nav = navigation(
            &attrs(&[
                ("ttfb", "30"),
                ("responseTime", "10"),
                ("fetchTime", "9999"),
            ]),
            T0,
            None,
        );
        assert_eq!(nav.timing.fetch_start, 0.0);
        assert_eq!(nav.timing.response_end - T0, 40.0);
        let nav = navigation(&attrs(&[("ttfb", "null"), ("duration", "abc")]), T0, None);
        assert_eq!(nav.timing.response_start, 0.0);
        assert_eq!(nav.load_event_end, 0.0);
        assert_eq!(nav.timing.start_time, T0);
    }

    #[test]
    fn resource_is_anchored_on_its_end() {
        let r = resource(
            &attrs(&[
                ("name", "http://127.0.0.1:18787/api/cart"),
                ("duration", "90"),
                ("requestTime", "82"),
                ("responseTime", "3"),
                ("fetchTime", "90"),
                ("tlsNegotiationTime", "2264"),
                ("initiatorType", "fetch"),
                ("renderBlockingStatus", "non-blocking"),
            ]),
            T0,
            None,
        );
        let t = &r.timing;
        assert_eq!(r.url, "http://127.0.0.1:18787/api/cart");
        assert_eq!(r.initiator_type.as_deref(), Some("fetch"));
        assert_eq!(t.response_end - T0, 90.0);
        assert_eq!(t.response_start - T0, 87.0);
        assert_eq!(t.request_start - T0, 5.0);
        assert_eq!(t.fetch_start - T0, 0.0);
        assert_eq!(t.duration, 90.0);
    }

    #[test]
    fn user_action_becomes_an_interaction() {
        let i = interaction(
            attrs(&[
                ("userActionName", "checkout-click"),
                ("userActionStartTime", "1795839356000"),
                ("userActionEndTime", "1795839356412"),
                ("userActionTrigger", "pointerdown"),
                ("userActionImportance", "normal"),
                ("cart", "3 items"),
            ]),
            T0,
        );
        assert_eq!(i.kind, "pointerdown");
        assert_eq!(i.start, 1_795_839_356_000.0);
        assert_eq!(i.duration, 412.0);
        assert_eq!(
            i.attributes,
            vec![
                (
                    "faro.action.name".into(),
                    AttrValue::Str("checkout-click".into())
                ),
                (
                    "faro.action.importance".into(),
                    AttrValue::Str("normal".into())
                ),
                ("cart".into(), AttrValue::Str("3 items".into())),
            ]
        );
        let bare = interaction(Vec::new(), T0);
        assert_eq!(
            (bare.kind.as_str(), bare.start, bare.duration),
            ("user_action", T0, 0.0)
        );
    }
}
