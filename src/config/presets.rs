//! Vendor presets (`preset = "newrelic" | "datadog" | "grafana-cloud" | "honeycomb"`): the
//! settings a vendor's OTLP intake needs, so that exporting straight to it is one line and a
//! secret.
//!
//! A preset fills the exporter keys the file leaves out (a key written in the file always
//! wins): endpoint (from `region`), protocol, compression, `batch.max_bytes` under the vendor's
//! payload limit, the attribute value limit, and `[metrics] temporality = "delta"` where the
//! vendor prefers or requires it. The credential never enters the configuration: it is read
//! from `api_key_env` or `api_key_file` when the exporter starts and goes into the vendor's
//! auth header. Facts: `docs/otlp-mapping.md#vendor-presets` (New Relic, Datadog); Grafana Cloud's OTLP gateway and
//! Honeycomb's OTLP endpoint per their documentation.
//!
//! | preset | endpoint | auth header | compression | batch bytes | attribute chars | metrics |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | `newrelic` | `https://otlp.nr-data.net` (`eu`: `otlp.eu01.nr-data.net`) | `api-key` | zstd | 999 000 (< 1 MB) | 4095 | delta |
//! | `datadog` | `https://otlp.<region, default datadoghq.com>` | `dd-api-key` | gzip | 499 000 (metrics < 500 KB) | — | delta (required) |
//! | `grafana-cloud` | `https://otlp-gateway-<region>.grafana.net/otlp` | `Authorization: Basic` (`instance_id`:token) | gzip | default | — | default |
//! | `honeycomb` | `https://api.honeycomb.io` (`eu`: `api.eu1.honeycomb.io`) | `x-honeycomb-team` (+ `x-honeycomb-dataset` on metrics) | gzip | default | — | default |
//!
//! All use OTLP/HTTP protobuf (what New Relic recommends and Datadog's trace intake requires).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{EnvLookup, ExporterConfig, Protocol, Temporality};

/// A vendor whose OTLP intake the bridge knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    #[serde(rename = "newrelic")]
    NewRelic,
    Datadog,
    GrafanaCloud,
    Honeycomb,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::NewRelic => "newrelic",
            Preset::Datadog => "datadog",
            Preset::GrafanaCloud => "grafana-cloud",
            Preset::Honeycomb => "honeycomb",
        }
    }

    fn from_name(name: &str) -> Option<Preset> {
        [
            Preset::NewRelic,
            Preset::Datadog,
            Preset::GrafanaCloud,
            Preset::Honeycomb,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// The base endpoint for `region`; `Err` names the regions the vendor has.
    pub fn endpoint(self, region: Option<&str>) -> Result<String, String> {
        let us_or_eu = |us: &str, eu: &str| match region.unwrap_or("us") {
            "us" => Ok(us.to_owned()),
            "eu" => Ok(eu.to_owned()),
            other => Err(format!(
                "{other:?}: {} regions are \"us\" and \"eu\"",
                self.name()
            )),
        };
        let host_part = |r: &str| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
        };
        match self {
            Preset::NewRelic => {
                us_or_eu("https://otlp.nr-data.net", "https://otlp.eu01.nr-data.net")
            }
            Preset::Honeycomb => {
                us_or_eu("https://api.honeycomb.io", "https://api.eu1.honeycomb.io")
            }
            Preset::Datadog => match region.unwrap_or("datadoghq.com") {
                site if host_part(site) => Ok(format!("https://otlp.{site}")),
                site => Err(format!(
                    "{site:?} is not a Datadog site (e.g. \"datadoghq.eu\")"
                )),
            },
            Preset::GrafanaCloud => match region {
                Some(zone) if host_part(zone) => {
                    Ok(format!("https://otlp-gateway-{zone}.grafana.net/otlp"))
                }
                Some(zone) => Err(format!(
                    "{zone:?} is not a Grafana Cloud zone (e.g. \"prod-eu-west-0\")"
                )),
                None => Err(
                    "the stack's zone (e.g. \"prod-eu-west-0\"), or an endpoint, is required"
                        .into(),
                ),
            },
        }
    }

    fn compression(self) -> &'static str {
        match self {
            Preset::NewRelic => "zstd",
            _ => "gzip",
        }
    }

    /// Below the vendor's payload limit (our batch byte count bounds the uncompressed request).
    fn batch_max_bytes(self) -> Option<i64> {
        match self {
            Preset::NewRelic => Some(999_000),
            Preset::Datadog => Some(499_000),
            Preset::GrafanaCloud | Preset::Honeycomb => None,
        }
    }

    fn max_attribute_value_len(self) -> Option<i64> {
        match self {
            Preset::NewRelic => Some(4095),
            _ => None,
        }
    }

    /// The metric temporality the vendor wants, if it has a preference.
    fn temporality(self) -> Option<Temporality> {
        match self {
            Preset::NewRelic | Preset::Datadog => Some(Temporality::Delta),
            Preset::GrafanaCloud | Preset::Honeycomb => None,
        }
    }
}

/// Fills, in the parsed TOML, the keys presets supply and the file leaves out. Invalid preset
/// settings are left for validation to report.
pub(super) fn expand(config: &mut toml::Table) {
    let mut wants_delta = false;
    if let Some(toml::Value::Array(exporters)) = config.get_mut("exporters") {
        for exporter in exporters.iter_mut().filter_map(toml::Value::as_table_mut) {
            let Some(preset) = exporter
                .get("preset")
                .and_then(toml::Value::as_str)
                .and_then(Preset::from_name)
            else {
                continue;
            };
            wants_delta |= preset.temporality() == Some(Temporality::Delta);
            let has_endpoint = [
                "endpoint",
                "traces_endpoint",
                "logs_endpoint",
                "metrics_endpoint",
            ]
            .iter()
            .any(|key| exporter.contains_key(*key));
            if !has_endpoint {
                let region = exporter.get("region").and_then(toml::Value::as_str);
                if let Ok(endpoint) = preset.endpoint(region) {
                    exporter.insert("endpoint".into(), endpoint.into());
                }
            }
            fill(exporter, "protocol", "http/protobuf".into());
            fill(exporter, "compression", preset.compression().into());
            if let Some(limit) = preset.max_attribute_value_len() {
                fill(exporter, "max_attribute_value_len", limit.into());
            }
            if let Some(limit) = preset.batch_max_bytes() {
                let batch = exporter
                    .entry("batch")
                    .or_insert_with(|| toml::Table::new().into());
                if let Some(batch) = batch.as_table_mut() {
                    fill(batch, "max_bytes", limit.into());
                }
            }
        }
    }
    if wants_delta {
        let metrics = config
            .entry("metrics")
            .or_insert_with(|| toml::Table::new().into());
        if let Some(metrics) = metrics.as_table_mut() {
            fill(metrics, "temporality", "delta".into());
        }
    }
}

fn fill(table: &mut toml::Table, key: &str, value: toml::Value) {
    table.entry(key).or_insert(value);
}

/// Preset rules, for `validate`: what each preset needs, and keys that only a preset uses.
pub(super) fn problems(
    at: &str,
    e: &ExporterConfig,
    temporality: Temporality,
    add: &mut impl FnMut(String, String),
) {
    let only_with = |key: &str, presets: &str| {
        (
            format!("{at}.{key}"),
            format!("only used with preset {presets}"),
        )
    };
    let Some(preset) = e.preset else {
        for (key, set) in [
            ("region", e.region.is_some()),
            ("api_key_env", e.api_key_env.is_some()),
            ("api_key_file", e.api_key_file.is_some()),
            ("instance_id", e.instance_id.is_some()),
            ("dataset", e.dataset.is_some()),
        ] {
            if set {
                let (key, message) = only_with(key, "(any)");
                add(key, message);
            }
        }
        return;
    };
    if e.protocol == Protocol::File {
        add(
            format!("{at}.preset"),
            "not used with protocol \"file\"".into(),
        );
    }
    let has_endpoint = e.endpoint.is_some()
        || (e.traces_endpoint.is_some()
            && e.logs_endpoint.is_some()
            && e.metrics_endpoint.is_some());
    if !has_endpoint {
        if let Err(message) = preset.endpoint(e.region.as_deref()) {
            add(format!("{at}.region"), message);
        }
    }
    match (&e.api_key_env, &e.api_key_file) {
        (Some(_), Some(_)) => add(
            format!("{at}.api_key_env"),
            "set api_key_env or api_key_file, not both".into(),
        ),
        (None, None) => add(
            format!("{at}.api_key_env"),
            format!(
                "preset {:?} needs its API key: api_key_env (an environment variable) or \
                 api_key_file",
                preset.name()
            ),
        ),
        _ => {}
    }
    if preset == Preset::GrafanaCloud && e.instance_id.is_none() {
        add(
            format!("{at}.instance_id"),
            "preset \"grafana-cloud\" needs the stack's instance ID (the Basic-auth user)".into(),
        );
    }
    if preset != Preset::GrafanaCloud && e.instance_id.is_some() {
        let (key, message) = only_with("instance_id", "\"grafana-cloud\"");
        add(key, message);
    }
    if preset != Preset::Honeycomb && e.dataset.is_some() {
        let (key, message) = only_with("dataset", "\"honeycomb\"");
        add(key, message);
    }
    if preset == Preset::Datadog && temporality != Temporality::Delta {
        add(
            format!("{at}.preset"),
            "Datadog's OTLP intake takes delta metrics only: set [metrics] temporality = \"delta\""
                .into(),
        );
    }
}

/// Why a preset's credential cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    Empty(String),
}

/// Headers a preset adds: to every request, and to metrics requests only.
#[derive(Default, PartialEq, Eq)]
pub struct PresetHeaders {
    pub all: Vec<(&'static str, String)>,
    pub metrics: Vec<(&'static str, String)>,
}

/// Values are credentials: never shown.
impl std::fmt::Debug for PresetHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |headers: &[(&'static str, String)]| -> Vec<&'static str> {
            headers.iter().map(|(name, _)| *name).collect()
        };
        f.debug_struct("PresetHeaders")
            .field("all", &names(&self.all))
            .field("metrics", &names(&self.metrics))
            .finish()
    }
}

/// The auth (and dataset) headers of `e`'s preset, with the credential read from its
/// environment variable (through `env`) or file. Empty without a preset.
pub fn preset_headers(
    e: &ExporterConfig,
    env: EnvLookup<'_>,
) -> Result<PresetHeaders, CredentialError> {
    let Some(preset) = e.preset else {
        return Ok(PresetHeaders::default());
    };
    let key = api_key(e, env)?;
    let mut headers = PresetHeaders::default();
    match preset {
        Preset::NewRelic => headers.all.push(("api-key", key)),
        Preset::Datadog => headers.all.push(("dd-api-key", key)),
        Preset::GrafanaCloud => {
            use base64::Engine as _;
            let user = e.instance_id.as_deref().unwrap_or_default();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"));
            headers
                .all
                .push(("authorization", format!("Basic {basic}")));
        }
        Preset::Honeycomb => {
            headers.all.push(("x-honeycomb-team", key));
            if let Some(dataset) = &e.dataset {
                headers
                    .metrics
                    .push(("x-honeycomb-dataset", dataset.clone()));
            }
        }
    }
    Ok(headers)
}

fn api_key(e: &ExporterConfig, env: EnvLookup<'_>) -> Result<String, CredentialError> {
    let (key, source) = match (&e.api_key_env, &e.api_key_file) {
        (Some(var), _) => (
            env(var).ok_or_else(|| CredentialError::MissingEnv(var.clone()))?,
            format!("environment variable {var}"),
        ),
        (None, Some(path)) => (
            std::fs::read_to_string(path).map_err(|source| CredentialError::File {
                path: path.clone(),
                source,
            })?,
            path.display().to_string(),
        ),
        (None, None) => return Err(CredentialError::Empty("api_key_env / api_key_file".into())),
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(CredentialError::Empty(source));
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Compression, Config};

    fn load(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    #[test]
    fn newrelic_fills_what_the_file_leaves_out() {
        let c =
            load("[[exporters]]\nname = \"nr\"\npreset = \"newrelic\"\napi_key_env = \"NR_KEY\"\n");
        let e = &c.exporters[0];
        assert_eq!(e.endpoint.as_deref(), Some("https://otlp.nr-data.net"));
        assert_eq!(e.protocol, Protocol::HttpProtobuf);
        assert_eq!(e.compression, Compression::Zstd);
        assert_eq!(e.batch.max_bytes, 999_000);
        assert_eq!(
            e.batch.max_items, 512,
            "other batch keys keep their defaults"
        );
        assert_eq!(e.max_attribute_value_len, Some(4095));
        assert_eq!(c.metrics.temporality, Temporality::Delta);
        c.validate().unwrap();
    }

    #[test]
    fn keys_in_the_file_win() {
        let c = load(
            "[metrics]\ntemporality = \"cumulative\"\n\n[[exporters]]\nname = \"nr\"\n\
             preset = \"newrelic\"\nregion = \"eu\"\napi_key_file = \"/k\"\ncompression = \"gzip\"\n\
             protocol = \"grpc\"\n[exporters.batch]\nmax_bytes = 1000\n",
        );
        let e = &c.exporters[0];
        assert_eq!(e.endpoint.as_deref(), Some("https://otlp.eu01.nr-data.net"));
        assert_eq!(e.protocol, Protocol::Grpc);
        assert_eq!(e.compression, Compression::Gzip);
        assert_eq!(e.batch.max_bytes, 1000);
        assert_eq!(c.metrics.temporality, Temporality::Cumulative);
        let explicit = load(
            "[[exporters]]\nname = \"hc\"\npreset = \"honeycomb\"\napi_key_env = \"K\"\n\
             endpoint = \"http://127.0.0.1:9\"\n",
        );
        assert_eq!(
            explicit.exporters[0].endpoint.as_deref(),
            Some("http://127.0.0.1:9")
        );
    }

    #[test]
    fn endpoints_by_region() {
        let cases = [
            (Preset::NewRelic, None, "https://otlp.nr-data.net"),
            (
                Preset::Honeycomb,
                Some("eu"),
                "https://api.eu1.honeycomb.io",
            ),
            (Preset::Honeycomb, None, "https://api.honeycomb.io"),
            (Preset::Datadog, None, "https://otlp.datadoghq.com"),
            (
                Preset::Datadog,
                Some("us5.datadoghq.com"),
                "https://otlp.us5.datadoghq.com",
            ),
            (
                Preset::GrafanaCloud,
                Some("prod-eu-west-0"),
                "https://otlp-gateway-prod-eu-west-0.grafana.net/otlp",
            ),
        ];
        for (preset, region, endpoint) in cases {
            assert_eq!(
                preset.endpoint(region).unwrap(),
                endpoint,
                "{preset:?} {region:?}"
            );
        }
        assert!(Preset::NewRelic.endpoint(Some("ap")).is_err());
        assert!(Preset::GrafanaCloud.endpoint(None).is_err());
        assert!(Preset::Datadog.endpoint(Some("evil.com/x?")).is_err());
    }

    #[test]
    fn preset_rules() {
        let c = load(
            "[metrics]\ntemporality = \"cumulative\"\n\n\
             [[exporters]]\nname = \"dd\"\npreset = \"datadog\"\n\n\
             [[exporters]]\nname = \"gc\"\npreset = \"grafana-cloud\"\napi_key_env = \"A\"\n\
             api_key_file = \"/b\"\ndataset = \"d\"\n\n\
             [[exporters]]\nname = \"plain\"\nendpoint = \"http://c:4317\"\ninstance_id = \"1\"\n",
        );
        let err = c.validate().unwrap_err().to_string();
        for problem in [
            "exporters[0].api_key_env: preset \"datadog\" needs its API key",
            "exporters[0].preset: Datadog's OTLP intake takes delta metrics only",
            "exporters[1].region: the stack's zone",
            "exporters[1].api_key_env: set api_key_env or api_key_file, not both",
            "exporters[1].instance_id: preset \"grafana-cloud\" needs the stack's instance ID",
            "exporters[1].dataset: only used with preset \"honeycomb\"",
            "exporters[2].instance_id: only used with preset (any)",
        ] {
            assert!(err.contains(problem), "{problem} missing in {err}");
        }
        let bad = Config::from_toml("[[exporters]]\nname = \"x\"\npreset = \"splunk\"\n");
        assert!(
            bad.unwrap_err().contains("preset"),
            "unknown presets are parse errors"
        );
    }

    #[test]
    fn credentials_from_env_or_file_into_the_vendor_header() {
        let env = |name: &str| (name == "NR_KEY").then(|| " nr-secret\n".to_owned());
        let c =
            load("[[exporters]]\nname = \"nr\"\npreset = \"newrelic\"\napi_key_env = \"NR_KEY\"\n");
        let headers = preset_headers(&c.exporters[0], &env).unwrap();
        assert_eq!(headers.all, [("api-key", "nr-secret".to_owned())]);
        assert!(
            !format!("{headers:?}").contains("nr-secret"),
            "Debug hides values"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "glc_token\n").unwrap();
        let c = load(&format!(
            "[[exporters]]\nname = \"gc\"\npreset = \"grafana-cloud\"\nregion = \"prod-eu-west-0\"\n\
             instance_id = \"123456\"\napi_key_file = \"{}\"\n",
            file.display()
        ));
        let headers = preset_headers(&c.exporters[0], &|_| None).unwrap();
        // base64("123456:glc_token")
        assert_eq!(
            headers.all,
            [("authorization", "Basic MTIzNDU2OmdsY190b2tlbg==".to_owned())]
        );

        let c = load(
            "[[exporters]]\nname = \"hc\"\npreset = \"honeycomb\"\napi_key_env = \"HC\"\n\
             dataset = \"rum-metrics\"\n",
        );
        let env = |_: &str| Some("hc-key".to_owned());
        let headers = preset_headers(&c.exporters[0], &env).unwrap();
        assert_eq!(headers.all, [("x-honeycomb-team", "hc-key".to_owned())]);
        assert_eq!(
            headers.metrics,
            [("x-honeycomb-dataset", "rum-metrics".to_owned())]
        );

        let missing = preset_headers(&c.exporters[0], &|_| None).unwrap_err();
        assert_eq!(missing.to_string(), "environment variable HC is not set");
        let blank = preset_headers(&c.exporters[0], &|_| Some("  ".into())).unwrap_err();
        assert!(matches!(blank, CredentialError::Empty(_)));
    }
}
