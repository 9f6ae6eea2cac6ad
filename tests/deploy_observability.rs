//! The observability backends of the compose stack and the vendor examples, checked without a
//! Docker engine: the collector's pipelines are consistent and feed Jaeger, Tempo, Prometheus and
//! Loki on the ports they listen on; Prometheus keeps exemplars and scrapes the bridge's admin
//! port; Grafana's data sources link exemplars, traces, logs and metrics.

mod common;
mod deploy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::repo_root;
use deploy::{
    assert_valid_otlp_config, grafana_datasources, host_port, json, panels, read, str_of, strings,
    yaml, Compose,
};
use serde_json::Value;

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
