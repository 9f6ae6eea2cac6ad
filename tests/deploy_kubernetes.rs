//! The Kubernetes manifests (`examples/k8s/`) checked without a cluster: the bridge is probed on
//! its admin port, its Services expose only the public port, its configuration comes from the
//! mounted ConfigMap and its user-id key from a Secret; the autoscaler and the disruption budget
//! act on the standalone Deployment.

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
