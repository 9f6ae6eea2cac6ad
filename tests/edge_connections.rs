//! The public port against slow, idle and half-sent connections, and shutdown with them open:
//! the real binary, raw TCP clients, and (for delivery) a real collector (rotel) with a sink.
//!
//! Timeouts are configured short (1–2 s) so that the server's closing can be polled with a
//! bound; the connection cap small (64) so that a test can reach it.

mod common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short timeouts and a small cap, rate limits off (every request here comes from one address).
const BOUNDS: &str = "header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n\
                      idle_timeout = \"2s\"\nmax_connections = 64\n";

/// What the server's closing can take beyond a timeout: scheduling on a busy machine.
const SLACK: Duration = Duration::from_secs(4);

/// `rest` of the `[server]` table goes right after the listeners that `Bridge` writes.
async fn bridge(server: &str, rest: &str) -> Bridge {
    Bridge::start(&format!(
        "{server}\n[rate_limits]\nper_ip_requests_per_second = 0\n\n{rest}"
    ))
    .await
}

/// Reads until the server closes the connection (EOF or reset) or `within` passes; returns
/// what was read and when it closed, `None` if it stayed open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(bridge: &Bridge) -> TcpStream {
    TcpStream::connect(bridge.ingest).await.unwrap()
}

/// `/healthz` on the admin port, timed.
async fn healthz(bridge: &Bridge) -> (u16, Duration) {
    let started = Instant::now();
    let status = bridge
        .client
        .get(format!("http://{}/healthz", bridge.admin))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, started.elapsed())
}

const HALF_HEADERS: &[u8] = b"POST /v1/rum HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n";
const STALLED_BODY: &[u8] =
    b"POST /v1/rum HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 400\r\n\r\n{\"ev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_surplus_connections_are_closed_and_counted_while_the_admin_port_answers() {
    let bridge = bridge(BOUNDS, "").await;
    let beacon = std::fs::read(repo_root().join("examples/beacons/page-load.json")).unwrap();

    // Idle keep-alive: one request answered, then silence.
    let mut idle = connect(&bridge).await;
    let request = format!(
        "POST /v1/rum HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        beacon.len()
    );
    idle.write_all(request.as_bytes()).await.unwrap();
    idle.write_all(&beacon).await.unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 202");

    // Half-sent headers, a stalled body, and nothing at all.
    let mut half = connect(&bridge).await;
    half.write_all(HALF_HEADERS).await.unwrap();
    let mut stalled = connect(&bridge).await;
    stalled.write_all(STALLED_BODY).await.unwrap();
    let mut silent = connect(&bridge).await;
    // Dribbled headers: a byte every 200 ms, never finished.
    let mut dribbled = connect(&bridge).await;
    let dribbling = tokio::spawn(async move {
        let started = Instant::now();
        for byte in HALF_HEADERS.iter().cycle() {
            if dribbled.write_all(&[*byte]).await.is_err() {
                return Some(started.elapsed());
            }
            let mut probe = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(200), dribbled.read(&mut probe)).await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                _ => {}
            }
            if started.elapsed() > Duration::from_secs(1) + SLACK {
                return None;
            }
        }
        None
    });

    // Fill the cap (64 open) and try 100 in all: the surplus is closed at once.
    let mut filler = Vec::new();
    for _ in 0..95 {
        filler.push(connect(&bridge).await);
    }
    let (status, took) = healthz(&bridge).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");

    let within = Duration::from_secs(2) + SLACK;
    let (_, t) = closed_within(&mut half, within)
        .await
        .expect("half-sent headers stayed open");
    assert!(t <= Duration::from_secs(1) + SLACK, "{t:?}");
    let (got, _) = closed_within(&mut silent, within)
        .await
        .expect("a silent connection stayed open");
    assert!(got.is_empty());
    let (got, _) = closed_within(&mut stalled, within)
        .await
        .expect("a stalled body stayed open");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"reason\":\"body_timeout\""), "{got}");
    let (got, _) = closed_within(&mut idle, within)
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(String::from_utf8_lossy(&got).contains("\"accepted\""));
    assert!(
        dribbling.await.unwrap().is_some(),
        "dribbled headers stayed open"
    );
    for (i, stream) in filler.iter_mut().enumerate() {
        assert!(
            closed_within(stream, within).await.is_some(),
            "connection {i} stayed open"
        );
    }

    let metric = |series: &'static str| {
        let bridge = &bridge;
        async move { bridge.metric(series).await }
    };
    let refused = metric("rum_bridge_connections_refused_total").await;
    assert!(refused >= 30.0, "refused {refused}");
    assert!(metric("rum_bridge_connections_timed_out_total{phase=\"headers\"}").await >= 3.0);
    assert_eq!(
        metric("rum_bridge_connections_timed_out_total{phase=\"body\"}").await,
        1.0
    );
    assert_eq!(
        metric("rum_bridge_connections_timed_out_total{phase=\"idle\"}").await,
        1.0
    );
    assert_eq!(
        metric("rum_bridge_items_rejected_total{reason=\"body_timeout\"}").await,
        1.0
    );
    let deadline = Instant::now() + WAIT;
    while metric("rum_bridge_connections_open").await != 0.0 {
        assert!(Instant::now() < deadline, "connections_open stays above 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The port serves again.
    assert_eq!(bridge.send_page_load().await.status(), 202);
}

/// A body that never sends a byte (an HTTP/2 stream left open).
struct Never;

impl hyper::body::Body for Never {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

/// An OTLP/HTTP JSON request carrying spans with ids `ids`.
fn spans_json(ids: std::ops::Range<u32>) -> String {
    let spans: Vec<serde_json::Value> = ids
        .map(|id| {
            serde_json::json!({
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": format!("{:016x}", u64::from(id) + 1),
                "name": format!("span-{id}"),
                "kind": 1,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000100000000",
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "edge"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
    }]})
    .to_string()
}

/// Starts the binary with its stderr written to a file (to read the shutdown log), metrics
/// off, exporting to `collector`.
struct Logged {
    bridge: Bridge,
    log: PathBuf,
}

async fn logged_bridge(server: &str, collector: std::net::SocketAddr) -> Logged {
    let ingest: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let config = format!(
        "[server]\nlisten = \"{ingest}\"\nadmin_listen = \"{admin}\"\n{server}\n\
         [rate_limits]\nper_ip_requests_per_second = 0\n\n[metrics]\nenabled = false\n\n{}",
        grpc_exporter_toml(collector)
    );
    let path = dir.path().join("rum-bridge.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(bridge_binary())
        .args(["run", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("RUM_BRIDGE_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start rum-bridge");
    let client = http_client();
    let url = format!("http://{admin}/readyz");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "rum-bridge did not become ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Logged {
        bridge: Bridge {
            ingest,
            admin,
            dir,
            proc: Proc {
                child,
                name: "rum-bridge",
            },
            client,
        },
        log,
    }
}

/// Sends SIGTERM and waits (bounded by `within`) for the exit; returns how long it took.
async fn sigterm(bridge: &mut Bridge, within: Duration) -> Duration {
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &bridge.proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    poll("rum-bridge to exit", within, || {
        bridge.proc.child.try_wait().ok().flatten()
    })
    .await;
    started.elapsed()
}

fn span_ids(sink: &Sink) -> HashSet<String> {
    sink.spans().iter().map(|s| hex(&s.span.span_id)).collect()
}

fn expected(ids: std::ops::Range<u32>) -> HashSet<String> {
    ids.map(|id| format!("{:016x}", u64::from(id) + 1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_half_sent_requests_exits_within_the_deadline_and_delivers_what_was_accepted()
{
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let server = format!("shutdown_timeout = \"4s\"\nshutdown_grace = \"2s\"\n{BOUNDS}")
        .replace(
            "header_read_timeout = \"1s\"",
            "header_read_timeout = \"10s\"",
        )
        .replace("body_read_timeout = \"1s\"", "body_read_timeout = \"30s\"");
    let Logged { mut bridge, log } = logged_bridge(&server, rotel.grpc).await;
    let url = bridge.url("/v1/traces");
    for n in 0..10 {
        let status = bridge
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(spans_json(n * 5..n * 5 + 5))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
    }

    // HTTP/1: headers half sent; a body half sent.
    let mut half = connect(&bridge).await;
    half.write_all(HALF_HEADERS).await.unwrap();
    let mut stalled = connect(&bridge).await;
    stalled.write_all(STALLED_BODY).await.unwrap();
    // HTTP/2: a stream whose body never comes.
    let h2 = connect(&bridge).await;
    let (mut sender, h2_conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(h2),
    )
    .await
    .unwrap();
    tokio::spawn(h2_conn);
    let request = hyper::Request::post(format!("http://{}/v1/traces", bridge.ingest))
        .header("content-type", "application/json")
        .body(Never)
        .unwrap();
    let h2_answer = tokio::spawn(async move { sender.send_request(request).await });
    // Let the server see all three before the signal.
    let deadline = Instant::now() + WAIT;
    while bridge.metric("rum_bridge_connections_open").await < 3.0 {
        assert!(Instant::now() < deadline, "the connections did not open");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let took = sigterm(&mut bridge, Duration::from_secs(4) + SLACK).await;
    assert!(took < Duration::from_secs(4) + SLACK, "exit took {took:?}");
    assert!(closed_within(&mut half, SLACK).await.is_some());
    assert!(closed_within(&mut stalled, SLACK).await.is_some());
    let _ = tokio::time::timeout(SLACK, h2_answer).await;

    let want = expected(0..50);
    poll("every accepted span at the sink", WAIT, || {
        want.is_subset(&span_ids(&sink)).then_some(())
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("every exporter delivered all it held"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_as_soon_as_everything_is_delivered_and_says_so() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let Logged { mut bridge, log } =
        logged_bridge("shutdown_timeout = \"20s\"\n", rotel.grpc).await;
    let url = bridge.url("/v1/traces");

    // Eight senders in a loop, five spans a request, until the daemon stops answering.
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for worker in 0..8u32 {
        let (client, url, accepted) = (bridge.client.clone(), url.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let first = (worker * 100_000 + n) * 5;
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(spans_json(first..first + 5))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent.map(|r| r.status().as_u16()) {
                    Ok(202) => accepted.lock().unwrap().push(first),
                    _ => return,
                }
            }
        }));
    }
    poll("a burst accepted", WAIT, || {
        (accepted.lock().unwrap().len() >= 200).then_some(())
    })
    .await;

    let took = sigterm(&mut bridge, WAIT).await;
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?}, the deadline is 20 s"
    );
    let want: HashSet<String> = accepted
        .lock()
        .unwrap()
        .iter()
        .flat_map(|first| expected(*first..first + 5))
        .collect();
    poll("every accepted span at the sink", WAIT, || {
        want.is_subset(&span_ids(&sink)).then_some(())
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("abandoning undelivered"), "{text}");
    assert!(!text.contains("deadline reached"), "{text}");
    assert!(
        text.contains("every exporter delivered all it held"),
        "{text}"
    );
}
