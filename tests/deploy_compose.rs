//! The compose stack (`docker/compose.yaml`) checked without a Docker engine: it references only
//! files that exist and services that are there, its images are pinned, and the bridge in it is
//! configured for the container (listeners, published ports, the collector it exports to, the
//! demo shop's origin and key).

mod common;
mod deploy;

use std::collections::BTreeSet;

use common::repo_root;
use deploy::{assert_valid_otlp_config, host_port, str_of, strings, yaml, Compose};
use serde_json::Value;

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
