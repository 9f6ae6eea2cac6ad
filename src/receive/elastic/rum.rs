//! The RUM meaning of Elastic intake events (docs/elastic-mapping.md), after [`super::decode`]:
//!
//! - `metadata` becomes the page context: `service.name` (a configured app's name wins),
//!   `service.version`, `deployment.environment.name`, the agent as `telemetry.sdk.*`; the
//!   page-load's `session.id` and page URL join it;
//! - the `page-load` transaction becomes `documentLoad`, its navigation-timing and agent marks
//!   span events, its agent marks (LCP, FCP, TTFB) and `experience.cls` model web vitals; it is
//!   tied to the server span that rendered the page (its `parent_id` from `pageLoadParentId`,
//!   else the page's `Server-Timing: traceparent` the agent captured, else the document span
//!   whose id the page gave as `pageLoadSpanId`): a child of it in `correlation.page_load =
//!   "child"`, a link to it in `"link"`;
//! - spans become child spans with their ids: `external`/`http` ones CLIENT spans (the ids the
//!   browser sent in `traceparent`), `resource` ones `resourceFetch`, the document request
//!   `documentFetch`; other transactions (route-change, user-interaction, …) become spans;
//!   `page-exit` with `inp_value` becomes an INP vital;
//! - `error` becomes a model error (an exception log record) on the span it names;
//! - breakdown metricsets become attributes of their transaction's span.
//!
//! The RUM agent sends no absolute times: as APM Server does, a transaction ends when the
//! request arrives (unless it carries a `timestamp`), and its spans and marks are placed from
//! its start.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use xxhash_rust::xxh3::xxh3_128;

use super::decode::{ErrorRecord, Intake, Metricset, SpanRecord, Transaction};
use crate::config::PageLoadCorrelation;
use crate::model::otlp::kv;
use crate::model::trace_context::parse_server_timing;
use crate::model::{
    AttrValue, ErrorEvent, Reason, Rejected, RumBatch, RumEvent, SpanRef, TraceContext, VitalName,
    WebVital,
};

/// An Elastic intake request, ready for the pipeline.
#[derive(Debug, Default)]
pub struct ElasticBatch {
    /// Errors and vitals, with the page context; times are Unix epoch ms (origin 0).
    pub batch: RumBatch,
    pub spans: Vec<ResourceSpans>,
    pub span_count: usize,
    /// The batch holds the page-load transaction.
    pub has_navigation: bool,
    /// The newest time the agent itself gave (`timestamp`), Unix epoch ms.
    pub newest_ms: Option<f64>,
}

/// The document request span of a page-load (`pageLoadSpanId` names it).
const DOCUMENT_SPAN: &str = "Requesting and receiving the document";

/// Gives the decoded intake its RUM meaning (see the module docs). `received_ms`: when the
/// request arrived (Unix epoch ms), the end of transactions that carry no `timestamp`.
pub fn interpret(intake: Intake, mode: PageLoadCorrelation, received_ms: f64) -> ElasticBatch {
    let Intake {
        version,
        metadata,
        mut transactions,
        orphan_spans,
        errors,
        metricsets,
        rejected,
    } = intake;
    let mut out = ElasticBatch::default();
    out.batch.rejected = rejected;
    out.newest_ms = transactions
        .iter()
        .filter_map(|t| Some(t.timestamp_us? / 1000.0 + t.duration))
        .chain(errors.iter().filter_map(|e| Some(e.timestamp_us? / 1000.0)))
        .reduce(f64::max);

    let ctx = &mut out.batch.context;
    ctx.app.name = metadata.service_name.clone().unwrap_or_default();
    ctx.app.version = metadata.service_version.clone();
    ctx.app.environment = metadata.environment.clone();
    ctx.sdk_name = metadata.agent_name.clone();
    ctx.sdk_version = metadata.agent_version.clone();
    ctx.session_id = transactions.iter().find_map(|t| t.session_id.clone());
    ctx.page_url = transactions
        .iter()
        .find_map(|t| t.page_url.clone())
        .or_else(|| errors.iter().find_map(|e| e.page_url.clone()));
    for (k, v) in &metadata.labels {
        ctx.attributes
            .push((format!("labels.{k}"), AttrValue::Str(v.clone())));
    }
    ctx.attributes.push((
        "elastic.intake.version".to_owned(),
        AttrValue::Int(i64::from(version)),
    ));

    for ms in metricsets {
        match transactions
            .iter_mut()
            .find(|t| ms.transaction.as_ref() == Some(&(t.name.clone(), t.kind.clone())))
        {
            Some(t) => t.breakdown.push(ms),
            // A breakdown without its transaction has nothing to describe.
            None => continue,
        }
    }

    let mut spans: Vec<Span> = Vec::new();
    let mut errors: Vec<ErrorEvent> = errors
        .into_iter()
        .map(|e| error_event(&e, received_ms))
        .collect();
    for t in &transactions {
        let start = t
            .timestamp_us
            .map_or(received_ms - t.duration, |us| us / 1000.0);
        if t.kind == "page-load" {
            let (page, server) = page_load(t, start, mode, &mut spans, &mut out.batch);
            out.has_navigation = true;
            out.batch.context.server_trace = server;
            out.batch.context.page_span = Some(page);
            // Errors raised inside a page load whose trace moved follow it.
            if page.trace_id != t.trace_id {
                for e in &mut errors {
                    if let Some(a) = e.active_span.as_mut().filter(|a| a.trace_id == t.trace_id) {
                        a.trace_id = page.trace_id;
                    }
                }
            }
        } else if t.kind == "page-exit" && label(t, "inp_value").is_some() {
            inp(t, start, &mut out.batch);
        } else {
            let mut span = base_span(t.trace_id, t.id, t.parent_id, &t.name, start, t.duration);
            transaction_attributes(t, &mut span);
            spans.push(span);
            for s in &t.spans {
                spans.push(child_span(s, t, start, None));
            }
        }
    }
    for s in &orphan_spans {
        // Its transaction was sent earlier: placed before the request's arrival.
        let t = Transaction {
            id: s.transaction_id.unwrap_or(s.id),
            trace_id: s.trace_id.unwrap_or([0; 16]),
            ..Default::default()
        };
        spans.push(child_span(s, &t, received_ms - s.start - s.duration, None));
    }
    out.batch
        .events
        .extend(errors.into_iter().map(RumEvent::Error));
    out.span_count = spans.len();
    if !spans.is_empty() {
        out.spans = vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: metadata
                        .agent_name
                        .unwrap_or_else(|| "elastic-apm-rum".into()),
                    version: metadata.agent_version.unwrap_or_default(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }];
    }
    out
}

fn ms_to_ns(ms: f64) -> u64 {
    if !ms.is_finite() || ms <= 0.0 {
        return 0;
    }
    ((ms * 1000.0).round() as u64).saturating_mul(1000)
}

fn str_kv(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

fn base_span(
    trace: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &str,
    start_ms: f64,
    duration_ms: f64,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: ms_to_ns(start_ms),
        end_time_unix_nano: ms_to_ns(start_ms + duration_ms),
        flags: 0x100,
        status: Some(Status::default()),
        ..Default::default()
    }
}

fn label<'a>(t: &'a Transaction, key: &str) -> Option<&'a str> {
    t.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Attributes every transaction span carries: its Elastic name and type, outcome, labels and
/// breakdowns.
fn transaction_attributes(t: &Transaction, span: &mut Span) {
    let attrs = &mut span.attributes;
    attrs.push(str_kv("elastic.transaction.name", &t.name));
    attrs.push(str_kv("elastic.transaction.type", &t.kind));
    if let Some(url) = &t.page_url {
        attrs.push(str_kv("url.full", url));
    }
    if t.outcome.as_deref() == Some("failure") {
        span.status = Some(Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        });
    }
    for (k, v) in &t.labels {
        attrs.push(str_kv(&format!("labels.{k}"), v));
    }
    for ms in &t.breakdown {
        breakdown(ms, attrs);
    }
}

fn breakdown(ms: &Metricset, attrs: &mut Vec<KeyValue>) {
    // By span type only: v3 breakdowns carry no subtype (the RUM agent breaks down
    // `external` by `http` alone).
    let Some(kind) = &ms.span_type else { return };
    let key = format!("elastic.breakdown.{kind}");
    for (name, value) in &ms.samples {
        match name.as_str() {
            "span.self_time.count" => {
                attrs.push(kv(&format!("{key}.count"), Value::IntValue(*value as i64)));
            }
            "span.self_time.sum.us" => {
                let ms = value / 1000.0;
                attrs.push(kv(&format!("{key}.self_time_ms"), Value::DoubleValue(ms)));
            }
            _ => {}
        }
    }
}

/// A span of transaction `t` (which started at `start` ms). `replace`: (old id, new id) for the
/// span whose id is the server span's.
fn child_span(
    s: &SpanRecord,
    t: &Transaction,
    start: f64,
    replace: Option<([u8; 8], [u8; 8])>,
) -> Span {
    let id = match replace {
        Some((old, new)) if old == s.id => new,
        _ => s.id,
    };
    let trace = s.trace_id.unwrap_or(t.trace_id);
    let parent = s.parent_id.or(Some(t.id));
    let http =
        s.kind == "external" && (s.subtype.as_deref() == Some("http") || s.http_method.is_some());
    let name = if http {
        s.http_method
            .clone()
            .or_else(|| s.name.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "HTTP".to_owned())
            .to_ascii_uppercase()
    } else if s.kind == "resource" {
        "resourceFetch".to_owned()
    } else if s.kind == "hard-navigation" && s.name == DOCUMENT_SPAN {
        "documentFetch".to_owned()
    } else {
        s.name.clone()
    };
    let mut span = base_span(trace, id, parent, &name, start + s.start, s.duration);
    let attrs = &mut span.attributes;
    if http {
        span.kind = SpanKind::Client as i32;
        attrs.push(str_kv("http.request.method", &name));
        if let Some(status) = s.http_status {
            attrs.push(kv("http.response.status_code", Value::IntValue(status)));
        }
    } else {
        attrs.push(str_kv("elastic.span.type", &s.kind));
        if let Some(sub) = &s.subtype {
            attrs.push(str_kv("elastic.span.subtype", sub));
        }
        if let Some(action) = &s.action {
            attrs.push(str_kv("elastic.span.action", action));
        }
    }
    if name != s.name && !http {
        attrs.push(str_kv("elastic.span.name", &s.name));
    }
    let url = s
        .http_url
        .clone()
        .or_else(|| (s.kind == "resource").then(|| s.name.clone()));
    if let Some(url) = url.or_else(|| {
        (name == "documentFetch")
            .then(|| t.page_url.clone())
            .flatten()
    }) {
        attrs.push(str_kv("url.full", &url));
    }
    if let Some(size) = s.transfer_size {
        attrs.push(kv("http.response.size", Value::IntValue(size as i64)));
    }
    if let Some(address) = &s.address {
        attrs.push(str_kv("server.address", address));
    }
    if let Some(port) = s.port.filter(|p| *p > 0) {
        attrs.push(kv("server.port", Value::IntValue(port)));
    }
    if s.sync {
        attrs.push(kv("elastic.span.sync", Value::BoolValue(true)));
    }
    if s.outcome.as_deref() == Some("failure") {
        span.status = Some(Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        });
    }
    span
}

/// The server span that rendered the page (see the module docs).
fn server_span(t: &Transaction) -> Option<TraceContext> {
    if let Some(parent) = t.parent_id {
        return Some(TraceContext {
            trace_id: t.trace_id,
            span_id: parent,
            flags: 0x01,
        });
    }
    if let Some(st) = t.server_timing.as_deref().and_then(parse_server_timing) {
        return Some(st);
    }
    t.spans
        .iter()
        .find(|s| s.kind == "hard-navigation" && s.name == DOCUMENT_SPAN)
        .map(|s| TraceContext {
            trace_id: t.trace_id,
            span_id: s.id,
            flags: 0x01,
        })
}

/// A stable id derived from `seed` (never all zero).
fn derived<const N: usize>(seed: &[u8]) -> [u8; N] {
    let hash = xxh3_128(seed).to_be_bytes();
    let mut id = [0u8; N];
    id.copy_from_slice(&hash[..N]);
    if id.iter().all(|b| *b == 0) {
        id[N - 1] = 1;
    }
    id
}

/// The page-load transaction: `documentLoad` and its tree, tied to the server span; its marks
/// as span events and vitals. Returns the page span and the server span.
fn page_load(
    t: &Transaction,
    start: f64,
    mode: PageLoadCorrelation,
    spans: &mut Vec<Span>,
    batch: &mut RumBatch,
) -> (SpanRef, Option<TraceContext>) {
    let server = server_span(t);
    let trace = match (server, mode) {
        (None, _) => t.trace_id,
        (Some(s), PageLoadCorrelation::Child) => s.trace_id,
        // The page's own trace, derived from its span id: stable across retries.
        (Some(s), PageLoadCorrelation::Link) if s.trace_id == t.trace_id => derived(&t.id),
        (Some(_), PageLoadCorrelation::Link) => t.trace_id,
    };
    let mut doc = base_span(trace, t.id, None, "documentLoad", start, t.duration);
    transaction_attributes(t, &mut doc);
    match (server, mode) {
        (Some(s), PageLoadCorrelation::Child) => {
            doc.parent_span_id = s.span_id.to_vec();
            doc.flags = 0x300 | u32::from(s.flags);
        }
        (Some(s), PageLoadCorrelation::Link) => doc.links.push(Link {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            flags: 0x300 | u32::from(s.flags),
            ..Default::default()
        }),
        (None, _) => {}
    }
    for (name, at) in t.navigation_marks.iter().chain(
        t.agent_marks
            .iter()
            .filter(|(n, _)| !t.navigation_marks.iter().any(|(m, _)| m == n)),
    ) {
        doc.events.push(Event {
            time_unix_nano: ms_to_ns(start + at),
            name: (*name).to_owned(),
            ..Default::default()
        });
    }
    let e = &t.experience;
    if let Some(tbt) = e.tbt {
        doc.attributes
            .push(kv("elastic.experience.tbt_ms", Value::DoubleValue(tbt)));
    }
    if let Some((count, sum, max)) = e.longtask {
        doc.attributes.push(kv(
            "elastic.experience.longtask.count",
            Value::IntValue(count as i64),
        ));
        doc.attributes.push(kv(
            "elastic.experience.longtask.sum_ms",
            Value::DoubleValue(sum),
        ));
        doc.attributes.push(kv(
            "elastic.experience.longtask.max_ms",
            Value::DoubleValue(max),
        ));
    }
    spans.push(doc);
    // The document span carries the server span's id when the page gave it as
    // `pageLoadSpanId`: it gets an id of its own, so the server span stays unique.
    let replace = server
        .filter(|s| t.spans.iter().any(|sp| sp.id == s.span_id))
        .map(|s| {
            (
                s.span_id,
                derived::<8>(&[&s.span_id[..], b"documentFetch"].concat()),
            )
        });
    for s in &t.spans {
        let mut span = child_span(s, t, start, replace);
        span.trace_id = trace.to_vec();
        spans.push(span);
    }

    let id_hex = crate::model::trace_context::hex(&t.id);
    let mut vital = |name: VitalName, value: f64, at: f64| {
        batch.events.push(RumEvent::Vital(WebVital {
            name,
            value,
            delta: value,
            id: format!("{id_hex}-{}", name.as_str()),
            rating: name.rate(value),
            navigation_type: Some("navigate".into()),
            time: Some(at),
            target: None,
            attribution: Vec::new(),
            dropped_attributes: 0,
        }));
    };
    for (mark, value) in &t.agent_marks {
        let name = match *mark {
            "largestContentfulPaint" => VitalName::Lcp,
            "firstContentfulPaint" => VitalName::Fcp,
            "timeToFirstByte" => VitalName::Ttfb,
            _ => continue,
        };
        vital(name, *value, start + value);
    }
    if let Some(cls) = e.cls {
        vital(VitalName::Cls, cls, start + t.duration);
    }
    if e.fid.is_some() {
        batch.rejected.push(Rejected {
            reason: Reason::UnsupportedVital,
            detail: "`experience.fid` (First Input Delay) is retired; INP replaced it".into(),
        });
    }
    (
        SpanRef {
            trace_id: trace,
            span_id: t.id,
        },
        server,
    )
}

/// A `page-exit` transaction carrying `inp_value`: the page's INP.
fn inp(t: &Transaction, start: f64, batch: &mut RumBatch) {
    let value = label(t, "inp_value")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0);
    let Some(value) = value else {
        batch.rejected.push(Rejected {
            reason: Reason::InvalidNumber,
            detail: "page-exit `inp_value` is not a non-negative number".into(),
        });
        return;
    };
    batch.events.push(RumEvent::Vital(WebVital {
        name: VitalName::Inp,
        value,
        delta: value,
        id: format!("{}-inp", crate::model::trace_context::hex(&t.id)),
        rating: VitalName::Inp.rate(value),
        navigation_type: None,
        time: Some(start),
        target: None,
        attribution: Vec::new(),
        dropped_attributes: 0,
    }));
}

/// Elastic prefixes messages with how the error was caught and its type
/// (`Uncaught TypeError: …`, `Unhandled promise rejection: Error: …`): type and message apart.
fn split_message(message: &str, known_type: Option<&str>) -> (Option<String>, String) {
    let rest = message
        .strip_prefix("Uncaught ")
        .or_else(|| message.strip_prefix("Unhandled promise rejection: "))
        .unwrap_or(message);
    if let Some((head, tail)) = rest.split_once(": ") {
        let ident = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.');
        let typed =
            known_type == Some(head) || head.ends_with("Error") || head.ends_with("Exception");
        if ident && typed {
            return (Some(head.to_owned()), tail.to_owned());
        }
    }
    (None, rest.to_owned())
}

fn error_event(e: &ErrorRecord, received_ms: f64) -> ErrorEvent {
    let (parsed_type, message) = match &e.message {
        Some(m) => {
            let (t, m) = split_message(m, e.error_type.as_deref());
            (t, Some(m))
        }
        None => (None, None),
    };
    let error_type = e.error_type.clone().or(parsed_type);
    let mut stack = String::new();
    if !e.frames.is_empty() {
        stack.push_str(error_type.as_deref().unwrap_or("Error"));
        if let Some(m) = &message {
            stack.push_str(": ");
            stack.push_str(m);
        }
        for f in &e.frames {
            let location = format!(
                "{}:{}:{}",
                f.abs_path.as_deref().unwrap_or("<anonymous>"),
                f.line.unwrap_or(0),
                f.column.unwrap_or(0)
            );
            match f.function.as_deref().filter(|n| *n != "<anonymous>") {
                Some(function) => stack.push_str(&format!("\n    at {function} ({location})")),
                None => stack.push_str(&format!("\n    at {location}")),
            }
        }
    }
    let active_span = match (e.trace_id, e.parent_id.or(e.transaction_id)) {
        (Some(trace_id), Some(span_id)) => Some(SpanRef { trace_id, span_id }),
        _ => None,
    };
    let mut attributes = vec![("elastic.error.id".to_owned(), AttrValue::Str(e.id.clone()))];
    if let Some(culprit) = &e.culprit {
        attributes.push((
            "elastic.error.culprit".to_owned(),
            AttrValue::Str(culprit.clone()),
        ));
    }
    ErrorEvent {
        time: e.timestamp_us.map_or(received_ms, |us| us / 1000.0),
        error_type,
        message,
        stack: (!stack.is_empty()).then_some(stack),
        handled: false,
        active_span,
        attributes,
        dropped_attributes: 0,
    }
}
