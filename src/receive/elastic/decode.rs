//! Elastic APM intake NDJSON → one normalised shape for both versions the RUM agent speaks:
//! v2 (`{"metadata":…}`, `{"transaction":…}`, `{"span":…}`, `{"error":…}`, `{"metricset":…}`,
//! one per line) and v3 (`{"m":…}`, `{"x":…}` with its spans `y` and breakdowns `me` inside,
//! `{"e":…}`; the agent's compressed field names). docs/elastic-mapping.md has every field.
//!
//! Lenient per line: a line that is not JSON, not an object with one known key, or lacks a
//! valid id is dropped with its reason; the other lines are kept. The first line must be the
//! metadata (as APM Server requires); without it the body is refused.

use serde_json::{Map, Value};

use crate::model::trace_context::{parse_span_id, parse_trace_id};
use crate::model::{Reason, Rejected};
use crate::receive::body::{nesting_exceeds, MAX_JSON_DEPTH};

pub use super::intake::{
    ErrorRecord, Experience, Frame, Intake, Metadata, Metricset, SpanRecord, Transaction,
};

/// Why a whole intake body was refused (`400`/`413`).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the body is empty; the intake API takes NDJSON whose first line is the metadata")]
    Empty,
    #[error(
        "the first line must be the metadata object (`{{\"metadata\": …}}`, `{{\"m\": …}}` in v3)"
    )]
    NoMetadata,
    #[error(
        "{count} events (lines and v3 spans) in one request, more than max_events_per_batch \
         ({max}); send smaller batches"
    )]
    TooManyItems { count: usize, max: usize },
    #[error("JSON is nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
}

impl IntakeError {
    /// Low-cardinality token for the `items_rejected` counter.
    pub fn reason(&self) -> Reason {
        match self {
            IntakeError::Empty | IntakeError::NoMetadata => Reason::WrongShape,
            IntakeError::TooManyItems { .. } => Reason::TooManyItems,
            IntakeError::TooDeep => Reason::TooDeep,
        }
    }
}

/// The full names of the v3 navigation-timing marks (`k.nt`), as the agent compresses them.
const NT_MARKS: [(&str, &str); 15] = [
    ("fs", "fetchStart"),
    ("ls", "domainLookupStart"),
    ("le", "domainLookupEnd"),
    ("cs", "connectStart"),
    ("ce", "connectEnd"),
    ("qs", "requestStart"),
    ("rs", "responseStart"),
    ("re", "responseEnd"),
    ("dl", "domLoading"),
    ("di", "domInteractive"),
    ("ds", "domContentLoadedEventStart"),
    ("de", "domContentLoadedEventEnd"),
    ("dc", "domComplete"),
    ("es", "loadEventStart"),
    ("ee", "loadEventEnd"),
];

/// The full names of the agent marks (`marks.agent`; v3 `k.a`).
const AGENT_MARKS: [(&str, &str); 7] = [
    ("fb", "timeToFirstByte"),
    ("di", "domInteractive"),
    ("dc", "domComplete"),
    ("fp", "firstContentfulPaint"),
    ("lp", "largestContentfulPaint"),
    ("fcp", "firstContentfulPaint"),
    ("lcp", "largestContentfulPaint"),
];

/// Decodes an intake body of `version` 2 or 3 (see the module docs).
pub fn decode(body: &[u8], version: u8, max_items: usize) -> Result<Intake, IntakeError> {
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(IntakeError::TooDeep);
    }
    let lines: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .collect();
    let Some((first, rest)) = lines.split_first() else {
        return Err(IntakeError::Empty);
    };
    if rest.len() > max_items {
        return Err(IntakeError::TooManyItems {
            count: rest.len(),
            max: max_items,
        });
    }
    let v3 = version >= 3;
    let metadata = serde_json::from_slice::<Map<String, Value>>(first)
        .ok()
        .and_then(|mut m| m.remove(if v3 { "m" } else { "metadata" }))
        .and_then(|m| match m {
            Value::Object(m) => Some(metadata(&m, v3)),
            _ => None,
        })
        .ok_or(IntakeError::NoMetadata)?;
    let mut out = Intake {
        version: if v3 { 3 } else { 2 },
        metadata,
        ..Default::default()
    };
    let mut spans = Vec::new();
    for (index, line) in rest.iter().enumerate() {
        let line_no = index + 2;
        let reject = |reason, problem: String| Rejected {
            reason,
            detail: format!("line {line_no}: {problem}"),
        };
        let object = match serde_json::from_slice::<Map<String, Value>>(line) {
            Ok(o) => o,
            Err(e) => {
                out.rejected.push(reject(
                    Reason::InvalidJson,
                    format!("not a JSON object: {e}"),
                ));
                continue;
            }
        };
        let Some((key, Value::Object(item))) = object.into_iter().next() else {
            out.rejected.push(reject(
                Reason::InvalidItem,
                "must be an object holding one event object".into(),
            ));
            continue;
        };
        let result = match (key.as_str(), v3) {
            ("transaction", false) | ("x", true) => {
                transaction(&item, v3, line_no, &mut out.rejected).map(|t| out.transactions.push(t))
            }
            ("span", false) => span(&item, false, None).map(|s| spans.push(s)),
            ("error", false) | ("e", true) => error(&item, v3).map(|e| out.errors.push(e)),
            ("metricset", false) | ("me", true) => {
                out.metricsets.push(metricset(&item, v3));
                Ok(())
            }
            (other, _) => Err((
                Reason::UnknownType,
                format!("unknown event type `{}`", clip(other)),
            )),
        };
        if let Err((reason, problem)) = result {
            out.rejected.push(reject(reason, problem));
        }
    }
    // v3 spans travel inside their transaction: they count against the same limit.
    let nested: usize = out.transactions.iter().map(|t| t.spans.len()).sum();
    if rest.len() + nested > max_items {
        return Err(IntakeError::TooManyItems {
            count: rest.len() + nested,
            max: max_items,
        });
    }
    // v2 spans join their transaction, when it is in the body.
    for s in spans {
        match out
            .transactions
            .iter_mut()
            .find(|t| Some(t.id) == s.transaction_id)
        {
            Some(t) => t.spans.push(s),
            None => out.orphan_spans.push(s),
        }
    }
    Ok(out)
}

type Problem = (Reason, String);

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn obj<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    m.get(key).and_then(Value::as_object)
}

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn num(m: &Map<String, Value>, key: &str) -> Option<f64> {
    m.get(key)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn int(m: &Map<String, Value>, key: &str) -> Option<i64> {
    m.get(key).and_then(Value::as_i64)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn labels(m: Option<&Map<String, Value>>) -> Vec<(String, String)> {
    m.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), scalar_text(v)?)))
        .collect()
}

/// The v2 or v3 name of a field.
fn k(v3: bool, long: &'static str, short: &'static str) -> &'static str {
    if v3 {
        short
    } else {
        long
    }
}

fn span_id_field(m: &Map<String, Value>, key: &str) -> Result<Option<[u8; 8]>, Problem> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_span_id(s).map(Some).ok_or_else(|| {
            (
                Reason::InvalidField,
                format!("`{key}` must be 16 hex digits, not all zero"),
            )
        }),
        Some(_) => Err((Reason::InvalidField, format!("`{key}` must be a string"))),
    }
}

fn trace_id_field(m: &Map<String, Value>, key: &str) -> Result<Option<[u8; 16]>, Problem> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_trace_id(s).map(Some).ok_or_else(|| {
            (
                Reason::InvalidField,
                format!("`{key}` must be 32 hex digits, not all zero"),
            )
        }),
        Some(_) => Err((Reason::InvalidField, format!("`{key}` must be a string"))),
    }
}

fn required<T>(v: Option<T>, key: &str) -> Result<T, Problem> {
    v.ok_or_else(|| (Reason::MissingField, format!("`{key}` is missing")))
}

fn metadata(m: &Map<String, Value>, v3: bool) -> Metadata {
    let service = obj(m, k(v3, "service", "se"));
    let agent = service.and_then(|s| obj(s, k(v3, "agent", "a")));
    let name = k(v3, "name", "n");
    let version = k(v3, "version", "ve");
    Metadata {
        service_name: service.and_then(|s| text(s, name)),
        service_version: service.and_then(|s| text(s, version)),
        environment: service.and_then(|s| text(s, k(v3, "environment", "en"))),
        agent_name: agent.and_then(|a| text(a, name)),
        agent_version: agent.and_then(|a| text(a, version)),
        labels: labels(obj(m, k(v3, "labels", "l"))),
    }
}

/// `context.page.url` (v3 `c.p.url`).
fn page_url(m: &Map<String, Value>, v3: bool) -> Option<String> {
    obj(m, k(v3, "context", "c"))
        .and_then(|c| obj(c, k(v3, "page", "p")))
        .and_then(|p| text(p, "url"))
}

fn marks(
    m: Option<&Map<String, Value>>,
    names: &[(&str, &'static str)],
    v3: bool,
) -> Vec<(&'static str, f64)> {
    let Some(m) = m else { return Vec::new() };
    let mut out: Vec<(&'static str, f64)> = Vec::new();
    for (short, long) in names {
        let key = if v3 { *short } else { *long };
        if let Some(v) = num(m, key) {
            if !out.iter().any(|(n, _)| n == long) {
                out.push((long, v));
            }
        }
    }
    out
}

fn transaction(
    m: &Map<String, Value>,
    v3: bool,
    line_no: usize,
    rejected: &mut Vec<Rejected>,
) -> Result<Transaction, Problem> {
    let id = required(span_id_field(m, "id")?, "id")?;
    let trace_id = required(trace_id_field(m, k(v3, "trace_id", "tid"))?, "trace_id")?;
    let parent_id = span_id_field(m, k(v3, "parent_id", "pid"))?;
    let context = obj(m, k(v3, "context", "c"));
    let server_timing = context
        .and_then(|c| obj(c, "response"))
        .and_then(|r| obj(r, "headers"))
        .and_then(|h| text(h, "server-timing"));
    let marks_obj = obj(m, k(v3, "marks", "k"));
    let navigation_marks = marks(
        marks_obj.and_then(|mk| obj(mk, k(v3, "navigationTiming", "nt"))),
        &NT_MARKS,
        v3,
    );
    let agent_marks = marks(
        marks_obj.and_then(|mk| obj(mk, k(v3, "agent", "a"))),
        &AGENT_MARKS,
        v3,
    );
    let experience = obj(m, k(v3, "experience", "exp"))
        .map(|e| Experience {
            cls: num(e, "cls"),
            tbt: num(e, "tbt"),
            fid: num(e, "fid"),
            longtask: obj(e, k(v3, "longtask", "lt"))
                .and_then(|l| Some((num(l, "count")?, num(l, "sum")?, num(l, "max")?))),
        })
        .unwrap_or_default();
    let session_id = obj(m, k(v3, "session", "ses")).and_then(|s| text(s, "id"));
    let mut t = Transaction {
        id,
        trace_id,
        parent_id,
        name: text(m, k(v3, "name", "n")).unwrap_or_default(),
        kind: text(m, k(v3, "type", "t")).unwrap_or_default(),
        duration: num(m, k(v3, "duration", "d")).unwrap_or(0.0),
        timestamp_us: num(m, "timestamp"),
        page_url: page_url(m, v3),
        server_timing,
        navigation_marks,
        agent_marks,
        experience,
        session_id,
        labels: labels(context.and_then(|c| obj(c, k(v3, "tags", "g")))),
        outcome: text(m, k(v3, "outcome", "o")),
        spans: Vec::new(),
        breakdown: Vec::new(),
    };
    if v3 {
        let ids = (t.id, t.trace_id);
        let items: &[Value] = m
            .get("y")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        // APM Server's v3 model also names the parent by its index in `y` (`pi`).
        let span_ids: Vec<Option<[u8; 8]>> = items
            .iter()
            .map(|i| i.get("id").and_then(Value::as_str).and_then(parse_span_id))
            .collect();
        for (index, item) in items.iter().enumerate() {
            // A bad span inside a transaction costs that span only.
            let parsed = match item.as_object() {
                Some(s) => span(s, true, Some(ids)),
                None => Err((Reason::NotAnObject, "is not an object".into())),
            };
            match parsed {
                Ok(mut s) => {
                    if s.parent_id.is_none() {
                        s.parent_id = item
                            .get("pi")
                            .and_then(Value::as_u64)
                            .and_then(|pi| {
                                span_ids.get(usize::try_from(pi).ok()?).copied().flatten()
                            })
                            .filter(|p| *p != s.id);
                    }
                    t.spans.push(s);
                }
                Err((reason, problem)) => rejected.push(Rejected {
                    reason,
                    detail: format!("line {line_no}: span {index}: {problem}"),
                }),
            }
        }
        for item in m.get("me").and_then(Value::as_array).into_iter().flatten() {
            if let Some(ms) = item.as_object() {
                t.breakdown.push(metricset(ms, true));
            }
        }
    }
    Ok(t)
}

fn span(
    m: &Map<String, Value>,
    v3: bool,
    tx: Option<([u8; 8], [u8; 16])>,
) -> Result<SpanRecord, Problem> {
    let id = required(span_id_field(m, "id")?, "id")?;
    let transaction_id = match tx {
        Some((id, _)) => Some(id),
        None => span_id_field(m, "transaction_id")?,
    };
    let parent_id =
        span_id_field(m, k(v3, "parent_id", "pid"))?.filter(|p| Some(*p) != transaction_id);
    let trace_id = match tx {
        Some((_, trace)) => Some(trace),
        None => Some(required(trace_id_field(m, "trace_id")?, "trace_id")?),
    };
    let context = obj(m, k(v3, "context", "c"));
    let http = context.and_then(|c| obj(c, k(v3, "http", "h")));
    let destination = context.and_then(|c| obj(c, k(v3, "destination", "dt")));
    Ok(SpanRecord {
        id,
        parent_id,
        transaction_id,
        trace_id,
        name: text(m, k(v3, "name", "n")).unwrap_or_default(),
        kind: text(m, k(v3, "type", "t")).unwrap_or_default(),
        subtype: text(m, k(v3, "subtype", "su")),
        action: text(m, k(v3, "action", "ac")),
        start: num(m, k(v3, "start", "s")).unwrap_or(0.0),
        duration: num(m, k(v3, "duration", "d")).unwrap_or(0.0),
        http_url: http.and_then(|h| text(h, "url")),
        http_method: http.and_then(|h| text(h, k(v3, "method", "mt"))),
        http_status: http.and_then(|h| int(h, k(v3, "status_code", "sc"))),
        transfer_size: http
            .and_then(|h| obj(h, k(v3, "response", "r")))
            .and_then(|r| num(r, k(v3, "transfer_size", "ts"))),
        address: destination.and_then(|d| text(d, k(v3, "address", "ad"))),
        port: destination.and_then(|d| int(d, k(v3, "port", "po"))),
        outcome: text(m, k(v3, "outcome", "o")),
        sync: m.get(k(v3, "sync", "sy")).and_then(Value::as_bool) == Some(true),
    })
}

fn error(m: &Map<String, Value>, v3: bool) -> Result<ErrorRecord, Problem> {
    let id = required(text(m, "id"), "id")?;
    let exception = obj(m, k(v3, "exception", "ex"));
    let log = obj(m, k(v3, "log", "log"));
    let message = exception
        .and_then(|e| text(e, k(v3, "message", "mg")))
        .or_else(|| log.and_then(|l| text(l, k(v3, "message", "mg"))));
    if message.is_none() && exception.is_none() {
        return Err((
            Reason::MissingField,
            "`exception` (or `log`) is missing".into(),
        ));
    }
    let frames = exception
        .and_then(|e| e.get(k(v3, "stacktrace", "st")))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|f| Frame {
            function: text(f, k(v3, "function", "fn")),
            abs_path: text(f, k(v3, "abs_path", "ap")).or_else(|| text(f, k(v3, "filename", "f"))),
            line: int(f, k(v3, "lineno", "li")),
            column: int(f, k(v3, "colno", "co")),
        })
        .collect();
    Ok(ErrorRecord {
        id,
        culprit: text(m, k(v3, "culprit", "cl")),
        message,
        error_type: exception.and_then(|e| text(e, k(v3, "type", "t"))),
        frames,
        page_url: page_url(m, v3),
        trace_id: trace_id_field(m, k(v3, "trace_id", "tid"))?,
        parent_id: span_id_field(m, k(v3, "parent_id", "pid"))?,
        transaction_id: span_id_field(m, k(v3, "transaction_id", "xid"))?,
        timestamp_us: num(m, "timestamp"),
    })
}

fn metricset(m: &Map<String, Value>, v3: bool) -> Metricset {
    let tx = obj(m, "transaction").and_then(|t| Some((text(t, "name")?, text(t, "type")?)));
    let span = obj(m, k(v3, "span", "y"));
    let samples = obj(m, k(v3, "samples", "sa"))
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| {
            let value = v.as_object().and_then(|o| num(o, k(v3, "value", "v")))?;
            let name = match (v3, name.as_str()) {
                (true, "ysc") => "span.self_time.count",
                (true, "yss") => "span.self_time.sum.us",
                (true, "xdc") => "transaction.duration.count",
                (true, "xds") => "transaction.duration.sum.us",
                (true, "xbc") => "transaction.breakdown.count",
                (true, _) => return None,
                (false, n) => n,
            };
            Some((name.to_owned(), value))
        })
        .collect();
    Metricset {
        transaction: tx,
        span_type: span.and_then(|s| text(s, k(v3, "type", "t"))),
        span_subtype: span.and_then(|s| text(s, k(v3, "subtype", "su"))),
        samples,
    }
}
