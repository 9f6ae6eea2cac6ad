//! Where the histograms come from: the bridge's own OTLP-JSON file output (`metrics.jsonl` of the
//! file exporter), or Prometheus over its HTTP API after it scraped the bridge's
//! `/metrics/rum` endpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use super::file::Vital;
use super::quantile::Buckets;
use super::BudgetError;

/// Point attributes the aggregator writes (docs/otlp-mapping.md, "Metrics").
const APP: &str = "rum.app.name";
const VERSION: &str = "rum.app.version";
const PAGE: &str = "url.template";
/// OTLP `AggregationTemporality::Delta`.
const DELTA: i32 = 1;

/// Which series a percentile is computed over; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub app: Option<String>,
    pub version: Option<String>,
    pub page: Option<String>,
}

impl Selector {
    /// `app shop-web, version 2, page /products/{id}` for messages.
    pub fn describe(&self) -> String {
        let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "(any)".into());
        format!(
            "app {}, version {}, page {}",
            any(&self.app),
            any(&self.version),
            any(&self.page)
        )
    }
}

/// One series of a web-vital histogram: its point attributes and its buckets (the latest
/// cumulative point, or the sum of its delta points).
#[derive(Debug)]
struct Series {
    vital: &'static str,
    attrs: BTreeMap<String, String>,
    buckets: Buckets,
}

/// The histograms of an OTLP-JSON `metrics.jsonl`.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    series: Vec<Series>,
}

/// Identity of one cumulative stream: writer, metric, attributes, start time. A restarted
/// bridge starts new streams, and several replicas write their own, so streams are summed
/// after each is reduced to its latest point.
type StreamKey = (String, &'static str, BTreeMap<String, String>, u64);

impl FileSource {
    pub fn load(path: &Path) -> Result<FileSource, BudgetError> {
        let text = std::fs::read_to_string(path).map_err(|source| BudgetError::Io {
            path: path.to_owned(),
            source,
        })?;
        let bad = |line: usize, message: String| BudgetError::BadData {
            path: path.to_owned(),
            line,
            message,
        };
        // Cumulative: latest point (time, buckets) per stream. Delta: summed per series.
        let mut latest: HashMap<StreamKey, (u64, Buckets)> = HashMap::new();
        let mut deltas: HashMap<(&'static str, BTreeMap<String, String>), Buckets> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let request: ExportMetricsServiceRequest =
                serde_json::from_str(line).map_err(|e| bad(n + 1, e.to_string()))?;
            for rm in &request.resource_metrics {
                let writer = rm
                    .resource
                    .as_ref()
                    .and_then(|r| string_attr(&r.attributes, "service.instance.id"))
                    .unwrap_or_default();
                for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    let Some(vital) = vital_of(&metric.name) else {
                        continue;
                    };
                    let Some(Data::Histogram(h)) = &metric.data else {
                        continue;
                    };
                    for p in &h.data_points {
                        let buckets = Buckets::from_otlp(&p.explicit_bounds, &p.bucket_counts)
                            .ok_or_else(|| {
                                bad(
                                    n + 1,
                                    format!(
                                        "{}: bucket counts do not match the bounds",
                                        metric.name
                                    ),
                                )
                            })?;
                        let attrs: BTreeMap<String, String> = p
                            .attributes
                            .iter()
                            .filter_map(|kv| Some((kv.key.clone(), string_value(kv)?)))
                            .collect();
                        if h.aggregation_temporality == DELTA {
                            let entry = deltas.entry((vital, attrs)).or_insert_with(|| {
                                Buckets(buckets.0.iter().map(|b| (b.0, 0.0)).collect())
                            });
                            if !entry.add(&buckets) {
                                return Err(bad(
                                    n + 1,
                                    format!("{}: bucket bounds changed", metric.name),
                                ));
                            }
                        } else {
                            let key = (writer.clone(), vital, attrs, p.start_time_unix_nano);
                            match latest.get(&key) {
                                Some((t, _)) if *t > p.time_unix_nano => {}
                                _ => {
                                    latest.insert(key, (p.time_unix_nano, buckets));
                                }
                            }
                        }
                    }
                }
            }
        }
        let series = latest
            .into_iter()
            .map(|((_, vital, attrs, _), (_, buckets))| Series {
                vital,
                attrs,
                buckets,
            })
            .chain(deltas.into_iter().map(|((vital, attrs), buckets)| Series {
                vital,
                attrs,
                buckets,
            }))
            .collect();
        Ok(FileSource {
            path: path.to_owned(),
            series,
        })
    }

    /// The summed buckets of `vital` over the series `selector` matches.
    pub fn buckets(&self, vital: Vital, selector: &Selector) -> Result<Buckets, BudgetError> {
        let wanted = |key: &str, want: &Option<String>, attrs: &BTreeMap<String, String>| {
            want.as_ref().is_none_or(|w| attrs.get(key) == Some(w))
        };
        let mut sum: Option<Buckets> = None;
        for s in self.series.iter().filter(|s| {
            s.vital == vital.otlp_name()
                && wanted(APP, &selector.app, &s.attrs)
                && wanted(VERSION, &selector.version, &s.attrs)
                && wanted(PAGE, &selector.page, &s.attrs)
        }) {
            match &mut sum {
                None => sum = Some(s.buckets.clone()),
                Some(total) => {
                    if !total.add(&s.buckets) {
                        return Err(BudgetError::BadData {
                            path: self.path.clone(),
                            line: 0,
                            message: format!("{}: series with different bucket bounds", s.vital),
                        });
                    }
                }
            }
        }
        sum.filter(|b| b.count() > 0.0)
            .ok_or_else(|| BudgetError::NoSamples {
                metric: vital.as_str(),
                selector: selector.describe(),
            })
    }
}

fn vital_of(name: &str) -> Option<&'static str> {
    [Vital::Lcp, Vital::Inp, Vital::Cls, Vital::Fcp, Vital::Ttfb]
        .into_iter()
        .map(Vital::otlp_name)
        .find(|n| *n == name)
}

fn string_value(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(string_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    /// One line: an LCP point of `version` with per-bucket counts over bounds 1000, 2000.
    fn line(temporality: i32, version: &str, start: u64, time: u64, counts: [u64; 3]) -> String {
        let point = HistogramDataPoint {
            attributes: vec![kv(APP, "shop"), kv(VERSION, version), kv(PAGE, "/p")],
            start_time_unix_nano: start,
            time_unix_nano: time,
            count: counts.iter().sum(),
            explicit_bounds: vec![1000.0, 2000.0],
            bucket_counts: counts.to_vec(),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.instance.id", "r1")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "browser.web_vital.lcp".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: vec![point],
                            aggregation_temporality: temporality,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        serde_json::to_string(&request).unwrap()
    }

    fn count(lines: &[String], version: &str) -> f64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let source = FileSource::load(&path).unwrap();
        let selector = Selector {
            version: Some(version.into()),
            ..Default::default()
        };
        source.buckets(Vital::Lcp, &selector).unwrap().count()
    }

    #[test]
    fn cumulative_streams_keep_their_latest_point_and_restarts_add_up() {
        let lines = [
            line(2, "A", 10, 20, [1, 0, 0]),
            line(2, "A", 10, 40, [3, 1, 0]),
            line(2, "A", 10, 30, [2, 0, 0]), // out of order: older than 40
            line(2, "A", 50, 60, [0, 0, 2]), // a restarted bridge: a new stream
        ]
        .map(String::from);
        assert_eq!(count(&lines, "A"), 6.0);
    }

    #[test]
    fn delta_points_are_summed() {
        let lines = [
            line(1, "B", 10, 20, [1, 0, 0]),
            line(1, "B", 20, 30, [0, 2, 0]),
        ];
        assert_eq!(count(&lines, "B"), 3.0);
    }

    #[test]
    fn no_samples_names_the_selector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, line(2, "A", 1, 2, [1, 0, 0])).unwrap();
        let source = FileSource::load(&path).unwrap();
        let selector = Selector {
            version: Some("C".into()),
            ..Default::default()
        };
        let e = source
            .buckets(Vital::Lcp, &selector)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no samples of lcp for app (any), version C, page (any)");
    }
}
