//! Hot-path benchmarks: decode + convert of a native page-load beacon, and decode + prepare of
//! the captured OpenTelemetry JS page load (OTLP/JSON), then protobuf encoding as the exporter
//! does. Targets: docs/performance.md (decode + convert ≤ 100 µs per beacon).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rum_bridge::config::{Config, LimitsConfig};
use rum_bridge::convert::{convert, ConvertOptions};
use rum_bridge::process::otlp::{prepare_traces, Enrichment};
use rum_bridge::receive::body::BodyFormat;
use rum_bridge::receive::{native, otlp};

fn native_beacon(c: &mut Criterion) {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/beacons/page-load.json"
    ))
    .unwrap();
    let limits = LimitsConfig::default();
    let opts = ConvertOptions::from(&Config::default());
    let mut g = c.benchmark_group("native_beacon");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| native::decode(black_box(&body), &limits).unwrap())
    });
    g.bench_function("decode_convert_encode", |b| {
        b.iter(|| {
            let mut batch = native::decode(black_box(&body), &limits).unwrap();
            batch.context.app.name = "shop-web".into();
            let payload = convert(&batch, &opts);
            let req = ExportTraceServiceRequest {
                resource_spans: payload.spans,
            };
            black_box(req.encode_to_vec())
        })
    });
    g.finish();
}

fn otlp_json_page_load(c: &mut Criterion) {
    let line = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/real-clients/otlp-json.jsonl"
    ))
    .unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let body = first["body"].as_str().unwrap().as_bytes().to_vec();
    let mut g = c.benchmark_group("otlp_json_page_load");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_prepare_encode", |b| {
        b.iter(|| {
            let mut req: ExportTraceServiceRequest =
                otlp::decode(black_box(&body), BodyFormat::Json).unwrap();
            prepare_traces(
                &mut req,
                &Enrichment {
                    user_agent: Some("Mozilla/5.0"),
                    ..Default::default()
                },
            );
            black_box(req.encode_to_vec())
        })
    });
    g.finish();
}

criterion_group!(benches, native_beacon, otlp_json_page_load);
criterion_main!(benches);
