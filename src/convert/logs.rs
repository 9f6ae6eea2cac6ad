//! Errors, web vitals, console logs and custom events → OTLP log records (events).
//!
//! Every record carries the trace and span id of the span that was active (interaction, call or
//! page load), else of `documentLoad`, so a backend shows it on the trace (docs/architecture.md#errors-logs-and-exemplars).
//!
//! | model | `event_name` | severity | attributes |
//! | --- | --- | --- | --- |
//! | error | `exception` | ERROR (17) | `exception.type`, `exception.message`, `exception.stacktrace` (docs/otlp-mapping.md#exceptions) |
//! | vital | `browser.web_vital` | INFO (9) | `browser.web_vital.{name,value,delta,id,rating,navigation_type}` (semconv v1.44, docs/otlp-mapping.md#web-vital-events), `browser.web_vital.attribution.target` and `browser.web_vital.attribution.<key>` |
//! | console log | `browser.console` | the log's | body = the message |
//! | custom event | its name | INFO (9) | the event's attributes |
//!
//! A vital without its own time is stamped with the beacon's send time (skew-corrected), else
//! with the bridge's receive time. `observed_time_unix_nano` is always the receive time.

use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::attrs::{any_string, truncate_str};
use super::ids::SAMPLED;
use super::{epoch_ms_to_nanos, BatchContext};
use crate::model::semconv;
use crate::model::{CustomEvent, ErrorEvent, LogEvent, RumEvent, Severity, SpanRef, WebVital};

/// Event name of JS errors (global handlers use plain `exception`, docs/otlp-mapping.md#exceptions).
pub const EVENT_EXCEPTION: &str = "exception";
/// Event name of web-vital reports (semconv).
pub const EVENT_WEB_VITAL: &str = "browser.web_vital";
/// Event name of console logs (de-facto, opentelemetry-browser).
pub const EVENT_CONSOLE: &str = "browser.console";
/// Event name of custom events sent without a name.
pub const EVENT_CUSTOM_FALLBACK: &str = "custom";

const ATTRIBUTION_PREFIX: &str = "browser.web_vital.attribution.";

/// Converts the log-producing events of a batch.
pub(crate) fn convert_logs(cx: &BatchContext) -> Vec<LogRecord> {
    let count = cx
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                RumEvent::Error(_) | RumEvent::Vital(_) | RumEvent::Log(_) | RumEvent::Custom(_)
            )
        })
        .count();
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return out;
    }
    let observed = epoch_ms_to_nanos(cx.ctx.received_at_ms);
    for event in cx.events {
        let record = match event {
            RumEvent::Error(e) => error(cx, e),
            RumEvent::Vital(v) => vital(cx, v, observed),
            RumEvent::Log(l) => log(cx, l),
            RumEvent::Custom(c) => custom(cx, c),
            RumEvent::PageLoad(_) | RumEvent::Interaction(_) | RumEvent::HttpCall(_) => continue,
        };
        out.push(LogRecord {
            observed_time_unix_nano: observed,
            ..record
        });
    }
    out
}

fn error(cx: &BatchContext, e: &ErrorEvent) -> LogRecord {
    let mut attrs = cx.attrs(3 + e.attributes.len());
    attrs.opt_str(semconv::EXCEPTION_TYPE, e.error_type.as_deref());
    attrs.opt_str("exception.message", e.message.as_deref());
    attrs.opt_str("exception.stacktrace", e.stack.as_deref());
    attrs.extend_model(&e.attributes);
    LogRecord {
        time_unix_nano: cx.nanos(e.time),
        event_name: EVENT_EXCEPTION.to_owned(),
        attributes: attrs.into_vec(),
        dropped_attributes_count: e.dropped_attributes,
        ..with_severity(with_span(cx, e.active_span), Severity::Error)
    }
}

fn vital(cx: &BatchContext, v: &WebVital, observed: u64) -> LogRecord {
    let mut attrs = cx.attrs(7 + v.attribution.len());
    attrs.str("browser.web_vital.name", v.name.as_str());
    attrs.float("browser.web_vital.value", v.value);
    attrs.float("browser.web_vital.delta", v.delta);
    attrs.str("browser.web_vital.id", &v.id);
    attrs.str("browser.web_vital.rating", v.rating.as_str());
    attrs.opt_str(
        "browser.web_vital.navigation_type",
        v.navigation_type.as_deref(),
    );
    attrs.opt_str("browser.web_vital.attribution.target", v.target.as_deref());
    for (key, value) in &v.attribution {
        if key.starts_with(ATTRIBUTION_PREFIX) {
            attrs.model(key, value);
        } else {
            attrs.model(&format!("{ATTRIBUTION_PREFIX}{key}"), value);
        }
    }
    let time = match v.time {
        Some(t) if t.is_finite() => cx.nanos(t),
        _ => send_time(cx).unwrap_or(observed),
    };
    LogRecord {
        time_unix_nano: time,
        event_name: EVENT_WEB_VITAL.to_owned(),
        attributes: attrs.into_vec(),
        dropped_attributes_count: v.dropped_attributes,
        ..with_severity(with_span(cx, None), Severity::Info)
    }
}

fn log(cx: &BatchContext, l: &LogEvent) -> LogRecord {
    let mut attrs = cx.attrs(l.attributes.len());
    attrs.extend_model(&l.attributes);
    let body = truncate_str(&l.message, cx.opts.max_attribute_value_len).to_owned();
    LogRecord {
        time_unix_nano: cx.nanos(l.time),
        event_name: EVENT_CONSOLE.to_owned(),
        body: Some(any_string(body)),
        attributes: attrs.into_vec(),
        dropped_attributes_count: l.dropped_attributes,
        ..with_severity(with_span(cx, l.active_span), l.severity)
    }
}

fn custom(cx: &BatchContext, c: &CustomEvent) -> LogRecord {
    let mut attrs = cx.attrs(c.attributes.len());
    attrs.extend_model(&c.attributes);
    let name = if c.name.is_empty() {
        EVENT_CUSTOM_FALLBACK
    } else {
        truncate_str(&c.name, cx.opts.max_attribute_value_len)
    };
    LogRecord {
        time_unix_nano: cx.nanos(c.time),
        event_name: name.to_owned(),
        attributes: attrs.into_vec(),
        dropped_attributes_count: c.dropped_attributes,
        ..with_severity(with_span(cx, c.active_span), Severity::Info)
    }
}

/// A record bound to the active span, else to `documentLoad`.
fn with_span(cx: &BatchContext, active: Option<SpanRef>) -> LogRecord {
    let (span, trace_flags) = match active {
        Some(span) => (span, SAMPLED),
        None => (cx.page.span, cx.page.trace_flags),
    };
    LogRecord {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        flags: u32::from(trace_flags),
        ..Default::default()
    }
}

fn with_severity(record: LogRecord, severity: Severity) -> LogRecord {
    LogRecord {
        severity_number: severity.number(),
        severity_text: severity.text().to_owned(),
        ..record
    }
}

/// The beacon's send time on the bridge clock (epoch ns), when the client reported it.
fn send_time(cx: &BatchContext) -> Option<u64> {
    let sent = cx.ctx.sent_at_ms.filter(|t| t.is_finite() && *t > 0.0)?;
    Some(epoch_ms_to_nanos(
        sent + cx.ctx.clock_skew_ms.unwrap_or(0.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PageLoadCorrelation;
    use crate::convert::{convert, ConvertOptions};
    use crate::model::{AttrValue, PageContext, Rating, RumBatch, TraceContext, VitalName};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    const ORIGIN: f64 = 1_700_000_000_000.0;

    fn ctx() -> PageContext {
        PageContext {
            app: crate::model::AppInfo {
                name: "shop-web".into(),
                ..Default::default()
            },
            session_id: Some("sess-1".into()),
            page_view_id: Some("pv-1".into()),
            page_url: Some("https://shop.example.com/cart".into()),
            server_trace: Some(
                TraceContext::parse_traceparent(
                    "00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01",
                )
                .unwrap(),
            ),
            time_origin_ms: ORIGIN,
            received_at_ms: ORIGIN + 10_000.0,
            ..Default::default()
        }
    }

    fn records(events: Vec<RumEvent>, context: PageContext) -> Vec<LogRecord> {
        let batch = RumBatch {
            context,
            events,
            rejected: vec![],
        };
        let mut p = convert(&batch, &ConvertOptions::default());
        assert!(p.spans.is_empty());
        p.logs.pop().unwrap().scope_logs.pop().unwrap().log_records
    }

    fn get<'a>(r: &'a LogRecord, key: &str) -> Option<&'a Value> {
        crate::convert::attrs::find(&r.attributes, key)
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.into())
    }

    #[test]
    fn error_is_exception_event_on_active_span() {
        let active = SpanRef {
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
        };
        let err = ErrorEvent {
            time: 1_000.5,
            error_type: Some("TypeError".into()),
            message: Some("pricing rules are undefined".into()),
            stack: Some("at applyDiscountCode (app.js:44)".into()),
            active_span: Some(active),
            ..Default::default()
        };
        let r = &records(vec![RumEvent::Error(err)], ctx())[0];
        assert_eq!(r.event_name, "exception");
        assert_eq!((r.severity_number, r.severity_text.as_str()), (17, "ERROR"));
        assert_eq!(r.trace_id, vec![0xab; 16]);
        assert_eq!(r.span_id, vec![0xcd; 8]);
        assert_eq!(r.flags, 0x01);
        assert_eq!(r.time_unix_nano, 1_700_000_001_000_500_000);
        assert_eq!(r.observed_time_unix_nano, 1_700_000_010_000_000_000);
        assert_eq!(get(r, "exception.type"), Some(&s("TypeError")));
        assert_eq!(
            get(r, "exception.message"),
            Some(&s("pricing rules are undefined"))
        );
        assert_eq!(
            get(r, "exception.stacktrace"),
            Some(&s("at applyDiscountCode (app.js:44)"))
        );
        assert_eq!(get(r, "session.id"), Some(&s("sess-1")));
        assert_eq!(get(r, "browser.page_view.id"), Some(&s("pv-1")));
        assert_eq!(
            get(r, "browser.document.url.full"),
            Some(&s("https://shop.example.com/cart"))
        );
    }

    #[test]
    fn error_without_active_span_uses_page_span() {
        let c = ctx();
        let page = crate::convert::page_span(&c, PageLoadCorrelation::Child);
        let r = &records(vec![RumEvent::Error(ErrorEvent::default())], c)[0];
        assert_eq!(r.trace_id, page.trace_id.to_vec());
        assert_eq!(r.span_id, page.span_id.to_vec());
        assert_eq!(
            r.trace_id[..4],
            [0x4d, 0x1c, 0x7e, 0x5a],
            "child mode: server trace"
        );
        assert_eq!(r.flags, 0x01);
    }

    fn lcp() -> WebVital {
        WebVital {
            dropped_attributes: 0,
            name: VitalName::Lcp,
            value: 2_650.0,
            delta: 2_650.0,
            id: "v6-1700000000000-123".into(),
            rating: Rating::NeedsImprovement,
            navigation_type: Some("navigate".into()),
            time: Some(2_650.0),
            target: Some("img.hero".into()),
            attribution: vec![
                ("timeToFirstByte".into(), AttrValue::Float(120.0)),
                ("elementRenderDelay".into(), AttrValue::Float(f64::NAN)),
                (
                    "browser.web_vital.attribution.url".into(),
                    AttrValue::Str("https://shop.example.com/hero.png".into()),
                ),
            ],
        }
    }

    #[test]
    fn vital_has_semconv_attributes() {
        let c = ctx();
        let page = crate::convert::page_span(&c, PageLoadCorrelation::Child);
        let r = &records(vec![RumEvent::Vital(lcp())], c)[0];
        assert_eq!(r.event_name, "browser.web_vital");
        assert_eq!((r.severity_number, r.severity_text.as_str()), (9, "INFO"));
        assert_eq!(get(r, "browser.web_vital.name"), Some(&s("lcp")));
        assert_eq!(
            get(r, "browser.web_vital.value"),
            Some(&Value::DoubleValue(2_650.0))
        );
        assert_eq!(
            get(r, "browser.web_vital.delta"),
            Some(&Value::DoubleValue(2_650.0))
        );
        assert_eq!(
            get(r, "browser.web_vital.id"),
            Some(&s("v6-1700000000000-123"))
        );
        assert_eq!(
            get(r, "browser.web_vital.rating"),
            Some(&s("needs-improvement"))
        );
        assert_eq!(
            get(r, "browser.web_vital.navigation_type"),
            Some(&s("navigate"))
        );
        assert_eq!(
            get(r, "browser.web_vital.attribution.target"),
            Some(&s("img.hero"))
        );
        assert_eq!(
            get(r, "browser.web_vital.attribution.timeToFirstByte"),
            Some(&Value::DoubleValue(120.0))
        );
        assert_eq!(
            get(r, "browser.web_vital.attribution.elementRenderDelay"),
            None
        );
        assert_eq!(
            get(r, "browser.web_vital.attribution.url"),
            Some(&s("https://shop.example.com/hero.png"))
        );
        assert_eq!(r.body, None, "v1.44 moved everything into attributes");
        assert_eq!(r.span_id, page.span_id.to_vec());
        assert_eq!(r.time_unix_nano, 1_700_000_002_650_000_000);
    }

    #[test]
    fn vital_without_time_uses_corrected_send_time_else_receive_time() {
        let mut v = lcp();
        v.time = None;
        let mut c = ctx();
        c.sent_at_ms = Some(ORIGIN + 4_000.0);
        c.clock_skew_ms = Some(2_000.0);
        let r = &records(vec![RumEvent::Vital(v.clone())], c)[0];
        assert_eq!(r.time_unix_nano, 1_700_000_006_000_000_000);
        assert_eq!(
            get(r, "rum.clock_skew_ms"),
            Some(&Value::DoubleValue(2_000.0))
        );
        let r = &records(vec![RumEvent::Vital(v)], ctx())[0];
        assert_eq!(r.time_unix_nano, r.observed_time_unix_nano);
        assert_eq!(get(r, "rum.clock_skew_ms"), None);
    }

    #[test]
    fn console_log_and_custom_event() {
        let log = LogEvent {
            time: 2.0,
            severity: Severity::Warn,
            message: "checkout started with code SPRING25".into(),
            ..Default::default()
        };
        let custom = CustomEvent {
            time: 3.0,
            name: "conversion".into(),
            attributes: vec![("order.value".into(), AttrValue::Float(42.5))],
            ..Default::default()
        };
        let rs = records(vec![RumEvent::Log(log), RumEvent::Custom(custom)], ctx());
        assert_eq!(rs[0].event_name, "browser.console");
        assert_eq!(
            (rs[0].severity_number, rs[0].severity_text.as_str()),
            (13, "WARN")
        );
        assert_eq!(
            rs[0].body,
            Some(any_string("checkout started with code SPRING25".into()))
        );
        assert_eq!(rs[1].event_name, "conversion");
        assert_eq!(rs[1].severity_number, 9);
        assert_eq!(get(&rs[1], "order.value"), Some(&Value::DoubleValue(42.5)));
        assert_eq!(get(&rs[1], "session.id"), Some(&s("sess-1")));
    }

    #[test]
    fn long_values_are_truncated() {
        let log = LogEvent {
            message: "é".repeat(10),
            attributes: vec![("k".into(), AttrValue::Str("x".repeat(10)))],
            ..Default::default()
        };
        let batch = RumBatch {
            context: ctx(),
            events: vec![RumEvent::Log(log)],
            rejected: vec![],
        };
        let opts = ConvertOptions {
            max_attribute_value_len: 5,
            ..Default::default()
        };
        let p = convert(&batch, &opts);
        let r = &p.logs[0].scope_logs[0].log_records[0];
        assert_eq!(r.body, Some(any_string("éé".into())));
        assert_eq!(get(r, "k"), Some(&s("xxxxx")));
        assert_eq!(get(r, "browser.document.url.full"), Some(&s("https")));
    }
}
