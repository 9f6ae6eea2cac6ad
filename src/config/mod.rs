//! Typed configuration: the TOML file, the OpenTelemetry environment variables, and validation.
//!
//! One place decides what the daemon will do, before anything starts: [`Config::load`] reads the
//! file (or starts from defaults), overlays the standard OpenTelemetry environment variables
//! ([`env`]), and validates the result ([`Config::validate`]), so a bad setting stops start-up
//! with a message naming the key instead of failing later at run time.
//!
//! Every section denies unknown keys so a typo is an error that names the key and its line,
//! not a silently ignored setting. Durations are written either as strings with a unit
//! (`"10s"`, `"500ms"`, `"5m"`, `"1h"`) or as a bare integer in the unit the key documents.
//! `config/rum-bridge.toml` documents every key.

mod duration;
pub mod env;
mod exporter;
pub mod locate;
pub mod presets;
pub mod privacy;
pub mod rate_limits;
pub mod redact;
pub mod routes;
pub mod sampling;
pub mod server;
pub mod sourcemaps;
mod validate;
pub use validate::exporter_set_problems;

pub use env::{parse_key_values, EnvLookup, CONFIG_PATH_VAR};
pub(crate) use exporter::check_endpoint_url;
pub use exporter::{
    BatchConfig, BufferFull, BufferSync, Compression, ExporterConfig, Headers, Protocol,
    QueueConfig, RetryConfig, TlsConfig, MIN_BUFFER_MAX_BYTES,
};
pub use presets::Preset;
pub use privacy::PrivacyConfig;
pub use rate_limits::RateLimitsConfig;
pub use routes::RoutesConfig;
pub use sampling::SamplingConfig;
pub use server::ServerConfig;
pub use sourcemaps::SourcemapsConfig;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::semconv;
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
    pub privacy: PrivacyConfig,
    pub rate_limits: RateLimitsConfig,
    pub sampling: SamplingConfig,
    pub geo: GeoConfig,
    pub faro: FaroConfig,
    pub sourcemaps: SourcemapsConfig,
    pub routes: RoutesConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exporters: Vec<ExporterConfig>,
    /// `[resource_attributes]`: attributes added to every exported resource (spans, logs,
    /// metrics) that does not already carry the key, e.g. `"k8s.cluster.name" = "eu-1"`; also
    /// put on the daemon's own traces. `OTEL_RESOURCE_ATTRIBUTES` fills keys not set here.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_attributes: BTreeMap<String, String>,
    /// Problems found while loading that did not stop it (e.g. a discarded
    /// `OTEL_RESOURCE_ATTRIBUTES`); logged once logging is up.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Where the settings came from, so that validation problems name the file and line or
    /// the environment variable ([`locate`]).
    #[serde(skip)]
    pub origin: locate::Origin,
}

/// `[geo]`: coarse location of the client from its address (`process::geo`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// A MaxMind GeoIP2 / GeoLite2 City or Country `.mmdb` file; unset: no `geo.*` attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<PathBuf>,
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
    /// Most attributes kept on one resource, span, event, link or log record (and entries in
    /// one array or map value); the rest are cut and recorded in `dropped_attributes_count`.
    pub max_attributes_per_item: usize,
    /// Most events kept on one span (OpenTelemetry's span limit); the rest are cut and recorded
    /// in the span's `dropped_events_count`.
    pub max_events_per_span: usize,
    /// Most links kept on one span; the rest are cut and recorded in `dropped_links_count`.
    pub max_links_per_span: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_decompressed_bytes: 4 * 1024 * 1024,
            max_events_per_batch: 1000,
            max_resources_per_page_load: 100,
            max_attribute_value_len: 4096,
            max_attributes_per_item: 128,
            max_events_per_span: 128,
            max_links_per_span: 128,
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
    #[serde(with = "duration::secs")]
    pub interval: Duration,
    pub temporality: Temporality,
    /// Distinct attribute sets per metric before overflow folds into one series.
    pub cardinality_limit: usize,
    /// Exemplars kept per data point per interval.
    pub max_exemplars: usize,
    /// `service.instance.id` of the bridge's metrics resource (one writer per replica).
    /// Else `RUM_BRIDGE_INSTANCE_ID`; else random per process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(60),
            temporality: Temporality::Cumulative,
            cardinality_limit: 2000,
            max_exemplars: 4,
            instance_id: None,
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
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `rum_bridge=debug`. `RUST_LOG` wins.
    pub log_level: String,
    /// `service.name` of the daemon's own telemetry; else `OTEL_SERVICE_NAME`, else
    /// `service.name` in `resource_attributes`, else `rum-bridge` (see
    /// [`Config::self_service_name`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Send the daemon's own spans through `tracing-opentelemetry` (OTLP/gRPC).
    pub self_traces: bool,
    /// Where self traces go; defaults to the first OTLP gRPC exporter's endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_traces_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// A copy fit to print: URL credentials masked ([`redact`]).
    pub fn redacted(&self) -> Self {
        Self {
            self_traces_endpoint: self
                .self_traces_endpoint
                .as_deref()
                .map(|u| redact::mask_url(u).into_owned()),
            ..self.clone()
        }
    }
}

/// URL credentials masked ([`redact`]).
impl std::fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            log_format,
            log_level,
            service_name,
            self_traces,
            self_traces_endpoint,
        } = self;
        f.debug_struct("TelemetryConfig")
            .field("log_format", log_format)
            .field("log_level", log_level)
            .field("service_name", service_name)
            .field("self_traces", self_traces)
            .field(
                "self_traces_endpoint",
                &self_traces_endpoint.as_deref().map(redact::mask_url),
            )
            .finish()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_level: "info".into(),
            service_name: None,
            self_traces: false,
            self_traces_endpoint: None,
        }
    }
}

/// What the Faro route's log records look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaroCompat {
    /// The bridge's semantic log records (`exception`, `browser.web_vital`, …).
    #[default]
    None,
    /// What OpenTelemetry collector-contrib's faro receiver produces (logfmt body, `kind` and
    /// `hash` attributes), for Grafana's Frontend Observability (`convert::faro_contrib`).
    FaroContrib,
}

/// `[faro]`: the Grafana Faro route. One setting for all apps: it is about what the collector
/// behind the bridge expects, and the exporters are shared by all apps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaroConfig {
    pub compat: FaroCompat,
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
    /// Every problem found, one per entry, each naming the key it concerns and where its value
    /// came from (`rum-bridge.toml:12: apps[1].key: duplicate key "pk_x"`).
    #[error("invalid config:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<locate::Problem>),
    #[error("invalid environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl Config {
    /// The effective configuration: the file at `path` (or the defaults when `None`), the
    /// OpenTelemetry environment variables read through `env` ([`env`] module docs), then
    /// [`validate`](Self::validate).
    pub fn load(path: Option<&Path>, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let config = Self::load_unvalidated(path, env)?;
        config.validate()?;
        Ok(config)
    }

    /// [`load`](Self::load) without the final validation, for callers that apply overrides
    /// (command-line flags) first and then call [`validate`](Self::validate).
    pub fn load_unvalidated(path: Option<&Path>, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        let file = config.origin.file.take();
        config.origin = locate::Origin::new(file, !config.exporters.is_empty(), env);
        env::overlay(&mut config, env)?;
        Ok(config)
    }

    /// Reads and parses a TOML file. Errors name the file, the key and the line (from `toml`'s
    /// spans).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        config.origin.file = Some((path.to_owned(), text));
        Ok(config)
    }

    /// Parses TOML text; the error string includes line, column and the offending key. Vendor
    /// presets then fill the keys the text leaves out.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.exporters.iter().all(|e| e.preset.is_none()) {
            return Ok(config);
        }
        // Parsed again as plain TOML, so "left out" is known key by key.
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        presets::expand(&mut table);
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())
    }

    /// Checks every rule that types cannot express; reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(locate::locate(problems, &self.origin)))
        }
    }

    /// Whether any app is configured (otherwise development mode: any key accepted).
    pub fn development_mode(&self) -> bool {
        self.apps.is_empty()
    }

    /// `service.name` of the daemon's own telemetry: `telemetry.service_name` (which
    /// `OTEL_SERVICE_NAME` fills), else `service.name` from `resource_attributes`, else
    /// `rum-bridge`.
    pub fn self_service_name(&self) -> &str {
        self.telemetry
            .service_name
            .as_deref()
            .or_else(|| {
                self.resource_attributes
                    .get(semconv::SERVICE_NAME)
                    .map(String::as_str)
            })
            .unwrap_or("rum-bridge")
    }

    /// The configuration as TOML, with exporter header values (credentials) and the user-id
    /// key masked as `***`.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        if let Some(key) = &mut shown.privacy.user_id_key {
            *key = "***".to_owned();
        }
        for exporter in &mut shown.exporters {
            *exporter = exporter.redacted();
        }
        shown.telemetry = shown.telemetry.redacted();
        toml::to_string(&shown)
    }
}

/// Parses a trusted-proxy entry: a CIDR (`10.0.0.0/8`) or a single address.
pub fn parse_proxy(entry: &str) -> Result<ipnet::IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<ipnet::IpNet>()
        .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{entry:?} is not an IP address or CIDR (e.g. \"10.0.0.0/8\")"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    const EXAMPLE: &str = include_str!("../../config/rum-bridge.toml");

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn write_temp(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn unknown_key_error_names_file_key_and_line() {
        let file = write_temp("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 4\n");
        let err = Config::load(Some(file.path()), &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}: ", file.path().display())),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("listen_port"), "{err}");

        let nested =
            "[[exporters]]\nname = \"a\"\nprotocol = \"grpc\"\n\n[exporters.batch]\nmax_item = 1\n";
        let err = Config::from_toml(nested).unwrap_err();
        assert!(err.contains("line 6") && err.contains("max_item"), "{err}");
    }

    #[test]
    fn wrong_types_and_enum_values_are_parse_errors() {
        let err =
            Config::from_toml("[[exporters]]\nname = \"a\"\nprotocol = \"http\"\n").unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("http/protobuf"),
            "{err}"
        );
        let err = Config::from_toml("[metrics]\ninterval = \"10 sec\"\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("unit must be"),
            "{err}"
        );
    }

    #[test]
    fn faro_compat_takes_its_two_values_and_names_the_key_otherwise() {
        let c = Config::from_toml("[faro]\ncompat = \"faro-contrib\"\n").unwrap();
        assert_eq!(c.faro.compat, FaroCompat::FaroContrib);
        assert_eq!(Config::default().faro.compat, FaroCompat::None);
        let err = Config::from_toml("[faro]\ncompat = \"contrib\"\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("compat") && err.contains("faro-contrib"),
            "{err}"
        );
        let err = Config::from_toml("[faro]\nmode = \"none\"\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("mode"), "{err}");
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = Config::load(Some(Path::new("/nonexistent/rum.toml")), &no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn durations_accept_units_and_bare_integers_in_the_documented_unit() {
        let c = Config::from_toml(
            "[server]\nshutdown_timeout = 3\n[metrics]\ninterval = \"2m\"\n\
             [[exporters]]\nname = \"a\"\ntimeout = \"1500ms\"\n\
             [exporters.batch]\ntimeout = 250\n[exporters.retry]\nmax_elapsed = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(c.metrics.interval, Duration::from_secs(120));
        let e = &c.exporters[0];
        assert_eq!(e.timeout, Duration::from_millis(1500));
        assert_eq!(e.batch.timeout, Duration::from_millis(250));
        assert_eq!(e.retry.max_elapsed, Duration::from_secs(3600));
        for bad in [
            "-1",
            "\"5\"",
            "\"1.5s\"",
            "\"s\"",
            "\"99999999999999999999h\"",
        ] {
            let text = format!("[server]\nshutdown_timeout = {bad}\n");
            assert!(Config::from_toml(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_configured_loads_the_embedded_file_exporter() {
        let c = Config::load(None, &no_env).unwrap();
        assert_eq!(c.exporters.len(), 1);
        assert_eq!(c.exporters[0].protocol, Protocol::File);
        assert_eq!(
            c.exporters[0].path,
            Some(PathBuf::from("./rum-bridge-data"))
        );
        assert!(c.development_mode());
        assert_eq!(c.self_service_name(), "rum-bridge");
    }

    #[test]
    fn env_endpoint_switches_to_otlp_and_service_name_applies() {
        let vars: HashMap<&str, &str> = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "rum-edge"),
        ]
        .into();
        let env = |name: &str| vars.get(name).map(|v| v.to_string());
        let c = Config::load(None, &env).unwrap();
        assert_eq!(c.exporters.len(), 1);
        assert_eq!(c.exporters[0].protocol, Protocol::Grpc);
        assert_eq!(
            c.exporters[0].endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(c.self_service_name(), "rum-edge");
    }

    #[test]
    fn self_service_name_falls_back_to_resource_attribute() {
        let mut c = Config::default();
        c.resource_attributes
            .insert("service.name".into(), "from-attrs".into());
        assert_eq!(c.self_service_name(), "from-attrs");
    }

    #[test]
    fn validation_errors_are_reported_together() {
        let file = write_temp(
            "[[apps]]\nname = \"a\"\nkey = \"pk_x\"\n[[apps]]\nname = \"b\"\nkey = \"pk_x\"\n\
             [[exporters]]\nname = \"f\"\nprotocol = \"file\"\n",
        );
        let err = Config::load(Some(file.path()), &no_env).unwrap_err();
        let ConfigError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let shown: Vec<_> = problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        assert_eq!(
            shown,
            [
                "apps[1].key: duplicate key \"pk_x\"",
                "exporters[0].path: required for protocol \"file\"",
            ]
        );
        // Each names the file and the line of the value (or of its table when not written).
        let path = file.path().display();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid config:\n  {path}:6: apps[1].key: duplicate key \"pk_x\"\n  \
                 {path}:7: exporters[0].path: required for protocol \"file\""
            )
        );
    }

    #[test]
    fn redacted_toml_masks_header_values_and_round_trips() {
        let mut c = Config::load(Some(&example_path()), &no_env).unwrap();
        c.exporters[0]
            .headers
            .insert("api-key".into(), "s3cr3t".into());
        let text = c.to_redacted_toml().unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("api-key = \"***\""), "{text}");
        let back = Config::from_toml(&text).unwrap();
        back.validate().unwrap();
        assert_eq!(back.exporters[0].headers["api-key"], "***");
        assert_eq!(
            toml::to_string(&back.exporters[0].retry).unwrap(),
            toml::to_string(&c.exporters[0].retry).unwrap()
        );
        assert_eq!(back.apps[0].allowed_origins, c.apps[0].allowed_origins);
    }

    #[test]
    fn the_metrics_instance_id_comes_from_the_file_else_the_environment() {
        let env = |name: &str| (name == "RUM_BRIDGE_INSTANCE_ID").then(|| "pod-7".to_owned());
        let c = Config::load(None, &env).unwrap();
        assert_eq!(c.metrics.instance_id.as_deref(), Some("pod-7"));
        let file = write_temp("[metrics]\ninstance_id = \"bridge-a\"\n");
        let c = Config::load(Some(file.path()), &env).unwrap();
        assert_eq!(c.metrics.instance_id.as_deref(), Some("bridge-a"));
        let file = write_temp("[metrics]\ninstance_id = \" \"\n");
        let err = Config::load(Some(file.path()), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.instance_id"), "{err}");
    }

    #[test]
    fn redacted_toml_masks_the_user_id_key_and_env_fills_it() {
        let mut c = Config::default();
        c.privacy.user_id_key = Some("0123456789abcdef-secret".into());
        let text = c.to_redacted_toml().unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("user_id_key = \"***\""), "{text}");

        let env = |name: &str| {
            (name == privacy::USER_ID_KEY_VAR).then(|| "from-the-environment!".to_owned())
        };
        let c = Config::load(None, &env).unwrap();
        assert_eq!(
            c.privacy.user_id_key.as_deref(),
            Some("from-the-environment!")
        );
        let file = write_temp("[privacy]\nuser_id_key = \"short\"\n");
        let err = Config::load(Some(file.path()), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("privacy.user_id_key: must be at least 16 bytes"),
            "{err}"
        );
    }

    #[test]
    fn privacy_rules_are_validated_with_their_keys() {
        let text = r#"
[[privacy.pii.patterns]]
name = "email"
pattern = "x"
[[privacy.pii.patterns]]
name = "Bad Name"
pattern = "("
[[privacy.pii.patterns]]
name = "empty"
pattern = "a*"
[[privacy.url.path_rules]]
pattern = "[z-a]"
replacement = "{a/b}"
"#;
        let err = Config::from_toml(text).unwrap().validate().unwrap_err();
        let ConfigError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let expected = [
            "privacy.pii.patterns[0].name: \"email\" is a built-in rule name",
            "privacy.pii.patterns[1].name: \"Bad Name\" must be lowercase letters, digits and _",
            "privacy.pii.patterns[1].pattern: invalid regular expression: unclosed group",
            "privacy.pii.patterns[2].pattern: matches the empty string, so it would match everywhere",
            "privacy.url.path_rules[0].pattern: invalid regular expression: invalid character class range, the start must be <= the end",
            "privacy.url.path_rules[0].replacement: \"{a/b}\" must not contain / ? or #",
        ];
        let shown: Vec<_> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown, expected, "{err}");

        let text = "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"lb.local\"]\n\
                    [privacy]\nclient_ip_v4_prefix = 33\nclient_ip_v6_prefix = 129\n";
        let err = Config::from_toml(text).unwrap().validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config:\n  server.trusted_proxies[1]: \"lb.local\" is not an IP address or \
             CIDR (e.g. \"10.0.0.0/8\")\n  privacy.client_ip_v4_prefix: 33 is more than 32\n  \
             privacy.client_ip_v6_prefix: 129 is more than 128"
        );
    }

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rum-bridge.toml")
    }

    #[test]
    fn example_file_parses_and_validates() {
        let c = Config::load(Some(&example_path()), &no_env).unwrap();
        assert_eq!(c.apps.len(), 1);
        assert_eq!(c.exporters.len(), 1);
        assert_eq!(c.exporters[0].protocol, Protocol::Grpc);
        assert_eq!(
            c.exporters[0].endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    /// The values the example shows for settings with defaults are the real defaults.
    #[test]
    fn example_file_shows_the_true_defaults() {
        let example = Config::from_toml(EXAMPLE).unwrap();
        let defaults = Config::default();
        assert_eq!(show(&example.server), show(&defaults.server));
        assert_eq!(show(&example.limits), show(&defaults.limits));
        assert_eq!(show(&example.correlation), show(&defaults.correlation));
        assert_eq!(show(&example.metrics), show(&defaults.metrics));
        assert_eq!(show(&example.telemetry), show(&defaults.telemetry));
        assert_eq!(show(&example.privacy), show(&defaults.privacy));
        assert_eq!(show(&example.rate_limits), show(&defaults.rate_limits));
        assert_eq!(show(&example.sampling), show(&defaults.sampling));
        assert_eq!(show(&example.faro), show(&defaults.faro));
        assert_eq!(show(&example.routes), show(&defaults.routes));
        let mut exporter = example.exporters[0].clone();
        exporter.endpoint = None;
        let mut default_exporter = ExporterConfig::new("collector", Protocol::Grpc);
        default_exporter.endpoint = None;
        assert_eq!(show(&exporter), show(&default_exporter));
    }

    /// A config section as TOML text, for comparisons.
    fn show<T: Serialize>(section: &T) -> String {
        toml::to_string(section).unwrap()
    }

    /// A config with every optional field set, so its TOML has every key.
    fn fully_populated() -> Config {
        let mut c = Config::default();
        c.telemetry.service_name = Some("s".into());
        c.telemetry.self_traces_endpoint = Some("http://x:4317".into());
        c.resource_attributes.insert("free.form".into(), "v".into());
        c.privacy.user_id_key = Some("k".repeat(16));
        c.privacy.pii.patterns.push(privacy::PiiPattern {
            name: "x".into(),
            pattern: "x".into(),
            replacement: "y".into(),
        });
        c.privacy.url.path_rules.push(privacy::PathRule {
            pattern: "^x$".into(),
            replacement: "{x}".into(),
        });
        c.apps.push(AppConfig {
            name: "a".into(),
            key: "k".into(),
            allowed_origins: vec!["*".into()],
            environment: Some("e".into()),
            version: Some("1".into()),
            sample_rate: Some(0.5),
        });
        let mut e = ExporterConfig::new("x", Protocol::HttpProtobuf);
        e.endpoint = Some("http://x".into());
        e.traces_endpoint = Some("http://x/t".into());
        e.logs_endpoint = Some("http://x/l".into());
        e.metrics_endpoint = Some("http://x/m".into());
        e.headers.insert("free-form".into(), "v".into());
        e.path = Some("p".into());
        e.buffer_dir = Some("b".into());
        e.buffer_sync = BufferSync::Interval(Duration::from_millis(200));
        e.preset = Some(Preset::Honeycomb);
        e.region = Some("eu".into());
        e.api_key_env = Some("K".into());
        e.api_key_file = Some("k".into());
        e.instance_id = Some("1".into());
        e.dataset = Some("d".into());
        e.max_attribute_value_len = Some(1);
        e.tls = TlsConfig {
            ca_file: Some("ca.pem".into()),
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            server_name: Some("n".into()),
            insecure_skip_verify: true,
        };
        c.exporters.push(e);
        c
    }

    /// Collects dotted table paths and leaf keys, not descending into free-form maps.
    fn collect_keys(
        value: &toml::Value,
        path: &str,
        tables: &mut Vec<String>,
        keys: &mut Vec<String>,
    ) {
        let table = match value {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                if let Some(first) = items.first().filter(|v| v.is_table()) {
                    collect_keys(first, path, tables, keys);
                }
                return;
            }
            _ => return,
        };
        for (key, child) in table {
            let child_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let is_table = child.is_table()
                || child
                    .as_array()
                    .is_some_and(|a| a.first().is_some_and(toml::Value::is_table));
            if is_table && key != "headers" {
                tables.push(child_path.clone());
                if key != "resource_attributes" {
                    collect_keys(child, &child_path, tables, keys);
                }
            } else {
                keys.push(key.clone());
            }
        }
    }

    /// Every key the config can hold is documented in the example (commented out or not).
    #[test]
    fn example_file_documents_every_key() {
        let populated = toml::Value::try_from(fully_populated()).unwrap();
        let (mut tables, mut keys) = (Vec::new(), Vec::new());
        collect_keys(&populated, "", &mut tables, &mut keys);
        assert!(
            tables.len() >= 10 && keys.len() >= 40,
            "{tables:?} {keys:?}"
        );
        let lines: Vec<&str> = EXAMPLE
            .lines()
            .map(|l| l.trim_start_matches(['#', ' ']))
            .collect();
        for table in &tables {
            assert!(
                lines
                    .iter()
                    .any(|l| *l == format!("[{table}]") || *l == format!("[[{table}]]")),
                "section [{table}] is not in config/rum-bridge.toml"
            );
        }
        for key in &keys {
            assert!(
                lines.iter().any(|l| l.starts_with(&format!("{key} = "))),
                "key {key:?} is not documented in config/rum-bridge.toml"
            );
        }
    }
}
