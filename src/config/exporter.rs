//! `[[exporters]]`: one OTLP destination each, with its transport, queue, batching, retries,
//! disk buffer and TLS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::presets::Preset;
use super::{duration, env, redact};

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
    /// Zstandard: smaller and cheaper than gzip; not every receiver takes it (New Relic does).
    Zstd,
}

/// `[[exporters]]`: one OTLP destination. `Debug` masks URL credentials and header values.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    pub name: String,
    /// Vendor preset (`newrelic`, `datadog`, `grafana-cloud`, `honeycomb`): fills the keys the
    /// file leaves out ([`presets`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The preset's region, site or zone (its endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Environment variable holding the preset's API key (read at start, never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// File holding the preset's API key (a mounted secret), instead of `api_key_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// Grafana Cloud: the stack's instance ID, the Basic-auth user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Honeycomb: the dataset of metrics (`x-honeycomb-dataset`, on metrics requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Longest string attribute value (UTF-8 bytes, cut on a character boundary, so also
    /// within as many characters) sent to this destination; longer ones are truncated on the
    /// way out. Unset: as accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attribute_value_len: Option<usize>,
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
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// Per-request timeout.
    #[serde(default = "default_timeout", with = "duration::secs")]
    pub timeout: Duration,
    /// Directory for OTLP-JSON output (`file` protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Durable disk buffer directory. When set, accepted telemetry is written there before the
    /// edge acknowledges it and removed once the destination acknowledged it (at-least-once,
    /// replayed after a restart). Not for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_dir: Option<PathBuf>,
    /// Most bytes the disk buffer may hold.
    #[serde(default = "default_buffer_max_bytes")]
    pub buffer_max_bytes: u64,
    /// What a write to a full disk buffer does.
    #[serde(default)]
    pub buffer_full: BufferFull,
    /// When disk buffer writes are flushed to stable storage.
    #[serde(default)]
    pub buffer_sync: BufferSync,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub tls: TlsConfig,
}

impl ExporterConfig {
    /// A copy fit to print: URL credentials ([`redact`]) and header values masked.
    pub fn redacted(&self) -> Self {
        let mask = |u: &Option<String>| u.as_deref().map(|u| redact::mask_url(u).into_owned());
        let mut shown = self.clone();
        shown.endpoint = mask(&self.endpoint);
        shown.traces_endpoint = mask(&self.traces_endpoint);
        shown.logs_endpoint = mask(&self.logs_endpoint);
        shown.metrics_endpoint = mask(&self.metrics_endpoint);
        for value in shown.headers.values_mut() {
            *value = redact::MASK.to_owned();
        }
        shown
    }
}

impl std::fmt::Debug for ExporterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Exhaustive, so that a new field is a decision about what `Debug` may show.
        let Self {
            name,
            preset,
            region,
            api_key_env,
            api_key_file,
            instance_id,
            dataset,
            max_attribute_value_len,
            endpoint,
            traces_endpoint,
            logs_endpoint,
            metrics_endpoint,
            protocol,
            compression,
            headers,
            timeout,
            path,
            buffer_dir,
            buffer_max_bytes,
            buffer_full,
            buffer_sync,
            queue,
            batch,
            retry,
            tls,
        } = self;
        let url = |u: &Option<String>| u.as_deref().map(|u| redact::mask_url(u).into_owned());
        f.debug_struct("ExporterConfig")
            .field("name", name)
            .field("preset", preset)
            .field("region", region)
            .field("api_key_env", api_key_env)
            .field("api_key_file", api_key_file)
            .field("instance_id", instance_id)
            .field("dataset", dataset)
            .field("max_attribute_value_len", max_attribute_value_len)
            .field("endpoint", &url(endpoint))
            .field("traces_endpoint", &url(traces_endpoint))
            .field("logs_endpoint", &url(logs_endpoint))
            .field("metrics_endpoint", &url(metrics_endpoint))
            .field("protocol", protocol)
            .field("compression", compression)
            .field("headers", headers)
            .field("timeout", timeout)
            .field("path", path)
            .field("buffer_dir", buffer_dir)
            .field("buffer_max_bytes", buffer_max_bytes)
            .field("buffer_full", buffer_full)
            .field("buffer_sync", buffer_sync)
            .field("queue", queue)
            .field("batch", batch)
            .field("retry", retry)
            .field("tls", tls)
            .finish()
    }
}

/// Exporter request headers, usually credentials: `Debug` shows only their names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl Headers {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "***")))
            .finish()
    }
}

impl std::ops::Deref for Headers {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Headers {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<BTreeMap<String, String>> for Headers {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

/// `[exporters.tls]`: TLS of `https://` endpoints (rustls; gRPC and HTTP alike).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA certificates that may sign the server's certificate; replaces the
    /// bundled Mozilla roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server (mutual TLS); needs `key_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Name the server's certificate must carry, instead of the endpoint's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Accept any server certificate (tests only: anyone can impersonate the server).
    pub insecure_skip_verify: bool,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_buffer_max_bytes() -> u64 {
    1024 * 1024 * 1024
}

/// Smallest accepted `buffer_max_bytes`.
pub const MIN_BUFFER_MAX_BYTES: u64 = 1024 * 1024;

/// What happens to a payload that does not fit in a full disk buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferFull {
    /// Refuse the new payload: the edge answers `503` with `Retry-After`, readiness turns false.
    #[default]
    Refuse,
    /// Make room by deleting the oldest data not yet being sent (whole segments).
    DropOldest,
}

/// When disk buffer writes reach stable storage (`fdatasync`). Either way the edge answers `202`
/// only once the payload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferSync {
    /// Before the edge acknowledges the payload: survives power loss and OS crashes.
    #[default]
    Always,
    /// In the background at this interval. Written data survives the process being killed
    /// (it is in the OS page cache) but the last interval may be lost with the machine.
    Interval(Duration),
}

/// `"always"`, or a duration string (`"200ms"`, `"1s"`) / bare integer of milliseconds.
impl Serialize for BufferSync {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BufferSync::Always => s.serialize_str("always"),
            BufferSync::Interval(d) => duration::serialize(d, s),
        }
    }
}

impl<'de> Deserialize<'de> for BufferSync {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected \"always\" or an interval such as \"200ms\" or \"1s\"",
            )
        })? {
            Raw::Millis(ms) => Ok(BufferSync::Interval(Duration::from_millis(ms))),
            Raw::Text(text) if text == "always" => Ok(BufferSync::Always),
            Raw::Text(text) => duration::parse(&text)
                .map(BufferSync::Interval)
                .map_err(|e| serde::de::Error::custom(format!("{e} (or \"always\")"))),
        }
    }
}

impl ExporterConfig {
    /// An exporter with every optional setting at its default.
    pub fn new(name: impl Into<String>, protocol: Protocol) -> Self {
        Self {
            name: name.into(),
            preset: None,
            region: None,
            api_key_env: None,
            api_key_file: None,
            instance_id: None,
            dataset: None,
            max_attribute_value_len: None,
            endpoint: None,
            traces_endpoint: None,
            logs_endpoint: None,
            metrics_endpoint: None,
            protocol,
            compression: Compression::None,
            headers: Headers::default(),
            timeout: default_timeout(),
            path: None,
            buffer_dir: None,
            buffer_max_bytes: default_buffer_max_bytes(),
            buffer_full: BufferFull::default(),
            buffer_sync: BufferSync::default(),
            queue: QueueConfig::default(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
            tls: TlsConfig::default(),
        }
    }

    /// The embedded default, used when neither the file nor the environment names an exporter:
    /// OTLP-JSON lines under `./rum-bridge-data`.
    pub fn embedded_default() -> Self {
        let mut exporter = Self::new(env::DEFAULT_EXPORTER_NAME, Protocol::File);
        exporter.path = Some(PathBuf::from(env::DEFAULT_EXPORTER_PATH));
        exporter
    }
}

/// Bounded in-memory queue in front of an exporter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Accepted requests waiting for export (with `buffer_dir`: waiting to be written to disk);
    /// when full the edge answers `503`.
    pub capacity: usize,
    /// Export requests in flight at once (each with its own batcher and connection). The
    /// destination's latency, not CPU, bounds one sender; several keep it busy. `file`
    /// exporters always use 1 so lines never interleave.
    pub concurrency: usize,
    /// Most memory queued telemetry may hold (structs and strings as they sit in memory, about
    /// four times the protobuf-encoded size) before the edge answers `503`: bounds memory
    /// whatever the payload sizes.
    pub max_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            concurrency: 4,
            max_bytes: 24 * 1024 * 1024,
        }
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
    #[serde(with = "duration::millis")]
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
    #[serde(with = "duration::millis")]
    pub initial_backoff: Duration,
    #[serde(with = "duration::millis")]
    pub max_backoff: Duration,
    /// Give up after this long (the batch is dropped and counted). Not applied with
    /// `buffer_dir`: buffered data is retried until delivered, within `buffer_max_bytes`.
    #[serde(with = "duration::secs")]
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

/// Checks an OTLP endpoint: an absolute `http` or `https` URL with a host.
pub(crate) fn check_endpoint_url(url: &str) -> Result<(), String> {
    let shown = redact::mask_url(url);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {shown:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "invalid URL {shown:?}: must start with http:// or https://"
            ))
        }
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(format!("invalid URL {shown:?}: no host")),
    }
}
