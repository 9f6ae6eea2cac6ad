//! # rum-bridge
//!
//! A daemon that turns what real browsers experience into OpenTelemetry data correlated with
//! backend traces. The data path, one part each, every part using only the parts after it:
//!
//! ```text
//! browser ─HTTP─▶ receive ─▶ pipeline ─▶ process ─▶ convert ─▶ handoff ─▶ export ─OTLP─▶ collector
//! ```
//!
//! - [`receive`]: the public axum edge and nothing more: routes, CORS, app keys and origins,
//!   rate limits, body limits, one decoder per wire format (native beacons, Grafana Faro,
//!   OTLP/HTTP), refusals as statuses with counted reasons; it serves the loader at `/rum.js`.
//! - [`pipeline`]: the per-request flow, written once: context completion, clock skew,
//!   page-view correlation, privacy, conversion, caps, enqueue, counts and metric aggregation.
//! - [`model`]: format-independent RUM events with their page, session and trace context; the
//!   attribute keys, HTTP rules and rejection reasons every part shares.
//! - [`process`]: enrichment and privacy (URL/PII scrubbing, consent, sampling, user agent,
//!   geo, clock skew, size caps, OTLP normalisation).
//! - [`convert`]: model → OTLP spans, logs and resource; the web-vital / HTTP metric
//!   aggregator.
//! - [`handoff`]: what crosses from the request side to the export side: payloads, receipts,
//!   backpressure, and the one attribute-size walker.
//! - [`export`]: bounded queues, disk buffers, batching, OTLP gRPC / HTTP / file transports,
//!   retries, TLS; it knows only payloads.
//!
//! Around it: [`config`] (file, OpenTelemetry environment variables, validation), [`daemon`]
//! (wiring the parts and the staged shutdown), [`admin`] (health, readiness and Prometheus
//! metrics on a separate listener) and [`telemetry`] (the daemon's own logs and traces).
//! `docs/architecture.md` describes each part and the import rules between them, which
//! `tests/architecture.rs` checks.
#![forbid(unsafe_code)]

pub mod admin;
pub mod budget;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod export;
pub mod handoff;
pub mod model;
pub mod pipeline;
pub mod process;
pub mod receive;
pub mod telemetry;

pub use daemon::run;
