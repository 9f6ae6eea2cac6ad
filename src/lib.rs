//! # rum-bridge
//!
//! A daemon that turns what real browsers experience into OpenTelemetry data correlated with
//! backend traces. The data path, one module each:
//!
//! ```text
//! browser ──HTTP──▶ receive ──▶ model ──▶ process ──▶ convert ──▶ export ──OTLP──▶ collector
//! ```
//!
//! - [`receive`]: the public axum edge: CORS, app keys, limits, one decoder per wire format.
//! - [`model`]: format-independent RUM events with their page, session and trace context.
//! - [`process`]: enrichment, normalization, clock-skew correction (privacy rules apply here).
//! - [`convert`]: model → OTLP spans and logs; the web-vital / HTTP metric aggregator.
//! - [`export`]: bounded queues, batching, OTLP gRPC / HTTP / file transports, retries.
//! - [`admin`]: health, readiness and Prometheus metrics on a separate listener.
//!
//! Around it: [`config`] (file, OpenTelemetry environment variables, validation) and
//! [`telemetry`] (the daemon's own logs and traces).
#![forbid(unsafe_code)]

pub mod admin;
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
