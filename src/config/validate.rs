//! Rules the config types cannot express (uniqueness, ranges, URL and origin syntax).
//!
//! Each problem is one line that starts with the key it concerns, as written in the file
//! (`apps[1].key: duplicate key "pk_x"`), so the operator knows exactly what to fix; [`super::locate`]
//! then adds the file and line (or the environment variable) the value came from. All problems
//! are collected, not just the first.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{
    check_endpoint_url, BufferSync, Config, ExporterConfig, Protocol, Temporality,
    MIN_BUFFER_MAX_BYTES,
};

/// Every problem in `config`; empty when it is valid.
pub(super) fn problems(config: &Config) -> Vec<String> {
    let mut p = Problems(Vec::new());
    server(config, &mut p);
    limits(config, &mut p);
    metrics(config, &mut p);
    telemetry(config, &mut p);
    p.0.extend(config.privacy.problems());
    p.0.extend(config.rate_limits.problems());
    p.0.extend(config.sampling.problems());
    p.0.extend(config.sourcemaps.problems());
    p.0.extend(config.routes.problems());
    if let Some(path) = &config.geo.database {
        if !path.is_file() {
            p.add(
                "geo.database",
                format!("`{}` is not a readable file", path.display()),
            );
        }
    }
    for key in config.resource_attributes.keys() {
        if key.trim().is_empty() {
            p.add("resource_attributes", "keys must not be empty");
        }
    }
    apps(config, &mut p);
    let mut unique = Unique::default();
    for (i, exporter) in config.exporters.iter().enumerate() {
        unique.check(i, exporter, &mut p);
        self::exporter(
            &format!("exporters[{i}]"),
            exporter,
            config.metrics.temporality,
            &mut p,
        );
    }
    p.0
}

/// What the export stage needs of its exporter list: unique names and buffer directories, and
/// sizes that are not zero. `Exporters::start` checks it again, since it may be given
/// exporters that never went through a file; the rules are the same functions
/// [`problems`] applies.
pub fn exporter_set_problems(exporters: &[ExporterConfig]) -> Vec<String> {
    let mut p = Problems(Vec::new());
    let mut unique = Unique::default();
    for (i, e) in exporters.iter().enumerate() {
        unique.check(i, e, &mut p);
        sizes(&format!("exporters[{i}]"), e, &mut p);
    }
    p.0
}

/// Exporter names and buffer directories seen so far.
#[derive(Default)]
struct Unique<'a> {
    names: HashSet<&'a str>,
    buffer_dirs: HashMap<&'a std::path::Path, usize>,
}

impl<'a> Unique<'a> {
    fn check(&mut self, i: usize, e: &'a ExporterConfig, p: &mut Problems) {
        let at = format!("exporters[{i}]");
        if !e.name.is_empty() && !self.names.insert(e.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("duplicate exporter name {:?}", e.name),
            );
        }
        if let Some(dir) = &e.buffer_dir {
            if let Some(first) = self.buffer_dirs.get(dir.as_path()) {
                p.add(
                    format!("{at}.buffer_dir"),
                    format!(
                        "{} is already the buffer of exporters[{first}]; each exporter needs its \
                         own directory",
                        dir.display()
                    ),
                );
            } else {
                self.buffer_dirs.insert(dir, i);
            }
        }
    }
}

/// Queue and batch sizes must not be zero.
fn sizes(at: &str, e: &ExporterConfig, p: &mut Problems) {
    p.positive(format!("{at}.queue.capacity"), e.queue.capacity);
    p.positive(format!("{at}.queue.concurrency"), e.queue.concurrency);
    p.positive(format!("{at}.queue.max_bytes"), e.queue.max_bytes);
    p.positive(format!("{at}.batch.max_items"), e.batch.max_items);
    p.positive(format!("{at}.batch.max_bytes"), e.batch.max_bytes);
}

struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, key: impl std::fmt::Display, message: impl std::fmt::Display) {
        self.0.push(format!("{key}: {message}"));
    }

    fn positive(&mut self, key: impl std::fmt::Display, value: usize) {
        if value == 0 {
            self.add(key, "must be greater than 0");
        }
    }

    fn non_zero_duration(&mut self, key: impl std::fmt::Display, value: Duration) {
        if value.is_zero() {
            self.add(key, "must be greater than 0");
        }
    }

    fn non_empty(&mut self, key: impl std::fmt::Display, value: &str) {
        if value.trim().is_empty() {
            self.add(key, "must not be empty");
        }
    }

    fn url(&mut self, key: impl std::fmt::Display, value: &str) {
        if let Err(message) = check_endpoint_url(value) {
            self.add(key, message);
        }
    }
}

fn server(config: &Config, p: &mut Problems) {
    let (public, admin) = (config.server.listen, config.server.admin_listen);
    let overlapping_ip =
        public.ip() == admin.ip() || public.ip().is_unspecified() || admin.ip().is_unspecified();
    if public.port() == admin.port() && public.port() != 0 && overlapping_ip {
        p.add(
            "server.admin_listen",
            format!(
                "{admin} overlaps server.listen {public}; the admin API must never be served on \
                 the public listener"
            ),
        );
    }
    for (i, proxy) in config.server.trusted_proxies.iter().enumerate() {
        if let Err(message) = super::parse_proxy(proxy) {
            p.add(format!("server.trusted_proxies[{i}]"), message);
        }
    }
    p.0.extend(config.server.problems());
}

fn limits(config: &Config, p: &mut Problems) {
    let l = &config.limits;
    p.positive("limits.max_body_bytes", l.max_body_bytes);
    p.positive("limits.max_decompressed_bytes", l.max_decompressed_bytes);
    p.positive("limits.max_events_per_batch", l.max_events_per_batch);
    p.positive(
        "limits.max_resources_per_page_load",
        l.max_resources_per_page_load,
    );
    p.positive("limits.max_attribute_value_len", l.max_attribute_value_len);
    p.positive("limits.max_attributes_per_item", l.max_attributes_per_item);
    p.positive("limits.max_events_per_span", l.max_events_per_span);
    p.positive("limits.max_links_per_span", l.max_links_per_span);
}

fn metrics(config: &Config, p: &mut Problems) {
    let m = &config.metrics;
    if m.instance_id
        .as_deref()
        .is_some_and(|id| id.trim().is_empty())
    {
        p.add(
            "metrics.instance_id",
            "must not be empty (leave it unset for a random id)",
        );
    }
    if m.interval < Duration::from_secs(1) {
        p.add("metrics.interval", "must be at least 1s");
    }
    p.positive("metrics.cardinality_limit", m.cardinality_limit);
}

fn telemetry(config: &Config, p: &mut Problems) {
    let t = &config.telemetry;
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&t.log_level) {
        p.add(
            "telemetry.log_level",
            format!("invalid filter {:?}: {e}", t.log_level),
        );
    }
    if let Some(name) = &t.service_name {
        p.non_empty("telemetry.service_name", name);
    }
    match &t.self_traces_endpoint {
        Some(url) => p.url("telemetry.self_traces_endpoint", url),
        None if t.self_traces
            && !config
                .exporters
                .iter()
                .any(|e| e.protocol == Protocol::Grpc) =>
        {
            p.add(
                "telemetry.self_traces",
                "needs telemetry.self_traces_endpoint or an exporter with protocol \"grpc\"",
            )
        }
        None => {}
    }
}

fn apps(config: &Config, p: &mut Problems) {
    let mut keys = HashSet::new();
    for (i, app) in config.apps.iter().enumerate() {
        let at = format!("apps[{i}]");
        p.non_empty(format!("{at}.name"), &app.name);
        if app.key.is_empty() {
            p.add(format!("{at}.key"), "must not be empty");
        } else if let Some(bad) = app
            .key
            .chars()
            .find(|c| !c.is_ascii_graphic() || "/?#%&+".contains(*c))
        {
            p.add(
                format!("{at}.key"),
                format!(
                    "{bad:?} is not allowed (keys travel in URL paths and query strings: use \
                     visible ASCII without / ? # % & +)"
                ),
            );
        } else if !keys.insert(app.key.as_str()) {
            p.add(format!("{at}.key"), format!("duplicate key {:?}", app.key));
        }
        for (j, origin) in app.allowed_origins.iter().enumerate() {
            if let Err(message) = check_origin(origin) {
                p.add(format!("{at}.allowed_origins[{j}]"), message);
            }
        }
        if let Some(env) = &app.environment {
            p.non_empty(format!("{at}.environment"), env);
        }
        if let Some(version) = &app.version {
            p.non_empty(format!("{at}.version"), version);
        }
        if let Some(rate) = app.sample_rate {
            if !(0.0..=1.0).contains(&rate) {
                p.add(
                    format!("{at}.sample_rate"),
                    format!("{rate} is not between 0 and 1"),
                );
            }
        }
    }
}

/// An allowed origin is `*` or exactly what a browser sends in `Origin`:
/// `scheme://host[:port]`, lowercase, no path, no default port.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let shape = || format!("{origin:?} is not an origin (scheme://host[:port], or \"*\")");
    let (scheme, rest) = origin.split_once("://").ok_or_else(shape)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !scheme_ok {
        return Err(shape());
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "{origin:?} has a path, query or fragment; an origin is scheme://host[:port] only \
             (browsers send no trailing \"/\")"
        ));
    }
    let authority: http::uri::Authority = rest.parse().map_err(|_| shape())?;
    let host = authority.host();
    if rest.contains('*') {
        return Err(format!(
            "{origin:?}: wildcards are not supported; list each origin, or use \"*\" alone"
        ));
    }
    let host_ok = if host.starts_with('[') {
        host.ends_with(']')
    } else {
        // Browsers send international names in punycode, so ASCII is all that can match.
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    };
    if rest.contains('@') || !host_ok {
        return Err(shape());
    }
    if rest != rest.to_ascii_lowercase() {
        return Err(format!("{origin:?} must be lowercase, as browsers send it"));
    }
    let default_port = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    if authority.port_u16().is_some() && authority.port_u16() == default_port {
        return Err(format!(
            "{origin:?} names the default port, which browsers omit from Origin; drop \":{}\"",
            authority.port_u16().unwrap_or_default()
        ));
    }
    Ok(())
}

fn exporter(at: &str, e: &ExporterConfig, temporality: Temporality, p: &mut Problems) {
    p.non_empty(format!("{at}.name"), &e.name);
    let endpoints = [
        ("endpoint", &e.endpoint),
        ("traces_endpoint", &e.traces_endpoint),
        ("logs_endpoint", &e.logs_endpoint),
        ("metrics_endpoint", &e.metrics_endpoint),
    ];
    if e.protocol == Protocol::File {
        if e.path.is_none() {
            p.add(format!("{at}.path"), "required for protocol \"file\"");
        }
        for (key, value) in endpoints {
            if value.is_some() {
                p.add(format!("{at}.{key}"), "not used with protocol \"file\"");
            }
        }
    } else {
        if e.path.is_some() {
            p.add(format!("{at}.path"), "only used with protocol \"file\"");
        }
        let every_signal_has_own = endpoints[1..].iter().all(|(_, v)| v.is_some());
        if e.endpoint.is_none() && !every_signal_has_own {
            p.add(
                format!("{at}.endpoint"),
                format!(
                    "required for protocol {:?} (unless traces_endpoint, logs_endpoint and \
                     metrics_endpoint are all set)",
                    protocol_name(e.protocol)
                ),
            );
        }
        for (key, value) in endpoints {
            if let Some(url) = value {
                p.url(format!("{at}.{key}"), url);
            }
        }
    }
    for (name, value) in &e.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            p.add(
                format!("{at}.headers"),
                format!("{name:?} is not a valid header name"),
            );
        }
        // The value is a secret: never echo it.
        if http::HeaderValue::from_str(value).is_err() {
            p.add(
                format!("{at}.headers.{name}"),
                "value is not a valid header value (control characters or non-ASCII)",
            );
        }
    }
    p.non_zero_duration(format!("{at}.timeout"), e.timeout);
    sizes(at, e, p);
    p.non_zero_duration(format!("{at}.batch.timeout"), e.batch.timeout);
    if let Some(dir) = &e.buffer_dir {
        if dir.as_os_str().is_empty() {
            p.add(format!("{at}.buffer_dir"), "must not be empty");
        }
        if e.protocol == Protocol::File {
            p.add(
                format!("{at}.buffer_dir"),
                "not used with protocol \"file\" (it writes to disk already)",
            );
        }
        if e.buffer_max_bytes < MIN_BUFFER_MAX_BYTES {
            p.add(
                format!("{at}.buffer_max_bytes"),
                format!("must be at least {MIN_BUFFER_MAX_BYTES} (1 MiB)"),
            );
        }
        if let BufferSync::Interval(interval) = e.buffer_sync {
            p.non_zero_duration(format!("{at}.buffer_sync"), interval);
        }
    }
    tls(at, e, p);
    super::presets::problems(at, e, temporality, &mut |key, message| p.add(key, message));
    if let Some(0) = e.max_attribute_value_len {
        p.add(
            format!("{at}.max_attribute_value_len"),
            "must be greater than 0",
        );
    }
    if e.retry.enabled {
        p.non_zero_duration(
            format!("{at}.retry.initial_backoff"),
            e.retry.initial_backoff,
        );
        if e.retry.max_backoff < e.retry.initial_backoff {
            p.add(
                format!("{at}.retry.max_backoff"),
                "must not be less than retry.initial_backoff",
            );
        }
    }
}

fn tls(at: &str, e: &ExporterConfig, p: &mut Problems) {
    let tls = &e.tls;
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        p.add(
            format!("{at}.tls"),
            "cert_file and key_file must be set together",
        );
    }
    let files = [
        ("ca_file", &tls.ca_file),
        ("cert_file", &tls.cert_file),
        ("key_file", &tls.key_file),
    ];
    for (key, path) in files {
        if let Some(path) = path.as_ref().filter(|path| !path.is_file()) {
            p.add(
                format!("{at}.tls.{key}"),
                format!("{} is not a readable file", path.display()),
            );
        }
    }
    if let Some(name) = &tls.server_name {
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            p.add(
                format!("{at}.tls.server_name"),
                format!("{name:?} is not a DNS name or IP address"),
            );
        }
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
        Protocol::HttpJson => "http/json",
        Protocol::File => "file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, Config};

    fn app(name: &str, key: &str) -> AppConfig {
        AppConfig {
            name: name.into(),
            key: key.into(),
            allowed_origins: vec![],
            environment: None,
            version: None,
            sample_rate: None,
        }
    }

    fn valid() -> Config {
        let mut c = Config::default();
        c.exporters.push(ExporterConfig::embedded_default());
        c
    }

    /// Asserts `config` has exactly the given problems.
    fn assert_problems(config: &Config, expected: &[&str]) {
        assert_eq!(problems(config), expected);
    }

    #[test]
    fn defaults_with_embedded_exporter_are_valid() {
        assert_problems(&valid(), &[]);
    }

    #[test]
    fn duplicate_app_key_names_the_second() {
        let mut c = valid();
        c.apps = vec![app("a", "pk_x"), app("b", "pk_x")];
        assert_problems(&c, &[r#"apps[1].key: duplicate key "pk_x""#]);
    }

    #[test]
    fn app_fields() {
        let mut c = valid();
        let mut a = app("", "pk a");
        a.sample_rate = Some(1.5);
        a.environment = Some(String::new());
        c.apps = vec![a];
        assert_problems(
            &c,
            &[
                "apps[0].name: must not be empty",
                "apps[0].key: ' ' is not allowed (keys travel in URL paths and query strings: \
                 use visible ASCII without / ? # % & +)",
                "apps[0].environment: must not be empty",
                "apps[0].sample_rate: 1.5 is not between 0 and 1",
            ],
        );
        c.apps[0].sample_rate = Some(f64::NAN);
        assert!(problems(&c)
            .iter()
            .any(|m| m.starts_with("apps[0].sample_rate")));
    }

    #[test]
    fn origins() {
        for ok in [
            "*",
            "https://shop.example.com",
            "http://localhost:3000",
            "https://[::1]:8443",
            "chrome-extension://abcdef",
        ] {
            assert_eq!(check_origin(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("shop.example.com", "is not an origin"),
            ("https://shop.example.com/", "has a path"),
            ("https://shop.example.com/app", "has a path"),
            ("https://Shop.example.com", "must be lowercase"),
            ("https://shop.example.com:443", "default port"),
            ("https://user@shop.example.com", "is not an origin"),
            ("https://", "is not an origin"),
            ("https://*.example.com", "wildcards are not supported"),
            ("https://shop!.example.com", "is not an origin"),
        ] {
            let err = check_origin(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        let mut c = valid();
        let mut a = app("a", "k");
        a.allowed_origins = vec!["*".into(), "https://x.com/".into()];
        c.apps = vec![a];
        let found = problems(&c);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("apps[0].allowed_origins[1]: "),
            "{found:?}"
        );
    }

    #[test]
    fn exporter_rules() {
        let mut c = Config::default();
        let mut file = ExporterConfig::new("out", Protocol::File);
        file.endpoint = Some("http://c:4317".into());
        let mut grpc = ExporterConfig::new("out", Protocol::Grpc);
        grpc.endpoint = Some("c:4317".into());
        grpc.path = Some("/tmp".into());
        grpc.headers.insert("bad header".into(), "v".into());
        grpc.headers.insert("x-key".into(), "sec\nret".into());
        let mut http = ExporterConfig::new("", Protocol::HttpProtobuf);
        http.traces_endpoint = Some("http://t:4318/v1/traces".into());
        http.batch.max_items = 0;
        http.retry.max_backoff = Duration::from_millis(1);
        c.exporters = vec![file, grpc, http];
        let found = problems(&c);
        let expected = [
            "exporters[0].path: required for protocol \"file\"",
            "exporters[0].endpoint: not used with protocol \"file\"",
            "exporters[1].name: duplicate exporter name \"out\"",
            "exporters[1].path: only used with protocol \"file\"",
            "exporters[1].endpoint: invalid URL \"c:4317\"",
            "exporters[1].headers: \"bad header\" is not a valid header name",
            "exporters[1].headers.x-key: value is not a valid header value",
            "exporters[2].name: must not be empty",
            "exporters[2].endpoint: required for protocol \"http/protobuf\"",
            "exporters[2].batch.max_items: must be greater than 0",
            "exporters[2].retry.max_backoff: must not be less than retry.initial_backoff",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (got, want) in found.iter().zip(expected) {
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
        assert!(
            !found.iter().any(|m| m.contains("sec\nret")),
            "header values are secrets"
        );
    }

    #[test]
    fn buffer_rules() {
        let buffered = |dir: &str| {
            let mut e = ExporterConfig::new(dir, Protocol::Grpc);
            e.endpoint = Some("http://c:4317".into());
            e.buffer_dir = Some(dir.into());
            e
        };
        let mut c = Config::default();
        let mut small = buffered("/var/lib/a");
        small.buffer_max_bytes = MIN_BUFFER_MAX_BYTES - 1;
        small.buffer_sync = BufferSync::Interval(Duration::ZERO);
        let mut unbuffered_small = ExporterConfig::embedded_default();
        unbuffered_small.name = "plain".into();
        unbuffered_small.buffer_max_bytes = 0;
        let mut file = ExporterConfig::embedded_default();
        file.buffer_dir = Some("/var/lib/f".into());
        c.exporters = vec![small, buffered("/var/lib/b"), unbuffered_small, file];
        c.exporters[1].buffer_dir = Some("/var/lib/a".into());
        assert_problems(
            &c,
            &[
                "exporters[0].buffer_max_bytes: must be at least 1048576 (1 MiB)",
                "exporters[0].buffer_sync: must be greater than 0",
                "exporters[1].buffer_dir: /var/lib/a is already the buffer of exporters[0]; \
                 each exporter needs its own directory",
                "exporters[3].buffer_dir: not used with protocol \"file\" (it writes to disk \
                 already)",
            ],
        );
    }

    #[test]
    fn tls_rules() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let mut e = ExporterConfig::new("x", Protocol::Grpc);
        e.endpoint = Some("https://c:4317".into());
        e.tls.ca_file = Some(ca);
        e.tls.cert_file = Some(dir.path().join("missing.pem"));
        e.tls.server_name = Some("bad name".into());
        let c = Config {
            exporters: vec![e],
            ..Config::default()
        };
        let found = problems(&c);
        let expected = [
            "exporters[0].tls: cert_file and key_file must be set together",
            "exporters[0].tls.cert_file: ",
            "exporters[0].tls.server_name: \"bad name\" is not a DNS name or IP address",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (got, want) in found.iter().zip(expected) {
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn all_per_signal_endpoints_make_base_optional() {
        let mut e = ExporterConfig::new("x", Protocol::HttpJson);
        e.traces_endpoint = Some("http://t/v1/traces".into());
        e.logs_endpoint = Some("http://t/v1/logs".into());
        e.metrics_endpoint = Some("https://t/v1/metrics".into());
        let c = Config {
            exporters: vec![e],
            ..Config::default()
        };
        assert_problems(&c, &[]);
    }

    #[test]
    fn server_limits_metrics_telemetry() {
        let mut c = valid();
        c.server.admin_listen = "0.0.0.0:4380".parse().unwrap();
        c.limits.max_body_bytes = 0;
        c.metrics.interval = Duration::from_millis(999);
        c.metrics.cardinality_limit = 0;
        c.telemetry.log_level = "rum_bridge=loud".into();
        c.telemetry.self_traces = true;
        c.resource_attributes.insert(" ".into(), "v".into());
        let found = problems(&c);
        let prefixes = [
            "server.admin_listen: 0.0.0.0:4380 overlaps server.listen 127.0.0.1:4380",
            "limits.max_body_bytes: must be greater than 0",
            "metrics.interval: must be at least 1s",
            "metrics.cardinality_limit: must be greater than 0",
            "telemetry.log_level: invalid filter",
            "telemetry.self_traces: needs telemetry.self_traces_endpoint",
            "resource_attributes: keys must not be empty",
        ];
        assert_eq!(found.len(), prefixes.len(), "{found:#?}");
        for (got, want) in found.iter().zip(prefixes) {
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
        c.server.admin_listen = "127.0.0.1:4381".parse().unwrap();
        c.telemetry.self_traces_endpoint = Some("http://127.0.0.1:4317".into());
        assert!(!problems(&c)
            .iter()
            .any(|m| m.starts_with("server.") || m.starts_with("telemetry.self")));
    }
}
