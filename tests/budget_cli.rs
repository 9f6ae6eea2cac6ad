//! `rum-bridge budget --from`: a real daemon writes its OTLP-JSON metrics from native beacons of
//! two releases, and the gate reads them back: it exits 0 when the budgets hold, 1 when release
//! B's p75 LCP exceeds a budget or regresses past the limit against release A (the JUnit report
//! naming the failing budget), and 2 when the version has no samples.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

/// Release A's LCPs (p75 = 1100 by `histogram_quantile` over the bridge's buckets: 2 in
/// (800, 1000], 2 in (1000, 1200]; rank 3 → 1000 + 200 × 1/2).
const A_PRODUCTS: &[f64] = &[900.0, 950.0, 1100.0, 1150.0];
/// Release B's LCPs on `/products/{id}` (all in (1200, 1500]: p75 = 1200 + 300 × 3/4 = 1425).
const B_PRODUCTS: &[f64] = &[1250.0, 1300.0, 1400.0, 1450.0];
/// And one slow `/cart` view: B over all pages has p75 = 1200 + 300 × 3.75/4 = 1481.25.
const B_CART: &[f64] = &[9000.0];

fn beacon(n: usize, version: &str, path: &str, lcp: f64) -> String {
    serde_json::json!({
        "v": 1,
        "k": "pk_shop_web",
        "sid": format!("{n:016x}"),
        "pvid": format!("{:016x}", n + 1_000_000),
        "url": format!("https://shop.example.com{path}"),
        "appVersion": version,
        "ev": [{"type": "vital", "name": "LCP", "value": lcp, "delta": lcp,
                "id": format!("v6-1795839390392-{n}"), "navigationType": "navigate"}]
    })
    .to_string()
}

/// Runs a bridge (embedded file exporter), posts the beacons, stops it (the shutdown flushes
/// the metrics) and returns its `metrics.jsonl`, kept in `keep`.
async fn metrics_file(keep: &Path) -> PathBuf {
    let mut bridge = Bridge::start("").await;
    let mut n = 0;
    for (version, path, values) in [
        ("A", "/products/12345", A_PRODUCTS),
        ("B", "/products/67890", B_PRODUCTS),
        ("B", "/cart", B_CART),
    ] {
        for lcp in values {
            n += 1;
            let resp = bridge
                .client
                .post(bridge.url("/v1/rum"))
                .header("content-type", "text/plain;charset=UTF-8")
                .header("origin", "https://shop.example.com")
                .body(beacon(n, version, path, *lcp))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        }
    }
    let pid = bridge.proc.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + WAIT;
    while bridge.proc.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "rum-bridge did not exit");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let file = keep.join("metrics.jsonl");
    std::fs::copy(
        bridge.dir.path().join("rum-bridge-data/metrics.jsonl"),
        &file,
    )
    .unwrap();
    file
}

fn budget(dir: &Path, budgets: &str, args: &[&str]) -> Output {
    let path = dir.join("budgets.toml");
    std::fs::write(&path, budgets).unwrap();
    std::process::Command::new(bridge_binary())
        .arg("budget")
        .arg("--budgets")
        .arg(&path)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PRODUCTS_MAX: &str =
    "[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax = 1450\npage = \"/products/{id}\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_from_the_bridge_metrics_file_gates_release_b() {
    let dir = tempfile::tempdir().unwrap();
    let file = metrics_file(dir.path()).await;
    let from = file.to_str().unwrap();

    // Within the max on the product page: exit 0, the interpolated p75 in the JSON.
    let out = budget(
        dir.path(),
        PRODUCTS_MAX,
        &["--from", from, "--version", "B", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pass"], true);
    assert_eq!(json["budgets"][0]["value"], 1425.0, "{json}");
    assert_eq!(json["budgets"][0]["verdict"], "pass");

    // The same max over all pages includes the slow /cart view: exceeded, exit 1, and the
    // JUnit report names that budget (and only that one) as failing.
    let junit = dir.path().join("junit.xml");
    let two =
        format!("{PRODUCTS_MAX}\n[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax = 1450\n");
    let out = budget(
        dir.path(),
        &two,
        &[
            "--from",
            from,
            "--version",
            "B",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("1481.2"), "{table}");
    assert!(table.contains("exceeded"), "{table}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains("<failure message=\"budget lcp p75 (all pages) failed: p75 lcp = 1481.2 exceeds max 1450\""),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"lcp p75 /products/{id} (version B)\"/>"),
        "the passing budget is a passing test case: {xml}"
    );

    // Against release A (p75 1100): +29.5 % passes a 50 % limit, fails a 10 % limit.
    let regression = |limit: &str| {
        format!("[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax_regression = \"{limit}\"\npage = \"/products/{{id}}\"\n")
    };
    let args = ["--from", from, "--version", "B", "--baseline", "A"];
    let out = budget(dir.path(), &regression("50%"), &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1100 (A)"),
        "{}",
        text(&out.stdout)
    );
    let out = budget(dir.path(), &regression("10%"), &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("regressed"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("regressed past 1210"),
        "{}",
        text(&out.stderr)
    );

    // A version without samples is a data error, and says which.
    let out = budget(
        dir.path(),
        PRODUCTS_MAX,
        &["--from", from, "--version", "C"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no samples of lcp") && err.contains("version C"),
        "{err}"
    );
}

#[test]
fn usage_and_data_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    // A typo in the budget file names the key.
    let out = budget(
        dir.path(),
        "[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmaxx = 1\n",
        &["--from", "/nonexistent"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("maxx"), "{}", text(&out.stderr));
    // A file that is not OTLP-JSON names the line.
    let bad = dir.path().join("metrics.jsonl");
    std::fs::write(&bad, "{\"resourceMetrics\": []}\nnot json\n").unwrap();
    let out = budget(dir.path(), PRODUCTS_MAX, &["--from", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("metrics.jsonl:2"),
        "{}",
        text(&out.stderr)
    );
    // Neither source given: clap's usage error, also 2.
    let out = budget(dir.path(), PRODUCTS_MAX, &[]);
    assert_eq!(out.status.code(), Some(2));
    // An unreachable Prometheus.
    let port = free_port();
    let out = budget(
        dir.path(),
        PRODUCTS_MAX,
        &["--prometheus", &format!("http://127.0.0.1:{port}")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unreachable"),
        "{}",
        text(&out.stderr)
    );
}
