//! The normalised shape of an Elastic intake body, the same for v2 and v3
//! ([`super::decode`] fills it, [`super::rum`] reads it).

use crate::model::Rejected;

/// `metadata`: the service and agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub service_name: Option<String>,
    pub service_version: Option<String>,
    pub environment: Option<String>,
    pub agent_name: Option<String>,
    pub agent_version: Option<String>,
    /// `labels` (string, number or boolean values, as their text).
    pub labels: Vec<(String, String)>,
}

/// A transaction (page-load, route-change, user-interaction, page-exit, …) with its spans.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    pub id: [u8; 8],
    pub trace_id: [u8; 16],
    pub parent_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: String,
    /// Milliseconds.
    pub duration: f64,
    /// `timestamp`, epoch µs, when the agent sent one (the RUM agent does not).
    pub timestamp_us: Option<f64>,
    pub page_url: Option<String>,
    /// The page's `Server-Timing` response header (v2 `context.response.headers`).
    pub server_timing: Option<String>,
    /// `marks.navigationTiming` (v3 `k.nt`), ms from the transaction start, full names.
    pub navigation_marks: Vec<(&'static str, f64)>,
    /// `marks.agent` (v3 `k.a`), full names.
    pub agent_marks: Vec<(&'static str, f64)>,
    pub experience: Experience,
    pub session_id: Option<String>,
    /// `context.tags` (v3 `c.g`): the agent's labels, e.g. `inp_value` on `page-exit`.
    pub labels: Vec<(String, String)>,
    pub outcome: Option<String>,
    pub spans: Vec<SpanRecord>,
    pub breakdown: Vec<Metricset>,
}

/// `experience`: CLS, TBT, FID and long tasks of a page-load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Experience {
    pub cls: Option<f64>,
    pub tbt: Option<f64>,
    pub fid: Option<f64>,
    /// `longtask` (v3 `lt`): count, sum and max (ms).
    pub longtask: Option<(f64, f64, f64)>,
}

/// A span of a transaction (v2: its own line with `transaction_id`; v3: inside `y`).
#[derive(Debug, Clone, Default)]
pub struct SpanRecord {
    pub id: [u8; 8],
    /// The parent span; `None` when it is the transaction.
    pub parent_id: Option<[u8; 8]>,
    pub transaction_id: Option<[u8; 8]>,
    pub trace_id: Option<[u8; 16]>,
    pub name: String,
    pub kind: String,
    pub subtype: Option<String>,
    pub action: Option<String>,
    /// Milliseconds from the transaction start.
    pub start: f64,
    pub duration: f64,
    pub http_url: Option<String>,
    pub http_method: Option<String>,
    pub http_status: Option<i64>,
    pub transfer_size: Option<f64>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub outcome: Option<String>,
    pub sync: bool,
}

/// An `error`.
#[derive(Debug, Clone, Default)]
pub struct ErrorRecord {
    pub id: String,
    pub culprit: Option<String>,
    pub message: Option<String>,
    pub error_type: Option<String>,
    pub frames: Vec<Frame>,
    pub page_url: Option<String>,
    pub trace_id: Option<[u8; 16]>,
    pub parent_id: Option<[u8; 8]>,
    pub transaction_id: Option<[u8; 8]>,
    pub timestamp_us: Option<f64>,
}

/// A stack frame of an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub function: Option<String>,
    pub abs_path: Option<String>,
    pub line: Option<i64>,
    pub column: Option<i64>,
}

/// A breakdown `metricset`: self time of a span type in a transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metricset {
    /// The transaction (name, type) it belongs to (v2); v3 breakdowns sit in their transaction.
    pub transaction: Option<(String, String)>,
    pub span_type: Option<String>,
    pub span_subtype: Option<String>,
    /// `samples` by their full name (`span.self_time.count`, `span.self_time.sum.us`, …).
    pub samples: Vec<(String, f64)>,
}

/// One decoded intake body.
#[derive(Debug, Default)]
pub struct Intake {
    /// 2 or 3.
    pub version: u8,
    pub metadata: Metadata,
    pub transactions: Vec<Transaction>,
    /// v2 spans whose transaction is not in the body.
    pub orphan_spans: Vec<SpanRecord>,
    pub errors: Vec<ErrorRecord>,
    /// v2 metricsets (v3 ones are in their transaction).
    pub metricsets: Vec<Metricset>,
    pub rejected: Vec<Rejected>,
}
