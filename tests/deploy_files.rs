//! The deployment files (`docker/`, `examples/`) checked the way they can be without a Docker
//! engine or a cluster: every YAML and JSON file parses; the compose stack references only files
//! that exist and services that are there, on the ports those services listen on; every rum-bridge
//! configuration passes `rum-bridge check-config`; the collector, Prometheus and Grafana files
//! are wired to each other; the RUM dashboard queries only metrics and labels that the bridge
//! really exports (checked against a running bridge, through the collector's Prometheus naming
//! rules); the images build with the repository's release build script; the container health
//! check works against a live admin listener; the Kubernetes manifests probe the admin port and
//! expose only the public one.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{free_port, grpc_exporter_toml, poll, repo_root, Bridge, Sink, WAIT};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, Metric};
use promql_parser::parser::{Expr, LabelModifier};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;

/// Directories whose files users copy.
const DEPLOY_DIRS: [&str; 2] = ["docker", "examples"];

// ---------------------------------------------------------------------------------------------
// Files

/// Every file under the deploy directories whose name ends with one of `extensions`, sorted.
fn deploy_files(extensions: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, extensions, out);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in DEPLOY_DIRS {
        walk(&repo_root().join(dir), extensions, &mut files);
    }
    files.sort();
    files
}

fn read(relative: impl AsRef<Path>) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a YAML file (`---`-separated), as JSON values.
fn yaml_documents(relative: impl AsRef<Path>) -> Vec<Value> {
    let relative = relative.as_ref();
    let text = read(relative);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
        })
        .collect()
}

fn yaml(relative: impl AsRef<Path>) -> Value {
    let relative = relative.as_ref();
    let mut docs = yaml_documents(relative);
    assert_eq!(docs.len(), 1, "{}: one document", relative.display());
    docs.remove(0)
}

fn json(relative: impl AsRef<Path>) -> Value {
    let relative = relative.as_ref();
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `host` and `port` of `http://host:port/path`, `host:port` or `[v6]:port`.
fn host_port(address: &str) -> (String, u16) {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address}: no port"));
    (
        host.trim_matches(['[', ']']).to_owned(),
        port.parse().unwrap(),
    )
}

#[test]
fn every_yaml_and_json_file_parses() {
    let yamls = deploy_files(&["yaml", "yml"]);
    let jsons = deploy_files(&["json"]);
    assert!(yamls.len() >= 9, "found only {yamls:?}");
    assert!(!jsons.is_empty());
    for path in &yamls {
        let docs = yaml_documents(path);
        assert!(
            !docs.is_empty() && docs.iter().all(Value::is_object),
            "{}: every document is a mapping",
            path.display()
        );
    }
    for path in &jsons {
        assert!(json(path).is_object(), "{}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The compose stack

const COMPOSE: &str = "docker/compose.yaml";

struct Compose {
    doc: Value,
}

impl Compose {
    fn load() -> Compose {
        Compose { doc: yaml(COMPOSE) }
    }

    fn services(&self) -> &serde_json::Map<String, Value> {
        self.doc["services"].as_object().expect("services")
    }

    fn service(&self, name: &str) -> &Value {
        self.services()
            .get(name)
            .unwrap_or_else(|| panic!("{COMPOSE}: no service {name}"))
    }

    /// The bind mounts of a service: (host path relative to the repository, container path).
    fn bind_mounts(&self, service: &str) -> Vec<(PathBuf, String)> {
        strings(&self.service(service)["volumes"])
            .into_iter()
            .filter(|v| v.starts_with('.') || v.starts_with('/'))
            .map(|v| {
                let mut parts = v.split(':');
                let host = parts.next().unwrap();
                let container = parts.next().expect("container path").to_owned();
                (Path::new("docker").join(host), container)
            })
            .collect()
    }

    /// The repository file that a container path of `service` shows, through its bind mounts.
    fn host_file(&self, service: &str, container_path: &str) -> PathBuf {
        let mount = self
            .bind_mounts(service)
            .into_iter()
            .filter(|(_, target)| {
                container_path == target
                    || container_path.starts_with(&format!("{}/", target.trim_end_matches('/')))
            })
            .max_by_key(|(_, target)| target.len())
            .unwrap_or_else(|| panic!("{service}: nothing is mounted at {container_path}"));
        let rest = container_path[mount.1.len()..].trim_start_matches('/');
        if rest.is_empty() {
            mount.0
        } else {
            mount.0.join(rest)
        }
    }

    /// Checks that `address` names a compose service.
    fn assert_service_address(&self, address: &str, what: &str) -> (String, u16) {
        let (host, port) = host_port(address);
        assert!(
            self.services().contains_key(&host),
            "{what}: {address} is not a service of {COMPOSE}"
        );
        (host, port)
    }
}

#[test]
fn compose_references_only_files_and_services_that_exist() {
    let compose = Compose::load();
    let root = repo_root();
    let declared_volumes: BTreeSet<&str> = compose.doc["volumes"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for expected in [
        "rum-bridge",
        "demo-shop",
        "otel-collector",
        "jaeger",
        "tempo",
        "prometheus",
        "grafana",
    ] {
        compose.service(expected);
    }
    for (name, service) in compose.services() {
        if let Some(build) = service.get("build") {
            let context = root.join("docker").join(str_of(&build["context"], name));
            assert!(context.is_dir(), "{name}: build context {context:?}");
            let dockerfile = context.join(str_of(&build["dockerfile"], name));
            assert!(dockerfile.is_file(), "{name}: {dockerfile:?}");
        } else {
            let image = str_of(&service["image"], name);
            let tag = image.rsplit_once(':').map(|(_, tag)| tag);
            assert!(
                tag.is_some_and(|t| t != "latest" && !t.contains('/')),
                "{name}: pin the image version ({image})"
            );
        }
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with('.') {
                let path = root.join("docker").join(source);
                assert!(
                    path.exists(),
                    "{name}: mounts {path:?}, which does not exist"
                );
            } else {
                assert!(
                    declared_volumes.contains(source),
                    "{name}: volume {source} is not declared"
                );
            }
        }
        let depends: Vec<&str> = match &service["depends_on"] {
            Value::Array(_) => strings(&service["depends_on"]),
            Value::Object(m) => m.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        for dependency in depends {
            compose.service(dependency);
        }
        // Files named on the command line or in the environment are mounted.
        let mut paths: Vec<&str> = strings(&service["command"])
            .into_iter()
            .filter_map(|arg| arg.rsplit_once('=').map(|(_, v)| v))
            .collect();
        if let Some(env) = service["environment"].as_object() {
            paths.extend(env.values().filter_map(Value::as_str));
        }
        for path in paths.into_iter().filter(|p| {
            p.starts_with('/')
                && [".yaml", ".yml", ".toml", ".json"]
                    .iter()
                    .any(|ext| p.ends_with(ext))
        }) {
            let host = root.join(compose.host_file(name, path));
            assert!(host.is_file(), "{name}: {path} shows {host:?}, missing");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rum-bridge configurations

/// `rum-bridge check-config` on `file`, with an empty environment (no OTEL_* overlay).
fn check_config(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rum-bridge"))
        .arg("check-config")
        .arg(file)
        .env_clear()
        .output()
        .unwrap()
}

/// Asserts that `file` is valid and exports over OTLP (not the embedded file default); returns
/// the effective configuration.
fn assert_valid_otlp_config(file: &Path, what: &str) -> toml::Value {
    let out = check_config(file);
    assert!(
        out.status.success(),
        "{what}: check-config failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective: toml::Value = toml::from_str(&String::from_utf8(out.stdout).unwrap())
        .unwrap_or_else(|e| panic!("{what}: effective config: {e}"));
    let exporters = effective["exporters"].as_array().expect("exporters");
    assert!(
        !exporters.is_empty()
            && exporters
                .iter()
                .all(|e| e["protocol"].as_str() != Some("file")),
        "{what}: exports over OTLP"
    );
    effective
}

/// The rum-bridge configurations embedded in the Kubernetes ConfigMaps: (file, configmap, toml).
fn configmap_configs() -> Vec<(PathBuf, String, String)> {
    let mut configs = Vec::new();
    for file in deploy_files(&["yaml"]) {
        if !file.starts_with(repo_root().join("examples/k8s")) {
            continue;
        }
        for doc in yaml_documents(&file) {
            if doc["kind"] != "ConfigMap" {
                continue;
            }
            for (key, value) in doc["data"].as_object().unwrap() {
                if key.ends_with(".toml") {
                    let name = str_of(&doc["metadata"]["name"], "ConfigMap name").to_owned();
                    configs.push((file.clone(), name, str_of(value, key).to_owned()));
                }
            }
        }
    }
    configs
}

#[test]
fn every_rum_bridge_config_passes_check_config() {
    let files = deploy_files(&["toml"]);
    assert!(files.len() >= 6, "found only {files:?}");
    for file in &files {
        assert_valid_otlp_config(file, &file.display().to_string());
    }
    let embedded = configmap_configs();
    assert_eq!(embedded.len(), 2, "one ConfigMap per Kubernetes example");
    let dir = tempfile::tempdir().unwrap();
    for (file, configmap, text) in embedded {
        let path = dir.path().join(format!("{configmap}.toml"));
        std::fs::write(&path, text).unwrap();
        assert_valid_otlp_config(&path, &format!("{}: {configmap}", file.display()));
    }
}

#[test]
fn the_compose_bridge_is_configured_for_the_container() {
    let compose = Compose::load();
    let bridge = compose.service("rum-bridge");
    let config_path = str_of(
        &bridge["environment"]["RUM_BRIDGE_CONFIG"],
        "RUM_BRIDGE_CONFIG",
    );
    let file = repo_root().join(compose.host_file("rum-bridge", config_path));
    let config = assert_valid_otlp_config(&file, "docker/rum-bridge.toml");
    assert_eq!(config["server"]["listen"].as_str(), Some("0.0.0.0:4380"));
    let published: Vec<&str> = strings(&bridge["ports"]);
    assert!(published.contains(&"4380:4380"), "{published:?}");
    assert!(
        published
            .iter()
            .all(|p| !p.ends_with(":4381") || p.starts_with("127.0.0.1:")),
        "the admin port is published on loopback only: {published:?}"
    );
    // The bridge exports to the collector's OTLP/gRPC receiver.
    let exporter = &config["exporters"][0];
    assert_eq!(exporter["protocol"].as_str(), Some("grpc"));
    let (host, port) = compose.assert_service_address(
        exporter["endpoint"].as_str().unwrap(),
        "rum-bridge exporter",
    );
    assert_eq!(host, "otel-collector");
    let collector = yaml("docker/otel-collector.yaml");
    let grpc = str_of(
        &collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        "otlp grpc endpoint",
    );
    assert_eq!(host_port(grpc).1, port);
    // Metrics are cumulative: the collector's Prometheus exporter needs that.
    assert_eq!(
        config["metrics"]["temporality"].as_str(),
        Some("cumulative")
    );
    // The demo page's origin may send.
    let origins: Vec<&str> = config["apps"][0]["allowed_origins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert!(origins.contains(&"http://localhost:8080"), "{origins:?}");
    let shop_env = &compose.service("demo-shop")["environment"];
    let shop_key = str_of(&shop_env["RUM_APP_KEY"], "RUM_APP_KEY");
    assert_eq!(config["apps"][0]["key"].as_str(), Some(shop_key));
    // Every variable compose sets for the demo shop is one the demo shop reads.
    let source = std::fs::read_to_string(repo_root().join("examples/demo-shop/main.rs")).unwrap();
    for key in shop_env.as_object().expect("environment as a map").keys() {
        let key = key.as_str();
        assert!(
            source.contains(&format!("env = \"{key}\"")),
            "demo-shop does not read {key}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Collector, Prometheus, Tempo, Grafana

/// The component type of a collector component id (`otlp_grpc/jaeger` → `otlp_grpc`).
fn component_type(id: &str) -> &str {
    id.split('/').next().unwrap()
}

/// Every component a pipeline names is defined, every defined receiver, exporter and connector
/// is used. Returns the pipelines.
fn assert_pipelines_consistent(cfg: &Value, what: &str) -> serde_json::Map<String, Value> {
    let defined = |section: &str| -> BTreeSet<String> {
        cfg[section]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let connectors = defined("connectors");
    let pipelines = cfg["service"]["pipelines"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no pipelines"))
        .clone();
    let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, pipeline) in &pipelines {
        for (role, section) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for id in strings(&pipeline[role]) {
                let known = defined(section).contains(id) || connectors.contains(id);
                assert!(known, "{what}: pipeline {name} names undefined {id}");
                used.entry(section).or_default().insert(id.to_owned());
            }
        }
    }
    for section in ["receivers", "exporters"] {
        for id in defined(section) {
            assert!(
                used.get(section).is_some_and(|u| u.contains(&id)),
                "{what}: {id} is defined but no pipeline uses it"
            );
        }
    }
    for id in connectors {
        assert!(
            used["exporters"].contains(&id) && used["receivers"].contains(&id),
            "{what}: connector {id} must end one pipeline and start another"
        );
    }
    pipelines
}

/// The exporters of `pipeline` whose type is one of `types`, with their configs.
fn exporters_of<'a>(
    cfg: &'a Value,
    pipelines: &serde_json::Map<String, Value>,
    pipeline: &str,
    types: &[&str],
) -> Vec<(String, &'a Value)> {
    strings(&pipelines[pipeline]["exporters"])
        .into_iter()
        .filter(|id| types.contains(&component_type(id)))
        .map(|id| (id.to_owned(), &cfg["exporters"][id]))
        .collect()
}

const OTLP_GRPC: &[&str] = &["otlp_grpc", "otlp"];
const OTLP_HTTP: &[&str] = &["otlp_http", "otlphttp"];

#[test]
fn the_collector_receives_otlp_and_feeds_every_backend() {
    let compose = Compose::load();
    let cfg = yaml("docker/otel-collector.yaml");
    let what = "docker/otel-collector.yaml";
    let mounted = compose.host_file("otel-collector", "/etc/otelcol-contrib/config.yaml");
    assert_eq!(mounted, Path::new(what));
    let pipelines = assert_pipelines_consistent(&cfg, what);
    let protocols = &cfg["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(protocols["http"]["endpoint"], "0.0.0.0:4318");
    for pipeline in ["traces", "metrics", "logs"] {
        assert!(
            strings(&pipelines[pipeline]["receivers"]).contains(&"otlp"),
            "{pipeline} receives OTLP"
        );
        assert!(
            strings(&pipelines[pipeline]["processors"]).contains(&"batch"),
            "{pipeline} batches"
        );
    }

    // Traces: Jaeger and Tempo, on the port their OTLP/gRPC receivers listen on.
    let trace_hosts: BTreeSet<String> = exporters_of(&cfg, &pipelines, "traces", OTLP_GRPC)
        .into_iter()
        .map(|(id, exporter)| {
            let (host, port) =
                compose.assert_service_address(str_of(&exporter["endpoint"], &id), &id);
            assert_eq!(port, 4317, "{id}");
            assert_eq!(exporter["tls"]["insecure"], true, "{id}: plain gRPC");
            host
        })
        .collect();
    assert_eq!(
        trace_hosts,
        BTreeSet::from(["jaeger".into(), "tempo".into()])
    );
    let tempo = yaml("docker/tempo.yaml");
    let tempo_grpc = str_of(
        &tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        "tempo grpc",
    );
    assert_eq!(host_port(tempo_grpc).1, 4317);

    // Metrics: the Prometheus exporter, in OpenMetrics (exemplars), scraped by Prometheus.
    let prom = exporters_of(&cfg, &pipelines, "metrics", &["prometheus"]);
    assert_eq!(prom.len(), 1, "one prometheus exporter");
    assert_eq!(prom[0].1["enable_open_metrics"], true);
    let prom_port = host_port(str_of(&prom[0].1["endpoint"], "prometheus endpoint")).1;
    let targets = prometheus_targets();
    assert!(
        targets.contains(&format!("otel-collector:{prom_port}")),
        "Prometheus scrapes the collector's exporter: {targets:?}"
    );

    // Logs: Loki's OTLP endpoint.
    let logs = exporters_of(&cfg, &pipelines, "logs", OTLP_HTTP);
    assert_eq!(logs.len(), 1);
    let endpoint = str_of(&logs[0].1["endpoint"], "loki endpoint");
    let (host, _) = compose.assert_service_address(endpoint, "logs exporter");
    assert_eq!(host, "loki");
    assert!(endpoint.ends_with("/otlp"), "{endpoint}");
}

#[test]
fn the_datadog_collector_example_wires_exporter_and_connector() {
    let what = "examples/vendors/datadog-collector.yaml";
    let cfg = yaml(what);
    let pipelines = assert_pipelines_consistent(&cfg, what);
    assert_eq!(
        cfg["exporters"]["datadog"]["api"]["key"],
        "${env:DD_API_KEY}"
    );
    assert!(cfg["connectors"]
        .as_object()
        .unwrap()
        .contains_key("datadog/connector"));
    let traces = strings(&pipelines["traces"]["exporters"]);
    assert!(traces.contains(&"datadog") && traces.contains(&"datadog/connector"));
    assert!(strings(&pipelines["metrics"]["receivers"]).contains(&"datadog/connector"));
    for pipeline in ["traces", "metrics", "logs"] {
        assert!(strings(&pipelines[pipeline]["exporters"]).contains(&"datadog"));
        assert!(strings(&pipelines[pipeline]["receivers"]).contains(&"otlp"));
    }
    let bridge = assert_valid_otlp_config(
        &repo_root().join("examples/vendors/datadog-collector.toml"),
        "datadog-collector.toml",
    );
    let grpc = str_of(
        &cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        "grpc",
    );
    let exporter = &bridge["exporters"][0];
    assert_eq!(exporter["protocol"].as_str(), Some("grpc"));
    assert_eq!(
        host_port(exporter["endpoint"].as_str().unwrap()).1,
        host_port(grpc).1
    );
    assert_eq!(bridge["metrics"]["temporality"].as_str(), Some("delta"));
}

/// The `host:port` targets Prometheus scrapes.
fn prometheus_targets() -> Vec<String> {
    let cfg = yaml("docker/prometheus.yaml");
    cfg["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|job| job["static_configs"].as_array().unwrap().iter())
        .flat_map(|sc| strings(&sc["targets"]))
        .map(str::to_owned)
        .collect()
}

#[test]
fn prometheus_keeps_exemplars_and_scrapes_the_bridge_admin_port() {
    let compose = Compose::load();
    let command = strings(&compose.service("prometheus")["command"]);
    assert!(command.contains(&"--enable-feature=exemplar-storage"));
    // Tempo's metrics generator remote-writes to Prometheus.
    assert!(command.contains(&"--web.enable-remote-write-receiver"));
    let tempo = yaml("docker/tempo.yaml");
    for rw in tempo["metrics_generator"]["storage"]["remote_write"]
        .as_array()
        .unwrap()
    {
        let url = str_of(&rw["url"], "remote_write url");
        compose.assert_service_address(url, "tempo remote_write");
        assert!(url.ends_with("/api/v1/write"), "{url}");
    }
    let config = compose.host_file(
        "prometheus",
        command
            .iter()
            .find_map(|a| a.strip_prefix("--config.file="))
            .unwrap(),
    );
    assert_eq!(config, Path::new("docker/prometheus.yaml"));

    let admin = toml::from_str::<toml::Value>(&read("docker/rum-bridge.toml")).unwrap()["server"]
        ["admin_listen"]
        .as_str()
        .unwrap()
        .to_owned();
    let targets = prometheus_targets();
    assert!(
        targets.contains(&format!("rum-bridge:{}", host_port(&admin).1)),
        "{targets:?}"
    );
    for target in &targets {
        compose.assert_service_address(target, "scrape target");
    }
    let cfg = yaml("docker/prometheus.yaml");
    let collector_job = cfg["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| strings(&j["static_configs"][0]["targets"])[0].starts_with("otel-collector:"))
        .unwrap();
    assert_eq!(
        collector_job["honor_labels"], true,
        "keep the exporter's job/instance (service.name, service.instance.id)"
    );
}

/// Grafana's provisioned data sources by uid.
fn grafana_datasources() -> BTreeMap<String, Value> {
    let mut by_uid = BTreeMap::new();
    for file in deploy_files(&["yaml"]) {
        if !file.starts_with(repo_root().join("docker/grafana/provisioning/datasources")) {
            continue;
        }
        for ds in yaml(&file)["datasources"].as_array().unwrap() {
            let uid = str_of(&ds["uid"], "datasource uid").to_owned();
            assert!(
                by_uid.insert(uid.clone(), ds.clone()).is_none(),
                "duplicate uid {uid}"
            );
        }
    }
    by_uid
}

#[test]
fn grafana_links_exemplars_traces_logs_and_metrics() {
    let compose = Compose::load();
    let ds = grafana_datasources();
    let uid_of = |kind: &str| -> &str {
        ds.iter()
            .find(|(_, d)| d["type"] == kind)
            .map(|(uid, _)| uid.as_str())
            .unwrap_or_else(|| panic!("no {kind} data source"))
    };
    let (prometheus, tempo, loki) = (uid_of("prometheus"), uid_of("tempo"), uid_of("loki"));
    for d in ds.values() {
        compose.assert_service_address(str_of(&d["url"], "url"), "data source url");
    }
    let tempo_port = yaml("docker/tempo.yaml")["server"]["http_listen_port"]
        .as_u64()
        .unwrap();
    assert_eq!(
        u64::from(host_port(str_of(&ds[tempo]["url"], "tempo url")).1),
        tempo_port
    );

    // The collector's Prometheus exporter writes exemplar labels trace_id and span_id.
    let destinations = ds[prometheus]["jsonData"]["exemplarTraceIdDestinations"]
        .as_array()
        .unwrap();
    assert!(destinations
        .iter()
        .any(|d| d["name"] == "trace_id" && d["datasourceUid"] == tempo));
    let tempo_json = &ds[tempo]["jsonData"];
    assert_eq!(tempo_json["tracesToLogsV2"]["datasourceUid"], loki);
    let logs_query = str_of(
        &tempo_json["tracesToLogsV2"]["query"],
        "tracesToLogsV2 query",
    );
    assert!(
        logs_query.contains("trace_id=\"$${__trace.traceId}\""),
        "Loki keeps OTLP trace ids as structured metadata trace_id: {logs_query}"
    );
    assert_eq!(tempo_json["tracesToMetrics"]["datasourceUid"], prometheus);
    assert_eq!(tempo_json["serviceMap"]["datasourceUid"], prometheus);
    let derived = ds[loki]["jsonData"]["derivedFields"].as_array().unwrap();
    assert!(derived
        .iter()
        .any(|d| d["matcherRegex"] == "trace_id" && d["datasourceUid"] == tempo));

    // The dashboard provider reads the mounted dashboards, the home dashboard among them.
    let providers = yaml("docker/grafana/provisioning/dashboards/rum-bridge.yaml");
    let path = str_of(
        &providers["providers"][0]["options"]["path"],
        "provider path",
    );
    let dir = repo_root().join(compose.host_file("grafana", path));
    assert!(dir.join("rum.json").is_file(), "{dir:?}");
    let home = str_of(
        &compose.service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        "home dashboard",
    );
    assert!(home.starts_with(path));

    // Every data source a dashboard panel uses is provisioned; panel ids are unique.
    let dashboard = json("docker/grafana/dashboards/rum.json");
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        for target in panel["targets"].as_array().into_iter().flatten() {
            let uid = str_of(&target["datasource"]["uid"], "target datasource");
            assert!(ds.contains_key(uid), "unknown data source {uid}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus names of what the bridge exports

/// What an OTLP metric is, for naming.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Gauge,
    Counter,
    /// Non-monotonic sum: a Prometheus gauge.
    UpDownCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// The Prometheus metric name the OpenTelemetry Collector's `prometheus` exporter gives an OTLP
/// metric with its default translation strategy, `UnderscoreEscapingWithSuffixes` (collector
/// contrib `exporter/prometheusexporter`, naming from `prometheus/otlptranslator`
/// `metric_namer.go` `normalizeName`):
///
/// 1. the name is split into tokens at every character outside `[a-zA-Z0-9:]` (`.` and `_`
///    included) and the tokens joined with `_`: `browser.web_vital.lcp` → `browser_web_vital_lcp`;
/// 2. the unit is appended unless it already is one of the tokens: a unit in braces
///    (`{page_view}`) is dropped, `1` is dropped, UCUM units take their Prometheus names
///    (`ms` → `milliseconds`, `s` → `seconds`, `By` → `bytes`, …), `a/b` becomes
///    `a_per_b` (`m/s` → `meters_per_second`);
/// 3. monotonic sums (counters) end with `_total`; gauges with unit `1` end with `_ratio`;
/// 4. a name starting with a digit gets a leading `_`.
///
/// A histogram is then exposed as `<name>_bucket` (label `le`), `<name>_sum` and
/// `<name>_count` ([`series_names`]).
fn prometheus_name(name: &str, unit: &str, kind: Kind) -> String {
    fn unit_name(unit: &str) -> &str {
        match unit {
            "d" => "days",
            "h" => "hours",
            "min" => "minutes",
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "GiBy" => "gibibytes",
            "TiBy" => "tibibytes",
            "KBy" => "kilobytes",
            "MBy" => "megabytes",
            "GBy" => "gigabytes",
            "TBy" => "terabytes",
            "m" => "meters",
            "V" => "volts",
            "A" => "amperes",
            "J" => "joules",
            "W" => "watts",
            "g" => "grams",
            "Cel" => "celsius",
            "Hz" => "hertz",
            "1" => "",
            "%" => "percent",
            other => other,
        }
    }
    fn per_unit_name(unit: &str) -> &str {
        match unit {
            "s" => "second",
            "m" => "minute",
            "h" => "hour",
            "d" => "day",
            "w" => "week",
            "mo" => "month",
            "y" => "year",
            other => other,
        }
    }
    /// Characters outside `[a-zA-Z0-9_:]` become `_`; repeated and outer `_` go.
    fn clean(unit: &str) -> String {
        unit.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("_")
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || c == ':';
    let mut tokens: Vec<String> = name
        .split(|c: char| !valid(c))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit.split_once('/').unwrap_or((unit, ""));
    let (main, per) = (main.trim(), per.trim());
    let braces = |u: &str| u.contains(['{', '}']);
    let main = if main.is_empty() || braces(main) {
        String::new()
    } else {
        clean(unit_name(main))
    };
    let per = if per.is_empty() || braces(per) {
        String::new()
    } else {
        format!("per_{}", clean(per_unit_name(per)))
    };
    if !main.is_empty() && !tokens.contains(&main) {
        tokens.push(main);
    }
    if !per.is_empty() && !tokens.contains(&per) {
        tokens.push(per);
    }
    if kind == Kind::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// The label an OTLP attribute becomes: characters outside `[a-zA-Z0-9_]` become `_`, a name
/// starting with a digit gets `key_` in front (`url.template` → `url_template`).
fn prometheus_label(attribute: &str) -> String {
    let label: String = attribute
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{label}")
    } else {
        label
    }
}

/// The series names a Prometheus metric family of `kind` stores, with the labels each adds.
fn series_names(base: &str, kind: Kind) -> Vec<(String, &'static [&'static str])> {
    match kind {
        Kind::Histogram => vec![
            (format!("{base}_bucket"), &["le"]),
            (format!("{base}_sum"), &[]),
            (format!("{base}_count"), &[]),
        ],
        Kind::Summary => vec![
            (base.to_owned(), &["quantile"]),
            (format!("{base}_sum"), &[]),
            (format!("{base}_count"), &[]),
        ],
        Kind::Gauge | Kind::Counter | Kind::UpDownCounter | Kind::ExponentialHistogram => {
            vec![(base.to_owned(), &[])]
        }
    }
}

#[test]
fn prometheus_names_follow_the_collector_translation() {
    // Examples from prometheus/otlptranslator's documentation and tests, and ours.
    let cases = [
        (
            "http.server.request.duration",
            "s",
            Kind::Histogram,
            "http_server_request_duration_seconds",
        ),
        ("requests.count", "1", Kind::Counter, "requests_count_total"),
        ("memory.usage", "By", Kind::Gauge, "memory_usage_bytes"),
        (
            "system.network.dropped",
            "{packets}",
            Kind::Counter,
            "system_network_dropped_total",
        ),
        (
            "system.memory.utilization",
            "1",
            Kind::Gauge,
            "system_memory_utilization_ratio",
        ),
        (
            "astro.light.speed",
            "m/s",
            Kind::Gauge,
            "astro_light_speed_meters_per_second",
        ),
        (
            "storage.filesystem.utilization",
            "%",
            Kind::Gauge,
            "storage_filesystem_utilization_percent",
        ),
        (
            "browser.web_vital.lcp",
            "ms",
            Kind::Histogram,
            "browser_web_vital_lcp_milliseconds",
        ),
        (
            "browser.web_vital.cls",
            "1",
            Kind::Histogram,
            "browser_web_vital_cls",
        ),
        (
            "rum.page_views",
            "{page_view}",
            Kind::Counter,
            "rum_page_views_total",
        ),
        ("queue.total", "", Kind::Counter, "queue_total"),
        ("latency.seconds", "s", Kind::Histogram, "latency_seconds"),
    ];
    for (name, unit, kind, expected) in cases {
        assert_eq!(
            prometheus_name(name, unit, kind),
            expected,
            "{name} [{unit}]"
        );
    }
    assert_eq!(prometheus_label("url.template"), "url_template");
    assert_eq!(
        prometheus_label("browser.web_vital.rating"),
        "browser_web_vital_rating"
    );
    assert_eq!(prometheus_label("2xx.count"), "key_2xx_count");
}

/// Prometheus series names → the labels their series may carry.
type Catalog = BTreeMap<String, BTreeSet<String>>;

/// The series the collector's Prometheus exporter exposes for `metrics`, with every label:
/// data-point attributes, `job` and `instance` (from `service.name` and `service.instance.id`),
/// the instrumentation scope (`otel_scope_*`) and `le`/`quantile`.
fn exporter_catalog(metrics: &[Metric]) -> Catalog {
    let mut catalog = Catalog::new();
    for metric in metrics {
        let (kind, attributes): (Kind, Vec<&[KeyValue]>) = match metric.data.as_ref().unwrap() {
            Data::Gauge(g) => (
                Kind::Gauge,
                g.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::Sum(s) => (
                if s.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::UpDownCounter
                },
                s.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::Histogram(h) => (
                Kind::Histogram,
                h.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::ExponentialHistogram(h) => (
                Kind::ExponentialHistogram,
                h.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::Summary(s) => (
                Kind::Summary,
                s.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
        };
        let mut labels: BTreeSet<String> = attributes
            .iter()
            .flat_map(|attrs| attrs.iter().map(|kv| prometheus_label(&kv.key)))
            .collect();
        labels
            .extend(["job", "instance", "otel_scope_name", "otel_scope_version"].map(String::from));
        let base = prometheus_name(&metric.name, &metric.unit, kind);
        for (series, extra) in series_names(&base, kind) {
            let entry = catalog.entry(series).or_default();
            entry.extend(labels.iter().cloned());
            entry.extend(extra.iter().map(|l| l.to_string()));
        }
    }
    catalog
}

/// The series of a Prometheus/OpenMetrics text exposition (the bridge's admin `/metrics`),
/// with `job` and `instance`, which Prometheus adds when it scrapes.
fn exposition_catalog(text: &str) -> Catalog {
    let mut catalog = Catalog::new();
    let scrape_labels = ["job", "instance"].map(String::from);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            let kind = match kind {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                "summary" => Kind::Summary,
                other => panic!("unexpected metric type {other}"),
            };
            let base = if kind == Kind::Counter {
                format!("{}_total", family.trim_end_matches("_total"))
            } else {
                family.to_owned()
            };
            for (series, extra) in series_names(&base, kind) {
                let entry = catalog.entry(series).or_default();
                entry.extend(scrape_labels.iter().cloned());
                entry.extend(extra.iter().map(|l| l.to_string()));
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let labels = sample_label_names(&line[name_end..]);
            catalog
                .entry(line[..name_end].to_owned())
                .or_default()
                .extend(labels);
        }
    }
    catalog
}

/// Label names of a sample line's `{name="value",...}` part (values may hold escaped quotes).
fn sample_label_names(rest: &str) -> Vec<String> {
    let Some(body) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = body.chars();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let name = name.trim_start_matches(',').trim();
        if name.is_empty() || name.starts_with('}') {
            break;
        }
        names.push(name.to_owned());
        assert_eq!(chars.next(), Some('"'), "label value of {name}");
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
    }
    names
}

// ---------------------------------------------------------------------------------------------
// Queries of the dashboard and the data sources

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn collect<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            collect(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    collect(&dashboard["panels"], &mut out);
    out
}

/// A PromQL query with Grafana's variables replaced by values Prometheus accepts: the interval
/// macros by `5m`, `$__tags` (trace-to-metrics) by a label matcher, other variables (used in
/// regex matchers) by `.*`.
fn substitute_grafana_variables(query: &str) -> String {
    let query = query
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "5m")
        .replace("$__range", "5m")
        .replace("$__tags", "rum_app_name=\"shop-web\"");
    let variables = regex::Regex::new(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?").unwrap();
    let query = variables.replace_all(&query, ".*").into_owned();
    assert!(!query.contains('$'), "unexpected variable left in {query}");
    query
}

/// The metrics a query selects (with the labels its matchers name) and the labels it groups or
/// matches on.
#[derive(Default, Debug)]
struct QueryUse {
    selectors: Vec<(String, Vec<String>)>,
    grouping: BTreeSet<String>,
}

impl ExprVisitor for QueryUse {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let modifier_labels = |m: &LabelModifier| m.labels().labels.clone();
        match expr {
            Expr::VectorSelector(vs) => self.add_selector(vs)?,
            Expr::MatrixSelector(ms) => self.add_selector(&ms.vs)?,
            Expr::Aggregate(agg) => {
                self.grouping
                    .extend(agg.modifier.iter().flat_map(modifier_labels));
            }
            Expr::Binary(bin) => {
                if let Some(m) = &bin.modifier {
                    self.grouping
                        .extend(m.matching.iter().flat_map(modifier_labels));
                    self.grouping
                        .extend(m.card.labels().into_iter().flat_map(|l| l.labels.clone()));
                }
            }
            _ => {}
        }
        Ok(true)
    }
}

impl QueryUse {
    fn add_selector(&mut self, vs: &promql_parser::parser::VectorSelector) -> Result<(), String> {
        let name = vs
            .name
            .clone()
            .ok_or_else(|| format!("selector without a metric name: {vs}"))?;
        let labels = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
            .map(|m| m.name.clone())
            .filter(|l| l != "__name__")
            .collect();
        self.selectors.push((name, labels));
        Ok(())
    }

    fn of(query: &str) -> QueryUse {
        let expr = promql_parser::parser::parse(query)
            .unwrap_or_else(|e| panic!("not PromQL: {query}: {e}"));
        let mut used = QueryUse::default();
        walk_expr(&mut used, &expr).unwrap();
        used
    }
}

/// Every PromQL query of the RUM dashboard (panel targets, and the selectors of its
/// `label_values(...)` variables, with the label they read) and of the Tempo data source's
/// trace-to-metrics links, variables substituted. (where, query, label read by a variable)
fn grafana_queries() -> Vec<(String, String, Option<String>)> {
    let dashboard = json("docker/grafana/dashboards/rum.json");
    let mut queries = Vec::new();
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = str_of(&target["expr"], "expr");
            let title = panel["title"].as_str().unwrap_or_default();
            queries.push((
                format!("panel {title:?}"),
                substitute_grafana_variables(expr),
                None,
            ));
        }
    }
    let label_values = regex::Regex::new(r"^label_values\((.+),\s*([A-Za-z_]\w*)\)$").unwrap();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let query = str_of(&var["query"], "variable query");
        let captures = label_values
            .captures(query)
            .unwrap_or_else(|| panic!("variable query {query}"));
        queries.push((
            format!("variable {}", var["name"]),
            substitute_grafana_variables(&captures[1]),
            Some(captures[2].to_owned()),
        ));
    }
    for ds in grafana_datasources().values() {
        for q in ds["jsonData"]["tracesToMetrics"]["queries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            // "$$" is a literal "$" in provisioning files.
            let query = str_of(&q["query"], "tracesToMetrics query").replace("$$", "$");
            queries.push((
                format!("trace-to-metrics {}", q["name"]),
                substitute_grafana_variables(&query),
                None,
            ));
        }
    }
    queries
}

/// Asserts that every metric and label the Grafana queries use is in `catalog`; returns the
/// metric names used.
fn assert_queries_use(catalog: &Catalog) -> BTreeSet<String> {
    let mut used_names = BTreeSet::new();
    let queries = grafana_queries();
    assert!(queries.len() > 20, "{} queries", queries.len());
    for (place, query, variable_label) in &queries {
        let used = QueryUse::of(query);
        assert!(!used.selectors.is_empty(), "{place}: selects nothing");
        let mut available = BTreeSet::new();
        for (name, labels) in &used.selectors {
            let Some(known) = catalog.get(name) else {
                panic!(
                    "{place}: {name} is not exported by rum-bridge; known: {:#?}",
                    catalog.keys()
                );
            };
            for label in labels {
                assert!(
                    known.contains(label),
                    "{place}: {name} has no label {label} (it has {known:?})"
                );
            }
            available.extend(known.iter().cloned());
            used_names.insert(name.clone());
        }
        for label in used.grouping.iter().chain(variable_label) {
            assert!(
                available.contains(label),
                "{place}: no selected metric has the label {label}: {query}"
            );
        }
    }
    used_names
}

#[tokio::test]
async fn dashboard_queries_name_metrics_the_bridge_exports() {
    let sink = Sink::start().await;
    let bridge = Bridge::start(&format!(
        "[metrics]\ninterval = \"1s\"\n\n{}",
        grpc_exporter_toml(sink.addr)
    ))
    .await;
    // The example page load (every vital, a page view, an error, a successful call), then the
    // same page's call failing, which adds error.type.
    let page_load = read("examples/beacons/page-load.json");
    let mut failed_call: Value = serde_json::from_str(&page_load).unwrap();
    let events = failed_call["ev"].as_array_mut().unwrap();
    events.retain(|e| e["type"] == "http");
    events[0]["status"] = 503.into();
    for beacon in [page_load, failed_call.to_string()] {
        let accepted = bridge
            .client
            .post(bridge.url("/v1/rum"))
            .header("content-type", "text/plain")
            .body(beacon)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 202);
    }
    // One refusal, so that the rejection counter has a labelled series.
    let refused = bridge
        .client
        .post(bridge.url("/v1/rum"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // The beacon was recorded before its 202: every flush after the first one that arrives
    // reports all of it (cumulative temporality).
    poll("two metric exports", WAIT, || {
        (sink.received.lock().unwrap().metrics.len() >= 2).then_some(())
    })
    .await;
    let otlp = sink.metrics();
    let mut catalog = exporter_catalog(&otlp);
    let admin = exposition_catalog(&bridge.metrics_text().await);
    assert!(
        admin.contains_key("rum_bridge_items_accepted_total"),
        "{admin:?}"
    );
    for (name, labels) in admin {
        catalog.entry(name).or_default().extend(labels);
    }

    let used = assert_queries_use(&catalog);
    // The dashboard covers what the RUM dashboard is for.
    for vital in ["lcp", "inp", "cls", "fcp", "ttfb"] {
        let metric = otlp
            .iter()
            .find(|m| m.name == format!("browser.web_vital.{vital}"))
            .unwrap_or_else(|| panic!("the beacon's {vital} was exported"));
        let base = prometheus_name(&metric.name, &metric.unit, Kind::Histogram);
        for series in [format!("{base}_bucket"), format!("{base}_count")] {
            assert!(used.contains(&series), "the dashboard shows {series}");
        }
    }
    for series in [
        "http_client_request_duration_seconds_bucket",
        "http_client_request_duration_seconds_count",
        "rum_errors_total",
        "rum_page_views_total",
        "rum_bridge_items_rejected_total",
    ] {
        assert!(used.contains(series), "the dashboard shows {series}");
    }
}

#[test]
fn histogram_panels_show_exemplars() {
    let dashboard = json("docker/grafana/dashboards/rum.json");
    let mut with_exemplars = 0;
    for panel in panels(&dashboard) {
        if panel["type"] != "timeseries" {
            continue;
        }
        for target in panel["targets"].as_array().unwrap() {
            let expr = str_of(&target["expr"], "expr");
            if expr.contains("_bucket") && !expr.contains("rum_bridge_") {
                assert_eq!(
                    target["exemplar"], true,
                    "{}: exemplars link the points to their traces",
                    panel["title"]
                );
                with_exemplars += 1;
            }
        }
    }
    assert!(with_exemplars >= 7, "{with_exemplars}");
}

// ---------------------------------------------------------------------------------------------
// Images

/// The instructions of a Dockerfile, continuation lines joined, comments dropped.
fn dockerfile_instructions(relative: &str) -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read(relative).lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions
}

/// The command lines of a shell script, comments and blank lines dropped.
fn script_commands(relative: &str) -> Vec<String> {
    read(relative)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_images_build_with_the_release_build_script() {
    // CI (.ci/run) runs no release build; scripts/build-release.sh is the one release build
    // command, used by the load test and both images.
    let release: Vec<String> = script_commands("scripts/build-release.sh")
        .into_iter()
        .filter(|l| l.contains("cargo "))
        .collect();
    assert_eq!(release, ["exec cargo build --release --locked \"$@\""]);
    let load: Vec<String> = script_commands("scripts/load.sh")
        .into_iter()
        .filter(|l| l.contains("cargo build") || l.contains("build-release.sh"))
        .collect();
    assert_eq!(load, ["scripts/build-release.sh --quiet"]);
    for ci in [".ci/run", "scripts/test.sh"] {
        assert!(
            !read(ci).contains("cargo build --release"),
            "{ci} builds release: make it call scripts/build-release.sh"
        );
    }

    for (dockerfile, build, binary) in [
        (
            "docker/Dockerfile",
            "scripts/build-release.sh",
            "target/release/rum-bridge",
        ),
        (
            "docker/demo-shop.Dockerfile",
            "scripts/build-release.sh --example demo-shop",
            "target/release/examples/demo-shop",
        ),
    ] {
        let instructions = dockerfile_instructions(dockerfile);
        let runs: Vec<&String> = instructions
            .iter()
            .filter(|i| i.contains("cargo") || i.contains("build-release"))
            .collect();
        assert_eq!(runs.len(), 1, "{dockerfile}: one build step");
        let run = runs[0];
        assert!(run.starts_with("RUN "), "{dockerfile}: {run}");
        assert!(
            run.contains(&format!("{build} ")) || run.ends_with(build),
            "{dockerfile}: builds with `{build}`: {run}"
        );
        assert!(
            !run.contains("cargo "),
            "{dockerfile}: only the script runs cargo"
        );
        assert!(run.contains(binary), "{dockerfile}: installs {binary}");
        let user = instructions
            .iter()
            .rev()
            .find_map(|i| i.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("{dockerfile}: no USER"));
        assert!(
            !["root", "0", "0:0"].contains(&user.trim()),
            "{dockerfile}: runs as root"
        );
        // The builder is at least the crate's minimum Rust version.
        let builder = instructions
            .iter()
            .find_map(|i| i.strip_prefix("ARG RUST_VERSION="))
            .unwrap();
        let msrv = toml::from_str::<toml::Value>(&read("Cargo.toml")).unwrap()["package"]
            ["rust-version"]
            .as_str()
            .unwrap()
            .to_owned();
        let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
        assert!(
            version(builder) >= version(&msrv),
            "{dockerfile}: Rust {builder}"
        );
    }

    let instructions = dockerfile_instructions("docker/Dockerfile");
    let find = |prefix: &str| -> &String {
        instructions
            .iter()
            .rev()
            .find(|i| i.starts_with(prefix))
            .unwrap_or_else(|| panic!("docker/Dockerfile: no {prefix}"))
    };
    let cmd: Vec<String> =
        serde_json::from_str(find("CMD ").strip_prefix("CMD ").unwrap()).unwrap();
    assert_eq!(
        cmd,
        [
            "run",
            "--listen",
            "0.0.0.0:4380",
            "--admin-listen",
            "0.0.0.0:4381"
        ]
    );
    assert!(find("EXPOSE ").split_whitespace().any(|p| p == "4380"));
    assert!(find("HEALTHCHECK ").contains("rum-bridge-healthcheck"));
    assert!(instructions
        .iter()
        .any(|i| i == "COPY docker/healthcheck.sh /usr/local/bin/rum-bridge-healthcheck"));

    // .dockerignore keeps what the builds read.
    let ignored: Vec<String> = script_commands(".dockerignore");
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "benches/pipeline.rs",
        "examples/demo-shop/main.rs",
        "scripts/build-release.sh",
        "docker/healthcheck.sh",
    ] {
        for pattern in &ignored {
            let pattern = pattern.trim_start_matches("**/").trim_end_matches('/');
            assert!(
                !(needed == pattern
                    || needed.starts_with(&format!("{pattern}/"))
                    || needed.split('/').any(|part| part == pattern)),
                ".dockerignore drops {needed} ({pattern})"
            );
        }
    }
}

#[tokio::test]
async fn the_health_check_script_asks_the_admin_listener() {
    let bridge = Bridge::start("").await;
    let run = |port: u16| {
        Command::new("bash")
            .arg(repo_root().join("docker/healthcheck.sh"))
            .arg(port.to_string())
            .output()
            .unwrap()
    };
    let healthy = run(bridge.admin.port());
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    assert!(!run(free_port()).status.success(), "nothing listens there");
    assert!(
        !run(bridge.ingest.port()).status.success(),
        "the public port has no /healthz"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

#[test]
fn kubernetes_manifests_probe_the_admin_port_and_expose_only_ingest() {
    let mut docs: Vec<(String, Value)> = Vec::new();
    for file in deploy_files(&["yaml"]) {
        if file.starts_with(repo_root().join("examples/k8s")) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            docs.extend(yaml_documents(&file).into_iter().map(|d| (name.clone(), d)));
        }
    }
    let of_kind = |kind: &str| -> Vec<&(String, Value)> {
        docs.iter().filter(|(_, d)| d["kind"] == kind).collect()
    };
    let configmaps: HashMap<(String, String), &Value> = of_kind("ConfigMap")
        .into_iter()
        .map(|(f, d)| {
            (
                (
                    f.clone(),
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                ),
                d,
            )
        })
        .collect();

    let mut bridges = 0;
    let mut with_readiness = 0;
    for (file, deployment) in of_kind("Deployment") {
        let pod = &deployment["spec"]["template"];
        let pod_labels = pod["metadata"]["labels"].as_object().unwrap();
        assert_eq!(
            &deployment["spec"]["selector"]["matchLabels"], &pod["metadata"]["labels"],
            "{file}: the selector matches the pod"
        );
        for container in pod["spec"]["containers"].as_array().unwrap() {
            if !str_of(&container["image"], "image").contains("rum-bridge") {
                continue;
            }
            bridges += 1;
            let ports: HashMap<&str, u64> = container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap(),
                        p["containerPort"].as_u64().unwrap(),
                    )
                })
                .collect();
            let port_of = |probe: &Value| -> u64 {
                let port = &probe["httpGet"]["port"];
                port.as_u64()
                    .unwrap_or_else(|| ports[str_of(port, "probe port")])
            };
            let args = strings(&container["args"]);
            let flag = |name: &str| -> u64 {
                let at = args.iter().position(|a| *a == name).unwrap();
                u64::from(host_port(args[at + 1]).1)
            };
            let (ingest, admin) = (flag("--listen"), flag("--admin-listen"));
            let liveness = &container["livenessProbe"];
            assert_eq!(liveness["httpGet"]["path"], "/healthz", "{file}");
            assert_eq!(
                port_of(liveness),
                admin,
                "{file}: liveness on the admin port"
            );
            let readiness = &container["readinessProbe"];
            if !readiness.is_null() {
                assert_eq!(readiness["httpGet"]["path"], "/readyz", "{file}");
                assert_eq!(port_of(readiness), admin, "{file}: readiness on admin port");
                with_readiness += 1;
            }

            // Configuration from the ConfigMap mounted where RUM_BRIDGE_CONFIG points.
            let env = container["env"].as_array().unwrap();
            let config_path = env
                .iter()
                .find(|e| e["name"] == "RUM_BRIDGE_CONFIG")
                .map(|e| str_of(&e["value"], "RUM_BRIDGE_CONFIG"))
                .unwrap_or_else(|| panic!("{file}: RUM_BRIDGE_CONFIG"));
            let (dir, key) = config_path.rsplit_once('/').unwrap();
            let mount = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{file}: nothing mounted at {dir}"));
            let volume = pod["spec"]["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap();
            let configmap = str_of(&volume["configMap"]["name"], "configMap volume");
            let data = &configmaps[&(file.clone(), configmap.to_owned())]["data"][key];
            let config: toml::Value = toml::from_str(str_of(data, key)).unwrap();
            assert_eq!(
                u64::from(host_port(config["server"]["admin_listen"].as_str().unwrap()).1),
                admin,
                "{file}: the file and the args agree"
            );
            assert!(
                env.iter().any(|e| e["name"] == "RUM_BRIDGE_USER_ID_KEY"
                    && !e["valueFrom"]["secretKeyRef"].is_null()),
                "{file}: one user-id key for all replicas, from a Secret"
            );

            // Services reach the public port, never the admin port.
            let services: Vec<&Value> = of_kind("Service")
                .into_iter()
                .filter(|(f, s)| {
                    f == file
                        && s["spec"]["selector"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .all(|(k, v)| pod_labels.get(k) == Some(v))
                })
                .map(|(_, s)| s)
                .collect();
            assert_eq!(services.len(), 1, "{file}: one Service for the pod");
            let targets: Vec<u64> = services[0]["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let target = &p["targetPort"];
                    target.as_u64().unwrap_or_else(|| {
                        ports
                            .get(str_of(target, "targetPort"))
                            .copied()
                            .unwrap_or(0)
                    })
                })
                .collect();
            assert!(
                targets.contains(&ingest),
                "{file}: the Service exposes ingest"
            );
            assert!(!targets.contains(&admin), "{file}: the Service hides admin");
        }
    }
    assert_eq!(bridges, 2, "a standalone bridge and a sidecar");
    assert!(
        with_readiness >= 1,
        "the standalone bridge has a readiness probe"
    );

    // The autoscaler and the disruption budget act on the standalone Deployment.
    let deployments: Vec<&Value> = of_kind("Deployment").into_iter().map(|(_, d)| d).collect();
    let hpas = of_kind("HorizontalPodAutoscaler");
    assert_eq!(hpas.len(), 1);
    let target = &hpas[0].1["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"], "Deployment");
    let scaled = deployments
        .iter()
        .find(|d| d["metadata"]["name"] == target["name"])
        .expect("the HPA scales a Deployment of the examples");
    assert!(hpas[0].1["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    let pdbs = of_kind("PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1);
    assert_eq!(
        pdbs[0].1["spec"]["selector"]["matchLabels"],
        scaled["spec"]["template"]["metadata"]["labels"]
    );
}
