//! The command line: `check-config` accepts the annotated example, names the offending key and
//! line of a bad file (syntax and semantic errors alike), and never prints URL credentials;
//! `--help` lists the subcommands.

use std::process::Command;

fn bin() -> Command {
    // `RUM_BRIDGE_BIN`: the binary under test when it is not the one cargo built (release).
    let exe = std::env::var_os("RUM_BRIDGE_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rum-bridge").into());
    let mut c = Command::new(exe);
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
fn check_config_names_the_file_and_line_of_a_semantic_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:4380\"\n\n[rate_limits]\nper_ip_requests_per_second = 5\n\
         per_ip_burst = 0\n\n[[apps]]\nname = \"a\"\nkey = \"pk_x\"\n\n[[apps]]\nname = \"b\"\n\
         key = \"pk_x\"\n",
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let at = |line: usize| format!("{}:{line}: ", path.display());
    assert!(
        err.contains(&format!(
            "{}rate_limits.per_ip_burst: must be at least 1",
            at(6)
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}apps[1].key: duplicate key", at(14))),
        "{err}"
    );
}

#[test]
fn check_config_masks_credentials_in_exporter_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rb.toml");
    std::fs::write(
        &path,
        "[[exporters]]\nname = \"vendor\"\nprotocol = \"http/protobuf\"\n\
         endpoint = \"https://otlp-user:Hunter2Secret@otlp.example.com/otlp?api_key=QueryKey42\"\n\
         traces_endpoint = \"https://u:TracesSecret@otlp.example.com/v1/traces\"\n\n\
         [telemetry]\nself_traces_endpoint = \"http://u:SelfSecret@127.0.0.1:4317\"\n",
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    for secret in ["Hunter2Secret", "QueryKey42", "TracesSecret", "SelfSecret"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("https://otlp-user:***@otlp.example.com/otlp?api_key=***"),
        "{stdout}"
    );
    assert!(
        stdout.contains("https://u:***@otlp.example.com/v1/traces"),
        "{stdout}"
    );

    // A bad URL is named in the error, masked too.
    std::fs::write(
        &path,
        "[[exporters]]\nname = \"vendor\"\nprotocol = \"grpc\"\n\
         endpoint = \"htp:/otlp-user:Hunter2Secret@otlp.example.com\"\n",
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exporters[0].endpoint"), "{stderr}");
    assert!(!stderr.contains("Hunter2Secret"), "{stderr}");
    assert!(stderr.contains("otlp-user:***@"), "{stderr}");
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
