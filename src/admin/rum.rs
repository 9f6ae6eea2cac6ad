//! `GET /metrics/rum` on the admin port: the aggregator's web-vital histograms, page views and
//! errors in the Prometheus text format, so a team without an OpenTelemetry collector can
//! scrape the bridge directly, run the rule pack (`docker/prometheus/rules/rum.yml`) and gate CI
//! with `rum-bridge budget --prometheus` (docs/budgets.md).
//!
//! It is fed by the metrics flusher (every `metrics.interval`) with the very points that go to
//! the exporters, folded into cumulative counters whatever `metrics.temporality` is: a
//! cumulative stream keeps its latest point, delta points are added up. Series are summed into
//! the low-cardinality labels `vital`, `app`, `version`, `page` (device class, browser, country
//! and rating are left out).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;

const DELTA: i32 = 1;

/// `(vital or counter name, app, version, page)`.
type Labels = (String, String, String, String);

/// A histogram: explicit bounds, per-bucket counts, sum.
#[derive(Debug, Clone, Default)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn add(&mut self, other: &Histogram) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        if self.bounds == other.bounds {
            for (a, b) in self.counts.iter_mut().zip(&other.counts) {
                *a += b;
            }
            self.sum += other.sum;
        }
    }
}

#[derive(Default)]
struct State {
    /// Cumulative streams: latest point per (metric, all attributes, start time).
    histograms: HashMap<(Labels, String, u64), Histogram>,
    counters: HashMap<(Labels, String, u64), f64>,
    /// Delta points added up per full attribute set.
    delta_histograms: HashMap<(Labels, String), Histogram>,
    delta_counters: HashMap<(Labels, String), f64>,
}

/// The folded RUM series, shared by the flusher and the admin endpoint.
#[derive(Default)]
pub struct RumExposition {
    state: Mutex<State>,
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn labels(name: String, attrs: &[KeyValue]) -> (Labels, String) {
    let get = |key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .map(text)
            .unwrap_or_default()
    };
    let all: BTreeMap<&str, String> = attrs.iter().map(|kv| (kv.key.as_str(), text(kv))).collect();
    (
        (
            name,
            get("rum.app.name"),
            get("rum.app.version"),
            get("url.template"),
        ),
        format!("{all:?}"),
    )
}

impl RumExposition {
    /// Folds one flush.
    pub fn observe(&self, flush: &[ResourceMetrics]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for metric in flush
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
        {
            match (&metric.data, metric.name.as_str()) {
                (Some(Data::Histogram(h)), name) if name.starts_with("browser.web_vital.") => {
                    let vital = name.trim_start_matches("browser.web_vital.").to_owned();
                    for p in &h.data_points {
                        let (l, all) = labels(vital.clone(), &p.attributes);
                        let point = Histogram {
                            bounds: p.explicit_bounds.clone(),
                            counts: p.bucket_counts.clone(),
                            sum: p.sum.unwrap_or_default(),
                        };
                        if point.counts.len() != point.bounds.len() + 1 {
                            continue;
                        }
                        if h.aggregation_temporality == DELTA {
                            state
                                .delta_histograms
                                .entry((l, all))
                                .or_default()
                                .add(&point);
                        } else {
                            state
                                .histograms
                                .insert((l, all, p.start_time_unix_nano), point);
                        }
                    }
                }
                (Some(Data::Sum(s)), name @ ("rum.page_views" | "rum.errors")) => {
                    let counter = name.replace('.', "_");
                    for p in &s.data_points {
                        let (l, all) = labels(counter.clone(), &p.attributes);
                        let v = match p.value {
                            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i as f64,
                            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(d)) => d,
                            None => continue,
                        };
                        if s.aggregation_temporality == DELTA {
                            *state.delta_counters.entry((l, all)).or_default() += v;
                        } else {
                            state.counters.insert((l, all, p.start_time_unix_nano), v);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut histograms: BTreeMap<&Labels, Histogram> = BTreeMap::new();
        for ((l, _, _), h) in &state.histograms {
            histograms.entry(l).or_default().add(h);
        }
        for ((l, _), h) in &state.delta_histograms {
            histograms.entry(l).or_default().add(h);
        }
        let mut counters: BTreeMap<&Labels, f64> = BTreeMap::new();
        for ((l, _, _), v) in &state.counters {
            *counters.entry(l).or_default() += v;
        }
        for ((l, _), v) in &state.delta_counters {
            *counters.entry(l).or_default() += v;
        }
        let mut out = String::new();
        out.push_str("# HELP rum_web_vital Web vitals reported by browsers (ms; cls: layout-shift score), by vital, app, version and page template.\n# TYPE rum_web_vital histogram\n");
        for ((vital, app, version, page), h) in &histograms {
            let base = format!(
                "vital=\"{}\",app=\"{}\",version=\"{}\",page=\"{}\"",
                esc(vital),
                esc(app),
                esc(version),
                esc(page)
            );
            let mut cumulative = 0;
            for (i, c) in h.counts.iter().enumerate() {
                cumulative += c;
                let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "rum_web_vital_bucket{{{base},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "rum_web_vital_sum{{{base}}} {}", h.sum);
            let _ = writeln!(out, "rum_web_vital_count{{{base}}} {cumulative}");
        }
        for (name, help) in [
            (
                "rum_page_views",
                "Page views, by app, version and page template.",
            ),
            (
                "rum_errors",
                "Browser errors, by app, version and page template.",
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name}_total {help}\n# TYPE {name}_total counter"
            );
            for ((_, app, version, page), v) in counters.iter().filter(|(l, _)| l.0 == name) {
                let _ = writeln!(
                    out,
                    "{name}_total{{app=\"{}\",version=\"{}\",page=\"{}\"}} {v}",
                    esc(app),
                    esc(version),
                    esc(page)
                );
            }
        }
        out
    }
}

/// A label value in the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        Histogram as OtlpHistogram, HistogramDataPoint, Metric, ScopeMetrics,
    };

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn flush(temporality: i32, device: &str, start: u64, counts: [u64; 2]) -> Vec<ResourceMetrics> {
        let point = HistogramDataPoint {
            attributes: vec![
                kv("rum.app.name", "shop"),
                kv("rum.app.version", "1"),
                kv("url.template", "/p"),
                kv("rum.device.class", device),
            ],
            start_time_unix_nano: start,
            explicit_bounds: vec![2500.0],
            bucket_counts: counts.to_vec(),
            sum: Some(1000.0),
            ..Default::default()
        };
        vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "browser.web_vital.lcp".into(),
                    data: Some(Data::Histogram(OtlpHistogram {
                        data_points: vec![point],
                        aggregation_temporality: temporality,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    const BASE: &str = r#"vital="lcp",app="shop",version="1",page="/p""#;

    #[test]
    fn cumulative_points_replace_and_devices_are_summed() {
        let rum = RumExposition::default();
        rum.observe(&flush(2, "desktop", 1, [1, 0]));
        rum.observe(&flush(2, "desktop", 1, [2, 1]));
        rum.observe(&flush(2, "mobile", 1, [1, 0]));
        let text = rum.render();
        assert!(
            text.contains(&format!("rum_web_vital_bucket{{{BASE},le=\"2500\"}} 3\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("rum_web_vital_bucket{{{BASE},le=\"+Inf\"}} 4\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("rum_web_vital_count{{{BASE}}} 4\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("rum_web_vital_sum{{{BASE}}} 2000\n")),
            "{text}"
        );
    }

    #[test]
    fn delta_points_accumulate() {
        let rum = RumExposition::default();
        rum.observe(&flush(1, "desktop", 1, [1, 0]));
        rum.observe(&flush(1, "desktop", 2, [2, 1]));
        let text = rum.render();
        assert!(
            text.contains(&format!("rum_web_vital_count{{{BASE}}} 4\n")),
            "{text}"
        );
        assert!(text.contains("# TYPE rum_errors_total counter"), "{text}");
    }
}
