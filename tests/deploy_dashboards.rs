//! The RUM dashboard (`docker/grafana/dashboards/rum.json`) and the Tempo data source's
//! trace-to-metrics queries name only metrics and labels that the bridge really exports:
//! checked against a running bridge, through the collector's Prometheus naming rules.

mod common;
mod deploy;

use std::collections::BTreeSet;

use common::{grpc_exporter_toml, poll, Bridge, Sink, WAIT};
use deploy::prometheus::{
    exporter_catalog, exposition_catalog, prometheus_label, prometheus_name, Catalog, Kind,
};
use deploy::{grafana_datasources, json, panels, read, str_of};
use promql_parser::parser::{Expr, LabelModifier};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;

#[test]
fn prometheus_names_follow_the_collector_translation() {
    // Examples from prometheus/otlptranslator's documentation and tests, and ours.
    let cases = [
        (
            "http.server.request.duration",
            "s",
            Kind::Histogram,
            "http_server_request_duration_seconds",
        ),
        ("requests.count", "1", Kind::Counter, "requests_count_total"),
        ("memory.usage", "By", Kind::Gauge, "memory_usage_bytes"),
        (
            "system.network.dropped",
            "{packets}",
            Kind::Counter,
            "system_network_dropped_total",
        ),
        (
            "system.memory.utilization",
            "1",
            Kind::Gauge,
            "system_memory_utilization_ratio",
        ),
        (
            "astro.light.speed",
            "m/s",
            Kind::Gauge,
            "astro_light_speed_meters_per_second",
        ),
        (
            "storage.filesystem.utilization",
            "%",
            Kind::Gauge,
            "storage_filesystem_utilization_percent",
        ),
        (
            "browser.web_vital.lcp",
            "ms",
            Kind::Histogram,
            "browser_web_vital_lcp_milliseconds",
        ),
        (
            "browser.web_vital.cls",
            "1",
            Kind::Histogram,
            "browser_web_vital_cls",
        ),
        (
            "rum.page_views",
            "{page_view}",
            Kind::Counter,
            "rum_page_views_total",
        ),
        ("queue.total", "", Kind::Counter, "queue_total"),
        ("latency.seconds", "s", Kind::Histogram, "latency_seconds"),
    ];
    for (name, unit, kind, expected) in cases {
        assert_eq!(
            prometheus_name(name, unit, kind),
            expected,
            "{name} [{unit}]"
        );
    }
    assert_eq!(prometheus_label("url.template"), "url_template");
    assert_eq!(
        prometheus_label("browser.web_vital.rating"),
        "browser_web_vital_rating"
    );
    assert_eq!(prometheus_label("2xx.count"), "key_2xx_count");
}

// ---------------------------------------------------------------------------------------------
// Queries of the dashboard and the data sources

/// A PromQL query with Grafana's variables replaced by values Prometheus accepts: the interval
/// macros by `5m`, `$__tags` (trace-to-metrics) by a label matcher, other variables (used in
/// regex matchers) by `.*`.
fn substitute_grafana_variables(query: &str) -> String {
    let query = query
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "5m")
        .replace("$__range", "5m")
        .replace("$__tags", "rum_app_name=\"shop-web\"");
    let variables = regex::Regex::new(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?").unwrap();
    let query = variables.replace_all(&query, ".*").into_owned();
    assert!(!query.contains('$'), "unexpected variable left in {query}");
    query
}

/// The metrics a query selects (with the labels its matchers name) and the labels it groups or
/// matches on.
#[derive(Default, Debug)]
struct QueryUse {
    selectors: Vec<(String, Vec<String>)>,
    grouping: BTreeSet<String>,
}

impl ExprVisitor for QueryUse {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let modifier_labels = |m: &LabelModifier| m.labels().labels.clone();
        match expr {
            Expr::VectorSelector(vs) => self.add_selector(vs)?,
            Expr::MatrixSelector(ms) => self.add_selector(&ms.vs)?,
            Expr::Aggregate(agg) => {
                self.grouping
                    .extend(agg.modifier.iter().flat_map(modifier_labels));
            }
            Expr::Binary(bin) => {
                if let Some(m) = &bin.modifier {
                    self.grouping
                        .extend(m.matching.iter().flat_map(modifier_labels));
                    self.grouping
                        .extend(m.card.labels().into_iter().flat_map(|l| l.labels.clone()));
                }
            }
            _ => {}
        }
        Ok(true)
    }
}

impl QueryUse {
    fn add_selector(&mut self, vs: &promql_parser::parser::VectorSelector) -> Result<(), String> {
        let name = vs
            .name
            .clone()
            .ok_or_else(|| format!("selector without a metric name: {vs}"))?;
        let labels = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
            .map(|m| m.name.clone())
            .filter(|l| l != "__name__")
            .collect();
        self.selectors.push((name, labels));
        Ok(())
    }

    fn of(query: &str) -> QueryUse {
        let expr = promql_parser::parser::parse(query)
            .unwrap_or_else(|e| panic!("not PromQL: {query}: {e}"));
        let mut used = QueryUse::default();
        walk_expr(&mut used, &expr).unwrap();
        used
    }
}

/// Every PromQL query of the RUM dashboard (panel targets, and the selectors of its
/// `label_values(...)` variables, with the label they read) and of the Tempo data source's
/// trace-to-metrics links, variables substituted. (where, query, label read by a variable)
fn grafana_queries() -> Vec<(String, String, Option<String>)> {
    let dashboard = json("docker/grafana/dashboards/rum.json");
    let mut queries = Vec::new();
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = str_of(&target["expr"], "expr");
            let title = panel["title"].as_str().unwrap_or_default();
            queries.push((
                format!("panel {title:?}"),
                substitute_grafana_variables(expr),
                None,
            ));
        }
    }
    let label_values = regex::Regex::new(r"^label_values\((.+),\s*([A-Za-z_]\w*)\)$").unwrap();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let query = str_of(&var["query"], "variable query");
        let captures = label_values
            .captures(query)
            .unwrap_or_else(|| panic!("variable query {query}"));
        queries.push((
            format!("variable {}", var["name"]),
            substitute_grafana_variables(&captures[1]),
            Some(captures[2].to_owned()),
        ));
    }
    for ds in grafana_datasources().values() {
        for q in ds["jsonData"]["tracesToMetrics"]["queries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            // "$$" is a literal "$" in provisioning files.
            let query = str_of(&q["query"], "tracesToMetrics query").replace("$$", "$");
            queries.push((
                format!("trace-to-metrics {}", q["name"]),
                substitute_grafana_variables(&query),
                None,
            ));
        }
    }
    queries
}

/// Asserts that every metric and label the Grafana queries use is in `catalog`; returns the
/// metric names used.
fn assert_queries_use(catalog: &Catalog) -> BTreeSet<String> {
    let mut used_names = BTreeSet::new();
    let queries = grafana_queries();
    assert!(queries.len() > 20, "{} queries", queries.len());
    for (place, query, variable_label) in &queries {
        let used = QueryUse::of(query);
        assert!(!used.selectors.is_empty(), "{place}: selects nothing");
        let mut available = BTreeSet::new();
        for (name, labels) in &used.selectors {
            let Some(known) = catalog.get(name) else {
                panic!(
                    "{place}: {name} is not exported by rum-bridge; known: {:#?}",
                    catalog.keys()
                );
            };
            for label in labels {
                assert!(
                    known.contains(label),
                    "{place}: {name} has no label {label} (it has {known:?})"
                );
            }
            available.extend(known.iter().cloned());
            used_names.insert(name.clone());
        }
        for label in used.grouping.iter().chain(variable_label) {
            assert!(
                available.contains(label),
                "{place}: no selected metric has the label {label}: {query}"
            );
        }
    }
    used_names
}

#[tokio::test]
async fn dashboard_queries_name_metrics_the_bridge_exports() {
    let sink = Sink::start().await;
    let bridge = Bridge::start(&format!(
        "[metrics]\ninterval = \"1s\"\n\n{}",
        grpc_exporter_toml(sink.addr)
    ))
    .await;
    // The example page load (every vital, a page view, an error, a successful call), then the
    // same page's call failing, which adds error.type.
    let page_load = read("examples/beacons/page-load.json");
    let mut failed_call: Value = serde_json::from_str(&page_load).unwrap();
    let events = failed_call["ev"].as_array_mut().unwrap();
    events.retain(|e| e["type"] == "http");
    events[0]["status"] = 503.into();
    for beacon in [page_load, failed_call.to_string()] {
        let accepted = bridge
            .client
            .post(bridge.url("/v1/rum"))
            .header("content-type", "text/plain")
            .body(beacon)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 202);
    }
    // One refusal, so that the rejection counter has a labelled series.
    let refused = bridge
        .client
        .post(bridge.url("/v1/rum"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // The beacon was recorded before its 202: every flush after the first one that arrives
    // reports all of it (cumulative temporality).
    poll("two metric exports", WAIT, || {
        (sink.received.lock().unwrap().metrics.len() >= 2).then_some(())
    })
    .await;
    let otlp = sink.metrics();
    let mut catalog = exporter_catalog(&otlp);
    let admin = exposition_catalog(&bridge.metrics_text().await);
    assert!(
        admin.contains_key("rum_bridge_items_accepted_total"),
        "{admin:?}"
    );
    for (name, labels) in admin {
        catalog.entry(name).or_default().extend(labels);
    }

    let used = assert_queries_use(&catalog);
    // The dashboard covers what the RUM dashboard is for.
    for vital in ["lcp", "inp", "cls", "fcp", "ttfb"] {
        let metric = otlp
            .iter()
            .find(|m| m.name == format!("browser.web_vital.{vital}"))
            .unwrap_or_else(|| panic!("the beacon's {vital} was exported"));
        let base = prometheus_name(&metric.name, &metric.unit, Kind::Histogram);
        for series in [format!("{base}_bucket"), format!("{base}_count")] {
            assert!(used.contains(&series), "the dashboard shows {series}");
        }
    }
    for series in [
        "http_client_request_duration_seconds_bucket",
        "http_client_request_duration_seconds_count",
        "rum_errors_total",
        "rum_page_views_total",
        "rum_bridge_items_rejected_total",
    ] {
        assert!(used.contains(series), "the dashboard shows {series}");
    }
}

#[test]
fn histogram_panels_show_exemplars() {
    let dashboard = json("docker/grafana/dashboards/rum.json");
    let mut with_exemplars = 0;
    for panel in panels(&dashboard) {
        if panel["type"] != "timeseries" {
            continue;
        }
        for target in panel["targets"].as_array().unwrap() {
            let expr = str_of(&target["expr"], "expr");
            if expr.contains("_bucket") && !expr.contains("rum_bridge_") {
                assert_eq!(
                    target["exemplar"], true,
                    "{}: exemplars link the points to their traces",
                    panel["title"]
                );
                with_exemplars += 1;
            }
        }
    }
    assert!(with_exemplars >= 7, "{with_exemplars}");
}
