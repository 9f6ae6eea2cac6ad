//! The command line: `check-config` accepts the annotated example and names the offending key
//! and line of a bad file; `--help` lists the subcommands.

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rum-bridge"));
    c.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("RUM_BRIDGE_CONFIG");
    c
}

#[test]
fn check_config_accepts_the_annotated_example() {
    let out = bin()
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/rum-bridge.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective = String::from_utf8(out.stdout).unwrap();
    assert!(effective.contains("[server]") && effective.contains("[[exporters]]"));
}

#[test]
fn check_config_names_unknown_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:4380\"\nlisten_port = 1\n",
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen_port") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn help_lists_subcommands() {
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("run") && help.contains("check-config"),
        "{help}"
    );
}
