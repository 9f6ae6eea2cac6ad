//! The RUM rule pack (`docker/prometheus/rules/rum.yml`) is valid and behaves as its unit tests
//! say (`rum.test.yml`: poor p75 alerts after 15 minutes, the error-rate alert, the version
//! regression alert), checked with `promtool` from Debian's `prometheus` package
//! (scripts/install-test-deps.sh).

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> std::process::Output {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/prometheus/rules");
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (scripts/install-test-deps.sh installs Debian's prometheus)")
}

#[test]
fn the_rule_pack_is_valid_and_passes_its_promtool_tests() {
    let check = promtool(&["check", "rules", "rum.yml"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = promtool(&["test", "rules", "rum.test.yml"]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(test.status.success(), "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_compose_prometheus_loads_the_rule_pack() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = std::fs::read_to_string(root.join("docker/prometheus.yaml")).unwrap();
    assert!(config.contains("/etc/prometheus/rules/rum.yml"), "{config}");
    let compose = std::fs::read_to_string(root.join("docker/compose.yaml")).unwrap();
    assert!(
        compose.contains("./prometheus/rules:/etc/prometheus/rules:ro"),
        "{compose}"
    );
}
