//! `rum-bridge budget --prometheus` against a real Prometheus (Debian's `prometheus` package,
//! scripts/install-test-deps.sh) that scraped the bridge's `GET /metrics/rum`: the same
//! verdicts and the same interpolated p75 as from the OTLP-JSON file (tests/budget_cli.rs).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn beacon(n: usize, version: &str, path: &str, lcp: f64) -> String {
    serde_json::json!({
        "v": 1, "k": "pk_shop_web",
        "sid": format!("{n:016x}"), "pvid": format!("{:016x}", n + 1_000_000),
        "url": format!("https://shop.example.com{path}"), "appVersion": version,
        "ev": [{"type": "vital", "name": "LCP", "value": lcp, "delta": lcp,
                "id": format!("v6-1795839390392-{n}"), "navigationType": "navigate"}]
    })
    .to_string()
}

/// A Prometheus scraping `target`'s `/metrics/rum` every second, killed on drop.
fn start_prometheus(dir: &Path, target: std::net::SocketAddr) -> (Proc, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rum\n    metrics_path: /metrics/rum\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (scripts/install-test-deps.sh installs Debian's prometheus)");
    (
        Proc {
            child,
            name: "prometheus",
        },
        format!("http://127.0.0.1:{port}"),
    )
}

fn budget(dir: &Path, budgets: &str, args: &[&str]) -> Output {
    let path = dir.join("budgets.toml");
    std::fs::write(&path, budgets).unwrap();
    Command::new(bridge_binary())
        .arg("budget")
        .arg("--budgets")
        .arg(&path)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_from_prometheus_that_scraped_the_bridge() {
    let bridge = Bridge::start("[metrics]\ninterval = \"1s\"\n").await;
    let mut n = 0;
    for (version, path, values) in [
        ("A", "/products/12345", &[900.0, 950.0, 1100.0, 1150.0][..]),
        (
            "B",
            "/products/67890",
            &[1250.0, 1300.0, 1400.0, 1450.0][..],
        ),
        ("B", "/cart", &[9000.0][..]),
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
            assert_eq!(resp.status(), 202);
        }
    }
    // The exposition after the next flush.
    let rum_url = format!("http://{}/metrics/rum", bridge.admin);
    let deadline = Instant::now() + WAIT;
    let exposition = loop {
        let text = bridge
            .client
            .get(&rum_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(
            r#"rum_web_vital_count{vital="lcp",app="shop-web",version="B",page="/cart"} 1"#,
        ) || text.contains(r#"version="B",page="/cart"} 1"#)
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no RUM series at /metrics/rum:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        exposition.contains("# TYPE rum_web_vital histogram"),
        "{exposition}"
    );
    assert!(
        exposition.contains(r#"version="A",page="/products/{id}",le="1200"} 4"#),
        "{exposition}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prom_url) = start_prometheus(dir.path(), bridge.admin);
    // Until Prometheus has scraped all nine LCPs.
    let query =
        format!("{prom_url}/api/v1/query?query=sum(rum_web_vital_count%7Bvital%3D%22lcp%22%7D)");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = bridge.client.get(&query).send().await {
            if let Ok(v) =
                serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap_or_default())
            {
                if v["data"]["result"][0]["value"][1] == "9" {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the bridge"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let products =
        "[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax = 1450\npage = \"/products/{id}\"\n";
    let out = budget(
        dir.path(),
        products,
        &[
            "--prometheus",
            &prom_url,
            "--version",
            "B",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["budgets"][0]["value"], 1425.0, "{json}");

    // All pages: exceeded. Against A with a 10 % limit: regressed.
    let all = "[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax = 1450\n";
    let out = budget(
        dir.path(),
        all,
        &["--prometheus", &prom_url, "--version", "B"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1481.2"));
    let regression = "[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax_regression = \"10%\"\npage = \"/products/{id}\"\n";
    let out = budget(
        dir.path(),
        regression,
        &[
            "--prometheus",
            &prom_url,
            "--version",
            "B",
            "--baseline",
            "A",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("regressed past 1210"));

    // No samples for version C: exit 2 naming it.
    let out = budget(
        dir.path(),
        products,
        &["--prometheus", &prom_url, "--version", "C"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no samples of lcp") && err.contains("version C"),
        "{err}"
    );
}
