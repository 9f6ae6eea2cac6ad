//! The Kubernetes manifests (`examples/k8s/`) checked without a cluster: the bridge is probed on
//! its admin port, its Services expose only the public port, its configuration comes from the
//! mounted ConfigMap and its user-id key from a Secret; the autoscaler and the disruption budget
//! act on the standalone Deployment. In front of it, the ingress-nginx and Gateway API (Envoy
//! Gateway) examples hash the Faro route on the session header and balance the rest round-robin
//! onto the bridge's public port, and the bridge trusts the proxies' `X-Forwarded-For`.

mod common;
mod deploy;

use std::collections::HashMap;

use common::repo_root;
use deploy::{deploy_files, host_port, str_of, strings, yaml_documents};
use serde_json::Value;

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

/// The Faro SDK's session header: the key every example balancer hashes the Faro route on.
const FARO_SESSION_HEADER: &str = "x-faro-session-id";

fn documents(file: &str) -> Vec<Value> {
    yaml_documents(repo_root().join("examples/k8s").join(file))
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name}"))
}

/// A Service of `services` named `name` that selects the standalone bridge pods and exposes
/// `port` (number or name) on their public `ingest` port.
fn assert_reaches_ingest(services: &[&Value], pod: &Value, name: &str, port: &Value) {
    let service = services
        .iter()
        .find(|s| s["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("Service {name}"));
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    assert!(
        service["spec"]["selector"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v)),
        "{name} selects the bridge pods"
    );
    let exposed = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == *port || p["name"] == *port)
        .unwrap_or_else(|| panic!("{name} exposes {port}"));
    assert_eq!(exposed["targetPort"], "ingest", "{name}: the public port");
}

#[test]
fn balancers_in_front_hash_the_faro_route_on_the_session_and_round_robin_the_rest() {
    let standalone = documents("standalone.yaml");
    let pod = &named(&standalone, "Deployment", "rum-bridge")["spec"]["template"];
    let config: toml::Value = toml::from_str(str_of(
        &named(&standalone, "ConfigMap", "rum-bridge")["data"]["rum-bridge.toml"],
        "rum-bridge.toml",
    ))
    .unwrap();
    assert!(
        !config["server"]["trusted_proxies"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the bridge believes the balancer's X-Forwarded-For"
    );

    // ingress-nginx: the Faro route's own Service carries the hash; the rest is round-robin.
    let ingress = documents("ingress-nginx.yaml");
    let services: Vec<&Value> = standalone
        .iter()
        .chain(&ingress)
        .filter(|d| d["kind"] == "Service")
        .collect();
    let mut routes = Vec::new();
    for doc in ingress.iter().filter(|d| d["kind"] == "Ingress") {
        let hash =
            doc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"].as_str();
        for rule in doc["spec"]["rules"].as_array().unwrap() {
            for path in rule["http"]["paths"].as_array().unwrap() {
                let backend = &path["backend"]["service"];
                let service = str_of(&backend["name"], "backend service");
                assert_reaches_ingest(&services, pod, service, &backend["port"]["name"]);
                routes.push((str_of(&path["path"], "path").to_owned(), service, hash));
            }
        }
    }
    let collect = routes.iter().find(|r| r.0 == "/collect").expect("/collect");
    assert_eq!(collect.2, Some("$http_x_faro_session_id"));
    let rest = routes.iter().find(|r| r.0 == "/").expect("/");
    assert_eq!(rest.2, None, "everything else round-robin");
    assert_ne!(
        collect.1, rest.1,
        "ingress-nginx hashes per Service: the Faro route has its own"
    );

    // Gateway API with Envoy Gateway: a consistent hash on the header for the Faro route only.
    let gateway = documents("gateway-envoy.yaml");
    let policy_of = |route: &str| -> &Value {
        &gateway
            .iter()
            .find(|d| {
                d["kind"] == "BackendTrafficPolicy"
                    && d["spec"]["targetRefs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|t| t["kind"] == "HTTPRoute" && t["name"] == route)
            })
            .unwrap_or_else(|| panic!("a BackendTrafficPolicy for {route}"))["spec"]["loadBalancer"]
    };
    let mut prefixes = Vec::new();
    for route in gateway.iter().filter(|d| d["kind"] == "HTTPRoute") {
        let name = str_of(&route["metadata"]["name"], "HTTPRoute name");
        for rule in route["spec"]["rules"].as_array().unwrap() {
            for backend in rule["backendRefs"].as_array().unwrap() {
                let service = str_of(&backend["name"], "backendRef");
                assert_reaches_ingest(&services, pod, service, &backend["port"]);
            }
            for m in rule["matches"].as_array().unwrap() {
                let prefix = str_of(&m["path"]["value"], "path").to_owned();
                let lb = policy_of(name);
                if prefix == "/collect" {
                    assert_eq!(lb["type"], "ConsistentHash", "{name}");
                    assert_eq!(lb["consistentHash"]["type"], "Header");
                    assert_eq!(lb["consistentHash"]["header"]["name"], FARO_SESSION_HEADER);
                } else {
                    assert_eq!(lb["type"], "RoundRobin", "{name}");
                }
                prefixes.push(prefix);
            }
        }
    }
    prefixes.sort();
    assert_eq!(prefixes, ["/", "/collect"]);
}
