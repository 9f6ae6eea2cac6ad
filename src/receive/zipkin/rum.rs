//! The RUM meaning of `@splunk/otel-web` spans (docs/splunk-mapping.md), after the plain Zipkin
//! translation ([`super::decode`]):
//!
//! - tags every span repeats (app, version, environment, SDK, user agent, `location.href`,
//!   `splunk.rumSessionId`) become the batch's page context, so the resource and `session.id`
//!   come out as for every other format; per-span resource tags are taken off the spans;
//! - error spans (`component=error`: `onerror`, `unhandledrejection`, `console.error`, …) become
//!   model errors → exception log records; `webvitals` spans (`lcp`, `cls`, `inp`, `fcp`,
//!   `ttfb` tags) become model vitals → web-vital events and histograms;
//! - `documentLoad` is tied to the server span that rendered the page (its own parent from the
//!   meta traceparent, else the `link.traceId`/`link.spanId` Server-Timing tags of `documentLoad`
//!   or `documentFetch`): in `correlation.page_load = "child"` its whole tree moves into the
//!   server trace under the server span; in `"link"` it keeps (or gets) a trace of its own with
//!   an OTLP Link to the server span;
//! - every other span (`documentFetch`, `resourceFetch`, fetch/XHR CLIENT spans with the ids the
//!   browser sent in `traceparent`, `longtask`, `routeChange`, `click`, `session.start`, …) is
//!   kept as a span; `link.traceId`/`link.spanId` on it also become an OTLP Link.

use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use xxhash_rust::xxh3::xxh3_128;

use super::decode::{group, Decoded, ZipkinSpan};
use crate::config::PageLoadCorrelation;
use crate::model::trace_context::{parse_span_id, parse_trace_id};
use crate::model::{
    AttrValue, ErrorEvent, Reason, Rejected, RumBatch, RumEvent, SpanRef, TraceContext, VitalName,
    WebVital,
};

/// A Splunk RUM request, ready for the pipeline.
#[derive(Debug, Default)]
pub struct SplunkBatch {
    /// Errors and vitals, with the page context; times are Unix epoch ms (origin 0).
    pub batch: RumBatch,
    /// The spans kept as spans.
    pub spans: Vec<ResourceSpans>,
    pub span_count: usize,
    /// The batch holds the `documentLoad` span.
    pub has_navigation: bool,
    /// The latest span end (Unix epoch ms).
    pub newest_ms: Option<f64>,
}

/// Span tags that describe the page, the agent or the browser rather than the span: read into
/// the page context and taken off the spans.
const CONTEXT_TAGS: [&str; 18] = [
    "app",
    "app.version",
    "deployment.environment",
    "environment",
    "telemetry.sdk.name",
    "telemetry.sdk.version",
    "telemetry.sdk.language",
    "user_agent.original",
    "user_agent.language",
    "user_agent.mobile",
    "user_agent.os.name",
    "user_agent.os.version",
    "user_agent.is_bot",
    "user_agent.is_automated",
    "splunk.rumVersion",
    "splunk.scriptInstance",
    "process.runtime.name",
    "browser.instance.id",
];

/// Of [`CONTEXT_TAGS`], those kept as resource attributes under their own name.
const RESOURCE_TAGS: [&str; 7] = [
    "user_agent.os.version",
    "user_agent.is_bot",
    "user_agent.is_automated",
    "splunk.rumVersion",
    "splunk.scriptInstance",
    "process.runtime.name",
    "browser.instance.id",
];

const SESSION_TAG: &str = "splunk.rumSessionId";

/// Gives the decoded spans their RUM meaning (see the module docs).
pub fn interpret(decoded: Decoded, mode: PageLoadCorrelation) -> SplunkBatch {
    let Decoded { spans, rejected } = decoded;
    let mut out = SplunkBatch::default();
    out.batch.rejected = rejected;
    out.newest_ms = spans
        .iter()
        .map(|s| s.span.end_time_unix_nano.max(s.span.start_time_unix_nano) as f64 / 1e6)
        .reduce(f64::max);
    fill_context(&mut out.batch, &spans);

    let mut kept = Vec::with_capacity(spans.len());
    for (index, z) in spans.into_iter().enumerate() {
        if is_error(&z) {
            out.batch.events.push(RumEvent::Error(error_event(&z)));
        } else if z.span.name == "webvitals" {
            vitals(&z, index, &mut out.batch.events, &mut out.batch.rejected);
        } else {
            kept.push(z);
        }
    }

    let (server, page, retraced) = correlate(&mut kept, mode);
    out.has_navigation = page.is_some();
    out.batch.context.server_trace = server;
    out.batch.context.page_span = page;
    if let Some((old, new)) = retraced {
        // Errors raised inside the re-traced page load follow it.
        for event in &mut out.batch.events {
            if let RumEvent::Error(e) = event {
                if let Some(active) = e.active_span.as_mut().filter(|a| a.trace_id == old) {
                    active.trace_id = new;
                }
            }
        }
    }
    for z in &mut kept {
        tidy(z);
    }
    out.span_count = kept.len();
    if !kept.is_empty() {
        out.spans = group(kept);
    }
    out
}

fn fill_context(batch: &mut RumBatch, spans: &[ZipkinSpan]) {
    let ctx = &mut batch.context;
    let first = |key: &str| spans.iter().find_map(|s| s.tag(key)).map(str::to_owned);
    ctx.session_id = first(SESSION_TAG);
    ctx.page_url = first("location.href");
    ctx.app.name = first("app").unwrap_or_default();
    ctx.app.version = first("app.version");
    ctx.app.environment = first("deployment.environment").or_else(|| first("environment"));
    ctx.sdk_name = first("telemetry.sdk.name");
    ctx.sdk_version = first("telemetry.sdk.version");
    ctx.user_agent = first("user_agent.original");
    ctx.browser.language = first("user_agent.language");
    ctx.browser.mobile = first("user_agent.mobile").and_then(|m| m.parse().ok());
    ctx.browser.platform = first("user_agent.os.name");
    for key in RESOURCE_TAGS {
        if let Some(v) = first(key) {
            ctx.attributes.push((key.to_owned(), AttrValue::Str(v)));
        }
    }
}

fn is_error(z: &ZipkinSpan) -> bool {
    z.tag("component") == Some("error")
        || (z.tag("error.message").is_some() && z.tag("error.object").is_some())
}

fn error_event(z: &ZipkinSpan) -> ErrorEvent {
    let active_span = (z.span.parent_span_id.len() == 8).then(|| SpanRef {
        trace_id: z.span.trace_id.as_slice().try_into().unwrap_or([0; 16]),
        span_id: z
            .span
            .parent_span_id
            .as_slice()
            .try_into()
            .unwrap_or([0; 8]),
    });
    let mut attributes = vec![(
        "splunk.error.source".to_owned(),
        AttrValue::Str(z.span.name.clone()),
    )];
    if let Some(href) = z.tag("location.href") {
        attributes.push(("location.href".to_owned(), AttrValue::Str(href.to_owned())));
    }
    ErrorEvent {
        time: z.start_ms(),
        error_type: z.tag("error.object").map(str::to_owned),
        message: z.tag("error.message").map(str::to_owned),
        stack: z.tag("error.stack").map(str::to_owned),
        // `console.error` and `SplunkRum.reportError` are errors the page reported itself.
        handled: matches!(
            z.span.name.as_str(),
            "console.error" | "SplunkRum.reportError"
        ),
        active_span,
        attributes,
        dropped_attributes: 0,
    }
}

fn vitals(z: &ZipkinSpan, index: usize, events: &mut Vec<RumEvent>, rejected: &mut Vec<Rejected>) {
    let span_hex = crate::model::trace_context::hex(&z.span.span_id);
    for (key, value) in &z.tags {
        let name = match VitalName::parse(key) {
            Some(name) => name,
            None if key == "fid" => {
                rejected.push(Rejected {
                    reason: Reason::UnsupportedVital,
                    detail: format!(
                        "span {index}: `fid` (First Input Delay) is retired; INP replaced it"
                    ),
                });
                continue;
            }
            None => continue,
        };
        let Some(value) = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
        else {
            rejected.push(Rejected {
                reason: Reason::InvalidNumber,
                detail: format!("span {index}: `{key}` is not a non-negative number"),
            });
            continue;
        };
        events.push(RumEvent::Vital(WebVital {
            name,
            value,
            delta: value,
            id: format!("{span_hex}-{}", name.as_str()),
            rating: name.rate(value),
            navigation_type: None,
            time: Some(z.start_ms()),
            target: None,
            attribution: Vec::new(),
            dropped_attributes: 0,
        }));
    }
}

/// The Server-Timing trace a span's `link.traceId` / `link.spanId` tags name.
fn link_tags(z: &ZipkinSpan) -> Option<TraceContext> {
    Some(TraceContext {
        trace_id: parse_trace_id(z.tag("link.traceId")?)?,
        span_id: parse_span_id(z.tag("link.spanId")?)?,
        flags: 0x01,
    })
}

/// Ties `documentLoad` to the server span (see the module docs). Returns the server span, the
/// final `documentLoad` ids and, when its tree moved to another trace, (old, new) trace ids.
#[allow(clippy::type_complexity)]
fn correlate(
    spans: &mut [ZipkinSpan],
    mode: PageLoadCorrelation,
) -> (
    Option<TraceContext>,
    Option<SpanRef>,
    Option<([u8; 16], [u8; 16])>,
) {
    let Some(dl) = spans.iter().position(|s| s.span.name == "documentLoad") else {
        return (None, None, None);
    };
    let old_trace: [u8; 16] = spans[dl]
        .span
        .trace_id
        .as_slice()
        .try_into()
        .unwrap_or([0; 16]);
    let span_id: [u8; 8] = spans[dl]
        .span
        .span_id
        .as_slice()
        .try_into()
        .unwrap_or([0; 8]);
    let from_parent = (spans[dl].span.parent_span_id.len() == 8).then(|| TraceContext {
        trace_id: old_trace,
        span_id: spans[dl]
            .span
            .parent_span_id
            .as_slice()
            .try_into()
            .unwrap_or([0; 8]),
        flags: 0x01,
    });
    let server = from_parent.or_else(|| {
        link_tags(&spans[dl]).or_else(|| {
            spans
                .iter()
                .filter(|s| s.span.name == "documentFetch" && s.span.trace_id == old_trace)
                .find_map(link_tags)
        })
    });
    let Some(server) = server else {
        return (
            None,
            Some(SpanRef {
                trace_id: old_trace,
                span_id,
            }),
            None,
        );
    };
    let new_trace = match mode {
        PageLoadCorrelation::Child => server.trace_id,
        PageLoadCorrelation::Link if old_trace == server.trace_id => {
            // The page's own trace, derived from its span id: stable across retries.
            let mut id = xxh3_128(&span_id).to_be_bytes();
            if id == [0; 16] {
                id[15] = 1;
            }
            id
        }
        PageLoadCorrelation::Link => old_trace,
    };
    if new_trace != old_trace {
        for s in spans.iter_mut().filter(|s| s.span.trace_id == old_trace) {
            s.span.trace_id = new_trace.to_vec();
        }
    }
    let page = &mut spans[dl].span;
    match mode {
        PageLoadCorrelation::Child => {
            page.parent_span_id = server.span_id.to_vec();
            page.flags = 0x300 | u32::from(server.flags);
        }
        PageLoadCorrelation::Link => {
            page.parent_span_id.clear();
            page.links.push(remote_link(server));
        }
    }
    let retraced = (new_trace != old_trace).then_some((old_trace, new_trace));
    (
        Some(server),
        Some(SpanRef {
            trace_id: new_trace,
            span_id,
        }),
        retraced,
    )
}

fn remote_link(server: TraceContext) -> Link {
    Link {
        trace_id: server.trace_id.to_vec(),
        span_id: server.span_id.to_vec(),
        flags: 0x300 | u32::from(server.flags),
        ..Default::default()
    }
}

/// Takes the page-level tags off a kept span, names the session `session.id`, and turns its
/// Server-Timing tags into a Link (the page load's was handled by [`correlate`]).
fn tidy(z: &mut ZipkinSpan) {
    let span = &mut z.span;
    span.attributes
        .retain(|kv| !CONTEXT_TAGS.contains(&kv.key.as_str()));
    for kv in &mut span.attributes {
        if kv.key == SESSION_TAG {
            kv.key = crate::model::semconv::SESSION_ID.to_owned();
        }
    }
    let page_load = matches!(z.span.name.as_str(), "documentLoad" | "documentFetch");
    if let Some(server) = link_tags(z).filter(|_| !page_load) {
        let span = &mut z.span;
        let is_parent = span.trace_id == server.trace_id && span.parent_span_id == server.span_id;
        let linked = span
            .links
            .iter()
            .any(|l| l.span_id == server.span_id && l.trace_id == server.trace_id);
        if !is_parent && !linked && span.span_id != server.span_id {
            span.links.push(remote_link(server));
        }
    }
}

/// The value of a string attribute of a kept span (tests).
#[cfg(test)]
pub(crate) fn attr<'a>(
    span: &'a opentelemetry_proto::tonic::trace::v1::Span,
    key: &str,
) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                Some(s.as_str())
            }
            _ => None,
        })
}
