//! Zipkin v2 JSON (`[{traceId, id, parentId, name, kind, timestamp, duration, localEndpoint,
//! remoteEndpoint, annotations, tags}]`) → OTLP spans, the way the OpenTelemetry collector's
//! Zipkin receiver translates them (docs/splunk-mapping.md):
//!
//! - ids are hex; a 64-bit trace id is left-padded with zeros to 128 bits;
//! - `kind` `CLIENT`/`SERVER`/`PRODUCER`/`CONSUMER` map to the OTLP kinds, anything else is
//!   INTERNAL;
//! - `timestamp` and `duration` (microseconds) become start and end in nanoseconds;
//! - `localEndpoint.serviceName` becomes the resource's `service.name`; `remoteEndpoint` becomes
//!   `peer.service`, `network.peer.address` and `network.peer.port`;
//! - tags become string attributes, annotations become span events;
//! - the `error` tag (and `otel.status_code` / `otel.status_description`) becomes the status;
//!   `otel.scope.name` / `otel.library.name` (and `.version`) become the scope.
//!
//! Lenient per item: a span that is not an object, lacks a valid id or a start time is
//! dropped with its reason; the others are kept.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::otlp::kv;
use crate::model::trace_context::{parse_span_id, parse_trace_id};
use crate::model::{Reason, Rejected};
use crate::receive::body::{nesting_exceeds, MAX_JSON_DEPTH};
use crate::receive::lenient;

/// Why a whole Zipkin body was refused (`400`/`413`).
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("the body must be a JSON array of Zipkin v2 spans, got {found}")]
    WrongShape { found: &'static str },
    #[error(
        "{count} spans in one request, more than max_events_per_batch ({max}); \
         send smaller batches"
    )]
    TooManyItems { count: usize, max: usize },
    #[error("JSON is nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
}

impl ZipkinError {
    /// Low-cardinality token for the `items_rejected` counter.
    pub fn reason(&self) -> Reason {
        match self {
            ZipkinError::InvalidJson(_) => Reason::InvalidJson,
            ZipkinError::WrongShape { .. } => Reason::WrongShape,
            ZipkinError::TooManyItems { .. } => Reason::TooManyItems,
            ZipkinError::TooDeep => Reason::TooDeep,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpan {
    trace_id: String,
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    local_endpoint: Option<Endpoint>,
    #[serde(default)]
    remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    annotations: Vec<Annotation>,
    #[serde(default)]
    tags: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    ipv4: Option<String>,
    #[serde(default)]
    ipv6: Option<String>,
    #[serde(default)]
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct Annotation {
    timestamp: f64,
    value: String,
}

/// One decoded Zipkin span: the OTLP span, and what the RUM step and the grouping need.
#[derive(Debug, Clone)]
pub struct ZipkinSpan {
    pub span: Span,
    /// Tags as sent (string values), in the order received; also in `span.attributes`.
    pub tags: Vec<(String, String)>,
    /// `localEndpoint.serviceName`.
    pub service: Option<String>,
    /// Instrumentation scope (name, version) from the `otel.*` tags.
    pub scope: Option<(String, String)>,
}

impl ZipkinSpan {
    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Start time, Unix epoch ms.
    pub fn start_ms(&self) -> f64 {
        self.span.start_time_unix_nano as f64 / 1e6
    }
}

/// The spans of one body, and the items dropped.
#[derive(Debug, Default)]
pub struct Decoded {
    pub spans: Vec<ZipkinSpan>,
    pub rejected: Vec<Rejected>,
}

/// Whether `body` is a Zipkin v2 JSON span array: a JSON array whose first item is an object
/// with a `traceId` key. (A native beacon is an object; a web-vitals array has no `traceId`.)
pub fn looks_like_zipkin(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let text = text.trim_start();
    let Some(rest) = text.strip_prefix('[') else {
        return false;
    };
    if !rest.trim_start().starts_with('{') {
        return false;
    }
    // Only the first item is parsed; it is bounded by the body limit the edge already applied.
    let mut de = serde_json::Deserializer::from_str(rest.trim_start());
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "traceId")]
        _trace_id: serde::de::IgnoredAny,
    }
    Probe::deserialize(&mut de).is_ok()
}

/// Decodes a Zipkin v2 JSON array (see the module docs).
pub fn decode(body: &[u8], max_items: usize) -> Result<Decoded, ZipkinError> {
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(ZipkinError::TooDeep);
    }
    let raw: &RawValue = serde_json::from_slice(body)?;
    match lenient::json_type(raw.get().as_bytes()) {
        Some("an array") => {}
        found => {
            return Err(ZipkinError::WrongShape {
                found: found.unwrap_or("something else"),
            })
        }
    }
    let items = lenient::items(raw, max_items)?;
    if items.overflow > 0 {
        return Err(ZipkinError::TooManyItems {
            count: items.kept.len() + items.overflow,
            max: max_items,
        });
    }
    let mut out = Decoded::default();
    for (index, item) in items.kept.into_iter().enumerate() {
        match lenient::object::<WireSpan>(item)
            .map_err(|e| (Reason::InvalidSpan, e))
            .and_then(translate)
        {
            Ok(span) => out.spans.push(span),
            Err((reason, problem)) => out.rejected.push(Rejected {
                reason,
                detail: format!("span {index}: {problem}"),
            }),
        }
    }
    Ok(out)
}

fn translate(w: WireSpan) -> Result<ZipkinSpan, (Reason, String)> {
    let invalid = |what: &str| (Reason::InvalidSpan, what.to_owned());
    let trace_id = trace_id(&w.trace_id)
        .ok_or_else(|| invalid("`traceId` must be 16 or 32 hex digits, not all zero"))?;
    let span_id =
        span_id(&w.id).ok_or_else(|| invalid("`id` must be 16 hex digits, not all zero"))?;
    let parent = match w.parent_id.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(span_id_of(p).ok_or_else(|| invalid("`parentId` must be 16 hex digits"))?),
    };
    let micros = |v: f64| (0.0..1e17).contains(&v);
    let start_us = w
        .timestamp
        .filter(|t| micros(*t) && *t > 0.0)
        .ok_or_else(|| {
            (
                Reason::MissingField,
                "`timestamp` (epoch µs) is missing or invalid".into(),
            )
        })?;
    let duration_us = w.duration.filter(|d| micros(*d)).unwrap_or(0.0);
    let start = nanos(start_us);
    let end = start.saturating_add(nanos(duration_us));

    let mut tags: Vec<(String, String)> = Vec::with_capacity(w.tags.len());
    for (k, v) in w.tags {
        let v = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => continue,
            other => other.to_string(),
        };
        tags.push((k, v));
    }
    let mut status = Status::default();
    let mut scope_name = None;
    let mut scope_version = String::new();
    let mut attributes = Vec::with_capacity(tags.len() + 3);
    for (k, v) in &tags {
        match k.as_str() {
            "error" => {
                status.code = StatusCode::Error as i32;
                if !v.is_empty() && v != "true" {
                    status.message.clone_from(v);
                }
                continue;
            }
            "otel.status_code" => {
                status.code = match v.as_str() {
                    "ERROR" => StatusCode::Error as i32,
                    "OK" => StatusCode::Ok as i32,
                    _ => status.code,
                };
                continue;
            }
            "otel.status_description" => {
                status.message.clone_from(v);
                continue;
            }
            "otel.scope.name" | "otel.library.name" => {
                scope_name = Some(v.clone());
                continue;
            }
            "otel.scope.version" | "otel.library.version" => {
                scope_version.clone_from(v);
                continue;
            }
            _ => {}
        }
        attributes.push(string_kv(k, v));
    }
    if let Some(remote) = &w.remote_endpoint {
        if let Some(name) = remote.service_name.as_deref().filter(|s| !s.is_empty()) {
            attributes.push(string_kv("peer.service", name));
        }
        if let Some(ip) = remote.ipv4.as_deref().or(remote.ipv6.as_deref()) {
            attributes.push(string_kv("network.peer.address", ip));
        }
        if let Some(port) = remote.port.filter(|p| *p > 0) {
            attributes.push(kv("network.peer.port", Value::IntValue(i64::from(port))));
        }
    }
    let events = w
        .annotations
        .into_iter()
        .filter(|a| micros(a.timestamp))
        .map(|a| Event {
            time_unix_nano: nanos(a.timestamp),
            name: a.value,
            ..Default::default()
        })
        .collect();
    let kind = match w.kind.as_deref() {
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        _ => SpanKind::Internal,
    };
    let span = Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: w.name.unwrap_or_default(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events,
        status: Some(status),
        flags: 0x100,
        ..Default::default()
    };
    Ok(ZipkinSpan {
        span,
        tags,
        service: w
            .local_endpoint
            .and_then(|e| e.service_name)
            .filter(|s| !s.is_empty()),
        scope: scope_name.map(|n| (n, scope_version)),
    })
}

/// Microseconds (finite, non-negative, checked by the caller) → nanoseconds, exactly for whole
/// microseconds: epoch nanoseconds do not fit in an f64's mantissa.
fn nanos(micros: f64) -> u64 {
    (micros.trunc() as u64)
        .saturating_mul(1000)
        .saturating_add((micros.fract() * 1000.0).round() as u64)
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

/// A Zipkin trace id: 32 hex digits, or 16 (a 64-bit id, left-padded with zeros).
fn trace_id(s: &str) -> Option<[u8; 16]> {
    match s.len() {
        32 => parse_trace_id(s),
        16 => parse_trace_id(&format!("{:0>32}", s)),
        _ => None,
    }
}

fn span_id(s: &str) -> Option<[u8; 8]> {
    span_id_of(s)
}

fn span_id_of(s: &str) -> Option<[u8; 8]> {
    if s.len() != 16 {
        return None;
    }
    parse_span_id(s)
}

/// Groups spans by (service name, scope) into the OTLP shape: one `ResourceSpans` per service.
pub fn group(spans: Vec<ZipkinSpan>) -> Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans> {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    type Scopes = BTreeMap<(String, String), Vec<Span>>;
    let mut by_service: BTreeMap<Option<String>, Scopes> = BTreeMap::new();
    for z in spans {
        by_service
            .entry(z.service)
            .or_default()
            .entry(z.scope.unwrap_or_default())
            .or_default()
            .push(z.span);
    }
    by_service
        .into_iter()
        .map(|(service, scopes)| ResourceSpans {
            resource: Some(Resource {
                attributes: service
                    .map(|s| vec![string_kv("service.name", &s)])
                    .unwrap_or_default(),
                ..Default::default()
            }),
            scope_spans: scopes
                .into_iter()
                .map(|((name, version), spans)| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name,
                        version,
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect()
}
