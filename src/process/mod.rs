//! Process: what happens to decoded RUM data between the edge and the OTLP mapping.
//!
//! Every batch — native beacons, Faro payloads and OTLP passthrough alike — goes through this
//! stage, so rules written once apply to all formats (design.md §1, §7):
//!
//! - **clock skew** ([`skew`]): browser clocks are often wrong; times are moved onto the
//!   bridge's clock when the difference is large, and the shift is recorded.
//! - **privacy** (to come): URL scrubbing and templating, PII redaction in messages, stack traces
//!   and attributes, user-id hashing, consent and `Sec-GPC` handling.
//! - **enrichment** (to come): user-agent parsing, geo lookup, source-map symbolication.
//! - **sampling** (to come): per session, deterministic on the session id, so kept sessions
//!   are whole; errors and poor vitals may be kept regardless.
//!
//! Rules are data from the configuration, compiled once at start-up; applying them must be
//! cheap and must never panic on hostile input.

pub mod pii;
pub mod skew;
pub mod url;
