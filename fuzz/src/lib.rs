//! The fuzzed entry points: every decoder that reads bytes from the internet, followed by what
//! the edge does next with its output (privacy processing, conversion, caps), so a fuzzer
//! input that decodes also exercises the code behind it.
//!
//! Shared by the cargo-fuzz targets in `fuzz_targets/` (nightly, libFuzzer) and by the stable
//! regression test `tests/fuzz_regressions.rs`, which replays every saved input in
//! `fuzz/regressions/<target>/`. Each function must return normally for any input: a panic is
//! a bug.

use std::sync::OnceLock;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use rum_bridge::admin::Metrics;
use rum_bridge::config::PageLoadCorrelation;
use rum_bridge::config::{Config, FaroCompat, LimitsConfig};
use rum_bridge::convert::embedded;
use rum_bridge::convert::{convert, faro_contrib, ConvertOptions};
use rum_bridge::handoff::Payload;
use rum_bridge::model::trace_context::{parse_server_timing, TraceContext};
use rum_bridge::process::limits::ItemLimits;
use rum_bridge::process::otlp::normalize_span;
use rum_bridge::process::{Processor, RequestInfo};
use rum_bridge::receive::body::{gunzip_limited, BodyFormat};
use rum_bridge::receive::{boomerang, elastic, faro, native, otlp, zipkin};

/// One fuzzed entry point.
pub type Target = fn(&[u8]);

/// Every target, by name (the regression test walks this list).
pub const TARGETS: &[(&str, Target)] = &[
    ("native_beacon", native_beacon),
    ("faro", faro),
    ("otlp_json", otlp_json),
    ("otlp_protobuf", otlp_protobuf),
    ("trace_context", trace_context),
    ("url_scrub", url_scrub),
    ("gunzip", gunzip),
    ("zipkin", zipkin_spans),
    ("elastic", elastic_intake),
    ("boomerang", boomerang_beacon),
];

struct Shared {
    config: Config,
    processor: Processor,
    convert: ConvertOptions,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let config = Config::default();
        let metrics = Metrics::new();
        let processor = Processor::new(&config, &metrics).expect("default rules compile");
        let convert = ConvertOptions::from(&config);
        Shared {
            config,
            processor,
            convert,
        }
    })
}

fn limits() -> &'static LimitsConfig {
    &shared().config.limits
}

fn finish(mut payload: Payload) {
    ItemLimits::new(limits()).apply(&mut payload);
}

/// `POST /v1/rum`: decode, scrub, convert.
pub fn native_beacon(data: &[u8]) {
    let s = shared();
    if let Ok(mut batch) = native::decode(data, limits()) {
        s.processor.process_batch(&mut batch);
        s.processor.withhold(&mut batch, &RequestInfo::default());
        finish(convert(&batch, &s.convert));
    }
}

/// `POST /collect`: decode (embedded OTLP spans and the faro-contrib records included), scrub,
/// convert (both log shapes).
pub fn faro(data: &[u8]) {
    let s = shared();
    let compat = FaroCompat::FaroContrib;
    if let Ok(mut decoded) = faro::decode(data, limits(), 1_800_000_000_000.0, compat) {
        s.processor.process_batch(&mut decoded.batch);
        s.processor
            .process_otlp_spans(&mut decoded.resource_spans, &RequestInfo::default());
        let mut payload = convert(&decoded.batch, &s.convert);
        payload.spans.append(&mut decoded.resource_spans);
        if let Some(mut records) = decoded.contrib {
            s.processor.process_faro_records(&mut records);
            let context = &decoded.batch.context;
            payload
                .logs
                .extend(faro_contrib::convert(records, context, &s.convert));
        }
        finish(payload);
    }
}

/// `POST /api/v2/spans` and Zipkin bodies on `POST /v1/rum` (Splunk RUM): sniff, decode, give
/// the spans their RUM meaning in both correlation modes, scrub, convert, shift by a skew.
pub fn zipkin_spans(data: &[u8]) {
    let s = shared();
    let _ = zipkin::looks_like_zipkin(data);
    for mode in [PageLoadCorrelation::Child, PageLoadCorrelation::Link] {
        let Ok(decoded) = zipkin::decode(data, limits().max_events_per_batch) else {
            return;
        };
        let mut out = zipkin::interpret(decoded, mode);
        embedded::shift_times(&mut out.spans, -5_000.5);
        s.processor.process_batch(&mut out.batch);
        s.processor
            .process_otlp_spans(&mut out.spans, &RequestInfo::default());
        let mut payload = convert(&out.batch, &s.convert);
        payload.spans.append(&mut out.spans);
        finish(payload);
    }
}

/// `POST /intake/v2/rum/events` and `/intake/v3/rum/events` (Elastic RUM): gunzip when the
/// input is gzip (the agent compresses its bodies), decode as both versions, give the events
/// their RUM meaning in both correlation modes, scrub, convert, shift by a skew.
pub fn elastic_intake(data: &[u8]) {
    let s = shared();
    let unzipped;
    let data = if data.starts_with(&[0x1f, 0x8b]) {
        match gunzip_limited(data, 1 << 20) {
            Ok(out) => {
                unzipped = out;
                &unzipped[..]
            }
            Err(_) => return,
        }
    } else {
        data
    };
    for version in [2, 3] {
        for mode in [PageLoadCorrelation::Child, PageLoadCorrelation::Link] {
            let Ok(intake) = elastic::decode(data, version, limits().max_events_per_batch) else {
                return;
            };
            let mut out = elastic::interpret(intake, mode, 1_800_000_000_000.0);
            embedded::shift_times(&mut out.spans, -5_000.5);
            s.processor.process_batch(&mut out.batch);
            s.processor
                .process_otlp_spans(&mut out.spans, &RequestInfo::default());
            let mut payload = convert(&out.batch, &s.convert);
            payload.spans.append(&mut out.spans);
            finish(payload);
        }
    }
}

/// `GET`/`POST /v1/boomerang`: a form body or query string → parameters → the model (the
/// `restiming` trie, JSURL `err`/`servertiming`), scrubbed, converted, shifted by a skew; and
/// the JSURL and trie readers on the raw input.
pub fn boomerang_beacon(data: &[u8]) {
    let s = shared();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = boomerang::jsurl::parse(text);
        let _ =
            boomerang::restiming::decode(text, &Vec::new(), limits().max_resources_per_page_load);
    }
    let params = boomerang::parse_params(data);
    let p = boomerang::Params(&params);
    if !boomerang::is_beacon(&p) {
        return;
    }
    let mut out = boomerang::decode(&p, limits());
    out.batch.context.time_origin_ms -= 5_000.5;
    s.processor.process_batch(&mut out.batch);
    finish(convert(&out.batch, &s.convert));
}

fn otlp(data: &[u8], format: BodyFormat) {
    let s = shared();
    let request = RequestInfo::default();
    if let Ok(mut req) = otlp::decode::<ExportTraceServiceRequest>(data, format) {
        for rs in &mut req.resource_spans {
            for span in rs.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
                normalize_span(span);
            }
        }
        s.processor
            .process_otlp_spans(&mut req.resource_spans, &request);
        finish(Payload {
            spans: req.resource_spans,
            ..Default::default()
        });
    }
    if let Ok(mut req) = otlp::decode::<ExportLogsServiceRequest>(data, format) {
        s.processor
            .process_otlp_logs(&mut req.resource_logs, &request);
        finish(Payload {
            logs: req.resource_logs,
            ..Default::default()
        });
    }
}

/// `POST /v1/traces` and `/v1/logs` with OTLP JSON.
pub fn otlp_json(data: &[u8]) {
    otlp(data, BodyFormat::Json);
}

/// `POST /v1/traces` and `/v1/logs` with OTLP protobuf.
pub fn otlp_protobuf(data: &[u8]) {
    otlp(data, BodyFormat::Protobuf);
}

/// `traceparent` headers and meta tags, `Server-Timing` headers.
pub fn trace_context(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tc) = TraceContext::parse_traceparent(text) {
        let again = TraceContext::parse_traceparent(&tc.to_traceparent());
        assert!(again.is_ok(), "a parsed traceparent must print parseable");
    }
    let _ = parse_server_timing(text);
}

/// URL scrubbing and `url.template` (every URL the browser reports goes through it).
pub fn url_scrub(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let rules = shared().processor.url_rules();
    let scrubbed = rules.scrub_full(url);
    let _ = rules.template(url);
    // Scrubbing is idempotent: what left once passes unchanged.
    assert_eq!(rules.scrub_full(&scrubbed), scrubbed, "scrub of {url:?}");
}

/// Request bodies with `Content-Encoding: gzip`.
pub fn gunzip(data: &[u8]) {
    let limit = 64 * 1024;
    if let Ok(out) = gunzip_limited(data, limit) {
        assert!(out.len() <= limit);
    }
}
