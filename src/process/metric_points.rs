//! OTLP metric points that carry a number that is not finite are dropped, point by point.
//!
//! A browser OpenTelemetry SDK's metrics pass through to the collector as they are, and a
//! backend that sums or graphs them is poisoned by one `NaN` or `Infinity` the same way the
//! bridge's own histograms would be (see [`crate::model::bounds`]). Protobuf carries such
//! doubles directly; OTLP JSON spells them `"NaN"`, `"Infinity"`, `"-Infinity"` (the edge's JSON
//! reader keeps them as the non-finite doubles they name). A point whose value, sum, min, max,
//! bucket bounds, zero threshold or quantiles are not all finite, or that has no value at all,
//! is removed and counted as `items_rejected{reason="implausible_value"}`; the rest of the
//! request is kept. Exemplars with a non-finite value are removed from their point. A metric
//! left with no point is removed.

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, number_data_point, Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint,
    NumberDataPoint, ResourceMetrics, SummaryDataPoint,
};

/// What [`drop_non_finite_points`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NonFinite {
    /// Data points removed.
    pub points: usize,
    /// Metrics removed because none of their points was left.
    pub metrics: usize,
}

/// Removes every point holding a non-finite number (see the module docs).
pub fn drop_non_finite_points(resource_metrics: &mut [ResourceMetrics]) -> NonFinite {
    let mut dropped = NonFinite::default();
    for rm in resource_metrics {
        for sm in &mut rm.scope_metrics {
            let before = sm.metrics.len();
            sm.metrics.retain_mut(|metric| {
                let Some(data) = &mut metric.data else {
                    return true;
                };
                let (had, left) = match data {
                    Data::Gauge(g) => retain(&mut g.data_points, number_point),
                    Data::Sum(s) => retain(&mut s.data_points, number_point),
                    Data::Histogram(h) => retain(&mut h.data_points, histogram_point),
                    Data::ExponentialHistogram(h) => retain(&mut h.data_points, exponential_point),
                    Data::Summary(s) => retain(&mut s.data_points, summary_point),
                };
                dropped.points += had - left;
                left > 0 || had == 0
            });
            dropped.metrics += before - sm.metrics.len();
        }
    }
    dropped
}

/// Keeps the points `keep` accepts; returns (points before, points after).
fn retain<P>(points: &mut Vec<P>, keep: fn(&mut P) -> bool) -> (usize, usize) {
    let had = points.len();
    points.retain_mut(keep);
    (had, points.len())
}

fn finite(values: impl IntoIterator<Item = f64>) -> bool {
    values.into_iter().all(f64::is_finite)
}

fn exemplars(exemplars: &mut Vec<Exemplar>) {
    exemplars.retain(|e| match e.value {
        Some(exemplar::Value::AsDouble(v)) => v.is_finite(),
        _ => true,
    });
}

fn number_point(p: &mut NumberDataPoint) -> bool {
    exemplars(&mut p.exemplars);
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v.is_finite(),
        Some(number_data_point::Value::AsInt(_)) => true,
        None => false,
    }
}

fn histogram_point(p: &mut HistogramDataPoint) -> bool {
    exemplars(&mut p.exemplars);
    finite(p.sum.into_iter().chain(p.min).chain(p.max)) && finite(p.explicit_bounds.iter().copied())
}

fn exponential_point(p: &mut ExponentialHistogramDataPoint) -> bool {
    exemplars(&mut p.exemplars);
    finite(
        p.sum
            .into_iter()
            .chain(p.min)
            .chain(p.max)
            .chain([p.zero_threshold]),
    )
}

fn summary_point(p: &mut SummaryDataPoint) -> bool {
    finite(
        p.quantile_values
            .iter()
            .flat_map(|q| [q.quantile, q.value])
            .chain([p.sum]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, Metric, ScopeMetrics, Summary,
    };

    fn number(v: Option<number_data_point::Value>) -> NumberDataPoint {
        NumberDataPoint {
            value: v,
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> Vec<ResourceMetrics> {
        vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn metric(name: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn non_finite_points_go_and_finite_ones_stay() {
        use number_data_point::Value::{AsDouble, AsInt};
        let mut rm = request(vec![
            metric(
                "gauge",
                Data::Gauge(Gauge {
                    data_points: vec![
                        number(Some(AsDouble(f64::NAN))),
                        number(Some(AsDouble(1.5))),
                        number(Some(AsDouble(f64::INFINITY))),
                        number(Some(AsInt(7))),
                        number(None),
                    ],
                }),
            ),
            metric(
                "all_bad",
                Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        count: 1,
                        sum: Some(f64::NEG_INFINITY),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            ),
            metric(
                "summary",
                Data::Summary(Summary {
                    data_points: vec![
                        SummaryDataPoint {
                            sum: 3.0,
                            quantile_values: vec![ValueAtQuantile {
                                quantile: 0.5,
                                value: f64::NAN,
                            }],
                            ..Default::default()
                        },
                        SummaryDataPoint {
                            sum: 3.0,
                            ..Default::default()
                        },
                    ],
                }),
            ),
        ]);
        let dropped = drop_non_finite_points(&mut rm);
        assert_eq!(
            dropped,
            NonFinite {
                points: 5,
                metrics: 1
            }
        );
        let metrics = &rm[0].scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 2);
        let Some(Data::Gauge(g)) = &metrics[0].data else {
            panic!("gauge kept")
        };
        assert_eq!(
            g.data_points.iter().map(|p| p.value).collect::<Vec<_>>(),
            vec![Some(AsDouble(1.5)), Some(AsInt(7))]
        );
        assert_eq!(metrics[1].name, "summary");
    }

    #[test]
    fn non_finite_exemplars_leave_their_point() {
        let mut rm = request(vec![metric(
            "h",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 1,
                    sum: Some(2.0),
                    explicit_bounds: vec![1.0, 10.0],
                    bucket_counts: vec![0, 1, 0],
                    exemplars: vec![
                        Exemplar {
                            value: Some(exemplar::Value::AsDouble(f64::NAN)),
                            ..Default::default()
                        },
                        Exemplar {
                            value: Some(exemplar::Value::AsDouble(2.0)),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        )]);
        assert_eq!(drop_non_finite_points(&mut rm), NonFinite::default());
        let Some(Data::Histogram(h)) = &rm[0].scope_metrics[0].metrics[0].data else {
            panic!("histogram kept")
        };
        assert_eq!(h.data_points[0].exemplars.len(), 1);
    }
}
