//! A native page-load beacon through the real binary into a real collector: ids end to end.
//!
//! The beacon (`examples/beacons/page-load.json`) carries the page's server trace context, the
//! ids the loader chose for `documentLoad`, an interaction, the fetch it started (with the ids
//! sent in `traceparent`), an error, vitals, a log and a custom event.

mod common;

use common::*;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

const SERVER_TRACE: &str = "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c";
const SERVER_SPAN: &str = "a1b2c3d4e5f60718";
const PAGE_SPAN: &str = "5f0e1d2c3b4a6978";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_page_load_is_correlated_end_to_end() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[metrics]\ninterval = \"1s\"\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    let resp = bridge.send_page_load().await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["rejected"], 0, "{body}");
    assert_eq!(body["accepted"], 11, "{body}");

    // documentLoad: child of the server span that rendered the page, with the loader's ids.
    let spans = poll("documentLoad and the fetch span", WAIT, || {
        let spans = sink.spans();
        let ok = spans.iter().any(|s| s.span.name == "documentLoad")
            && spans.iter().any(|s| s.span.kind == 3);
        ok.then_some(spans)
    })
    .await;
    let doc = spans
        .iter()
        .find(|s| s.span.name == "documentLoad")
        .unwrap();
    assert_eq!(hex(&doc.span.trace_id), SERVER_TRACE);
    assert_eq!(hex(&doc.span.span_id), PAGE_SPAN);
    assert_eq!(hex(&doc.span.parent_span_id), SERVER_SPAN);
    assert_eq!(doc.span.flags, 0x301, "sampled, remote parent");
    assert_eq!(
        attr(&doc.resource.attributes, "service.name").as_deref(),
        Some("pk_shop_web"),
        "development mode names the app by its key"
    );
    assert_eq!(
        attr(&doc.span.attributes, "session.id").as_deref(),
        Some("b7e4c0f2a91d4e38")
    );
    let children = spans
        .iter()
        .filter(|s| hex(&s.span.parent_span_id) == PAGE_SPAN)
        .count();
    assert!(
        children >= 21,
        "documentFetch + 20 resourceFetch, got {children}"
    );

    // The fetch: a CLIENT span with exactly the ids the browser sent, under the interaction.
    let call = spans.iter().find(|s| s.span.kind == 3).unwrap();
    assert_eq!(hex(&call.span.trace_id), "7b3e9c1d5a2f4e6b8c0d1e2f3a4b5c6d");
    assert_eq!(hex(&call.span.span_id), "2b3c4d5e6f708192");
    assert_eq!(hex(&call.span.parent_span_id), "1a2b3c4d5e6f7081");
    assert_eq!(
        attr(&call.span.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attr(&call.span.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    let click = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == "1a2b3c4d5e6f7081")
        .expect("interaction span");
    assert_eq!(click.span.name, "click");

    // The error log carries the active span's ids; vitals arrive as browser.web_vital events.
    let logs = poll("error and vital events", WAIT, || {
        let logs = sink.logs();
        let vitals = logs
            .iter()
            .filter(|l| l.record.event_name == "browser.web_vital")
            .count();
        (vitals == 5 && logs.iter().any(|l| l.record.event_name == "exception")).then_some(logs)
    })
    .await;
    let err = logs
        .iter()
        .find(|l| l.record.event_name == "exception")
        .unwrap();
    assert_eq!(
        hex(&err.record.trace_id),
        "3c4d5e6f708192a3b4c5d6e7f8091a2b"
    );
    assert_eq!(hex(&err.record.span_id), "3d4e5f60718293a4");
    assert_eq!(err.record.severity_number, 17);
    assert_eq!(
        attr(&err.record.attributes, "exception.type").as_deref(),
        Some("TypeError")
    );
    let lcp = logs
        .iter()
        .find(|l| attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("lcp"))
        .unwrap();
    assert_eq!(hex(&lcp.record.trace_id), SERVER_TRACE);
    assert_eq!(hex(&lcp.record.span_id), PAGE_SPAN);
    assert!(logs.iter().any(|l| l.record.event_name == "add_to_cart"));

    // Vital histograms with exemplars pointing at the page-load span.
    let lcp_metric = poll("the LCP histogram", WAIT, || {
        sink.metrics()
            .into_iter()
            .find(|m| m.name == "browser.web_vital.lcp")
    })
    .await;
    assert_eq!(lcp_metric.unit, "ms");
    let Some(Data::Histogram(h)) = &lcp_metric.data else {
        panic!("histogram expected")
    };
    let point = &h.data_points[0];
    assert_eq!(point.count, 1);
    assert!(point.explicit_bounds.contains(&2500.0) && point.explicit_bounds.contains(&4000.0));
    let exemplar = &point.exemplars[0];
    assert_eq!(hex(&exemplar.trace_id), SERVER_TRACE);
    assert_eq!(hex(&exemplar.span_id), PAGE_SPAN);

    assert_eq!(
        bridge
            .metric("rum_bridge_items_accepted_total{kind=\"vital\"}")
            .await,
        5.0
    );
}

/// Google `web-vitals` reports, sent as-is by `sendBeacon` (captured in Chromium), are accepted
/// at `/v1/rum` and tied to the page's server trace recovered from their attribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_web_vitals_reports_are_accepted_as_is() {
    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let bridge = Bridge::start(&grpc_exporter_toml(rotel.grpc)).await;
    let requests = captured("web-vitals.jsonl");
    assert!(!requests.is_empty());
    for req in &requests {
        let resp = replay(&bridge.client, &bridge.url("/v1/rum"), req).await;
        assert_eq!(resp.status(), 202, "{}", req.path);
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["rejected"], 0, "{body}");
    }
    // The reports arrive in several requests, so in several batches: wait for all five.
    let vitals = ["lcp", "fcp", "ttfb", "cls", "inp"];
    poll("the five vitals, LCP in the server trace", WAIT, || {
        let logs = sink.logs();
        let names: std::collections::HashSet<_> = logs
            .iter()
            .filter_map(|l| attr(&l.record.attributes, "browser.web_vital.name"))
            .collect();
        let lcp_in_trace = logs.iter().any(|l| {
            attr(&l.record.attributes, "browser.web_vital.name").as_deref() == Some("lcp")
                && hex(&l.record.trace_id) == SERVER_TRACE
        });
        (lcp_in_trace && vitals.iter().all(|v| names.contains(*v))).then_some(())
    })
    .await;
}
