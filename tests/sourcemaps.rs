//! Source-map symbolication and error grouping through the real binary, with a bundle and map
//! made by a real minifier (terser, `loader/node_modules`, installed by
//! `scripts/install-test-deps.sh`) and real V8 stacks (the bundle run by node under its URL).
//!
//! Maps come from `[[sourcemaps.local]]` or from a test HTTP server on a listed loopback
//! origin; an unlisted origin's listener must see no connection; an oversized map and a
//! server that takes 10 s are given up on within the limits while the bridge keeps answering.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MINIFIED: &str = "rum.exception.stacktrace.minified";
const FINGERPRINT: &str = "rum.exception.fingerprint";

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/sourcemaps")
}

/// Minifies the fixtures into `<out>/<name>` and `<name>.map` (with `sourcesContent`);
/// `banner` is extra code put first, as a different release would have.
fn minify(out: &Path, name: &str, banner: &str) {
    let terser = repo_root().join("loader/node_modules/.bin/terser");
    assert!(
        terser.exists(),
        "terser missing: run scripts/install-test-deps.sh"
    );
    let src = out.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for file in ["cart.js", "checkout.js"] {
        std::fs::copy(fixtures().join(file), src.join(file)).unwrap();
    }
    std::fs::write(src.join("release.js"), banner).unwrap();
    let status = Command::new(&terser)
        .current_dir(out)
        .args(["src/release.js", "src/cart.js", "src/checkout.js"])
        .args(["--mangle", "toplevel", "--source-map"])
        .arg(format!("url='{name}.map',includeSources"))
        .args(["-o", name])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The V8 stack of the bundle's error, with the bundle loaded from `url`.
fn v8_stack(bundle: &Path, url: &str) -> String {
    let out = Command::new("node")
        .arg(fixtures().join("run.cjs"))
        .arg(bundle)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stack = String::from_utf8(out.stdout).unwrap();
    // Only the bundle's frames (node's own follow).
    let kept: Vec<&str> = stack
        .lines()
        .filter(|l| !l.trim_start().starts_with("at ") || l.contains(url))
        .collect();
    assert!(kept.len() >= 3, "{stack}");
    kept.join("\n")
}

/// A native beacon with one error.
fn error_beacon(stack: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    serde_json::json!({
        "v": 1, "k": "pk_shop_web", "sid": "b7e4c0f2a91d4e38", "pvid": "c41e8b2f07d94a1e",
        "url": "https://shop.example.com/cart", "t0": now - 5000.0, "sent": now,
        "ev": [{"type": "error", "time": 4000.0, "name": "TypeError",
                "message": "Cannot read properties of undefined (reading 'cost')",
                "stack": stack, "handled": false}]
    })
    .to_string()
}

async fn send_native(bridge: &Bridge, stack: &str) -> Duration {
    let started = Instant::now();
    let resp = bridge
        .client
        .post(bridge.url("/v1/rum"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "https://shop.example.com")
        .body(error_beacon(stack))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    started.elapsed()
}

/// The exception log records the sink has, by their minified (or, unresolved, own) stack.
fn exceptions(sink: &Sink) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
    sink.logs()
        .into_iter()
        .map(|l| l.record)
        .filter(|r| attr(&r.attributes, "exception.stacktrace").is_some())
        .collect()
}

async fn exception_with(
    sink: &Sink,
    needle: &str,
) -> opentelemetry_proto::tonic::logs::v1::LogRecord {
    poll(&format!("the exception {needle}"), WAIT, || {
        exceptions(sink).into_iter().find(|r| {
            attr(&r.attributes, MINIFIED)
                .or_else(|| attr(&r.attributes, "exception.stacktrace"))
                .is_some_and(|s| s.contains(needle))
        })
    })
    .await
}

/// The resolved stack names the original file, line and function of both frames.
fn assert_resolved(record: &opentelemetry_proto::tonic::logs::v1::LogRecord, minified: &str) {
    let stack = attr(&record.attributes, "exception.stacktrace").unwrap();
    assert!(
        stack.contains("at computeTotal (src/cart.js:7:"),
        "{stack}\n(minified: {minified})"
    );
    assert!(stack.contains("at checkout (src/checkout.js:2:"), "{stack}");
    assert!(stack.starts_with("TypeError: Cannot read properties of undefined"));
    assert_eq!(
        attr(&record.attributes, MINIFIED).as_deref(),
        Some(minified)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_maps_resolve_native_errors_and_two_releases_share_a_fingerprint() {
    let www = tempfile::tempdir().unwrap();
    let dir = www.path().join("static");
    std::fs::create_dir_all(&dir).unwrap();
    minify(&dir, "app.v1.min.js", "globalThis.RELEASE = 1;\n");
    minify(
        &dir,
        "app.v2.min.js",
        "globalThis.RELEASE = 2;\nfunction banner(n) { return 'release ' + n + '!'; }\nglobalThis.banner = banner;\n",
    );
    let v1 = v8_stack(
        &dir.join("app.v1.min.js"),
        "https://shop.example.com/static/app.v1.min.js",
    );
    let v2 = v8_stack(
        &dir.join("app.v2.min.js"),
        "https://shop.example.com/static/app.v2.min.js",
    );
    let column = |s: &str| {
        s.lines()
            .nth(1)
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_ne!(column(&v1), column(&v2), "the releases differ in columns");

    let sink = Sink::start().await;
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n[sourcemaps]\n[[sourcemaps.local]]\nurl_prefix = \"https://shop.example.com/static/\"\ndir = \"{}\"\n\n{}",
        dir.display(),
        grpc_exporter_toml(sink.addr)
    );
    let bridge = Bridge::start(&config).await;
    send_native(&bridge, &v1).await;
    let first = exception_with(&sink, "app.v1.min.js").await;
    assert_resolved(&first, &v1);
    send_native(&bridge, &v2).await;
    let second = exception_with(&sink, "app.v2.min.js").await;
    assert_resolved(&second, &v2);

    let fingerprint = attr(&first.attributes, FINGERPRINT).unwrap();
    assert_eq!(fingerprint.len(), 16);
    assert_eq!(
        attr(&second.attributes, FINGERPRINT),
        Some(fingerprint.clone())
    );

    // One series of `rum.error.groups` counts both, with an exemplar on an exception's trace.
    let traces = [hex(&first.trace_id), hex(&second.trace_id)];
    let point = poll("rum.error.groups to count both releases", WAIT, || {
        sink.metrics()
            .into_iter()
            .filter(|m| m.name == "rum.error.groups")
            .filter_map(|m| match m.data {
                Some(Data::Sum(sum)) => Some(sum.data_points),
                _ => None,
            })
            .flatten()
            .filter(|p| attr(&p.attributes, FINGERPRINT).as_deref() == Some(fingerprint.as_str()))
            .find(|p| p.value == Some(number_data_point::Value::AsInt(2)))
    })
    .await;
    assert_eq!(
        attr(&point.attributes, "exception.type").as_deref(),
        attr(&first.attributes, "exception.type").as_deref()
    );
    assert!(!point.exemplars.is_empty(), "{point:?}");
    assert!(point
        .exemplars
        .iter()
        .all(|e| traces.contains(&hex(&e.trace_id))));
    assert!(
        bridge
            .metric("rum_bridge_sourcemap_frames_total{reason=\"resolved\"}")
            .await
            >= 4.0
    );
    assert!(
        bridge
            .metric("rum_bridge_sourcemap_maps_total{outcome=\"read\"}")
            .await
            >= 2.0
    );
    assert!(bridge.metric("rum_bridge_sourcemap_cache_bytes").await > 0.0);
}

/// A small HTTP/1.1 server: fixed answers by path, an optional delay, a connection count.
struct Origin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Origin {
    async fn start(routes: HashMap<String, (Duration, Vec<u8>)>) -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let routes = Arc::new(routes);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let routes = Arc::clone(&routes);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
                    let (status, delay, body) = match routes.get(&path) {
                        Some((delay, body)) => ("200 OK", *delay, body.clone()),
                        None => ("404 Not Found", Duration::ZERO, Vec::new()),
                    };
                    tokio::time::sleep(delay).await;
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                });
            }
        });
        Origin { addr, connections }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_are_fetched_from_a_listed_origin_only() {
    let build = tempfile::tempdir().unwrap();
    minify(build.path(), "app.min.js", "globalThis.RELEASE = 1;\n");
    let read = |f: &str| std::fs::read(build.path().join(f)).unwrap();
    let mut routes = HashMap::new();
    routes.insert(
        "/static/app.min.js".to_owned(),
        (Duration::ZERO, read("app.min.js")),
    );
    routes.insert(
        "/static/app.min.js.map".to_owned(),
        (Duration::ZERO, read("app.min.js.map")),
    );
    let listed = Origin::start(routes.clone()).await;
    let unlisted = Origin::start(routes).await;

    let sink = Sink::start().await;
    let config = format!(
        "[sourcemaps]\nfetch_origins = [\"http://{}\"]\n\n{}",
        listed.addr,
        grpc_exporter_toml(sink.addr)
    );
    let bridge = Bridge::start(&config).await;

    let url = format!("http://{}/static/app.min.js", listed.addr);
    let stack = v8_stack(&build.path().join("app.min.js"), &url);
    send_native(&bridge, &stack).await;
    let resolved = exception_with(&sink, &url).await;
    assert_resolved(&resolved, &stack);
    assert!(
        bridge
            .metric("rum_bridge_sourcemap_maps_total{outcome=\"fetched\"}")
            .await
            >= 1.0
    );

    // The same bundle named under an unlisted origin (and with credentials on the listed
    // one): exported as sent, and no connection is ever made.
    let other = format!("http://{}/static/app.min.js", unlisted.addr);
    let with_user = format!("http://user:pw@{}/static/app.min.js", listed.addr);
    let before = listed.connections.load(Ordering::SeqCst);
    for name in [&other, &with_user] {
        let stack = v8_stack(&build.path().join("app.min.js"), name);
        send_native(&bridge, &stack).await;
        let record = exception_with(&sink, name).await;
        assert_eq!(
            attr(&record.attributes, "exception.stacktrace"),
            Some(stack)
        );
        assert_eq!(attr(&record.attributes, MINIFIED), None);
        assert!(attr(&record.attributes, FINGERPRINT).is_some());
    }
    assert_eq!(unlisted.connections.load(Ordering::SeqCst), 0);
    assert_eq!(listed.connections.load(Ordering::SeqCst), before);
    assert!(
        bridge
            .metric("rum_bridge_sourcemap_frames_total{reason=\"no_source\"}")
            .await
            >= 4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_map_and_a_slow_server_are_given_up_on_within_the_limits() {
    let build = tempfile::tempdir().unwrap();
    minify(build.path(), "app.min.js", "globalThis.RELEASE = 1;\n");
    let read = |f: &str| std::fs::read(build.path().join(f)).unwrap();
    let mut big_map = read("app.min.js.map");
    big_map.truncate(big_map.len() - 1);
    big_map.extend_from_slice(format!(",\"x_pad\":\"{}\"}}", "x".repeat(300_000)).as_bytes());
    let mut routes = HashMap::new();
    // big/: a map over max_map_bytes; slow/: a server that takes 10 s to answer.
    routes.insert(
        "/big/app.min.js".to_owned(),
        (Duration::ZERO, read("app.min.js")),
    );
    routes.insert("/big/app.min.js.map".to_owned(), (Duration::ZERO, big_map));
    routes.insert(
        "/slow/app.min.js".to_owned(),
        (Duration::from_secs(10), read("app.min.js")),
    );
    let origin = Origin::start(routes).await;

    let sink = Sink::start().await;
    let config = format!(
        "[sourcemaps]\nfetch_origins = [\"http://{}\"]\nfetch_timeout = \"500ms\"\nmax_wait = \"1s\"\n\
         max_map_bytes = 200000\ncache_bytes = 1000000\n\n{}",
        origin.addr,
        grpc_exporter_toml(sink.addr)
    );
    let bridge = Bridge::start(&config).await;

    let started = Instant::now();
    for dir in ["big", "slow"] {
        let url = format!("http://{}/{dir}/app.min.js", origin.addr);
        let stack = v8_stack(&build.path().join("app.min.js"), &url);
        let answered = send_native(&bridge, &stack).await;
        assert!(
            answered < Duration::from_millis(400),
            "answered after {answered:?}"
        );
        // The bridge keeps answering while the fetch is under way.
        let ready = bridge
            .client
            .get(format!("http://{}/readyz", bridge.admin))
            .send()
            .await
            .unwrap();
        assert!(ready.status().is_success());
        let record = exception_with(&sink, &url).await;
        assert_eq!(
            attr(&record.attributes, "exception.stacktrace"),
            Some(stack)
        );
    }
    // Both went out unresolved well before the slow server would have answered.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        bridge
            .metric("rum_bridge_sourcemap_frames_total{reason=\"too_large\"}")
            .await
            >= 2.0
    );
    assert!(
        bridge
            .metric("rum_bridge_sourcemap_frames_total{reason=\"timeout\"}")
            .await
            >= 2.0
    );
    assert_eq!(bridge.metric("rum_bridge_sourcemap_cache_bytes").await, 0.0);
}

/// `(function, url, line, column)` of each `at f (url:l:c)` line of a V8 stack.
fn v8_frames(stack: &str) -> Vec<(String, String, u32, u32)> {
    stack
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("at ")?.strip_suffix(')')?;
            let (function, place) = rest.split_once(" (")?;
            let (place, column) = place.rsplit_once(':')?;
            let (url, line) = place.rsplit_once(':')?;
            Some((
                function.into(),
                url.into(),
                line.parse().ok()?,
                column.parse().ok()?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faro_exceptions_and_otlp_logs_and_span_events_are_resolved_the_same_way() {
    let www = tempfile::tempdir().unwrap();
    let dir = www.path().join("static");
    std::fs::create_dir_all(&dir).unwrap();
    minify(&dir, "app.min.js", "globalThis.RELEASE = 1;\n");
    let url = "https://shop.example.com/static/app.min.js";
    let stack = v8_stack(&dir.join("app.min.js"), url);
    let sink = Sink::start().await;
    let config = format!(
        "[sourcemaps]\n[[sourcemaps.local]]\nurl_prefix = \"https://shop.example.com/static/\"\ndir = \"{}\"\n\n{}",
        dir.display(),
        grpc_exporter_toml(sink.addr)
    );
    let bridge = Bridge::start(&config).await;

    // Faro: structured frames, rendered as a V8 stack by the decoder.
    let frames: Vec<_> = v8_frames(&stack)
        .into_iter()
        .map(|(function, filename, lineno, colno)| {
            serde_json::json!({"function": function, "filename": filename, "lineno": lineno, "colno": colno})
        })
        .collect();
    assert_eq!(frames.len(), 3, "{stack}");
    let faro = serde_json::json!({
        "meta": {"app": {"name": "shop-faro"}, "session": {"id": "s-faro-1"}},
        "exceptions": [{"type": "TypeError", "value": "faro: Cannot read properties of undefined (reading 'cost')",
                        "timestamp": "2026-12-03T12:00:00.000Z", "stacktrace": {"frames": frames}}]
    });
    let resp = bridge
        .client
        .post(bridge.url("/collect"))
        .header("content-type", "application/json")
        .body(faro.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());

    // OTLP: a log record and a span's exception event carrying exception.stacktrace.
    let kv = |k: &str, v: &str| serde_json::json!({"key": k, "value": {"stringValue": v}});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let exception = vec![
        kv("exception.type", "TypeError"),
        kv("exception.stacktrace", &stack),
    ];
    let logs = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [kv("service.name", "shop-otel")]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": now, "severityNumber": 17,
                                       "body": {"stringValue": "otlp log"}, "attributes": exception}]}]}]});
    let traces = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", "shop-otel")]},
        "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "checkout", "kind": 1, "startTimeUnixNano": now, "endTimeUnixNano": now,
            "events": [{"timeUnixNano": now, "name": "exception", "attributes": exception}]}]}]}]});
    for (path, body) in [("/v1/logs", logs), ("/v1/traces", traces)] {
        let resp = bridge
            .client
            .post(bridge.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{path}: {}", resp.text().await.unwrap());
    }

    let resolved = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        let stack = attr(attrs, "exception.stacktrace").unwrap_or_default();
        stack.contains("at computeTotal (src/cart.js:7:")
            && stack.contains("at checkout (src/checkout.js:2:")
            && attr(attrs, MINIFIED).is_some()
            && attr(attrs, FINGERPRINT).is_some()
    };
    let records = poll(
        "the Faro and OTLP exception records, resolved",
        WAIT,
        || {
            let logs: Vec<_> = sink
                .logs()
                .into_iter()
                .filter(|l| resolved(&l.record.attributes))
                .collect();
            (logs.len() >= 2).then_some(logs)
        },
    )
    .await;
    let services: Vec<_> = records
        .iter()
        .filter_map(|l| attr(&l.resource.attributes, "service.name"))
        .collect();
    assert!(services.iter().any(|s| s == "shop-faro"), "{services:?}");
    assert!(services.iter().any(|s| s == "shop-otel"), "{services:?}");
    let event = poll("the span's exception event, resolved", WAIT, || {
        sink.spans()
            .into_iter()
            .flat_map(|s| s.span.events)
            .find(|e| e.name == "exception" && resolved(&e.attributes))
    })
    .await;
    // The same bug, whatever the input: one fingerprint.
    let fingerprints: std::collections::HashSet<_> = records
        .iter()
        .map(|l| attr(&l.record.attributes, FINGERPRINT))
        .chain([attr(&event.attributes, FINGERPRINT)])
        .collect();
    assert_eq!(fingerprints.len(), 1, "{fingerprints:?}");
}

/// A beacon with one error per script URL in `scripts` (each a one-frame V8 stack).
fn errors_beacon(scripts: &[String]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let events: Vec<serde_json::Value> = scripts
        .iter()
        .map(|url| {
            serde_json::json!({"type": "error", "time": 4000.0, "name": "TypeError",
                "message": "boom", "stack": format!("TypeError: boom\n    at a ({url}:1:1)"),
                "handled": false})
        })
        .collect();
    serde_json::json!({
        "v": 1, "k": "pk_shop_web", "sid": "b7e4c0f2a91d4e38", "pvid": "c41e8b2f07d94a1e",
        "url": "https://shop.example.com/cart", "t0": now - 5000.0, "sent": now, "ev": events
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_distinct_maps_keep_the_cache_within_cache_bytes() {
    const MAPS: usize = 1000;
    const CACHE_BYTES: f64 = 262_144.0;
    let www = tempfile::tempdir().unwrap();
    // Valid maps of about 4 KiB each (the source is kept in `sourcesContent`): 1,000 of them
    // are 4 MiB, far over the 256 KiB cache.
    let padding = "x".repeat(4000);
    for i in 0..MAPS {
        let map = serde_json::json!({
            "version": 3, "file": format!("app.{i}.min.js"), "sources": [format!("src/app{i}.js")],
            "names": ["compute"], "mappings": "AAAAA",
            "sourcesContent": [format!("function compute() {{ /* {padding} */ }}")]
        });
        std::fs::write(
            www.path().join(format!("app.{i}.min.js.map")),
            map.to_string(),
        )
        .unwrap();
    }
    let sink = Sink::start().await;
    let config = format!(
        "[sourcemaps]\nmax_map_bytes = 16384\ncache_bytes = {CACHE_BYTES}\n\
         [[sourcemaps.local]]\nurl_prefix = \"https://shop.example.com/static/\"\ndir = \"{}\"\n\n{}",
        www.path().display(),
        grpc_exporter_toml(sink.addr)
    );
    let bridge = Bridge::start(&config).await;
    let scripts: Vec<String> = (0..MAPS)
        .map(|i| format!("https://shop.example.com/static/app.{i}.min.js"))
        .collect();
    // Eight errors per beacon: one payload asks for at most eight maps.
    for chunk in scripts.chunks(8) {
        let resp = bridge
            .client
            .post(bridge.url("/v1/rum"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", "https://shop.example.com")
            .body(errors_beacon(chunk))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        let cached = bridge.metric("rum_bridge_sourcemap_cache_bytes").await;
        assert!(
            cached <= CACHE_BYTES,
            "cache holds {cached} bytes, over {CACHE_BYTES}"
        );
    }
    // Every map was read once and most were evicted again; the daemon still answers.
    let deadline = Instant::now() + WAIT;
    while bridge
        .metric("rum_bridge_sourcemap_maps_total{outcome=\"read\"}")
        .await
        < MAPS as f64
    {
        assert!(Instant::now() < deadline, "not every map was read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let evicted = bridge
        .metric("rum_bridge_sourcemap_maps_total{outcome=\"evicted\"}")
        .await;
    assert!(evicted >= (MAPS - 100) as f64, "only {evicted} evicted");
    let cached = bridge.metric("rum_bridge_sourcemap_cache_bytes").await;
    assert!(cached > 0.0 && cached <= CACHE_BYTES, "{cached}");
    // Every exception reaches the collector. Payloads wait for their maps concurrently, so a
    // map can be evicted before its payload is rewritten: those go out unresolved, counted.
    let arrived = poll("every exception at the collector", WAIT, || {
        let records = exceptions(&sink);
        (records.len() >= MAPS).then_some(records)
    })
    .await;
    let resolved = arrived
        .iter()
        .filter(|r| attr(&r.attributes, MINIFIED).is_some())
        .count();
    assert!(resolved > 0, "no exception was resolved");
    let unresolved = MAPS - resolved;
    let counted = bridge
        .metrics_text()
        .await
        .lines()
        .filter(|l| l.starts_with("rum_bridge_sourcemap_frames_total{") && !l.contains("resolved"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(
        counted >= unresolved as f64,
        "{unresolved} unresolved, {counted} counted"
    );
}
