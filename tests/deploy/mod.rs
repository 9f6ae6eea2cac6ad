//! Helpers shared by the deployment-file tests (`tests/deploy_*.rs`): the files under `docker/`
//! and `examples/`, YAML and JSON reading, the compose stack, `rum-bridge check-config`, the
//! Grafana provisioning, and (in [`prometheus`]) the Prometheus names of what the bridge exports.
#![allow(dead_code)]

pub mod prometheus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::repo_root;

/// Directories whose files users copy.
const DEPLOY_DIRS: [&str; 2] = ["docker", "examples"];

// ---------------------------------------------------------------------------------------------
// Files

/// Every file under the deploy directories whose name ends with one of `extensions`, sorted.
pub fn deploy_files(extensions: &[&str]) -> Vec<PathBuf> {
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

pub fn read(relative: impl AsRef<Path>) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a YAML file (`---`-separated), as JSON values.
pub fn yaml_documents(relative: impl AsRef<Path>) -> Vec<Value> {
    let relative = relative.as_ref();
    let text = read(relative);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
        })
        .collect()
}

pub fn yaml(relative: impl AsRef<Path>) -> Value {
    let relative = relative.as_ref();
    let mut docs = yaml_documents(relative);
    assert_eq!(docs.len(), 1, "{}: one document", relative.display());
    docs.remove(0)
}

pub fn json(relative: impl AsRef<Path>) -> Value {
    let relative = relative.as_ref();
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
}

pub fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

pub fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `host` and `port` of `http://host:port/path`, `host:port` or `[v6]:port`.
pub fn host_port(address: &str) -> (String, u16) {
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

// ---------------------------------------------------------------------------------------------
// The compose stack

const COMPOSE: &str = "docker/compose.yaml";

pub struct Compose {
    pub doc: Value,
}

impl Compose {
    pub fn load() -> Compose {
        Compose { doc: yaml(COMPOSE) }
    }

    pub fn services(&self) -> &serde_json::Map<String, Value> {
        self.doc["services"].as_object().expect("services")
    }

    pub fn service(&self, name: &str) -> &Value {
        self.services()
            .get(name)
            .unwrap_or_else(|| panic!("{COMPOSE}: no service {name}"))
    }

    /// The bind mounts of a service: (host path relative to the repository, container path).
    pub fn bind_mounts(&self, service: &str) -> Vec<(PathBuf, String)> {
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
    pub fn host_file(&self, service: &str, container_path: &str) -> PathBuf {
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
    pub fn assert_service_address(&self, address: &str, what: &str) -> (String, u16) {
        let (host, port) = host_port(address);
        assert!(
            self.services().contains_key(&host),
            "{what}: {address} is not a service of {COMPOSE}"
        );
        (host, port)
    }
}

// ---------------------------------------------------------------------------------------------
// rum-bridge configurations

/// `rum-bridge check-config` on `file`, with an empty environment (no OTEL_* overlay).
pub fn check_config(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rum-bridge"))
        .arg("check-config")
        .arg(file)
        .env_clear()
        .output()
        .unwrap()
}

/// Asserts that `file` is valid and exports over OTLP (not the embedded file default); returns
/// the effective configuration.
pub fn assert_valid_otlp_config(file: &Path, what: &str) -> toml::Value {
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

// ---------------------------------------------------------------------------------------------
// Grafana

/// Grafana's provisioned data sources by uid.
pub fn grafana_datasources() -> BTreeMap<String, Value> {
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

/// Every panel, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
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
