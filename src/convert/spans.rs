//! Page loads, interactions and HTTP calls → OTLP spans.
//!
//! Names and shapes follow the OpenTelemetry JS web instrumentations (docs/otlp-mapping.md#spans), so
//! dashboards built for them work on bridge data:
//!
//! - `documentLoad` (INTERNAL): start `fetchStart` (else `startTime`), end `loadEventEnd` (else
//!   the latest milestone reported). Attributes `url.full`, `url.template` (when `process`
//!   computed it), `browser.navigation_timing.type`,
//!   `browser.navigation_timing.redirect_count`. Events named like the
//!   `PerformanceNavigationTiming` fields (`fetchStart`, `unloadEventStart`, … `loadEventEnd`)
//!   plus `firstPaint` / `firstContentfulPaint`; milestones not reached (0) are skipped.
//! - `documentFetch` (fetchStart..responseEnd) and `resourceFetch` (startTime..responseEnd, one
//!   per resource entry), children of `documentLoad`, with the network events `fetchStart`,
//!   `domainLookupStart`, … `responseEnd` and `url.full`, `http.response.status_code`,
//!   `http.response.body.size` (encodedBodySize), `http.response.size` (transferSize),
//!   `network.protocol.version`, and for resources `browser.resource_timing.initiator_type` /
//!   `.render_blocking_status`. A response with its own `Server-Timing` trace gets a Link.
//! - HTTP calls (CLIENT), named `{method} {url.template}` when `process` computed the
//!   template, else by the normalized method alone (`HTTP` for unknown methods): the semconv
//!   HTTP client attributes (docs/otlp-mapping.md#http-client-spans) with `url.template`, and a Link to a
//!   `Server-Timing` trace that is not the call's own.
//! - Interactions (INTERNAL), named by the DOM event type (`click`): `browser.css_selector`
//!   (the target), and the INP phases in ms: `browser.interaction.input_delay`,
//!   `browser.interaction.processing_duration`, `browser.interaction.presentation_delay`.
//!
//! `Span.flags` carries the W3C trace flags plus the "is remote known" bit (`0x100`), and the
//! "parent is remote" bit (`0x200`) when the parent is the server span. Links to server spans
//! use `0x300 | flags`, links to browser spans `0x100 | flags`.

use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use super::attrs::AttrList;
use super::ids::{child_span_id, derive_span, SAMPLED};
use super::BatchContext;
use crate::model::http::{normalize_method, resolve_url, server_address, OTHER_METHOD};
use crate::model::semconv;
use crate::model::{
    HttpCall, Interaction, NavigationTiming, PageLoad, ResourceTimingPhases, RumEvent, SpanRef,
    TraceContext,
};

/// `Span.flags` bit: whether the parent is remote is known.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags` bit: the parent (or linked span) is remote.
const FLAG_IS_REMOTE: u32 = 0x200;

fn local_flags(trace_flags: u8) -> u32 {
    FLAG_HAS_IS_REMOTE | u32::from(trace_flags)
}

fn remote_flags(trace_flags: u8) -> u32 {
    FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE | u32::from(trace_flags)
}

/// Converts the span-producing events of a batch. Only the first page load of a batch is used
/// (one batch is one page view, which has one navigation).
pub(crate) fn convert_spans(cx: &BatchContext) -> Vec<Span> {
    let mut first_page_load = None;
    let mut count = 0;
    for event in cx.events {
        match event {
            RumEvent::PageLoad(pl) if first_page_load.is_none() => {
                first_page_load = Some(pl);
                count += 2 + pl.resources.len();
            }
            RumEvent::Interaction(_) | RumEvent::HttpCall(_) => count += 1,
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(count);
    if let Some(pl) = first_page_load {
        page_load(cx, pl, &mut out);
    }
    for event in cx.events {
        match event {
            RumEvent::Interaction(i) => out.push(interaction(cx, i)),
            RumEvent::HttpCall(c) => out.push(http_call(cx, c)),
            _ => {}
        }
    }
    out
}

/// Start and end (relative ms) of `documentLoad`: `fetchStart` (else `startTime`) to
/// `loadEventEnd`, or to the latest milestone when the page had not finished loading.
pub(crate) fn document_load_bounds(nav: &NavigationTiming) -> (f64, f64) {
    let t = &nav.timing;
    let start = navigation_start(t);
    let end = if nav.load_event_end > 0.0 && nav.load_event_end.is_finite() {
        nav.load_event_end
    } else {
        [
            t.start_time + t.duration,
            t.response_end,
            nav.dom_interactive,
            nav.dom_content_loaded_event_end,
            nav.dom_complete,
            nav.load_event_start,
        ]
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(start, f64::max)
    };
    (start, end.max(start))
}

/// `fetchStart` of the navigation, else its `startTime`.
fn navigation_start(t: &ResourceTimingPhases) -> f64 {
    finite(if t.fetch_start > 0.0 {
        t.fetch_start
    } else {
        t.start_time
    })
}

fn page_load(cx: &BatchContext, pl: &PageLoad, out: &mut Vec<Span>) {
    let nav = &pl.navigation;
    let page = &cx.page;
    let page_url = nav.url.as_deref().or(cx.ctx.page_url.as_deref());
    let (start, end) = document_load_bounds(nav);

    let mut attrs = cx.attrs(4);
    attrs.opt_str(semconv::URL_FULL, page_url);
    attrs.opt_str(semconv::URL_TEMPLATE, cx.ctx.page_url_template.as_deref());
    attrs.opt_str(
        "browser.navigation_timing.type",
        nav.navigation_type.as_deref(),
    );
    if nav.redirect_count > 0 {
        attrs.int(
            "browser.navigation_timing.redirect_count",
            i64::from(nav.redirect_count),
        );
    }
    let (parent_span_id, flags) = match page.remote_parent {
        Some(server) => (server.span_id.to_vec(), remote_flags(server.flags)),
        None => (Vec::new(), local_flags(page.trace_flags)),
    };
    out.push(Span {
        trace_id: page.span.trace_id.to_vec(),
        span_id: page.span.span_id.to_vec(),
        parent_span_id,
        flags,
        name: "documentLoad".to_owned(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: cx.nanos(start),
        end_time_unix_nano: cx.nanos(end),
        attributes: attrs.into_vec(),
        events: navigation_events(cx, nav),
        links: page.server_link.map(remote_link).into_iter().collect(),
        ..Default::default()
    });

    // The navigation's own Server-Timing trace is usually the server span already handled
    // above; link it from documentFetch only when it is a different one.
    let nav_server = nav
        .timing
        .server_trace
        .filter(|s| Some(s) != cx.ctx.server_trace.as_ref());
    let fetch_url = page_url.unwrap_or_default();
    let fetch = FetchSpan {
        name: "documentFetch",
        span_id: child_span_id(page.span.span_id, "documentFetch", 0, fetch_url),
        url: page_url,
        start: navigation_start(&nav.timing),
        timing: &nav.timing,
        server_trace: nav_server,
        initiator_type: None,
        render_blocking_status: None,
    };
    out.push(fetch.into_span(cx));
    for (index, r) in pl.resources.iter().enumerate() {
        let fetch = FetchSpan {
            name: "resourceFetch",
            span_id: child_span_id(page.span.span_id, "resourceFetch", index, &r.url),
            url: Some(&r.url),
            start: r.timing.start_time,
            timing: &r.timing,
            server_trace: r.timing.server_trace,
            initiator_type: r.initiator_type.as_deref(),
            render_blocking_status: r.render_blocking_status.as_deref(),
        };
        out.push(fetch.into_span(cx));
    }
}

/// `documentFetch` or `resourceFetch`: a child of `documentLoad` built from a timing entry.
struct FetchSpan<'a> {
    name: &'static str,
    span_id: [u8; 8],
    url: Option<&'a str>,
    start: f64,
    timing: &'a ResourceTimingPhases,
    server_trace: Option<TraceContext>,
    initiator_type: Option<&'a str>,
    render_blocking_status: Option<&'a str>,
}

impl FetchSpan<'_> {
    fn into_span(self, cx: &BatchContext) -> Span {
        let t = self.timing;
        let start = finite(self.start);
        let end = if t.response_end > 0.0 {
            t.response_end
        } else {
            t.start_time + t.duration
        };
        let mut attrs = cx.attrs(8);
        attrs.opt_str(semconv::URL_FULL, self.url);
        let status = t.response_status.filter(|s| *s != 0);
        if let Some(code) = status {
            attrs.int(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code));
        }
        let failed = status.filter(|s| *s >= 400);
        if let Some(code) = failed {
            attrs.string(semconv::ERROR_TYPE, code.to_string());
        }
        timing_attributes(&mut attrs, t);
        attrs.opt_str(
            "browser.resource_timing.initiator_type",
            self.initiator_type,
        );
        attrs.opt_str(
            "browser.resource_timing.render_blocking_status",
            self.render_blocking_status,
        );
        let page = &cx.page;
        Span {
            trace_id: page.span.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            parent_span_id: page.span.span_id.to_vec(),
            flags: local_flags(page.trace_flags),
            name: self.name.to_owned(),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: cx.nanos(start),
            end_time_unix_nano: cx.nanos(end_after(start, end)),
            attributes: attrs.into_vec(),
            events: network_events(cx, t),
            links: self.server_trace.map(remote_link).into_iter().collect(),
            status: failed.map(|_| error_status()),
            ..Default::default()
        }
    }
}

fn interaction(cx: &BatchContext, i: &Interaction) -> Span {
    let page = &cx.page;
    let span = interaction_span(cx, i);
    // In the page-load trace (the client said so by its ids): a child of documentLoad.
    // Otherwise a trace of its own, linked to documentLoad so the session reads as a chain.
    let in_page_trace = span.trace_id == page.span.trace_id && span.span_id != page.span.span_id;
    let (parent_span_id, flags, links) = if in_page_trace {
        (
            page.span.span_id.to_vec(),
            local_flags(page.trace_flags),
            Vec::new(),
        )
    } else {
        let link = Link {
            trace_id: page.span.trace_id.to_vec(),
            span_id: page.span.span_id.to_vec(),
            flags: local_flags(page.trace_flags),
            ..Default::default()
        };
        (Vec::new(), local_flags(SAMPLED), vec![link])
    };
    let mut attrs = cx.attrs(4 + i.attributes.len());
    attrs.opt_str("browser.css_selector", i.target.as_deref());
    attrs.opt_float("browser.interaction.input_delay", i.input_delay);
    attrs.opt_float(
        "browser.interaction.processing_duration",
        i.processing_duration,
    );
    attrs.opt_float(
        "browser.interaction.presentation_delay",
        i.presentation_delay,
    );
    attrs.extend_model(&i.attributes);
    let start = finite(i.start);
    let name = if i.kind.is_empty() {
        "interaction".to_owned()
    } else {
        i.kind.clone()
    };
    Span {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id,
        flags,
        name,
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: cx.nanos(start),
        end_time_unix_nano: cx.nanos(end_after(start, start + i.duration)),
        attributes: attrs.into_vec(),
        dropped_attributes_count: i.dropped_attributes,
        links,
        ..Default::default()
    }
}

/// The client's ids of an interaction, else ids derived from its kind, start and target.
fn interaction_span(cx: &BatchContext, i: &Interaction) -> SpanRef {
    i.span.unwrap_or_else(|| {
        let target = i.target.as_deref().unwrap_or_default();
        derive_span(cx.page.key, "interaction", i.start, &[&i.kind, target])
    })
}

fn http_call(cx: &BatchContext, call: &HttpCall) -> Span {
    let (span, parent) = call_ids(cx, call);
    let (method, method_original) = normalize_method(&call.method);
    let method_name = if method == OTHER_METHOD {
        "HTTP"
    } else {
        method
    };
    let name = match call.url_template.as_deref() {
        Some(template) => format!("{method_name} {template}"),
        None => method_name.to_owned(),
    };

    let mut attrs = cx.attrs(12 + call.attributes.len());
    attrs.str(semconv::HTTP_REQUEST_METHOD, method);
    if method_original {
        attrs.str("http.request.method_original", &call.method);
    }
    url_attributes(&mut attrs, &call.url, cx.ctx.page_url.as_deref());
    attrs.opt_str(semconv::URL_TEMPLATE, call.url_template.as_deref());
    let status = call.status.filter(|s| *s != 0);
    if let Some(code) = status {
        attrs.int(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code));
    }
    let aborted = call
        .error_type
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case("abort") || e.eq_ignore_ascii_case("aborterror"));
    let failed = match (status, call.error_type.as_deref()) {
        (Some(code), _) if code >= 400 => {
            attrs.string(semconv::ERROR_TYPE, code.to_string());
            true
        }
        (_, Some(error)) => {
            attrs.str(semconv::ERROR_TYPE, error);
            // A request the page cancelled on purpose is not an error (semconv).
            !aborted
        }
        _ => false,
    };
    if let Some(size) = call.request_body_size {
        attrs.uint("http.request.body.size", size);
    }
    if let Some(size) = call.response_body_size {
        attrs.uint("http.response.body.size", size);
    }
    if let Some(timing) = &call.timing {
        timing_attributes(&mut attrs, timing);
    }
    attrs.extend_model(&call.attributes);

    let start = finite(call.start);
    let links = call
        .server_trace
        .filter(|s| s.trace_id != span.trace_id)
        .map(remote_link)
        .into_iter()
        .collect();
    Span {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags: local_flags(SAMPLED),
        name,
        kind: SpanKind::Client as i32,
        start_time_unix_nano: cx.nanos(start),
        end_time_unix_nano: cx.nanos(end_after(start, start + call.duration)),
        attributes: attrs.into_vec(),
        dropped_attributes_count: call.dropped_attributes,
        events: call
            .timing
            .as_ref()
            .map(|t| network_events(cx, t))
            .unwrap_or_default(),
        links,
        status: failed.then(error_status),
        ..Default::default()
    }
}

/// The ids of an HTTP call's span and its parent span id.
///
/// The client's ids are used exactly (the backend span is their child). The parent is the
/// reported one, else `documentLoad` when the call started during the page load in the page
/// trace. Calls without ids get derived ones, in the trace of their parent when the bridge
/// knows that trace (the page span or an interaction of this batch), else in a new trace.
fn call_ids(cx: &BatchContext, call: &HttpCall) -> (SpanRef, Option<[u8; 8]>) {
    let page = cx.page.span;
    let in_page_load = cx.page_load_end.is_some_and(|end| call.start <= end);
    if let Some(span) = call.span {
        let parent = call
            .parent_span_id
            .or_else(|| (in_page_load && span.trace_id == page.trace_id).then_some(page.span_id))
            .filter(|p| *p != span.span_id);
        return (span, parent);
    }
    let derived = derive_span(cx.page.key, "http", call.start, &[&call.method, &call.url]);
    let parent = match call.parent_span_id {
        Some(p) => known_trace(cx, p).map(|trace_id| (trace_id, p)),
        None if in_page_load => Some((page.trace_id, page.span_id)),
        None => None,
    };
    match parent {
        Some((trace_id, parent)) => (
            SpanRef {
                trace_id,
                span_id: derived.span_id,
            },
            Some(parent),
        ),
        None => (derived, None),
    }
}

/// The trace of a span of this page view the bridge knows by id: `documentLoad` or an
/// interaction of the batch.
fn known_trace(cx: &BatchContext, span_id: [u8; 8]) -> Option<[u8; 16]> {
    let page = cx.page.span;
    if span_id == page.span_id {
        return Some(page.trace_id);
    }
    cx.events.iter().find_map(|e| match e {
        RumEvent::Interaction(i) => {
            let span = interaction_span(cx, i);
            (span.span_id == span_id).then_some(span.trace_id)
        }
        _ => None,
    })
}

/// `url.full`, `server.address`, `server.port` of a request URL. A relative URL is resolved
/// against the page URL; an unparsable one is kept as `url.full` only.
fn url_attributes(attrs: &mut AttrList, raw: &str, page_url: Option<&str>) {
    let Some((u, relative)) = resolve_url(raw, page_url) else {
        attrs.str(semconv::URL_FULL, raw);
        return;
    };
    // An absolute URL is kept as sent; a relative one as resolved.
    attrs.str(semconv::URL_FULL, if relative { u.as_str() } else { raw });
    if let Some(address) = server_address(&u) {
        attrs.string(semconv::SERVER_ADDRESS, address);
    }
    if let Some(port) = u.port_or_known_default() {
        attrs.int(semconv::SERVER_PORT, i64::from(port));
    }
}

/// Size and protocol attributes of a timing entry (zero sizes are unknown: cross-origin
/// entries without `Timing-Allow-Origin` report 0).
fn timing_attributes(attrs: &mut AttrList, t: &ResourceTimingPhases) {
    if let Some(size) = t.encoded_body_size.filter(|s| *s > 0) {
        attrs.uint("http.response.body.size", size);
    }
    if let Some(size) = t.transfer_size.filter(|s| *s > 0) {
        attrs.uint("http.response.size", size);
    }
    if let Some(version) = t.next_hop_protocol.as_deref().and_then(http_version) {
        attrs.str("network.protocol.version", version);
    }
}

/// `network.protocol.version` from a `nextHopProtocol` ALPN id (`h2`, `h3`, `http/1.1`).
fn http_version(alpn: &str) -> Option<&'static str> {
    match alpn {
        "http/0.9" => Some("0.9"),
        "http/1.0" => Some("1.0"),
        "http/1.1" => Some("1.1"),
        "h2" | "h2c" => Some("2"),
        a if a == "h3" || a.starts_with("h3-") => Some("3"),
        _ => None,
    }
}

/// The `documentLoad` milestones, as OpenTelemetry JS names them.
fn navigation_events(cx: &BatchContext, nav: &NavigationTiming) -> Vec<Event> {
    let mut milestones = Vec::with_capacity(11);
    milestones.push(("fetchStart", nav.timing.fetch_start));
    milestones.extend(nav.milestones());
    timed_events(cx, &milestones)
}

/// The network phases of a fetch (docs/otlp-mapping.md#network-timing-events).
fn network_events(cx: &BatchContext, t: &ResourceTimingPhases) -> Vec<Event> {
    let phases = t.network_phases();
    timed_events(cx, &phases)
}

/// Events for the reached milestones (0, negative or non-finite = not reached / not exposed).
fn timed_events(cx: &BatchContext, milestones: &[(&str, f64)]) -> Vec<Event> {
    let reached = |t: &f64| *t > 0.0 && t.is_finite();
    let mut events = Vec::with_capacity(milestones.iter().filter(|(_, t)| reached(t)).count());
    for (name, t) in milestones.iter().filter(|(_, t)| reached(t)) {
        events.push(Event {
            time_unix_nano: cx.nanos(*t),
            name: (*name).to_owned(),
            ..Default::default()
        });
    }
    events
}

/// A Link to a server span (remote).
fn remote_link(server: TraceContext) -> Link {
    Link {
        trace_id: server.trace_id.to_vec(),
        span_id: server.span_id.to_vec(),
        flags: remote_flags(server.flags),
        ..Default::default()
    }
}

fn error_status() -> Status {
    Status {
        code: StatusCode::Error as i32,
        message: String::new(),
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// `end`, but never before `start` (negative or non-finite durations give an empty span).
fn end_after(start: f64, end: f64) -> f64 {
    if end.is_finite() {
        end.max(start)
    } else {
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PageLoadCorrelation;
    use crate::convert::{convert, page_span, ConvertOptions};
    use crate::model::{trace_context::hex, PageContext, ResourceTiming, RumBatch};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    const ORIGIN: f64 = 1_700_000_000_000.0;
    const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
    const SERVER_SPAN: &str = "a1b2c3d4e5f60718";

    fn server() -> TraceContext {
        TraceContext::parse_traceparent(&format!("00-{SERVER_TRACE}-{SERVER_SPAN}-01")).unwrap()
    }

    fn ctx() -> PageContext {
        PageContext {
            session_id: Some("sess-1".into()),
            page_view_id: Some("pv-1".into()),
            page_url: Some("https://shop.example.com/p/cart".into()),
            server_trace: Some(server()),
            time_origin_ms: ORIGIN,
            received_at_ms: ORIGIN + 10_000.0,
            ..Default::default()
        }
    }

    fn page_load() -> PageLoad {
        PageLoad {
            navigation: NavigationTiming {
                navigation_type: Some("navigate".into()),
                url: Some("https://shop.example.com/p/cart".into()),
                timing: ResourceTimingPhases {
                    fetch_start: 5.0,
                    domain_lookup_start: 0.0,
                    request_start: 10.0,
                    response_start: 40.0,
                    response_end: 50.0,
                    response_status: Some(200),
                    encoded_body_size: Some(1200),
                    next_hop_protocol: Some("h2".into()),
                    server_trace: Some(server()),
                    ..Default::default()
                },
                dom_interactive: 300.0,
                dom_content_loaded_event_start: 310.0,
                dom_content_loaded_event_end: 320.0,
                dom_complete: 900.0,
                load_event_start: 900.0,
                load_event_end: 905.0,
                first_paint: Some(200.0),
                first_contentful_paint: Some(200.0),
                ..Default::default()
            },
            resources: vec![ResourceTiming {
                url: "https://cdn.example.com/app.js".into(),
                initiator_type: Some("script".into()),
                render_blocking_status: Some("blocking".into()),
                timing: ResourceTimingPhases {
                    start_time: 60.0,
                    duration: 40.0,
                    fetch_start: 60.0,
                    response_end: 100.0,
                    response_status: Some(404),
                    server_trace: Some(
                        TraceContext::parse_traceparent(
                            "00-11111111111111111111111111111111-2222222222222222-00",
                        )
                        .unwrap(),
                    ),
                    ..Default::default()
                },
            }],
        }
    }

    fn spans_with(
        events: Vec<RumEvent>,
        context: PageContext,
        mode: PageLoadCorrelation,
    ) -> Vec<Span> {
        let batch = RumBatch {
            context,
            events,
            rejected: vec![],
        };
        let opts = ConvertOptions {
            page_load: mode,
            ..Default::default()
        };
        let mut p = convert(&batch, &opts);
        p.spans.pop().unwrap().scope_spans.pop().unwrap().spans
    }

    fn spans(events: Vec<RumEvent>) -> Vec<Span> {
        spans_with(events, ctx(), PageLoadCorrelation::Child)
    }

    fn get<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
        crate::convert::attrs::find(&s.attributes, key)
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.into())
    }

    fn int(v: i64) -> Value {
        Value::IntValue(v)
    }

    fn call() -> HttpCall {
        HttpCall {
            method: "post".into(),
            url: "https://api.example.com:8443/api/cart?x=1".into(),
            status: Some(201),
            start: 1_500.0,
            duration: 80.0,
            span: Some(SpanRef {
                trace_id: [0x0a; 16],
                span_id: [0x0b; 8],
            }),
            parent_span_id: Some([0x0c; 8]),
            ..Default::default()
        }
    }

    #[test]
    fn document_load_is_child_of_server_span() {
        let out = spans(vec![RumEvent::PageLoad(page_load())]);
        assert_eq!(out.len(), 3);
        let dl = &out[0];
        assert_eq!(dl.name, "documentLoad");
        assert_eq!(dl.kind, SpanKind::Internal as i32);
        assert_eq!(hex(&dl.trace_id), SERVER_TRACE);
        assert_eq!(hex(&dl.parent_span_id), SERVER_SPAN);
        assert_eq!(dl.flags, 0x301);
        assert!(dl.links.is_empty());
        assert_eq!(
            dl.span_id,
            page_span(&ctx(), PageLoadCorrelation::Child).span_id
        );
        assert_eq!(dl.start_time_unix_nano, 1_700_000_000_005_000_000);
        assert_eq!(dl.end_time_unix_nano, 1_700_000_000_905_000_000);
        let names: Vec<&str> = dl.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fetchStart",
                "domInteractive",
                "domContentLoadedEventStart",
                "domContentLoadedEventEnd",
                "domComplete",
                "loadEventStart",
                "loadEventEnd",
                "firstPaint",
                "firstContentfulPaint"
            ]
        );
        assert_eq!(
            get(dl, "url.full"),
            Some(&s("https://shop.example.com/p/cart"))
        );
        assert_eq!(
            get(dl, "browser.navigation_timing.type"),
            Some(&s("navigate"))
        );
        assert_eq!(get(dl, "session.id"), Some(&s("sess-1")));
        assert_eq!(get(dl, "browser.page_view.id"), Some(&s("pv-1")));
    }

    #[test]
    fn fetch_children_hang_off_document_load() {
        let out = spans(vec![RumEvent::PageLoad(page_load())]);
        let (dl, doc, res) = (&out[0], &out[1], &out[2]);
        for child in [doc, res] {
            assert_eq!(child.trace_id, dl.trace_id);
            assert_eq!(child.parent_span_id, dl.span_id);
            assert_eq!(child.flags, 0x101);
            assert_ne!(child.span_id, dl.span_id);
        }
        assert_ne!(doc.span_id, res.span_id);
        assert_eq!(doc.name, "documentFetch");
        assert_eq!(doc.start_time_unix_nano, 1_700_000_000_005_000_000);
        assert_eq!(doc.end_time_unix_nano, 1_700_000_000_050_000_000);
        let names: Vec<&str> = doc.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["fetchStart", "requestStart", "responseStart", "responseEnd"]
        );
        assert_eq!(get(doc, "http.response.status_code"), Some(&int(200)));
        assert_eq!(get(doc, "http.response.body.size"), Some(&int(1200)));
        assert_eq!(get(doc, "network.protocol.version"), Some(&s("2")));
        assert!(
            doc.links.is_empty(),
            "navigation server trace is already the parent"
        );
        assert_eq!(doc.status, None);

        assert_eq!(res.name, "resourceFetch");
        assert_eq!(
            get(res, "url.full"),
            Some(&s("https://cdn.example.com/app.js"))
        );
        assert_eq!(
            get(res, "browser.resource_timing.initiator_type"),
            Some(&s("script"))
        );
        assert_eq!(get(res, "error.type"), Some(&s("404")));
        assert_eq!(
            res.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
        assert_eq!(res.links.len(), 1);
        assert_eq!(
            hex(&res.links[0].trace_id),
            "11111111111111111111111111111111"
        );
        assert_eq!(res.links[0].flags, 0x300);
        assert_eq!(res.start_time_unix_nano, 1_700_000_000_060_000_000);
        assert_eq!(res.end_time_unix_nano, 1_700_000_000_100_000_000);
    }

    #[test]
    fn link_mode_starts_new_trace_linked_to_server() {
        let out = spans_with(
            vec![RumEvent::PageLoad(page_load())],
            ctx(),
            PageLoadCorrelation::Link,
        );
        let dl = &out[0];
        assert_ne!(hex(&dl.trace_id), SERVER_TRACE);
        assert!(dl.parent_span_id.is_empty());
        assert_eq!(dl.flags, 0x101);
        assert_eq!(dl.links.len(), 1);
        assert_eq!(hex(&dl.links[0].trace_id), SERVER_TRACE);
        assert_eq!(hex(&dl.links[0].span_id), SERVER_SPAN);
        assert_eq!(dl.links[0].flags, 0x301);
        assert_eq!(out[1].trace_id, dl.trace_id);
    }

    #[test]
    fn unsampled_server_flags_are_carried() {
        let mut c = ctx();
        c.server_trace = Some(TraceContext {
            flags: 0,
            ..server()
        });
        let out = spans_with(
            vec![RumEvent::PageLoad(page_load())],
            c,
            PageLoadCorrelation::Child,
        );
        assert_eq!(out[0].flags, 0x300);
        assert_eq!(out[1].flags, 0x100);
    }

    #[test]
    fn derived_ids_are_stable_across_conversions() {
        let events = || {
            vec![
                RumEvent::PageLoad(page_load()),
                RumEvent::Interaction(Interaction {
                    kind: "click".into(),
                    start: 1_400.0,
                    ..Default::default()
                }),
                RumEvent::HttpCall(HttpCall {
                    span: None,
                    parent_span_id: None,
                    ..call()
                }),
            ]
        };
        let a = spans_with(events(), ctx(), PageLoadCorrelation::Link);
        let b = spans_with(events(), ctx(), PageLoadCorrelation::Link);
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.trace_id, &x.span_id), (&y.trace_id, &y.span_id));
            assert_ne!(x.trace_id, vec![0; 16]);
            assert_ne!(x.span_id, vec![0; 8]);
        }
        // A later beacon of the same page view (no page load in it) agrees on documentLoad.
        let later = spans_with(
            vec![RumEvent::Interaction(Interaction {
                kind: "click".into(),
                start: 1_400.0,
                ..Default::default()
            })],
            ctx(),
            PageLoadCorrelation::Link,
        );
        assert_eq!(later[0].links[0].span_id, a[0].span_id);
        assert_eq!(later[0].span_id, a[3].span_id);
    }

    #[test]
    fn http_call_keeps_client_ids_and_semconv_attributes() {
        let out = spans(vec![RumEvent::HttpCall(call())]);
        let sp = &out[0];
        assert_eq!(sp.kind, SpanKind::Client as i32);
        assert_eq!(sp.trace_id, vec![0x0a; 16]);
        assert_eq!(sp.span_id, vec![0x0b; 8]);
        assert_eq!(sp.parent_span_id, vec![0x0c; 8]);
        assert_eq!(sp.flags, 0x101);
        assert_eq!(sp.name, "POST");
        assert_eq!(get(sp, "http.request.method"), Some(&s("POST")));
        assert_eq!(get(sp, "http.request.method_original"), Some(&s("post")));
        assert_eq!(
            get(sp, "url.full"),
            Some(&s("https://api.example.com:8443/api/cart?x=1"))
        );
        assert_eq!(get(sp, "server.address"), Some(&s("api.example.com")));
        assert_eq!(get(sp, "server.port"), Some(&int(8443)));
        assert_eq!(get(sp, "http.response.status_code"), Some(&int(201)));
        assert_eq!(get(sp, "error.type"), None);
        assert_eq!(get(sp, "session.id"), Some(&s("sess-1")));
        assert_eq!(
            get(sp, "browser.document.url.full"),
            Some(&s("https://shop.example.com/p/cart"))
        );
        assert_eq!(sp.status, None);
        assert_eq!(sp.start_time_unix_nano, 1_700_000_001_500_000_000);
        assert_eq!(sp.end_time_unix_nano, 1_700_000_001_580_000_000);
    }

    #[test]
    fn http_call_with_template_is_named_by_it() {
        let templated = HttpCall {
            url_template: Some("/api/cart/{id}".into()),
            ..call()
        };
        let unknown_method = HttpCall {
            method: "PURGE".into(),
            ..templated.clone()
        };
        let out = spans(vec![
            RumEvent::HttpCall(templated),
            RumEvent::HttpCall(unknown_method),
        ]);
        assert_eq!(out[0].name, "POST /api/cart/{id}");
        assert_eq!(get(&out[0], "url.template"), Some(&s("/api/cart/{id}")));
        assert_eq!(out[1].name, "HTTP /api/cart/{id}");
        assert_eq!(
            get(&spans(vec![RumEvent::HttpCall(call())])[0], "url.template"),
            None
        );
    }

    #[test]
    fn http_call_errors() {
        let server_error = HttpCall {
            status: Some(503),
            ..call()
        };
        let network_error = HttpCall {
            status: Some(0),
            error_type: Some("network_error".into()),
            ..call()
        };
        let aborted = HttpCall {
            status: None,
            error_type: Some("abort".into()),
            ..call()
        };
        let out = spans(vec![
            RumEvent::HttpCall(server_error),
            RumEvent::HttpCall(network_error),
            RumEvent::HttpCall(aborted),
        ]);
        let error = Some(StatusCode::Error as i32);
        assert_eq!(get(&out[0], "error.type"), Some(&s("503")));
        assert_eq!(out[0].status.as_ref().map(|s| s.code), error);
        assert_eq!(get(&out[1], "http.response.status_code"), None);
        assert_eq!(get(&out[1], "error.type"), Some(&s("network_error")));
        assert_eq!(out[1].status.as_ref().map(|s| s.code), error);
        assert_eq!(get(&out[2], "error.type"), Some(&s("abort")));
        assert_eq!(out[2].status, None, "a cancelled request is not an error");
    }

    #[test]
    fn http_call_unknown_method_relative_url_and_server_timing_link() {
        let foreign = TraceContext::parse_traceparent(
            "00-5e2d8f6b0c1a4f3b9d4e7c8b2a3f4e5d-1234567812345678-01",
        )
        .unwrap();
        let c = HttpCall {
            method: "PURGE".into(),
            url: "/api/cart".into(),
            server_trace: Some(foreign),
            ..call()
        };
        let own_trace = HttpCall {
            server_trace: Some(TraceContext {
                trace_id: [0x0a; 16],
                span_id: [0x0d; 8],
                flags: 1,
            }),
            ..call()
        };
        let out = spans(vec![RumEvent::HttpCall(c), RumEvent::HttpCall(own_trace)]);
        let sp = &out[0];
        assert_eq!(sp.name, "HTTP");
        assert_eq!(get(sp, "http.request.method"), Some(&s("_OTHER")));
        assert_eq!(get(sp, "http.request.method_original"), Some(&s("PURGE")));
        assert_eq!(
            get(sp, "url.full"),
            Some(&s("https://shop.example.com/api/cart"))
        );
        assert_eq!(get(sp, "server.address"), Some(&s("shop.example.com")));
        assert_eq!(get(sp, "server.port"), Some(&int(443)));
        assert_eq!(sp.links.len(), 1);
        assert_eq!(
            hex(&sp.links[0].trace_id),
            "5e2d8f6b0c1a4f3b9d4e7c8b2a3f4e5d"
        );
        assert_eq!(sp.links[0].flags, 0x301);
        assert!(
            out[1].links.is_empty(),
            "the backend joined our trace: no link"
        );
    }

    #[test]
    fn http_call_parent_during_page_load() {
        let page = page_span(&ctx(), PageLoadCorrelation::Child);
        // Client ids in the page trace, no parent reported, started during the load.
        let in_load = HttpCall {
            start: 100.0,
            parent_span_id: None,
            span: Some(SpanRef {
                trace_id: page.trace_id,
                span_id: [0x0e; 8],
            }),
            ..call()
        };
        // No ids at all, during the load: derived span in the page trace.
        let derived = HttpCall {
            start: 200.0,
            parent_span_id: None,
            span: None,
            ..call()
        };
        // No ids, after the load: a new trace without parent.
        let later = HttpCall {
            start: 5_000.0,
            parent_span_id: None,
            span: None,
            ..call()
        };
        let out = spans(vec![
            RumEvent::PageLoad(page_load()),
            RumEvent::HttpCall(in_load),
            RumEvent::HttpCall(derived),
            RumEvent::HttpCall(later),
        ]);
        let (a, b, c) = (&out[3], &out[4], &out[5]);
        assert_eq!(a.parent_span_id, page.span_id.to_vec());
        assert_eq!(b.parent_span_id, page.span_id.to_vec());
        assert_eq!(b.trace_id, page.trace_id.to_vec());
        assert!(c.parent_span_id.is_empty());
        assert_ne!(c.trace_id, page.trace_id.to_vec());
    }

    #[test]
    fn http_call_without_ids_joins_known_interaction() {
        let click = Interaction {
            kind: "click".into(),
            start: 1_400.0,
            ..Default::default()
        };
        let out = spans(vec![
            RumEvent::Interaction(click),
            RumEvent::HttpCall(call()),
        ]);
        let click_span = out[0].span_id.clone();
        let mut parent = [0u8; 8];
        parent.copy_from_slice(&click_span);
        let out = spans(vec![
            RumEvent::Interaction(Interaction {
                kind: "click".into(),
                start: 1_400.0,
                ..Default::default()
            }),
            RumEvent::HttpCall(HttpCall {
                span: None,
                parent_span_id: Some(parent),
                ..call()
            }),
        ]);
        assert_eq!(out[1].trace_id, out[0].trace_id);
        assert_eq!(out[1].parent_span_id, click_span);
        // An unknown parent (trace unknown) is dropped rather than pointing into a wrong trace.
        let out = spans(vec![RumEvent::HttpCall(HttpCall {
            span: None,
            parent_span_id: Some([0x77; 8]),
            ..call()
        })]);
        assert!(out[0].parent_span_id.is_empty());
    }

    #[test]
    fn interaction_starts_trace_linked_to_page_load() {
        let page = page_span(&ctx(), PageLoadCorrelation::Child);
        let click = Interaction {
            kind: "click".into(),
            target: Some("button#add-to-cart".into()),
            start: 1_500.0,
            duration: 136.0,
            input_delay: Some(2.0),
            processing_duration: Some(121.0),
            presentation_delay: Some(13.0),
            ..Default::default()
        };
        let in_page = Interaction {
            kind: "keydown".into(),
            span: Some(SpanRef {
                trace_id: page.trace_id,
                span_id: [0x0f; 8],
            }),
            ..Default::default()
        };
        let out = spans(vec![
            RumEvent::Interaction(click),
            RumEvent::Interaction(in_page),
        ]);
        let sp = &out[0];
        assert_eq!(sp.name, "click");
        assert_eq!(sp.kind, SpanKind::Internal as i32);
        assert!(sp.parent_span_id.is_empty());
        assert_ne!(sp.trace_id, page.trace_id.to_vec());
        assert_eq!(sp.links.len(), 1);
        assert_eq!(sp.links[0].trace_id, page.trace_id.to_vec());
        assert_eq!(sp.links[0].span_id, page.span_id.to_vec());
        assert_eq!(sp.links[0].flags, 0x101);
        assert_eq!(
            get(sp, "browser.css_selector"),
            Some(&s("button#add-to-cart"))
        );
        assert_eq!(
            get(sp, "browser.interaction.input_delay"),
            Some(&Value::DoubleValue(2.0))
        );
        assert_eq!(
            get(sp, "browser.interaction.processing_duration"),
            Some(&Value::DoubleValue(121.0))
        );
        assert_eq!(
            get(sp, "browser.interaction.presentation_delay"),
            Some(&Value::DoubleValue(13.0))
        );
        assert_eq!(sp.end_time_unix_nano - sp.start_time_unix_nano, 136_000_000);
        let child = &out[1];
        assert_eq!(child.parent_span_id, page.span_id.to_vec());
        assert!(child.links.is_empty());
    }

    #[test]
    fn skew_is_recorded_on_spans() {
        let mut c = ctx();
        c.clock_skew_ms = Some(-2_500.0);
        let out = spans_with(
            vec![RumEvent::HttpCall(call())],
            c,
            PageLoadCorrelation::Child,
        );
        assert_eq!(
            get(&out[0], "rum.clock_skew_ms"),
            Some(&Value::DoubleValue(-2_500.0))
        );
    }

    #[test]
    fn hostile_numbers_do_not_panic() {
        let mut pl = page_load();
        pl.navigation.load_event_end = f64::NAN;
        pl.navigation.timing.fetch_start = f64::INFINITY;
        let bad_call = HttpCall {
            start: f64::NAN,
            duration: -5.0,
            url: "http://[bad".into(),
            ..call()
        };
        let out = spans(vec![RumEvent::PageLoad(pl), RumEvent::HttpCall(bad_call)]);
        for sp in &out {
            assert!(
                sp.end_time_unix_nano >= sp.start_time_unix_nano,
                "{}",
                sp.name
            );
        }
        assert_eq!(get(&out[3], "url.full"), Some(&s("http://[bad")));
        assert_eq!(get(&out[3], "server.address"), None);
    }
}
