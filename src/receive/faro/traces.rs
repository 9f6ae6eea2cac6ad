//! The OTLP trace export embedded in a Faro payload (`traces`, docs/faro-mapping.md#traces).
//!
//! faro-web-tracing puts a whole OTLP/JSON `ExportTraceServiceRequest` into the batch. Its spans
//! keep their ids exactly (the fetch CLIENT span's ids are the ones the browser sent in
//! `traceparent`, so the backend span is its child). Decoding is lenient per span: one bad span
//! is dropped and counted, its neighbours stay. Older senders use the legacy
//! `instrumentationLibrarySpans` / `instrumentationLibrary` keys and numeric nanosecond times;
//! both are accepted.
//!
//! The pipeline then makes them look like the rest of the batch (`convert::embedded`).
//!
//! Before anything is built, the section is measured like an OTLP body
//! ([`crate::receive::otlp::budget`]): one whose decoded form would take more than
//! 8 × `limits.max_decompressed_bytes` (a span with a million empty events) is dropped as one
//! rejected item (`too_large_decoded`); the rest of the batch stays. Events and links beyond the
//! span limits are cut later, with every other format's ([`crate::process::limits`]).

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::LimitsConfig;
use crate::model::{Reason, Rejected};
use crate::receive::body::BodyFormat;
use crate::receive::lenient::{items, object, string};
use crate::receive::otlp::budget::{self, Budget, Msg};

/// The decoded-size budget of a `traces` section; its spans are counted by the batch's item
/// budget instead.
pub(super) fn decoded_budget(limits: &LimitsConfig) -> Budget {
    Budget {
        max_entries: u64::MAX,
        ..Budget::new(limits)
    }
}

/// Most `resourceSpans`, and `scopeSpans` per resource, read; the rest count as dropped items.
const MAX_GROUPS: usize = 64;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct TracesRaw<'a> {
    #[serde(borrow)]
    resource_spans: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ResourceSpansRaw<'a> {
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    #[serde(borrow, alias = "instrumentationLibrarySpans")]
    scope_spans: Option<&'a RawValue>,
    #[serde(deserialize_with = "string")]
    schema_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ScopeSpansRaw<'a> {
    #[serde(borrow, alias = "instrumentationLibrary")]
    scope: Option<&'a RawValue>,
    #[serde(borrow)]
    spans: Option<&'a RawValue>,
    #[serde(deserialize_with = "string")]
    schema_url: Option<String>,
}

/// The decoded spans of a `traces` section.
#[derive(Debug, Default)]
pub(super) struct Decoded {
    pub(super) resource_spans: Vec<ResourceSpans>,
    pub(super) spans: usize,
    /// Spans beyond the item budget and groups beyond [`MAX_GROUPS`] (dropped, counted).
    pub(super) overflow: usize,
}

/// Decodes the `traces` section; at most `budget` spans are kept. Problems are recorded in
/// `rejected`; nothing here fails the batch.
pub(super) fn decode(
    raw: &RawValue,
    budget: usize,
    decoded: &Budget,
    rejected: &mut Vec<Rejected>,
) -> Decoded {
    let mut out = Decoded::default();
    let measured = budget::measure(
        raw.get().as_bytes(),
        BodyFormat::Json,
        Msg::TraceRequest,
        "span",
        decoded,
    );
    if let Err(e) = measured {
        reject(rejected, e.reason(), format!("traces: {}", e.detail()));
        return out;
    }
    let list = match object::<TracesRaw>(raw) {
        Ok(TracesRaw {
            resource_spans: Some(list),
        }) => list,
        Ok(_) => return out,
        Err(e) => {
            reject(rejected, Reason::InvalidTraces, format!("traces: {e}"));
            return out;
        }
    };
    let list = match items(list, MAX_GROUPS) {
        Ok(list) => list,
        Err(e) => {
            reject(
                rejected,
                Reason::InvalidTraces,
                format!("traces.resourceSpans: {e}"),
            );
            return out;
        }
    };
    out.overflow += list.overflow;
    for (i, rs) in list.kept.into_iter().enumerate() {
        let rs = match object::<ResourceSpansRaw>(rs) {
            Ok(rs) => rs,
            Err(e) => {
                reject(
                    rejected,
                    Reason::InvalidTraces,
                    format!("traces.resourceSpans[{i}]: {e}"),
                );
                continue;
            }
        };
        let resource = rs.resource.and_then(|r| object::<Resource>(r).ok());
        let mut scope_spans = Vec::new();
        let scopes = rs.scope_spans.map(|s| items(s, MAX_GROUPS));
        match scopes {
            None => {}
            Some(Err(e)) => reject(
                rejected,
                Reason::InvalidTraces,
                format!("traces.resourceSpans[{i}].scopeSpans: {e}"),
            ),
            Some(Ok(scopes)) => {
                out.overflow += scopes.overflow;
                for (j, ss) in scopes.kept.into_iter().enumerate() {
                    let path = format!("traces.resourceSpans[{i}].scopeSpans[{j}]");
                    if let Some(ss) = scope(ss, &path, budget, &mut out, rejected) {
                        scope_spans.push(ss);
                    }
                }
            }
        }
        if !scope_spans.is_empty() {
            out.resource_spans.push(ResourceSpans {
                resource,
                scope_spans,
                schema_url: rs.schema_url.unwrap_or_default(),
            });
        }
    }
    out
}

fn scope(
    raw: &RawValue,
    path: &str,
    budget: usize,
    out: &mut Decoded,
    rejected: &mut Vec<Rejected>,
) -> Option<ScopeSpans> {
    let ss = match object::<ScopeSpansRaw>(raw) {
        Ok(ss) => ss,
        Err(e) => {
            reject(rejected, Reason::InvalidTraces, format!("{path}: {e}"));
            return None;
        }
    };
    let list = match ss.spans.map(|s| items(s, budget.saturating_sub(out.spans))) {
        None => return None,
        Some(Ok(list)) => list,
        Some(Err(e)) => {
            reject(
                rejected,
                Reason::InvalidTraces,
                format!("{path}.spans: {e}"),
            );
            return None;
        }
    };
    out.overflow += list.overflow;
    let mut spans = Vec::with_capacity(list.kept.len());
    for (k, raw) in list.kept.into_iter().enumerate() {
        match object::<Span>(raw) {
            Ok(span) if valid_ids(&span) => spans.push(span),
            Ok(_) => reject(
                rejected,
                Reason::InvalidSpan,
                format!("{path}.spans[{k}]: trace or span id is not valid hex of the right length"),
            ),
            Err(e) => reject(
                rejected,
                Reason::InvalidSpan,
                format!("{path}.spans[{k}]: {e}"),
            ),
        }
    }
    out.spans += spans.len();
    if spans.is_empty() {
        return None;
    }
    Some(ScopeSpans {
        scope: ss
            .scope
            .and_then(|s| object::<InstrumentationScope>(s).ok()),
        spans,
        schema_url: ss.schema_url.unwrap_or_default(),
    })
}

/// 16-byte non-zero trace id, 8-byte non-zero span id, parent empty or 8 bytes.
fn valid_ids(span: &Span) -> bool {
    span.trace_id.len() == 16
        && span.trace_id.iter().any(|b| *b != 0)
        && span.span_id.len() == 8
        && span.span_id.iter().any(|b| *b != 0)
        && (span.parent_span_id.is_empty() || span.parent_span_id.len() == 8)
}

fn reject(rejected: &mut Vec<Rejected>, reason: Reason, detail: String) {
    rejected.push(Rejected { reason, detail });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trace_context::hex;

    fn decode_str(json: &str, budget: usize) -> (Decoded, Vec<Rejected>) {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        let mut rejected = Vec::new();
        let decoded = decoded_budget(&LimitsConfig::default());
        (decode(&raw, budget, &decoded, &mut rejected), rejected)
    }

    #[test]
    fn a_section_too_large_once_decoded_costs_one_item() {
        let events = vec!["{}"; 1_300_000].join(",");
        let json = format!(
            r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{{"events": [{events}]}}]}}]}}]}}"#
        );
        let (decoded, rejected) = decode_str(&json, 10);
        assert_eq!(decoded.spans, 0);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].reason, "too_large_decoded");
        assert!(rejected[0].detail.contains("max_decompressed_bytes"));
    }

    const SPAN: &str = r#"{"traceId": "53bec1249f39358c9a2ff01d99e6d9cb",
        "spanId": "661914a080cc7e33", "name": "HTTP POST", "kind": 3,
        "startTimeUnixNano": 1795839356825000000, "endTimeUnixNano": "1795839356924000000",
        "attributes": [{"key": "http.method", "value": {"stringValue": "POST"}},
                       {"key": "http.url", "value": {"stringValue": "http://127.0.0.1:18787/api/cart"}},
                       {"key": "http.status_code", "value": {"intValue": "200"}}]}"#;

    #[test]
    fn legacy_keys_and_numeric_times_are_accepted() {
        let json = format!(
            r#"{{"resourceSpans": [{{"resource": {{"attributes": [
                  {{"key": "service.name", "value": {{"stringValue": "from-sdk"}}}}]}},
                "instrumentationLibrarySpans": [{{
                  "instrumentationLibrary": {{"name": "@opentelemetry/instrumentation-fetch"}},
                  "spans": [{SPAN}]}}]}}]}}"#
        );
        let (d, rejected) = decode_str(&json, 100);
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(d.spans, 1);
        let ss = &d.resource_spans[0].scope_spans[0];
        assert_eq!(
            ss.scope.as_ref().unwrap().name,
            "@opentelemetry/instrumentation-fetch"
        );
        let span = &ss.spans[0];
        assert_eq!(hex(&span.trace_id), "53bec1249f39358c9a2ff01d99e6d9cb");
        assert_eq!(hex(&span.span_id), "661914a080cc7e33");
        assert_eq!(span.start_time_unix_nano, 1_795_839_356_825_000_000);
        assert_eq!(span.end_time_unix_nano, 1_795_839_356_924_000_000);
    }

    #[test]
    fn one_bad_span_costs_only_itself() {
        let json = format!(
            r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [
                {SPAN},
                {{"traceId": "zz", "spanId": "661914a080cc7e33"}},
                {{"traceId": "53bec1249f39358c9a2ff01d99e6d9cb", "spanId": "0000000000000000"}},
                {{"traceId": "53bec1249f39358c9a2ff01d99e6d9cb", "spanId": "661914a080cc7e34", "kind": "CLIENT"}},
                7
            ]}}, {{"spans": "nope"}}]}}, 5]}}"#
        );
        let (d, rejected) = decode_str(&json, 100);
        assert_eq!(d.spans, 1);
        let reasons: Vec<_> = rejected.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            [
                "invalid_span",
                "invalid_span",
                "invalid_span",
                "invalid_span",
                "invalid_traces",
                "invalid_traces"
            ],
            "{rejected:?}"
        );
    }

    #[test]
    fn span_budget_is_enforced() {
        let spans = [SPAN; 5].join(",");
        let json = format!(
            r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{spans}]}}, {{"spans": [{spans}]}}]}}]}}"#
        );
        let (d, _) = decode_str(&json, 3);
        assert_eq!((d.spans, d.overflow), (3, 7));
    }
}
