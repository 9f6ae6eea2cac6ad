//! Numbers a hostile or broken client sends cannot poison what the bridge exports.
//!
//! Through the real binary into a real collector: a native beacon with a TTFB of `1.7e308`
//! (sent twice, which used to make the cumulative TTFB histogram's sum `+Inf` until restart),
//! a negative FCP, a huge CLS, a `"NaN"` INP and an absurd call duration; OTLP metric points
//! with `NaN` and `Infinity` in JSON and protobuf; and `attrs` objects beyond the 64 kept.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use prost::Message;

const IMPLAUSIBLE: &str = "rum_bridge_items_rejected_total{reason=\"implausible_value\"}";
const INVALID_NUMBER: &str = "rum_bridge_items_rejected_total{reason=\"invalid_number\"}";
const ATTRIBUTES_DROPPED: &str = "rum_bridge_attributes_dropped_total";

/// A bridge exporting to a collector, with `metrics` as its `[metrics]` section.
async fn start(metrics: &str) -> (Sink, Rotel, Bridge) {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!("[metrics]\n{metrics}\n\n{}", grpc_exporter_toml(rotel.grpc));
    let bridge = Bridge::start(&config).await;
    (sink, rotel, bridge)
}

async fn post(bridge: &Bridge, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    bridge
        .client
        .post(bridge.url(path))
        .header("content-type", content_type)
        .header("origin", "https://shop.example.com")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Every histogram point in `metrics` has a finite sum, min and max.
fn assert_histograms_finite(metrics: &[Metric]) {
    let mut points = 0;
    for metric in metrics {
        let Some(Data::Histogram(h)) = &metric.data else {
            continue;
        };
        for p in &h.data_points {
            points += 1;
            for (what, v) in [("sum", p.sum), ("min", p.min), ("max", p.max)] {
                let v = v.unwrap_or(0.0);
                assert!(v.is_finite(), "{} {what} is {v}: {p:?}", metric.name);
            }
        }
    }
    assert!(points > 0, "some histogram points were exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_vitals_and_durations_never_reach_a_histogram() {
    let (sink, _rotel, bridge) = start("interval = \"1s\"").await;
    let beacon = br#"{"v":1,"k":"pk_shop_web","sid":"s-1","pvid":"pv-1",
        "url":"https://shop.example.com/cart","t0":1795839390385.4,
        "ev":[
          {"type":"vital","name":"TTFB","value":1.7e308,"id":"v1"},
          {"type":"vital","name":"LCP","value":1200,"id":"v2"},
          {"type":"vital","name":"FCP","value":-1e308,"id":"v3"},
          {"type":"vital","name":"CLS","value":1e9,"id":"v4"},
          {"type":"vital","name":"INP","value":"NaN","id":"v5"},
          {"type":"http","method":"GET","url":"/api/cart","start":10,"dur":1e308},
          {"type":"custom","time":20,"name":"checkout"}
        ]}"#;
    for round in 1..=2 {
        let resp = post(&bridge, "/v1/rum", "text/plain", beacon.to_vec()).await;
        assert_eq!(resp.status(), 202);
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["accepted"], 2, "round {round}: {body}");
        assert_eq!(body["rejected"], 5, "round {round}: {body}");
        let errors = body["errors"].to_string();
        assert!(errors.contains("ttfb `value` 1.7e308"), "{errors}");
    }

    // Both LCP reports are in the cumulative LCP histogram; nothing else made a series.
    let metrics = poll("two LCP observations", WAIT, || {
        let metrics = sink.metrics();
        let lcp = metrics
            .iter()
            .filter(|m| m.name == "browser.web_vital.lcp")
            .filter_map(|m| match &m.data {
                Some(Data::Histogram(h)) => h.data_points.first().map(|p| p.count),
                _ => None,
            })
            .max();
        (lcp == Some(2)).then_some(metrics)
    })
    .await;
    // One more flush after both beacons: the series stays finite flush after flush.
    let flushes = sink.received.lock().unwrap().metrics.len();
    let metrics = poll("a later flush", WAIT, || {
        let now = sink.received.lock().unwrap().metrics.len();
        (now > flushes).then(|| sink.metrics())
    })
    .await
    .into_iter()
    .chain(metrics)
    .collect::<Vec<_>>();
    assert_histograms_finite(&metrics);
    for poisoned in [
        "browser.web_vital.ttfb",
        "browser.web_vital.fcp",
        "browser.web_vital.cls",
        "browser.web_vital.inp",
        "http.client.request.duration",
    ] {
        assert!(
            metrics.iter().all(|m| m.name != poisoned),
            "{poisoned} got a series from a rejected value"
        );
    }

    // The beacon's other items were exported; the rejected vitals were not logged either.
    let logs = poll("the custom event and the LCP record", WAIT, || {
        let logs = sink.logs();
        (events(&logs, "checkout").count() >= 2 && vital_names(&logs).contains("lcp"))
            .then_some(logs)
    })
    .await;
    assert_eq!(
        vital_names(&logs),
        ["lcp".to_owned()].into_iter().collect(),
        "only the plausible vital is logged"
    );
    assert!(
        sink.spans().iter().all(|s| s.span.kind != 3),
        "no CLIENT span"
    );

    assert_eq!(bridge.metric(IMPLAUSIBLE).await, 8.0, "4 per beacon");
    assert_eq!(bridge.metric(INVALID_NUMBER).await, 2.0, "the \"NaN\" INP");
}

fn gauge_point(value: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: 1_795_839_390_000_000_000,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn gauge_points(metrics: &[Metric], name: &str) -> Vec<f64> {
    metrics
        .iter()
        .filter(|m| m.name == name)
        .flat_map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.clone(),
            _ => Vec::new(),
        })
        .filter_map(|p| match p.value {
            Some(number_data_point::Value::AsDouble(v)) => Some(v),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metric_points_that_are_not_finite_are_dropped_one_by_one() {
    let (sink, _rotel, bridge) = start("interval = \"1s\"").await;

    let json = r#"{"resourceMetrics":[{"resource":{"attributes":[]},"scopeMetrics":[{"scope":{"name":"web"},"metrics":[
        {"name":"page.json_gauge","gauge":{"dataPoints":[
            {"timeUnixNano":"1795839390000000000","asDouble":"NaN"},
            {"timeUnixNano":"1795839390000000000","asDouble":"Infinity"},
            {"timeUnixNano":"1795839390000000000","asDouble":2.5}]}},
        {"name":"page.json_histogram","histogram":{"aggregationTemporality":1,"dataPoints":[
            {"timeUnixNano":"1795839390000000000","count":"1","sum":"Infinity","bucketCounts":["1"]},
            {"timeUnixNano":"1795839390000000000","count":"1","sum":4,"bucketCounts":["1"]}]}}
    ]}]}]}"#;
    let resp = post(&bridge, "/v1/metrics", "application/json", json.into()).await;
    assert!(resp.status().is_success(), "{}", resp.status());

    let proto = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "page.proto_gauge".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![
                            gauge_point(f64::NEG_INFINITY),
                            gauge_point(7.0),
                            gauge_point(f64::NAN),
                        ],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let resp = post(
        &bridge,
        "/v1/metrics",
        "application/x-protobuf",
        proto.encode_to_vec(),
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.status());

    let metrics = poll_metrics(
        &sink,
        &["page.json_gauge", "page.json_histogram", "page.proto_gauge"],
    )
    .await;
    assert_eq!(gauge_points(&metrics, "page.json_gauge"), [2.5]);
    assert_eq!(gauge_points(&metrics, "page.proto_gauge"), [7.0]);
    let histogram = first_histogram_point(&metrics, "page.json_histogram");
    assert_eq!(histogram.sum, Some(4.0));
    let Some(Data::Histogram(h)) = &metrics
        .iter()
        .find(|m| m.name == "page.json_histogram")
        .unwrap()
        .data
    else {
        unreachable!()
    };
    assert_eq!(h.data_points.len(), 1, "the infinite sum's point is gone");
    assert_histograms_finite(&metrics);

    assert_eq!(
        bridge.metric(IMPLAUSIBLE).await,
        5.0,
        "3 JSON + 2 protobuf points"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_beyond_the_kept_64_are_recorded_as_dropped() {
    let (sink, _rotel, bridge) = start("enabled = false").await;
    let attrs = |prefix: &str| {
        (0..100)
            .map(|i| format!(r#""{prefix}{i}":"v{i}""#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let beacon = format!(
        r#"{{"v":1,"sid":"s-1","pvid":"pv-1","t0":1795839390385.4,"attrs":{{{}}},
            "ev":[{{"type":"custom","time":20,"name":"wide","attrs":{{{}}}}}]}}"#,
        attrs("ctx."),
        attrs("ev.")
    );
    let resp = post(&bridge, "/v1/rum", "text/plain", beacon.into_bytes()).await;
    assert_eq!(resp.status(), 202);

    let logs = poll("the wide event", WAIT, || {
        let logs = sink.logs();
        (events(&logs, "wide").count() > 0).then_some(logs)
    })
    .await;
    let wide = events(&logs, "wide").next().unwrap();
    let client = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], prefix: &str| {
        attrs.iter().filter(|kv| kv.key.starts_with(prefix)).count()
    };
    assert_eq!(client(&wide.record.attributes, "ev."), 64);
    assert!(
        wide.record.dropped_attributes_count >= 36,
        "{}",
        wide.record.dropped_attributes_count
    );
    assert_eq!(client(&wide.resource.attributes, "ctx."), 64);
    assert!(
        wide.resource.dropped_attributes_count >= 36,
        "{}",
        wide.resource.dropped_attributes_count
    );
    assert!(bridge.metric(ATTRIBUTES_DROPPED).await >= 72.0);
}
