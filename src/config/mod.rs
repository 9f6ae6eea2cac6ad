//! Typed configuration: the TOML file, the OpenTelemetry environment variables, and validation.
//!
//! Every section denies unknown keys so a typo is an error that names the key and its line,
//! not a silently ignored setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration, as read from TOML and overlaid with env and CLI flags.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub correlation: CorrelationConfig,
    pub metrics: MetricsConfig,
    pub telemetry: TelemetryConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exporters: Vec<ExporterConfig>,
}

/// `[server]`: listeners and edge behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public ingest listener (faced by browsers).
    pub listen: SocketAddr,
    /// Admin listener: health, readiness, Prometheus metrics. Never expose publicly.
    pub admin_listen: SocketAddr,
    /// `Access-Control-Max-Age` for CORS preflights, seconds.
    pub cors_max_age_secs: u64,
    /// How long shutdown may spend draining queues before persisting or dropping the rest.
    #[serde(with = "humantime_secs")]
    pub shutdown_timeout: Duration,
    /// `Retry-After` seconds sent with 503 when the queue is full.
    pub retry_after_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4380)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 4381)),
            cors_max_age_secs: 7200,
            shutdown_timeout: Duration::from_secs(10),
            retry_after_secs: 5,
        }
    }
}

/// `[limits]`: sizes enforced at the edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest body accepted on the wire (bytes), checked while reading.
    pub max_body_bytes: usize,
    /// Largest body after decompression (bytes): stops gzip bombs.
    pub max_decompressed_bytes: usize,
    /// Most events accepted in one beacon; the rest are rejected and counted.
    pub max_events_per_batch: usize,
    /// Most resource entries kept per page load (largest first).
    pub max_resources_per_page_load: usize,
    /// Longest attribute string value kept (longer ones are truncated).
    pub max_attribute_value_len: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_decompressed_bytes: 4 * 1024 * 1024,
            max_events_per_batch: 1000,
            max_resources_per_page_load: 100,
            max_attribute_value_len: 4096,
        }
    }
}

/// How a page load relates to the server span that rendered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageLoadCorrelation {
    /// `documentLoad` is a child of the server span (same trace), as OpenTelemetry JS does.
    #[default]
    Child,
    /// `documentLoad` starts a new trace with an OTLP Link to the server span.
    Link,
}

/// `[correlation]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    pub page_load: PageLoadCorrelation,
    /// Browser clocks off by more than this (ms) are corrected to the bridge clock.
    pub clock_skew_threshold_ms: u64,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self {
            page_load: PageLoadCorrelation::Child,
            clock_skew_threshold_ms: 1000,
        }
    }
}

/// Metric temporality of the aggregated metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Temporality {
    #[default]
    Cumulative,
    Delta,
}

/// `[metrics]`: the web-vital and HTTP-client metric aggregator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Flush interval.
    #[serde(with = "humantime_secs")]
    pub interval: Duration,
    pub temporality: Temporality,
    /// Distinct attribute sets per metric before overflow folds into one series.
    pub cardinality_limit: usize,
    /// Exemplars kept per data point per interval.
    pub max_exemplars: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(60),
            temporality: Temporality::Cumulative,
            cardinality_limit: 2000,
            max_exemplars: 4,
        }
    }
}

/// Log output format of the daemon itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[telemetry]`: the daemon's own logs and traces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `rum_bridge=debug`. `RUST_LOG` wins.
    pub log_level: String,
    /// Send the daemon's own spans through `tracing-opentelemetry` (OTLP/gRPC).
    pub self_traces: bool,
    /// Where self traces go; defaults to the first OTLP gRPC exporter's endpoint.
    pub self_traces_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_level: "info".into(),
            self_traces: false,
            self_traces_endpoint: None,
        }
    }
}

/// `[[apps]]`: a browser app allowed to send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// `service.name` of the app's telemetry.
    pub name: String,
    /// Public key, sent by the browser.
    pub key: String,
    /// Exact origins (`scheme://host[:port]`) allowed; `*` allows any origin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// `deployment.environment.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// `service.version`, when the client does not report one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Session sample rate 0..=1 (whole sessions kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
    /// OTLP-JSON lines written under `path` (the collector file-exporter format).
    #[serde(rename = "file")]
    File,
}

/// Payload compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// `[[exporters]]`: one OTLP destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    pub name: String,
    /// Base endpoint (`http://host:4317` for gRPC, `http://host:4318` for HTTP; `/v1/<signal>`
    /// is appended for HTTP). Ignored for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Per-signal endpoints, used as given (HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_endpoint: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub compression: Compression,
    /// Extra request headers (auth). Values are never logged.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout", with = "humantime_secs")]
    pub timeout: Duration,
    /// Directory for OTLP-JSON output (`file` protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Durable disk buffer directory (not yet implemented: accepted and validated only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_dir: Option<PathBuf>,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Bounded in-memory queue in front of an exporter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Accepted requests waiting for export; when full the edge answers `503`.
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { capacity: 4096 }
    }
}

/// Batching by count, bytes and time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most items (spans, log records, data points) in one export request.
    pub max_items: usize,
    /// Most encoded bytes in one export request.
    pub max_bytes: usize,
    /// Longest an item waits for its batch to fill.
    #[serde(with = "humantime_millis")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_items: 512,
            max_bytes: 4 * 1024 * 1024,
            timeout: Duration::from_millis(1000),
        }
    }
}

/// Retry policy for retryable export failures (OTLP spec).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    #[serde(with = "humantime_millis")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_millis")]
    pub max_backoff: Duration,
    /// Give up after this long (the batch is dropped and counted).
    #[serde(with = "humantime_secs")]
    pub max_elapsed: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// Durations written as whole seconds in TOML (`timeout = 10`).
mod humantime_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Durations written as milliseconds in TOML.
mod humantime_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("invalid environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl Config {
    /// Reads and parses a TOML file. Errors name the key and the line (from `toml`'s spans).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error string includes line, column and the offending key.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Whether any app is configured (otherwise development mode: any key accepted).
    pub fn development_mode(&self) -> bool {
        self.apps.is_empty()
    }
}
