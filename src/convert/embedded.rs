//! OTLP spans that came inside a RUM beacon (Faro's `traces`), made to look like the rest of
//! the batch.
//!
//! Unlike Alloy, which passes these spans on untouched, the bridge gives them what the batch's
//! context says: the resource gets the page's resource attributes (a configured app's identity
//! wins, [`crate::process::identity`]; `service.version`, `deployment.environment.name`, `browser.*`,
//! `user_agent.original`, … are added when missing), spans get `session.id` and the page-view
//! id when missing, and legacy HTTP attribute names are renamed as on the OTLP routes. Their
//! CLIENT spans also feed the HTTP client histogram ([`http_calls`]).

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::resource::enrich_resource;
use crate::model::otlp::{find, has_key, kv};
use crate::model::semconv;
use crate::model::semconv::{PAGE_VIEW_ID, SESSION_ID};
use crate::model::{HttpCall, PageContext, SpanRef};
use crate::process::identity::AppIdentity;
use crate::process::otlp::normalize_span;

/// Enriches the spans from the batch context (see the module docs). `identity`: the configured
/// app's, which replaces whatever the client sent ([`AppIdentity`]).
pub fn enrich(
    resource_spans: &mut [ResourceSpans],
    ctx: &PageContext,
    identity: Option<AppIdentity<'_>>,
) {
    for rs in resource_spans {
        let resource = rs.resource.get_or_insert_with(Resource::default);
        if let Some(identity) = &identity {
            identity.apply_to_resource(resource);
        }
        enrich_resource(resource, ctx);
        for span in rs.scope_spans.iter_mut().flat_map(|ss| &mut ss.spans) {
            normalize_span(span);
            add_missing(span, SESSION_ID, ctx.session_id.as_deref());
            add_missing(span, PAGE_VIEW_ID, ctx.page_view_id.as_deref());
        }
    }
}

/// Moves the spans onto the bridge's clock by `skew_ms` (what [`crate::process::skew`] applied to
/// the rest of the batch) and marks them with `rum.clock_skew_ms`, as converted spans are.
pub fn shift_times(resource_spans: &mut [ResourceSpans], skew_ms: f64) {
    let skew_ns = (skew_ms * 1e6).round();
    if !skew_ns.is_finite() || skew_ns == 0.0 {
        return;
    }
    // In integers: epoch nanoseconds do not fit in an f64's mantissa.
    let skew_ns = skew_ns as i128;
    let shift = |t: &mut u64| {
        if *t > 0 {
            *t = (i128::from(*t) + skew_ns).clamp(0, i128::from(u64::MAX)) as u64;
        }
    };
    for span in resource_spans
        .iter_mut()
        .flat_map(|rs| &mut rs.scope_spans)
        .flat_map(|ss| &mut ss.spans)
    {
        shift(&mut span.start_time_unix_nano);
        shift(&mut span.end_time_unix_nano);
        for event in &mut span.events {
            shift(&mut event.time_unix_nano);
        }
        span.attributes
            .push(kv(semconv::CLOCK_SKEW_MS, Value::DoubleValue(skew_ms)));
    }
}

fn add_missing(span: &mut Span, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        if !has_key(&span.attributes, key) {
            span.attributes
                .push(kv(key, Value::StringValue(value.to_owned())));
        }
    }
}

/// The CLIENT spans as HTTP calls, for the `http.client.request.duration` histogram (after
/// [`enrich`], so the attribute names are the stable ones). Times are Unix epoch ms, the Faro
/// batch's time axis.
pub fn http_calls(resource_spans: &[ResourceSpans]) -> Vec<HttpCall> {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter(|s| s.kind == SpanKind::Client as i32)
        .filter_map(http_call)
        .collect()
}

fn http_call(span: &Span) -> Option<HttpCall> {
    let text = |key| match find(&span.attributes, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    };
    let method = text(semconv::HTTP_REQUEST_METHOD)?;
    let status = match find(&span.attributes, semconv::HTTP_RESPONSE_STATUS_CODE) {
        Some(Value::IntValue(code)) => u16::try_from(*code).ok(),
        Some(Value::StringValue(code)) => code.parse().ok(),
        _ => None,
    };
    let end = span.end_time_unix_nano.max(span.start_time_unix_nano);
    Some(HttpCall {
        method,
        url: text(semconv::URL_FULL).unwrap_or_default(),
        status,
        start: span.start_time_unix_nano as f64 / 1e6,
        duration: (end - span.start_time_unix_nano) as f64 / 1e6,
        span: Some(SpanRef {
            trace_id: span.trace_id.as_slice().try_into().ok()?,
            span_id: span.span_id.as_slice().try_into().ok()?,
        }),
        error_type: text(semconv::ERROR_TYPE),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trace_context::hex;
    use crate::model::{AppInfo, BrowserInfo};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    const SPAN: &str = r#"{"traceId": "53bec1249f39358c9a2ff01d99e6d9cb",
        "spanId": "661914a080cc7e33", "name": "HTTP POST", "kind": 3,
        "startTimeUnixNano": 1795839356825000000, "endTimeUnixNano": "1795839356924000000",
        "attributes": [{"key": "http.method", "value": {"stringValue": "POST"}},
                       {"key": "http.url", "value": {"stringValue": "http://127.0.0.1:18787/api/cart"}},
                       {"key": "http.status_code", "value": {"intValue": "200"}}]}"#;

    #[test]
    fn enrichment_and_http_calls() {
        let json = format!(
            r#"{{"resourceSpans": [{{"resource": {{"attributes": [
                  {{"key": "service.name", "value": {{"stringValue": "from-sdk"}}}}]}},
                "scopeSpans": [{{"spans": [{SPAN}]}}]}}]}}"#
        );
        let ctx = PageContext {
            app: AppInfo {
                name: "shop-web".into(),
                version: Some("1.0.0".into()),
                environment: Some("capture".into()),
                key: None,
            },
            session_id: Some("sTWv8ksKJV".into()),
            browser: BrowserInfo {
                language: Some("en-US".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let shop = AppIdentity {
            name: "shop-web",
            environment: None,
            version: None,
        };
        for (identity, name) in [(None, "from-sdk"), (Some(shop), "shop-web")] {
            let mut d: ExportTraceServiceRequest = serde_json::from_str(&json).unwrap();
            enrich(&mut d.resource_spans, &ctx, identity);
            let res = d.resource_spans[0].resource.as_ref().unwrap();
            let s = |v: &str| Some(Value::StringValue(v.into()));
            assert_eq!(find(&res.attributes, "service.name").cloned(), s(name));
            assert_eq!(
                find(&res.attributes, "deployment.environment.name").cloned(),
                s("capture")
            );
            assert_eq!(
                find(&res.attributes, "browser.language").cloned(),
                s("en-US")
            );
            let span = &d.resource_spans[0].scope_spans[0].spans[0];
            assert_eq!(span.name, "POST");
            assert_eq!(
                find(&span.attributes, "session.id").cloned(),
                s("sTWv8ksKJV")
            );
            assert_eq!(
                find(&span.attributes, "http.request.method").cloned(),
                s("POST")
            );

            let calls = http_calls(&d.resource_spans);
            assert_eq!(calls.len(), 1);
            let c = &calls[0];
            assert_eq!((c.method.as_str(), c.status), ("POST", Some(200)));
            assert_eq!(c.url, "http://127.0.0.1:18787/api/cart");
            assert_eq!(c.start, 1_795_839_356_825.0);
            assert_eq!(c.duration, 99.0);
            assert_eq!(hex(&c.span.unwrap().span_id), "661914a080cc7e33");
        }
    }

    #[test]
    fn shift_moves_spans_and_events_and_marks_them() {
        let json = format!(r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{SPAN}]}}]}}]}}"#);
        let mut d: ExportTraceServiceRequest = serde_json::from_str(&json).unwrap();
        d.resource_spans[0].scope_spans[0].spans[0].events.push(
            opentelemetry_proto::tonic::trace::v1::span::Event {
                time_unix_nano: 1795839356830000000,
                ..Default::default()
            },
        );
        shift_times(&mut d.resource_spans, -60_000.5);
        let span = &d.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1795839296824500000);
        assert_eq!(span.end_time_unix_nano, 1795839296923500000);
        assert_eq!(span.events[0].time_unix_nano, 1795839296829500000);
        assert_eq!(
            find(&span.attributes, "rum.clock_skew_ms"),
            Some(&Value::DoubleValue(-60_000.5))
        );
        shift_times(&mut d.resource_spans, 0.0);
        assert_eq!(
            d.resource_spans[0].scope_spans[0].spans[0].attributes.len(),
            4
        );
    }
}
