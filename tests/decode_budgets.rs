//! Decode amplification against the real binary: OTLP bodies of a few kilobytes of gzip that
//! decode to millions of empty messages are refused before they are decoded, with the daemon's
//! peak memory staying flat, and spans with too many events or links are cut to the span limits
//! (128) in every format, with `dropped_*_count` set and the cut counted.

mod common;

use std::time::Duration;

use common::*;
use prost::encoding::encode_varint;
use serde_json::{json, Value};

const CONFIG: &str = r#"
[[exporters]]
name = "file"
protocol = "file"
path = "out"

[exporters.batch]
timeout = 50
"#;

/// A length-delimited protobuf field.
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    encode_varint(u64::from(number << 3 | 2), &mut out);
    encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// `n` empty messages in field `number`.
fn empties(number: u32, n: usize) -> Vec<u8> {
    field(number, &[]).repeat(n)
}

async fn post(bridge: &Bridge, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let resp = bridge
        .client
        .post(bridge.url(path))
        .header("content-type", content_type)
        .header("content-encoding", "gzip")
        .body(gzip(body))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Empty messages nested as (field number) path, innermost repeated `n` times.
fn bomb(path: &[u32], innermost: u32, n: usize) -> Vec<u8> {
    let mut body = empties(innermost, n);
    for number in path.iter().rev() {
        body = field(*number, &body);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bombs_are_refused_before_decoding_with_flat_memory() {
    let bridge = Bridge::start_with_env(CONFIG, &[("TOKIO_WORKER_THREADS", "2")]).await;
    let pid = bridge.proc.child.id();
    let health = bridge
        .client
        .get(format!("http://{}/healthz", bridge.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let baseline = peak_rss_kib(pid);

    // Just under the 4 MiB decompressed limit: two bytes per empty message.
    let n = 2_090_000;
    let cases: [(&str, Vec<u8>, &str); 7] = [
        // Empty spans in one ScopeSpans; empty ResourceSpans.
        ("/v1/traces", bomb(&[1, 2], 2, n), "too_many_items"),
        ("/v1/traces", empties(1, n), "too_many_items"),
        // Empty log records in one ScopeLogs; empty ResourceLogs.
        ("/v1/logs", bomb(&[1, 2], 2, n), "too_many_items"),
        ("/v1/logs", empties(1, n), "too_many_items"),
        // Empty metrics in one ScopeMetrics; empty ResourceMetrics.
        ("/v1/metrics", bomb(&[1, 2], 2, n), "too_many_items"),
        ("/v1/metrics", empties(1, n), "too_many_items"),
        // One gauge with two million empty data points: one metric, a lot of memory.
        (
            "/v1/metrics",
            bomb(&[1, 2, 2, 5], 1, n),
            "too_large_decoded",
        ),
    ];
    for (path, body, reason) in &cases {
        let zipped = gzip(body);
        assert!(zipped.len() < 8 << 10, "{path}: {} bytes", zipped.len());
        let (status, answer) = post(&bridge, path, "application/x-protobuf", body).await;
        assert_eq!(status, 413, "{path}: {answer}");
        assert_eq!(answer["reason"], *reason, "{path}: {answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(
            detail.contains("max_events_per_batch") || detail.contains("max_decompressed_bytes"),
            "{path}: the detail names the limit: {detail}"
        );
    }
    // The same attack in JSON: two million empty resources.
    let mut json_bomb = String::from(r#"{"resourceSpans":["#);
    json_bomb.push_str(&["{}"; 1_300_000].join(","));
    json_bomb.push_str("]}");
    let (status, answer) = post(
        &bridge,
        "/v1/traces",
        "application/json",
        json_bomb.as_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["reason"], "too_many_items");

    // Decoded, each bomb would take 0.5 to 1 GiB. Refused before decoding, what remains is the
    // 4 MiB body and the allocator's caches.
    let grown_mib = peak_rss_kib(pid).saturating_sub(baseline) / 1024;
    assert!(grown_mib < 64, "peak RSS grew by {grown_mib} MiB");
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"too_many_items\"}")
            .await,
        7.0
    );
    assert_eq!(
        bridge
            .metric("rum_bridge_items_rejected_total{reason=\"too_large_decoded\"}")
            .await,
        1.0
    );
    // Good traffic still passes.
    let (status, answer) = post(
        &bridge,
        "/v1/traces",
        "application/x-protobuf",
        &bomb(&[1, 2], 2, 10),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
}

/// The exported spans in the file sink (OTLP-JSON lines), once `want` of them arrived.
async fn exported_spans(bridge: &Bridge, want: usize) -> (Vec<Value>, u64) {
    let path = bridge.dir.path().join("out/traces.jsonl");
    poll(
        "the spans in the file sink",
        WAIT + Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&path).ok()?;
            let spans: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .flat_map(|line| {
                    let mut spans = Vec::new();
                    for rs in line["resourceSpans"].as_array().into_iter().flatten() {
                        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                            spans.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                        }
                    }
                    spans
                })
                .collect();
            (spans.len() >= want).then_some((spans, text.len() as u64))
        },
    )
    .await
}

fn count(span: &Value, list: &str) -> usize {
    span[list].as_array().map_or(0, Vec::len)
}

fn dropped(span: &Value, key: &str) -> u64 {
    span[key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_events_and_links_are_cut_to_the_span_limits_in_every_format() {
    let bridge = Bridge::start(CONFIG).await;
    let trace_id = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";

    // Protobuf: a million empty events in one span (two bytes each) is refused: decoded, it
    // would be a hundred times its size.
    let mut span = field(1, &hex_bytes(trace_id));
    span.extend(field(2, &hex_bytes("00f067aa0ba902b7")));
    span.extend(empties(11, 1_000_000));
    let body = field(1, &field(2, &field(2, &span)));
    let (status, answer) = post(&bridge, "/v1/traces", "application/x-protobuf", &body).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["reason"], "too_large_decoded");

    // Protobuf within the budget: 300 events and 200 links, the client already dropped 5 events.
    let mut span = field(1, &hex_bytes(trace_id));
    span.extend(field(2, &hex_bytes("00f067aa0ba902b1")));
    span.extend(field(5, b"proto"));
    for i in 0..300u32 {
        span.extend(field(11, &field(2, format!("e{i}").as_bytes())));
    }
    span.extend([12 << 3, 5]); // dropped_events_count = 5
    for _ in 0..200 {
        span.extend(field(13, &field(1, &hex_bytes(trace_id))));
    }
    let body = field(1, &field(2, &field(2, &span)));
    let (status, answer) = post(&bridge, "/v1/traces", "application/x-protobuf", &body).await;
    assert_eq!(status, 202, "{answer}");

    // OTLP JSON: 200 000 empty events and 1 000 links in one span: accepted and cut.
    let otlp_json = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": trace_id, "spanId": "00f067aa0ba902b2", "name": "json",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
        "events": vec![json!({}); 200_000],
        "links": vec![json!({"traceId": trace_id, "spanId": "00f067aa0ba902b7"}); 1_000],
    }]}]}]});
    let (status, answer) = post(
        &bridge,
        "/v1/traces",
        "application/json",
        otlp_json.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    // Faro: the same span embedded in a Faro payload's traces.
    let faro = json!({
        "meta": {"app": {"name": "shop"}, "session": {"id": "s1"}},
        "traces": {"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "00f067aa0ba902b3", "name": "faro",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
            "events": vec![json!({"name": "e"}); 200_000],
            "links": vec![json!({"traceId": trace_id, "spanId": "00f067aa0ba902b7"}); 1_000],
        }]}]}]},
    });
    let (status, answer) = post(
        &bridge,
        "/collect",
        "application/json",
        faro.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    let (spans, bytes) = exported_spans(&bridge, 3).await;
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("span {name} exported: {spans:?}"))
    };
    let proto = by_name("proto");
    assert_eq!(count(proto, "events"), 128);
    assert_eq!(
        proto["events"][127]["name"], "e127",
        "the first events are kept"
    );
    assert_eq!(dropped(proto, "droppedEventsCount"), 5 + 172);
    assert_eq!(count(proto, "links"), 128);
    assert_eq!(dropped(proto, "droppedLinksCount"), 72);
    for name in ["json", "faro"] {
        let span = by_name(name);
        assert_eq!(count(span, "events"), 128, "{name}");
        assert_eq!(dropped(span, "droppedEventsCount"), 200_000 - 128, "{name}");
        assert_eq!(count(span, "links"), 128, "{name}");
        assert_eq!(dropped(span, "droppedLinksCount"), 1_000 - 128, "{name}");
    }
    assert!(bytes < 256 << 10, "the output stays small: {bytes} bytes");

    let events = 172 + 2 * (200_000 - 128);
    let links = 72 + 2 * (1_000 - 128);
    assert_eq!(
        bridge.metric("rum_bridge_span_events_dropped_total").await,
        f64::from(events)
    );
    assert_eq!(
        bridge.metric("rum_bridge_span_links_dropped_total").await,
        f64::from(links)
    );
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
