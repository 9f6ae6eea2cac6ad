//! The deployment files (`docker/`, `examples/`) checked the way they can be without a Docker
//! engine or a cluster: every YAML and JSON file parses; every rum-bridge configuration (the
//! TOML files and those embedded in the Kubernetes ConfigMaps) passes `rum-bridge check-config`
//! and exports over OTLP.

mod common;
mod deploy;

use std::path::PathBuf;

use common::repo_root;
use deploy::{assert_valid_otlp_config, deploy_files, json, str_of, yaml_documents};
use serde_json::Value;

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
// rum-bridge configurations

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
