//! Convert: the model → OTLP mapping (spans, logs) and the web-vital / HTTP metric aggregator.
pub mod metrics;
