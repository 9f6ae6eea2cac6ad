//! The container images checked without a Docker engine: they build with the repository's
//! release build script, run as a non-root user, and `.dockerignore` keeps what the builds read;
//! the container health check works against a live admin listener.

mod common;
mod deploy;

use std::process::Command;

use common::{free_port, repo_root, Bridge};
use deploy::read;

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
