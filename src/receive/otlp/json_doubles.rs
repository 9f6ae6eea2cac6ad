//! OTLP JSON metric doubles, read as the protobuf JSON mapping writes them.
//!
//! The mapping lets a `double` be a JSON number or a string: `"NaN"`, `"Infinity"`,
//! `"-Infinity"`, or a number in quotes. The `opentelemetry-proto` serde types read only JSON
//! numbers and silently lose the rest: `"asDouble": "NaN"` became a point with no value, and a
//! histogram whose `sum` is `"Infinity"` lost its whole data. So metrics JSON is read in two
//! steps: the doubles of every data point are first made plain numbers (a quoted finite
//! number is the number it spells; a non-finite one is remembered and replaced by `0`), then
//! the request is deserialized and each remembered point gets a `NaN` where its bad number
//! was. The pipeline then sees what the client sent, in JSON as in protobuf, and drops those
//! points one by one ([`crate::process::metric_points`]). Exemplars with a non-finite value are
//! simply removed.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use serde_json::Value;

/// The data kinds of a metric, as JSON keys.
const KINDS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];
/// The double fields of a data point.
const SCALARS: [&str; 5] = ["asDouble", "sum", "min", "max", "zeroThreshold"];

/// A point that held a non-finite double: (resource, scope, metric, point) indices.
type Poisoned = (usize, usize, usize, usize);

/// Decodes an OTLP JSON metrics request, keeping non-finite doubles as `NaN` (module docs).
pub fn decode(body: &[u8]) -> Result<ExportMetricsServiceRequest, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(body)?;
    let poisoned = normalize(&mut value);
    let mut request: ExportMetricsServiceRequest = serde_json::from_value(value)?;
    for (r, s, m, p) in poisoned {
        let data = request
            .resource_metrics
            .get_mut(r)
            .and_then(|rm| rm.scope_metrics.get_mut(s))
            .and_then(|sm| sm.metrics.get_mut(m))
            .and_then(|metric| metric.data.as_mut());
        match data {
            Some(Data::Gauge(g)) => poison_number(g.data_points.get_mut(p)),
            Some(Data::Sum(g)) => poison_number(g.data_points.get_mut(p)),
            Some(Data::Histogram(h)) => {
                if let Some(point) = h.data_points.get_mut(p) {
                    point.sum = Some(f64::NAN);
                }
            }
            Some(Data::ExponentialHistogram(h)) => {
                if let Some(point) = h.data_points.get_mut(p) {
                    point.sum = Some(f64::NAN);
                }
            }
            Some(Data::Summary(h)) => {
                if let Some(point) = h.data_points.get_mut(p) {
                    point.sum = f64::NAN;
                }
            }
            None => {}
        }
    }
    Ok(request)
}

fn poison_number(point: Option<&mut opentelemetry_proto::tonic::metrics::v1::NumberDataPoint>) {
    if let Some(point) = point {
        point.value = Some(number_data_point::Value::AsDouble(f64::NAN));
    }
}

/// Makes every data point double a JSON number; returns the points that held a non-finite one.
fn normalize(request: &mut Value) -> Vec<Poisoned> {
    let mut poisoned = Vec::new();
    for (r, rm) in array(request, "resourceMetrics").enumerate() {
        for (s, sm) in array(rm, "scopeMetrics").enumerate() {
            for (m, metric) in array(sm, "metrics").enumerate() {
                let Some(kind) = KINDS
                    .into_iter()
                    .find(|kind| metric.get(*kind).is_some_and(Value::is_object))
                else {
                    continue;
                };
                let data = &mut metric[kind];
                for (p, point) in array(data, "dataPoints").enumerate() {
                    if !normalize_point(point) {
                        poisoned.push((r, s, m, p));
                    }
                }
            }
        }
    }
    poisoned
}

/// The items of `value[key]` when it is an array (nothing otherwise).
fn array<'a>(value: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    value
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Normalizes one point's doubles; `false` when one of them is not finite.
fn normalize_point(point: &mut Value) -> bool {
    let mut finite = true;
    for key in SCALARS {
        if let Some(v) = point.get_mut(key) {
            finite &= double(v);
        }
    }
    if let Some(bounds) = point
        .get_mut("explicitBounds")
        .and_then(Value::as_array_mut)
    {
        for v in bounds {
            finite &= double(v);
        }
    }
    for q in array(point, "quantileValues") {
        for key in ["quantile", "value"] {
            if let Some(v) = q.get_mut(key) {
                finite &= double(v);
            }
        }
    }
    if let Some(exemplars) = point.get_mut("exemplars").and_then(Value::as_array_mut) {
        exemplars.retain_mut(|e| e.get_mut("asDouble").is_none_or(double));
    }
    finite
}

/// Turns a double written as a string into a number; `false` when it is not finite (it is then
/// replaced by `0`). Other values are left for the deserializer to judge.
fn double(v: &mut Value) -> bool {
    let Value::String(text) = v else {
        return true;
    };
    let parsed = match text.trim() {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        other => match other.parse::<f64>() {
            Ok(n) => n,
            Err(_) => return true,
        },
    };
    match serde_json::Number::from_f64(parsed) {
        Some(n) => {
            *v = Value::Number(n);
            true
        }
        None => {
            *v = Value::from(0);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, points: &str) -> String {
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","{kind}":{{"dataPoints":[{points}]}}}}]}}]}}]}}"#
        )
    }

    fn data(req: &ExportMetricsServiceRequest) -> &Data {
        req.resource_metrics[0].scope_metrics[0].metrics[0]
            .data
            .as_ref()
            .unwrap()
    }

    #[test]
    fn nan_and_infinity_strings_become_non_finite_values() {
        let req = decode(
            body(
                "gauge",
                r#"{"asDouble":"NaN"},{"asDouble":"Infinity"},{"asDouble":"-Infinity"},{"asDouble":"2.5"},{"asDouble":1.5},{"asInt":"3"}"#,
            )
            .as_bytes(),
        )
        .unwrap();
        let Data::Gauge(g) = data(&req) else {
            panic!("gauge")
        };
        let values: Vec<_> = g
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(number_data_point::Value::AsDouble(v)) => v.to_string(),
                Some(number_data_point::Value::AsInt(v)) => format!("int {v}"),
                None => "none".into(),
            })
            .collect();
        assert_eq!(values, ["NaN", "NaN", "NaN", "2.5", "1.5", "int 3"]);
    }

    #[test]
    fn a_histogram_with_an_infinite_sum_keeps_its_data() {
        let req = decode(
            body(
                "histogram",
                r#"{"count":"1","sum":"Infinity","explicitBounds":[1,"10"],"bucketCounts":["0","1","0"]},{"count":"1","sum":4,"exemplars":[{"asDouble":"NaN"},{"asDouble":4}]}"#,
            )
            .as_bytes(),
        )
        .unwrap();
        let Data::Histogram(h) = data(&req) else {
            panic!("histogram")
        };
        assert!(h.data_points[0].sum.unwrap().is_nan());
        assert_eq!(h.data_points[0].explicit_bounds, [1.0, 10.0]);
        assert_eq!(h.data_points[1].sum, Some(4.0));
        assert_eq!(h.data_points[1].exemplars.len(), 1);
    }

    #[test]
    fn bodies_that_are_not_json_still_fail() {
        assert!(decode(b"{").is_err());
        assert!(decode(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"asDouble":1e400}]}}]}]}]}"#).is_err());
    }
}
