//! Scale-out with real parts: three replicas of the daemon behind a real nginx started with the
//! shipped `examples/scale-out/nginx.conf`, all exporting with the shipped
//! `examples/scale-out/rum-bridge.toml` to one real collector (rotel).
//!
//! - The captured Faro session keeps all 7 of its exception and web-vital records on the
//!   page-load trace: nginx hashes `x-faro-session-id`, so one replica sees the whole session.
//! - 200 native beacons of 200 sessions spread over all three replicas (round-robin) and every
//!   span reaches the collector.
//! - A replica killed with SIGKILL mid-stream loses nothing it acknowledged (disk buffer, drained
//!   when it starts again on the same directory) and the other two keep answering.
//! - Without affinity (the same session sprayed over replicas directly) the page-load trace
//!   loses records and `rum_bridge_faro_page_memory_misses_total` says so.
//!
//! The shipped configuration names fixed ports (4380 for nginx, 4390–4392 for the replicas).
//! Runs of this test on one machine (two checkouts, a release and a debug run) take turns
//! through a lock; when something else holds a documented port, the test runs the same files
//! with only the port numbers replaced by free ones, and says so.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Generous: CI machines are slower than the one these were measured on.
const LONG: Duration = Duration::from_secs(90);
const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const FARO_SESSION: &str = "sTWv8ksKJV";
/// The documented ports of `examples/scale-out/`: nginx, then the three replicas.
const LB_PORT: u16 = 4380;
const REPLICA_PORTS: [u16; 3] = [4390, 4391, 4392];
/// Where the shipped bridge configuration sends (replaced by the test collector's address).
const SHIPPED_COLLECTOR: &str = "127.0.0.1:4317";

// ---------------------------------------------------------------------------------------------
// Parts

/// Held while a run uses the documented ports: an abstract Unix socket name, which only one
/// process can bind and the kernel frees when the process dies (no stale lock files).
struct PortsLock(#[allow(dead_code)] std::os::unix::net::UnixListener);

impl PortsLock {
    async fn acquire() -> PortsLock {
        use std::os::linux::net::SocketAddrExt;
        let name =
            std::os::unix::net::SocketAddr::from_abstract_name(b"rum-bridge/tests/scale_out")
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match std::os::unix::net::UnixListener::bind_addr(&name) {
                Ok(l) => return PortsLock(l),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(e) => panic!("scale-out lock: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "another scale-out test run held the lock for 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The ports this run uses: the documented ones when free, else free ones.
struct Ports {
    lb: u16,
    replicas: [u16; 3],
}

impl Ports {
    fn choose() -> Ports {
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(LB_PORT) && REPLICA_PORTS.into_iter().all(free) {
            return Ports {
                lb: LB_PORT,
                replicas: REPLICA_PORTS,
            };
        }
        let ports = Ports {
            lb: free_port(),
            replicas: [free_port(), free_port(), free_port()],
        };
        eprintln!(
            "scale_out: a documented port (4380, 4390-4392) is taken by another program; \
             running the shipped files on {} and {:?} instead",
            ports.lb, ports.replicas
        );
        ports
    }

    /// `text` with the documented ports replaced by this run's.
    fn apply(&self, text: &str) -> String {
        let mut text = text.replace(&format!(":{LB_PORT};"), &format!(":{};", self.lb));
        for (documented, port) in REPLICA_PORTS.iter().zip(self.replicas) {
            text = text.replace(&format!(":{documented};"), &format!(":{port};"));
        }
        text
    }
}

/// One replica: the shipped configuration, its own working directory (its disk buffer) and
/// instance id, the listeners on the command line (as `examples/scale-out/README.md` says).
struct Replica {
    ingest: SocketAddr,
    admin: SocketAddr,
    dir: PathBuf,
    config: PathBuf,
    proc: Proc,
    client: reqwest::Client,
}

impl Replica {
    async fn start(config: &Path, dir: &Path, ingest: SocketAddr, id: &str) -> Replica {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new(bridge_binary())
            .args(["run", "--config"])
            .arg(config)
            .args(["--listen", &ingest.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .current_dir(dir)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("RUM_BRIDGE_CONFIG")
            .env("RUM_BRIDGE_INSTANCE_ID", id)
            .env("RUM_BRIDGE_USER_ID_KEY", "one-key-for-every-replica")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rum-bridge");
        let replica = Replica {
            ingest,
            admin,
            dir: dir.to_owned(),
            config: config.to_owned(),
            proc: Proc {
                child,
                name: "rum-bridge",
            },
            client: http_client(),
        };
        let url = format!("http://{admin}/readyz");
        let deadline = Instant::now() + LONG;
        loop {
            if let Ok(r) = replica.client.get(&url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "replica {id} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        replica
    }

    async fn scrape(client: &reqwest::Client, admin: SocketAddr) -> String {
        let url = format!("http://{admin}/metrics");
        client.get(url).send().await.unwrap().text().await.unwrap()
    }

    async fn metric(&self, series: &str) -> f64 {
        metric_in(&Replica::scrape(&self.client, self.admin).await, series)
    }
}

/// nginx started from the test with its own prefix, in the foreground, stopped by PID.
struct Nginx {
    child: Child,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    fn binary() -> PathBuf {
        std::env::var_os("NGINX")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
    }

    async fn start(conf: &Path, port: u16) -> Nginx {
        let binary = Nginx::binary();
        assert!(
            binary.exists(),
            "nginx not found at {}: run scripts/install-test-deps.sh (or set NGINX)",
            binary.display()
        );
        let prefix = tempfile::tempdir().unwrap();
        // Run as root, nginx's workers drop to `nobody`, who must reach the temp directories.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(prefix.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut prefix_arg = prefix.path().as_os_str().to_owned();
        prefix_arg.push("/");
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&prefix_arg)
            .arg("-c")
            .arg(conf)
            .args(["-e", "stderr"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            child,
            _prefix: prefix,
        };
        let deadline = Instant::now() + LONG;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited: {status}");
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        nginx
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master, which stops its workers (SIGKILL would leave them listening).
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Value of one Prometheus sample line (exact series text) of `text`, 0 when absent.
fn metric_in(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Traffic

/// Sends a captured Faro request with the headers the SDK sent that matter here.
async fn send_faro(client: &reqwest::Client, url: &str, req: &Captured) -> reqwest::Response {
    let mut b = client.post(url).body(req.body.clone());
    for (k, v) in &req.headers {
        if matches!(
            k.as_str(),
            "content-type"
                | "content-encoding"
                | "origin"
                | "user-agent"
                | "referer"
                | "x-faro-session-id"
                | "idempotency-key"
        ) {
            b = b.header(k, v);
        }
    }
    b.send().await.unwrap()
}

/// The exception and web-vital records of the captured Faro session, and how many of them are
/// on the page-load trace.
fn faro_records(sink: &Sink) -> (usize, usize) {
    let records: Vec<LogRecordEntry> = sink
        .logs()
        .into_iter()
        .filter(|l| {
            matches!(
                l.record.event_name.as_str(),
                "exception" | "browser.web_vital"
            )
        })
        .filter(|l| attr(&l.record.attributes, "session.id").as_deref() == Some(FARO_SESSION))
        .collect();
    let on_trace = records
        .iter()
        .filter(|l| hex(&l.record.trace_id) == SERVER_TRACE)
        .count();
    (records.len(), on_trace)
}

/// A native beacon of its own session and page view: a page load with two resources and one
/// fetch whose ids the page chose (so each beacon makes five spans, one of them known by id).
fn native_beacon(n: u32) -> (String, String) {
    let span = format!("{:016x}", 0x5ca1_e000_0000_0000u64 + u64::from(n));
    let beacon = serde_json::json!({
        "v": 1,
        "sid": format!("scale-session-{n:04}"),
        "pvid": format!("scale-page-{n:04}"),
        "url": "https://shop.example.com/products/sku-123",
        "sdk": {"name": "rum-bridge-js", "version": "0.1.0"},
        "t0": 1795839390385.4,
        "sent": 1795839398321.7,
        "ev": [
            {"type": "page_load", "nav": {
                "name": "https://shop.example.com/products/sku-123", "type": "navigate",
                "startTime": 0, "duration": 1912.4, "fetchStart": 2.1, "requestStart": 61.8,
                "responseStart": 212.6, "responseEnd": 241.3, "domInteractive": 612.4,
                "domComplete": 1907.9, "loadEventStart": 1908.1, "loadEventEnd": 1912.4
            }, "res": [
                {"name": "https://shop.example.com/static/js/app.e02b.js",
                 "initiatorType": "script", "startTime": 252.3, "duration": 176.3,
                 "fetchStart": 252.3, "responseEnd": 428.6},
                {"name": "https://cdn.shop.example/img/logo.svg", "initiatorType": "img",
                 "startTime": 530.2, "duration": 41.8, "fetchStart": 530.2, "responseEnd": 572.0}
            ]},
            {"type": "http", "method": "POST", "url": "https://shop.example.com/api/cart",
             "status": 200, "start": 3962.3, "dur": 83.7,
             "trace": format!("{:032x}", 0xbeac_0000_u128 + u128::from(n)), "span": span}
        ]
    });
    (beacon.to_string(), span)
}

/// An OTLP/HTTP JSON request with spans `ids`.
fn otlp_spans(ids: std::ops::Range<u32>) -> String {
    let spans: Vec<serde_json::Value> = ids
        .map(|id| {
            serde_json::json!({
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": otlp_span_id(id),
                "name": format!("span-{id}"),
                "kind": 1,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000100000000",
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "scale-out"}}
        ]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
    }]})
    .to_string()
}

fn otlp_span_id(id: u32) -> String {
    format!("{:016x}", 0x0da0_0000_0000_0000u64 + u64::from(id))
}

fn span_ids(sink: &Sink) -> HashSet<String> {
    sink.spans().iter().map(|s| hex(&s.span.span_id)).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

/// One test function: its parts use the documented ports, which one run holds at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_the_shipped_nginx_keep_sessions_whole_and_lose_nothing() {
    let _lock = PortsLock::acquire().await;
    let ports = Ports::choose();
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;

    let work = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(repo_root().join("examples/scale-out/rum-bridge.toml")).unwrap();
    assert!(shipped.contains(SHIPPED_COLLECTOR));
    let config = work.path().join("rum-bridge.toml");
    std::fs::write(
        &config,
        shipped.replace(SHIPPED_COLLECTOR, &rotel.grpc.to_string()),
    )
    .unwrap();
    let mut replicas = Vec::new();
    for (i, port) in ports.replicas.into_iter().enumerate() {
        let ingest: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = work.path().join(format!("replica-{i}"));
        replicas.push(Replica::start(&config, &dir, ingest, &format!("replica-{i}")).await);
    }
    let shipped_conf = repo_root().join("examples/scale-out/nginx.conf");
    let conf = if ports.lb == LB_PORT {
        shipped_conf
    } else {
        let conf = work.path().join("nginx.conf");
        std::fs::write(
            &conf,
            ports.apply(&std::fs::read_to_string(&shipped_conf).unwrap()),
        )
        .unwrap();
        conf
    };
    let _nginx = Nginx::start(&conf, ports.lb).await;
    let lb = format!("http://127.0.0.1:{}", ports.lb);
    let client = http_client();

    // 1. The captured Faro session through nginx: every batch on one replica, 7/7 on the
    // page-load trace, and a retry recognised.
    let faro = captured("faro.jsonl");
    for req in &faro {
        let resp = send_faro(&client, &format!("{lb}/collect"), req).await;
        assert_eq!(resp.status(), 202);
    }
    let (total, on_trace) = poll("the Faro session's 7 records", LONG, || {
        let (total, on_trace) = faro_records(&sink);
        (total >= 7).then_some((total, on_trace))
    })
    .await;
    assert_eq!(
        (total, on_trace),
        (7, 7),
        "exception and web-vital records on the page-load trace"
    );
    let mut faro_requests = Vec::new();
    for r in &replicas {
        faro_requests.push(
            r.metric("rum_bridge_http_requests_total{route=\"/collect\",status=\"202\"}")
                .await,
        );
        let text = Replica::scrape(&r.client, r.admin).await;
        assert!(
            text.lines()
                .any(|l| l == "rum_bridge_faro_page_memory_misses_total 0"),
            "the miss counter is exported, at 0 with affinity"
        );
    }
    assert_eq!(
        faro_requests.iter().filter(|n| **n > 0.0).count(),
        1,
        "one replica took the whole session: {faro_requests:?}"
    );
    let resp = send_faro(&client, &format!("{lb}/collect"), &faro[0]).await;
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["duplicate"], true, "the retry met its replica: {body}");

    // 2. 200 native beacons of 200 sessions: round-robin over the three replicas, every span
    // at the collector.
    let page_loads = |replicas: &[Replica]| {
        let replicas: Vec<_> = replicas
            .iter()
            .map(|r| (r.client.clone(), r.admin))
            .collect();
        async move {
            let mut counts = Vec::new();
            for (client, admin) in replicas {
                let r = Replica::scrape(&client, admin).await;
                counts.push(metric_in(
                    &r,
                    "rum_bridge_items_accepted_total{kind=\"page_load\"}",
                ));
            }
            counts
        }
    };
    let before = page_loads(&replicas).await;
    let mut fetch_spans = HashSet::new();
    for n in 0..200 {
        let (beacon, span) = native_beacon(n);
        fetch_spans.insert(span);
        let resp = client
            .post(format!("{lb}/v1/rum"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", "https://shop.example.com")
            .body(beacon)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    }
    let per_replica: Vec<f64> = page_loads(&replicas)
        .await
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();
    assert!(
        per_replica.iter().all(|n| *n > 0.0),
        "every replica took beacons: {per_replica:?}"
    );
    assert_eq!(per_replica.iter().sum::<f64>(), 200.0);
    let per_session = poll("five spans of each of the 200 sessions", LONG, || {
        let mut per_session: HashMap<String, HashSet<String>> = HashMap::new();
        for s in sink.spans() {
            if let Some(session) = attr(&s.span.attributes, "session.id") {
                if session.starts_with("scale-session-") {
                    per_session
                        .entry(session)
                        .or_default()
                        .insert(hex(&s.span.span_id));
                }
            }
        }
        (per_session.len() == 200 && per_session.values().all(|ids| ids.len() >= 5))
            .then_some(per_session)
    })
    .await;
    assert!(per_session.values().all(|ids| ids.len() == 5));
    let arrived = span_ids(&sink);
    assert!(fetch_spans.iter().all(|s| arrived.contains(s)));

    // 3. A replica killed mid-stream: the others keep answering, nothing acknowledged is lost
    // once it starts again on its buffer directory.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let after_kill = Arc::new(Mutex::new((false, 0usize, 0usize)));
    let stream = {
        let (client, url) = (client.clone(), format!("{lb}/v1/traces"));
        let (acked, after) = (acknowledged.clone(), after_kill.clone());
        tokio::spawn(async move {
            for n in 0..600u32 {
                let status = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(otlp_spans(n * 5..n * 5 + 5))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                if status == 202 {
                    acked.lock().unwrap().push(n);
                }
                let mut after = after.lock().unwrap();
                if after.0 {
                    if status == 202 {
                        after.1 += 1;
                    } else {
                        after.2 += 1;
                    }
                }
            }
        })
    };
    poll("the stream to reach the collector", LONG, || {
        (acknowledged.lock().unwrap().len() >= 100).then_some(())
    })
    .await;
    let victim = replicas.remove(1);
    let (victim_dir, victim_config, victim_ingest) =
        (victim.dir.clone(), victim.config.clone(), victim.ingest);
    let mut victim = victim;
    victim.proc.child.kill().unwrap(); // SIGKILL
    victim.proc.child.wait().unwrap();
    after_kill.lock().unwrap().0 = true;
    stream.await.unwrap();
    let (_, served, failed) = *after_kill.lock().unwrap();
    assert!(
        served >= 100,
        "the other replicas kept answering: {served} acknowledged, {failed} not"
    );
    // Only requests in flight at the kill may fail (nginx never resends a POST it sent).
    assert!(failed <= 4, "{failed} requests failed after the kill");
    let want: HashSet<String> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .flat_map(|n| n * 5..n * 5 + 5)
        .map(otlp_span_id)
        .collect();
    let restarted = Replica::start(&victim_config, &victim_dir, victim_ingest, "replica-1").await;
    let missing = poll("every acknowledged span at the collector", LONG, || {
        let arrived = span_ids(&sink);
        let missing = want.iter().filter(|id| !arrived.contains(*id)).count();
        (missing == 0).then_some(missing)
    })
    .await;
    assert_eq!(missing, 0);
    println!(
        "scale_out: {} spans acknowledged through nginx around a SIGKILL, all delivered; \
         {served} requests answered after the kill, {failed} failed; {} records replayed",
        want.len(),
        restarted
            .metric("rum_bridge_buffer_replayed_records_total{exporter=\"collector\"}")
            .await
    );
}

/// The same session sprayed over replicas without affinity loses its page-load trace, the
/// replicas count the misses, and a retry on another replica is exported twice (no fixed ports:
/// the replicas are reached directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faro_session_sprayed_over_replicas_is_counted_as_page_memory_misses() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let exporter = grpc_exporter_toml(rotel.grpc);
    let replicas = [
        Bridge::start(&exporter).await,
        Bridge::start(&exporter).await,
        Bridge::start(&exporter).await,
    ];
    let faro = captured("faro.jsonl");
    for (i, req) in faro.iter().enumerate() {
        let replica = &replicas[i % 3];
        let resp = send_faro(&replica.client, &replica.url("/collect"), req).await;
        assert_eq!(resp.status(), 202);
    }
    let (total, on_trace) = poll("the Faro session's 7 records", LONG, || {
        let (total, on_trace) = faro_records(&sink);
        (total >= 7).then_some((total, on_trace))
    })
    .await;
    assert_eq!(total, 7, "nothing is lost, every record keeps its session");
    // Only the navigation's replica knows the server span: the two vitals it was sent with.
    assert_eq!(on_trace, 2, "records on the page-load trace");
    // Batch 5's vitals name their navigation (`navigation_entry_id`): without the memory they
    // still point at the documentLoad span id, in a trace of their own.
    let document_load = sink
        .spans()
        .into_iter()
        .find(|s| s.span.name == "documentLoad")
        .expect("documentLoad");
    let cls = sink
        .logs()
        .into_iter()
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("cls"))
        .expect("CLS");
    assert_eq!(hex(&cls.record.span_id), hex(&document_load.span.span_id));
    assert_ne!(hex(&cls.record.trace_id), SERVER_TRACE);
    let mut misses = Vec::new();
    for r in &replicas {
        misses.push(r.metric("rum_bridge_faro_page_memory_misses_total").await);
    }
    // Batch 0 (the navigation) went to replica 0; batches 1, 2, 4 and 5 met replicas that
    // never saw it; batch 3 came back to replica 0.
    assert_eq!(misses, [0.0, 2.0, 2.0], "misses per replica");

    // A retry (same Idempotency-Key) that reaches another replica than the first attempt is
    // taken as new and exported twice: only affinity prevents it.
    let resp = send_faro(&replicas[1].client, &replicas[1].url("/collect"), &faro[0]).await;
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert!(
        body["duplicate"].is_null() && body["accepted"].as_u64() > Some(0),
        "{body}"
    );
    poll("the retried FCP exported a second time", LONG, || {
        let fcp = sink
            .logs()
            .iter()
            .filter(|l| {
                attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("fcp")
            })
            .count();
        (fcp == 2).then_some(())
    })
    .await;
}
