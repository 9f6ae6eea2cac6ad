//! The standard OpenTelemetry environment variables, overlaid on the file configuration.
//!
//! Operators expect `OTEL_EXPORTER_OTLP_ENDPOINT` and friends to "just work", so the daemon reads
//! them the way an OpenTelemetry SDK does (docs/otlp-mapping.md#exporter-environment-variables). The environment is passed in as a
//! lookup function so tests never touch the process environment.
//!
//! Rules (the file is explicit, so it wins; the environment fills what the file leaves unset):
//!
//! - **Exporters.** The `OTEL_EXPORTER_OTLP_*` variables configure only the *default* exporter,
//!   used when the file lists no `[[exporters]]`. When the file lists some, the variables are
//!   ignored (with a warning). With no file exporter and no endpoint variable, the embedded
//!   default applies: one exporter `file` writing OTLP-JSON lines under `./rum-bridge-data`.
//!   Other `OTEL_EXPORTER_OTLP_*` variables without an endpoint are ignored with a warning (an
//!   endpoint is what switches to OTLP export).
//! - **Per-signal precedence.** For each signal (traces, logs, metrics) the
//!   `OTEL_EXPORTER_OTLP_<SIGNAL>_*` variable wins over the generic one. The generic endpoint is a
//!   base (`/v1/<signal>` is appended for HTTP); a per-signal endpoint is used as is and becomes
//!   `traces_endpoint`, `logs_endpoint` or `metrics_endpoint`. When some signal has a per-signal
//!   endpoint but there is no generic one, the other signals use the specification's default
//!   (`http://localhost:4318`, or `http://localhost:4317` for gRPC).
//! - **One transport per exporter.** An exporter sends all signals with one protocol, compression
//!   and timeout, so these must resolve to the same value for the three signals; otherwise
//!   loading fails and names the variables. Headers are the union: the generic headers with each
//!   signal's headers merged over them; one header name with different values for different
//!   signals is an error.
//! - **Invalid values.** Per the SDK environment specification, an empty value counts as unset;
//!   enum values are case-insensitive; an unrecognised enum, a malformed number or a malformed
//!   header list is ignored with a warning.
//! - **Resource.** `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, percent-decoded) fills
//!   `resource_attributes` keys the file does not set; on any decode error the whole variable is
//!   discarded with a warning. `OTEL_SERVICE_NAME` sets `telemetry.service_name` (the daemon's own
//!   telemetry) unless the file sets it.
//! - **Secrets.** `RUM_BRIDGE_USER_ID_KEY` sets `privacy.user_id_key` unless the file sets it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Compression, Config, ConfigError, ExporterConfig, Protocol};

/// Reads one environment variable; `None` when unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Environment variable naming the config file (used by the CLI).
pub const CONFIG_PATH_VAR: &str = "RUM_BRIDGE_CONFIG";

/// Name of the exporter built from `OTEL_EXPORTER_OTLP_*`.
pub const ENV_EXPORTER_NAME: &str = "otlp";
/// Name of the embedded default exporter.
pub const DEFAULT_EXPORTER_NAME: &str = "file";
/// Output directory of the embedded default exporter.
pub const DEFAULT_EXPORTER_PATH: &str = "./rum-bridge-data";

const GENERIC_PREFIX: &str = "OTEL_EXPORTER_OTLP";
const SIGNALS: [&str; 3] = ["TRACES", "LOGS", "METRICS"];
const SETTINGS: [&str; 5] = ["ENDPOINT", "HEADERS", "PROTOCOL", "COMPRESSION", "TIMEOUT"];

/// Applies the environment to `config` (see the module docs for the rules). Problems that do not
/// stop loading are appended to `config.warnings`.
pub(crate) fn overlay(config: &mut Config, env: EnvLookup<'_>) -> Result<(), ConfigError> {
    overlay_resource(config, env);
    if config.telemetry.service_name.is_none() {
        config.telemetry.service_name = get(env, "OTEL_SERVICE_NAME");
    }
    if config.privacy.user_id_key.is_none() {
        config.privacy.user_id_key = get(env, super::privacy::USER_ID_KEY_VAR);
    }
    if config.metrics.instance_id.is_none() {
        config.metrics.instance_id = get(env, "RUM_BRIDGE_INSTANCE_ID");
    }
    overlay_exporter(config, env)
}

/// Reads a variable, treating an empty (or all-blank) value as unset, as the specification
/// requires.
fn get(env: EnvLookup<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

fn overlay_resource(config: &mut Config, env: EnvLookup<'_>) {
    let Some(raw) = get(env, "OTEL_RESOURCE_ATTRIBUTES") else {
        return;
    };
    match parse_key_values(&raw) {
        Ok(pairs) => {
            for (key, value) in pairs {
                config.resource_attributes.entry(key).or_insert(value);
            }
        }
        Err(e) => config
            .warnings
            .push(format!("OTEL_RESOURCE_ATTRIBUTES discarded: {e}")),
    }
}

/// All the `OTEL_EXPORTER_OTLP_*` variable names this module reads.
fn exporter_var_names() -> impl Iterator<Item = String> {
    let generic = SETTINGS.iter().map(|s| format!("{GENERIC_PREFIX}_{s}"));
    let per_signal = SIGNALS.iter().flat_map(|sig| {
        SETTINGS
            .iter()
            .map(move |s| format!("{GENERIC_PREFIX}_{sig}_{s}"))
    });
    generic.chain(per_signal)
}

fn overlay_exporter(config: &mut Config, env: EnvLookup<'_>) -> Result<(), ConfigError> {
    let set_vars: Vec<String> = exporter_var_names()
        .filter(|name| get(env, name).is_some())
        .collect();
    if !config.exporters.is_empty() {
        if !set_vars.is_empty() {
            config.warnings.push(format!(
                "{} ignored: the config file lists [[exporters]], which take precedence",
                set_vars.join(", ")
            ));
        }
        return Ok(());
    }
    let generic_endpoint = get(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
    let signal_endpoints = SIGNALS.map(|sig| get(env, &format!("{GENERIC_PREFIX}_{sig}_ENDPOINT")));
    if generic_endpoint.is_none() && signal_endpoints.iter().all(Option::is_none) {
        if !set_vars.is_empty() {
            config.warnings.push(format!(
                "{} ignored: no OTEL_EXPORTER_OTLP_ENDPOINT (or per-signal endpoint) is set, \
                 so the embedded file exporter is used",
                set_vars.join(", ")
            ));
        }
        config.exporters.push(ExporterConfig::embedded_default());
        return Ok(());
    }

    let mut warnings = Vec::new();
    let protocol = agree_across_signals(env, "PROTOCOL", &mut warnings, parse_protocol)?
        .unwrap_or(Protocol::HttpProtobuf);
    let compression = agree_across_signals(env, "COMPRESSION", &mut warnings, parse_compression)?
        .unwrap_or_default();
    let timeout = agree_across_signals(env, "TIMEOUT", &mut warnings, parse_timeout)?;
    let headers = merged_headers(env, &mut warnings)?;

    let endpoint_vars = std::iter::once(format!("{GENERIC_PREFIX}_ENDPOINT"))
        .chain(SIGNALS.map(|sig| format!("{GENERIC_PREFIX}_{sig}_ENDPOINT")));
    let endpoint_values = std::iter::once(&generic_endpoint).chain(&signal_endpoints);
    for (var, value) in endpoint_vars.zip(endpoint_values) {
        if let Some(url) = value {
            super::check_endpoint_url(url).map_err(|message| ConfigError::Env { var, message })?;
        }
    }

    let [traces_endpoint, logs_endpoint, metrics_endpoint] = signal_endpoints;
    let every_signal_has_own =
        traces_endpoint.is_some() && logs_endpoint.is_some() && metrics_endpoint.is_some();
    let endpoint = match generic_endpoint {
        Some(e) => Some(e),
        None if every_signal_has_own => None,
        None => Some(default_endpoint(protocol).to_owned()),
    };

    let mut exporter = ExporterConfig::new(ENV_EXPORTER_NAME, protocol);
    exporter.endpoint = endpoint;
    exporter.traces_endpoint = traces_endpoint;
    exporter.logs_endpoint = logs_endpoint;
    exporter.metrics_endpoint = metrics_endpoint;
    exporter.compression = compression;
    exporter.headers = headers.into();
    if let Some(timeout) = timeout {
        exporter.timeout = timeout;
    }
    config.exporters.push(exporter);
    config.warnings.extend(warnings);
    Ok(())
}

/// The specification's default endpoint for a protocol (docs/otlp-mapping.md#exporter-environment-variables).
fn default_endpoint(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "http://localhost:4317",
        _ => "http://localhost:4318",
    }
}

/// Reads `setting` for each signal (per-signal variable, else the generic one; invalid values
/// warned about and skipped) and requires the three results to agree. `None` when no variable
/// gives a value for any signal.
fn agree_across_signals<T: PartialEq + Copy + std::fmt::Debug>(
    env: EnvLookup<'_>,
    setting: &str,
    warnings: &mut Vec<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    let mut read = |name: &str| -> Option<T> {
        let raw = get(env, name)?;
        match parse(raw.trim()) {
            Ok(v) => Some(v),
            Err(e) => {
                warnings.push(format!("{name} ignored: {e}"));
                None
            }
        }
    };
    let generic = read(&format!("{GENERIC_PREFIX}_{setting}"));
    let per_signal = SIGNALS.map(|sig| read(&format!("{GENERIC_PREFIX}_{sig}_{setting}")));
    let resolved = per_signal.map(|v| v.or(generic));
    if resolved.iter().all(|v| *v == resolved[0]) {
        return Ok(resolved[0]);
    }
    let listing = SIGNALS
        .iter()
        .zip(resolved)
        .map(|(sig, v)| match v {
            Some(v) => format!("{}={v:?}", sig.to_lowercase()),
            None => format!("{}=default", sig.to_lowercase()),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(ConfigError::Env {
        var: format!("{GENERIC_PREFIX}_*_{setting}"),
        message: format!(
            "signals resolve to different values ({listing}); the default exporter sends every \
             signal the same way, so set them alike"
        ),
    })
}

/// Generic headers with each signal's headers merged over them.
fn merged_headers(
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut read = |name: String| -> Vec<(String, String)> {
        let Some(raw) = get(env, &name) else {
            return Vec::new();
        };
        parse_key_values(&raw).unwrap_or_else(|e| {
            warnings.push(format!("{name} ignored: {e}"));
            Vec::new()
        })
    };
    let generic: BTreeMap<String, String> = read(format!("{GENERIC_PREFIX}_HEADERS"))
        .into_iter()
        .collect();
    let mut merged = generic.clone();
    // Which signal first set a header over the generic value, for the conflict message.
    let mut set_by: BTreeMap<String, &str> = BTreeMap::new();
    for sig in SIGNALS {
        for (key, value) in read(format!("{GENERIC_PREFIX}_{sig}_HEADERS")) {
            if let Some(first) = set_by.get(key.as_str()) {
                if merged.get(&key) != Some(&value) {
                    return Err(ConfigError::Env {
                        var: format!("{GENERIC_PREFIX}_{sig}_HEADERS"),
                        message: format!(
                            "header {key:?} differs from OTEL_EXPORTER_OTLP_{first}_HEADERS; \
                             the default exporter sends the same headers for every signal"
                        ),
                    });
                }
            } else {
                set_by.insert(key.clone(), sig);
                merged.insert(key, value);
            }
        }
    }
    Ok(merged)
}

fn parse_protocol(value: &str) -> Result<Protocol, String> {
    match value.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Ok(Protocol::HttpJson),
        _ => Err(format!(
            "unknown protocol {value:?} (expected grpc, http/protobuf or http/json)"
        )),
    }
}

fn parse_compression(value: &str) -> Result<Compression, String> {
    match value.to_ascii_lowercase().as_str() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        _ => Err(format!(
            "unknown compression {value:?} (expected gzip or none)"
        )),
    }
}

/// Timeouts are integer milliseconds (docs/otlp-mapping.md#exporter-environment-variables).
fn parse_timeout(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "{value:?} is not a positive integer number of milliseconds"
        )),
        Ok(ms) => Ok(Duration::from_millis(ms)),
    }
}

/// Parses `key1=value1,key2=value2` (the W3C-Baggage-like format of `OTEL_EXPORTER_OTLP_HEADERS`
/// and `OTEL_RESOURCE_ATTRIBUTES`): members separated by `,`, blanks around keys and values
/// trimmed, empty members skipped, keys and values percent-decoded (strictly: a `%` must start a
/// valid escape and the result must be UTF-8). Any malformed member fails the whole list.
pub fn parse_key_values(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for member in raw.split(',') {
        let member = member.trim();
        if member.is_empty() {
            continue;
        }
        let Some((key, value)) = member.split_once('=') else {
            return Err(format!("{member:?} is not key=value"));
        };
        let key = percent_decode(key.trim())?;
        if key.is_empty() {
            return Err(format!("{member:?} has an empty key"));
        }
        pairs.push((key, percent_decode(value.trim())?));
    }
    Ok(pairs)
}

/// Strict percent-decoding: `%` must be followed by two hex digits; the bytes must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("percent-decoded {s:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Overlays `vars` on `config`, returning the result.
    fn overlay_with(mut config: Config, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = env_of(vars);
        let lookup = |name: &str| map.get(name).cloned();
        overlay(&mut config, &lookup)?;
        Ok(config)
    }

    fn only_exporter(vars: &[(&str, &str)]) -> ExporterConfig {
        let config = overlay_with(Config::default(), vars).expect("overlay");
        assert_eq!(config.exporters.len(), 1, "{:?}", config.exporters);
        config.exporters.into_iter().next().unwrap()
    }

    #[test]
    fn nothing_set_gives_embedded_file_exporter() {
        let e = only_exporter(&[]);
        assert_eq!(e.name, "file");
        assert_eq!(e.protocol, Protocol::File);
        assert_eq!(
            e.path.as_deref(),
            Some(std::path::Path::new("./rum-bridge-data"))
        );
        assert_eq!(e.endpoint, None);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let e = only_exporter(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ("OTEL_SERVICE_NAME", " "),
        ]);
        assert_eq!(e.protocol, Protocol::File);
    }

    #[test]
    fn endpoint_switches_to_otlp_with_spec_default_protocol() {
        let e = only_exporter(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]);
        assert_eq!(e.name, "otlp");
        assert_eq!(e.protocol, Protocol::HttpProtobuf);
        assert_eq!(e.endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(e.traces_endpoint, None);
        assert_eq!(e.path, None);
        assert_eq!(e.timeout, Duration::from_secs(10));
        assert_eq!(e.compression, Compression::None);
    }

    #[test]
    fn endpoint_without_port_is_kept_as_given() {
        let e = only_exporter(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.example.com")]);
        assert_eq!(e.endpoint.as_deref(), Some("https://otlp.example.com"));
    }

    #[test]
    fn other_vars_without_endpoint_are_ignored_with_warning() {
        let config = overlay_with(
            Config::default(),
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
        )
        .unwrap();
        assert_eq!(config.exporters[0].protocol, Protocol::File);
        assert!(
            config.warnings[0].contains("OTEL_EXPORTER_OTLP_PROTOCOL ignored"),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn file_exporters_win_over_env() {
        let mut file = Config::default();
        file.exporters
            .push(ExporterConfig::new("mine", Protocol::Grpc));
        let config = overlay_with(
            file,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4317"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "a=b"),
            ],
        )
        .unwrap();
        assert_eq!(config.exporters.len(), 1);
        assert_eq!(config.exporters[0].name, "mine");
        assert!(config.exporters[0].headers.is_empty());
        assert!(config.warnings[0]
            .contains("OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS ignored"));
    }

    /// Precedence table: (variables, expected protocol, compression, timeout ms).
    #[test]
    fn per_signal_settings_win_over_generic() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        type Vars = &'static [(&'static str, &'static str)];
        let cases: &[(Vars, Protocol, Compression, u64)] = &[
            (&[], Protocol::HttpProtobuf, Compression::None, 10_000),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC")],
                Protocol::Grpc,
                Compression::None,
                10_000,
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
                ],
                Protocol::HttpJson,
                Compression::None,
                10_000,
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
                    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
                    ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "Gzip"),
                    ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
                ],
                Protocol::HttpProtobuf,
                Compression::Gzip,
                10_000,
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")],
                Protocol::HttpProtobuf,
                Compression::None,
                2500,
            ),
            (
                // An invalid generic value is ignored; valid per-signal values still apply.
                &[
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
                    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "500"),
                    ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "500"),
                    ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "500"),
                ],
                Protocol::HttpProtobuf,
                Compression::None,
                500,
            ),
        ];
        for (vars, protocol, compression, timeout_ms) in cases {
            let mut all = vec![base];
            all.extend_from_slice(vars);
            let e = only_exporter(&all);
            assert_eq!(e.protocol, *protocol, "{vars:?}");
            assert_eq!(e.compression, *compression, "{vars:?}");
            assert_eq!(e.timeout, Duration::from_millis(*timeout_ms), "{vars:?}");
        }
    }

    #[test]
    fn invalid_enum_and_number_values_are_ignored_with_warnings() {
        let config = overlay_with(
            Config::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5"),
            ],
        )
        .unwrap();
        let e = &config.exporters[0];
        assert_eq!(e.protocol, Protocol::HttpProtobuf);
        assert_eq!(e.compression, Compression::None);
        assert_eq!(e.timeout, Duration::from_secs(10));
        assert_eq!(config.warnings.len(), 3, "{:?}", config.warnings);
        assert!(config.warnings.iter().any(|w| w.contains("carrier-pigeon")));
    }

    #[test]
    fn signals_disagreeing_on_protocol_is_an_error() {
        let err = overlay_with(
            Config::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_*_PROTOCOL"), "{err}");
        assert!(
            err.contains("traces=HttpProtobuf, logs=Grpc, metrics=Grpc"),
            "{err}"
        );
    }

    #[test]
    fn per_signal_endpoints_are_kept_and_generic_defaults_by_protocol() {
        let e = only_exporter(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert_eq!(e.traces_endpoint.as_deref(), Some("http://t:4317/custom"));
        assert_eq!(e.logs_endpoint, None);
        assert_eq!(e.endpoint.as_deref(), Some("http://localhost:4317"));

        let e = only_exporter(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4318/v1/logs")]);
        assert_eq!(e.endpoint.as_deref(), Some("http://localhost:4318"));

        let e = only_exporter(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://t:4318/v1/traces",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4318/v1/logs"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:4318/v1/metrics",
            ),
        ]);
        assert_eq!(e.endpoint.as_deref(), Some("http://base:4318"));
        assert_eq!(
            e.metrics_endpoint.as_deref(),
            Some("http://m:4318/v1/metrics")
        );

        let e = only_exporter(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://t:4318/v1/traces",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4318/v1/logs"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:4318/v1/metrics",
            ),
        ]);
        assert_eq!(e.endpoint, None, "no generic default needed");
    }

    #[test]
    fn invalid_env_endpoint_is_an_error_naming_the_variable() {
        let err = overlay_with(
            Config::default(),
            &[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"), "{err}");
    }

    #[test]
    fn headers_are_decoded_and_per_signal_merged_over_generic() {
        let e = only_exporter(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=gen%20eric, x-tenant = a%2Cb ,",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=t%3Dx"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-extra=1"),
        ]);
        let expected: BTreeMap<String, String> =
            [("api-key", "t=x"), ("x-extra", "1"), ("x-tenant", "a,b")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(*e.headers, expected);
    }

    #[test]
    fn conflicting_per_signal_headers_are_an_error() {
        let err = overlay_with(
            Config::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=a"),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "api-key=b"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_METRICS_HEADERS"), "{err}");
        assert!(err.contains("OTEL_EXPORTER_OTLP_TRACES_HEADERS"), "{err}");
        // Same value for two signals is fine.
        let e = only_exporter(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=a"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "api-key=a"),
        ]);
        assert_eq!(e.headers["api-key"], "a");
    }

    #[test]
    fn malformed_headers_are_discarded_with_warning() {
        let config = overlay_with(
            Config::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "good=1,bad%zz=2"),
            ],
        )
        .unwrap();
        assert!(config.exporters[0].headers.is_empty());
        assert!(config.warnings[0].starts_with("OTEL_EXPORTER_OTLP_HEADERS ignored"));
    }

    #[test]
    fn key_value_parsing() {
        assert_eq!(
            parse_key_values("a=1,b=%E2%82%AC, c = x y ").unwrap(),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "€".to_owned()),
                ("c".to_owned(), "x y".to_owned()),
            ]
        );
        assert_eq!(parse_key_values("").unwrap(), vec![]);
        assert_eq!(
            parse_key_values("k=").unwrap(),
            vec![("k".to_owned(), String::new())]
        );
        assert_eq!(
            parse_key_values("k=a=b").unwrap(),
            vec![("k".to_owned(), "a=b".to_owned())]
        );
        for bad in ["novalue", "=v", "k=%", "k=%4", "k=%g0", "k=%FF", "%=1"] {
            assert!(parse_key_values(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn resource_attributes_fill_unset_keys_and_bad_input_is_discarded() {
        let mut file = Config::default();
        file.resource_attributes
            .insert("deployment.environment.name".into(), "prod".into());
        let config = overlay_with(
            file.clone(),
            &[(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=staging,k8s.cluster.name=eu%2C1",
            )],
        )
        .unwrap();
        assert_eq!(
            config.resource_attributes["deployment.environment.name"],
            "prod"
        );
        assert_eq!(config.resource_attributes["k8s.cluster.name"], "eu,1");
        assert!(config.warnings.is_empty());

        let config = overlay_with(
            file,
            &[("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=eu,broken")],
        )
        .unwrap();
        assert_eq!(
            config.resource_attributes.len(),
            1,
            "whole variable discarded"
        );
        assert!(config.warnings[0].starts_with("OTEL_RESOURCE_ATTRIBUTES discarded"));
    }

    #[test]
    fn service_name_from_env_unless_file_sets_it() {
        let config = overlay_with(Config::default(), &[("OTEL_SERVICE_NAME", "edge-rum")]).unwrap();
        assert_eq!(config.telemetry.service_name.as_deref(), Some("edge-rum"));

        let mut file = Config::default();
        file.telemetry.service_name = Some("from-file".into());
        let config = overlay_with(file, &[("OTEL_SERVICE_NAME", "edge-rum")]).unwrap();
        assert_eq!(config.telemetry.service_name.as_deref(), Some("from-file"));
    }
}
