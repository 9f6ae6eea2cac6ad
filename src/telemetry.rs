//! The daemon's own logs and (optionally) traces.
//!
//! Operators need to see what the bridge itself is doing, in the format their log pipeline reads
//! (text or JSON) and, when they trace their infrastructure, as spans in the same backend as the
//! browser data. [`init`] installs a `tracing` subscriber: a fmt layer on stderr filtered by
//! `RUST_LOG` (else `telemetry.log_level`), plus a `tracing-opentelemetry` layer exporting spans
//! over OTLP/gRPC when `telemetry.self_traces` is on. The returned [`TelemetryGuard`] flushes and
//! shuts the trace pipeline down.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use crate::config::redact::mask_url;
use crate::config::{Config, Headers, LogFormat, Protocol, TelemetryConfig};
use crate::model::semconv;

/// How long shutdown waits for the last self-trace batch.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Crates whose spans must not become self traces: the OTLP export path itself (exporting would
/// create spans that need exporting, forever).
const EXPORT_PATH_TARGETS: [&str; 6] = [
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "opentelemetry",
];

/// Keeps the self-trace pipeline alive; shutting it down (explicitly or on drop) flushes what is
/// buffered. Drop or shut it down while the Tokio runtime is still running.
#[must_use = "dropping the guard stops self traces"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops self traces (waits at most a few seconds). Logs, not errors: the
    /// daemon is stopping anyway.
    pub fn shutdown(mut self) {
        self.shutdown_provider();
    }

    fn shutdown_provider(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %e, "self-trace shutdown incomplete");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown_provider();
    }
}

/// Installs the global `tracing` subscriber. Call once, inside the Tokio runtime (the gRPC
/// channel of self traces is created on it).
pub fn init(config: &Config) -> anyhow::Result<TelemetryGuard> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = log_filter(rust_log.as_deref(), &config.telemetry.log_level)?;

    let fmt_layer = match config.telemetry.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let provider = match self_trace_target(config) {
        Some(target) => Some(tracer_provider(config, &target)?),
        None => None,
    };
    let otel_layer = provider.as_ref().map(|provider| {
        let quiet_export_path = EXPORT_PATH_TARGETS.iter().fold(
            Targets::new().with_default(LevelFilter::TRACE),
            |t, target| t.with_target(*target, LevelFilter::OFF),
        );
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("rum-bridge"))
            .with_filter(quiet_export_path)
    });

    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .with(filter)
        .try_init()
        .context("installing the tracing subscriber")?;
    Ok(TelemetryGuard { provider })
}

/// `RUST_LOG` when set and not blank, else the configured level. A malformed `RUST_LOG` is an
/// error rather than silently ignored.
fn log_filter(rust_log: Option<&str>, log_level: &str) -> anyhow::Result<EnvFilter> {
    match rust_log.filter(|v| !v.trim().is_empty()) {
        Some(directives) => EnvFilter::builder()
            .parse(directives)
            .with_context(|| format!("invalid RUST_LOG {directives:?}")),
        None => EnvFilter::builder()
            .parse(log_level)
            .with_context(|| format!("invalid telemetry.log_level {log_level:?}")),
    }
}

/// Where self traces go and how.
#[derive(Debug, PartialEq)]
struct SelfTraceTarget {
    endpoint: String,
    headers: Headers,
    timeout: Duration,
}

/// `telemetry.self_traces_endpoint`, else the first gRPC exporter's traces endpoint (with its
/// headers and timeout). `None` when self traces are off or have nowhere to go. (The OTLP crate
/// also merges in `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` from the process environment.)
fn self_trace_target(config: &Config) -> Option<SelfTraceTarget> {
    let TelemetryConfig {
        self_traces,
        self_traces_endpoint,
        ..
    } = &config.telemetry;
    if !self_traces {
        return None;
    }
    if let Some(endpoint) = self_traces_endpoint {
        return Some(SelfTraceTarget {
            endpoint: endpoint.clone(),
            headers: Headers::default(),
            timeout: Duration::from_secs(10),
        });
    }
    let exporter = config
        .exporters
        .iter()
        .find(|e| e.protocol == Protocol::Grpc)?;
    Some(SelfTraceTarget {
        endpoint: exporter
            .traces_endpoint
            .clone()
            .or_else(|| exporter.endpoint.clone())?,
        headers: exporter.headers.clone(),
        timeout: exporter.timeout,
    })
}

/// The daemon's own resource: `resource_attributes`, then its `service.name` and version.
fn self_resource(config: &Config) -> Resource {
    Resource::builder_empty()
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(config.self_service_name().to_owned())
        .with_attribute(KeyValue::new(
            semconv::SERVICE_VERSION,
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// An OTLP/gRPC span exporter behind the SDK's batch span processor.
fn tracer_provider(config: &Config, target: &SelfTraceTarget) -> anyhow::Result<SdkTracerProvider> {
    let mut metadata = http::HeaderMap::new();
    for (name, value) in &target.headers {
        // Validated at load time; checked again here because this is where they are used.
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("self-trace header name {name:?}"))?;
        let value = http::HeaderValue::from_str(value)
            .with_context(|| format!("self-trace header {name} value"))?;
        metadata.insert(name, value);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(target.endpoint.clone())
        .with_timeout(target.timeout)
        .with_metadata(
            opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(metadata),
        )
        .build()
        .with_context(|| format!("self-trace exporter to {}", mask_url(&target.endpoint)))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(self_resource(config))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExporterConfig;

    #[test]
    fn rust_log_wins_over_config_and_bad_filters_are_errors() {
        let from_config = log_filter(None, "warn").unwrap();
        assert_eq!(from_config.max_level_hint(), Some(LevelFilter::WARN));
        let from_env = log_filter(Some("debug"), "warn").unwrap();
        assert_eq!(from_env.max_level_hint(), Some(LevelFilter::DEBUG));
        let blank_env = log_filter(Some(" "), "error").unwrap();
        assert_eq!(blank_env.max_level_hint(), Some(LevelFilter::ERROR));
        let err = log_filter(Some("rum_bridge=chatty"), "info").unwrap_err();
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
    }

    fn grpc_exporter(name: &str, endpoint: &str) -> ExporterConfig {
        let mut e = ExporterConfig::new(name, Protocol::Grpc);
        e.endpoint = Some(endpoint.into());
        e
    }

    #[test]
    fn self_traces_target_selection() {
        let mut config = Config::default();
        config.exporters.push(ExporterConfig::embedded_default());
        assert_eq!(self_trace_target(&config), None, "off by default");

        config.telemetry.self_traces = true;
        assert_eq!(self_trace_target(&config), None, "no grpc exporter");

        let mut http = ExporterConfig::new("http", Protocol::HttpProtobuf);
        http.endpoint = Some("http://h:4318".into());
        let mut grpc = grpc_exporter("g", "http://g:4317");
        grpc.headers.insert("api-key".into(), "k".into());
        grpc.timeout = Duration::from_secs(3);
        config
            .exporters
            .extend([http, grpc, grpc_exporter("g2", "http://g2:4317")]);
        let target = self_trace_target(&config).unwrap();
        assert_eq!(target.endpoint, "http://g:4317");
        assert_eq!(target.headers["api-key"], "k");
        assert_eq!(target.timeout, Duration::from_secs(3));

        config.exporters[2].traces_endpoint = Some("http://traces:4317".into());
        assert_eq!(
            self_trace_target(&config).unwrap().endpoint,
            "http://traces:4317"
        );

        config.telemetry.self_traces_endpoint = Some("http://self:4317".into());
        let target = self_trace_target(&config).unwrap();
        assert_eq!(target.endpoint, "http://self:4317");
        assert!(
            target.headers.is_empty(),
            "exporter credentials stay with the exporter"
        );
    }

    #[test]
    fn resource_carries_service_name_and_attributes() {
        let mut config = Config::default();
        config
            .resource_attributes
            .insert("k8s.cluster.name".into(), "eu-1".into());
        config.telemetry.service_name = Some("edge".into());
        let resource = self_resource(&config);
        let get = |key: &'static str| resource.get(&opentelemetry::Key::from_static_str(key));
        assert_eq!(get("service.name").unwrap().as_str(), "edge");
        assert_eq!(get("k8s.cluster.name").unwrap().as_str(), "eu-1");
        assert_eq!(
            get("service.version").unwrap().as_str(),
            env!("CARGO_PKG_VERSION")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn provider_builds_without_connecting_and_shuts_down() {
        let mut config = Config::default();
        config.telemetry.self_traces = true;
        let mut exporter = grpc_exporter("g", "http://127.0.0.1:9");
        exporter.headers.insert("api-key".into(), "k".into());
        config.exporters.push(exporter);
        let target = self_trace_target(&config).unwrap();
        let provider = tracer_provider(&config, &target).unwrap();
        let guard = TelemetryGuard {
            provider: Some(provider),
        };
        guard.shutdown();

        let bad = SelfTraceTarget {
            endpoint: "http://bad host:4317".into(),
            headers: Headers::default(),
            timeout: Duration::from_secs(1),
        };
        assert!(tracer_provider(&config, &bad).is_err());
    }
}
