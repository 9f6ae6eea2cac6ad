//! The Prometheus series that the OpenTelemetry Collector's `prometheus` exporter, or a scrape
//! of the bridge's admin `/metrics`, makes of what the bridge exports.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, Metric};

/// What an OTLP metric is, for naming.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Gauge,
    Counter,
    /// Non-monotonic sum: a Prometheus gauge.
    UpDownCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// The Prometheus metric name the OpenTelemetry Collector's `prometheus` exporter gives an OTLP
/// metric with its default translation strategy, `UnderscoreEscapingWithSuffixes` (collector
/// contrib `exporter/prometheusexporter`, naming from `prometheus/otlptranslator`
/// `metric_namer.go` `normalizeName`):
///
/// 1. the name is split into tokens at every character outside `[a-zA-Z0-9:]` (`.` and `_`
///    included) and the tokens joined with `_`: `browser.web_vital.lcp` → `browser_web_vital_lcp`;
/// 2. the unit is appended unless it already is one of the tokens: a unit in braces
///    (`{page_view}`) is dropped, `1` is dropped, UCUM units take their Prometheus names
///    (`ms` → `milliseconds`, `s` → `seconds`, `By` → `bytes`, …), `a/b` becomes
///    `a_per_b` (`m/s` → `meters_per_second`);
/// 3. monotonic sums (counters) end with `_total`; gauges with unit `1` end with `_ratio`;
/// 4. a name starting with a digit gets a leading `_`.
///
/// A histogram is then exposed as `<name>_bucket` (label `le`), `<name>_sum` and
/// `<name>_count` ([`series_names`]).
pub fn prometheus_name(name: &str, unit: &str, kind: Kind) -> String {
    fn unit_name(unit: &str) -> &str {
        match unit {
            "d" => "days",
            "h" => "hours",
            "min" => "minutes",
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "GiBy" => "gibibytes",
            "TiBy" => "tibibytes",
            "KBy" => "kilobytes",
            "MBy" => "megabytes",
            "GBy" => "gigabytes",
            "TBy" => "terabytes",
            "m" => "meters",
            "V" => "volts",
            "A" => "amperes",
            "J" => "joules",
            "W" => "watts",
            "g" => "grams",
            "Cel" => "celsius",
            "Hz" => "hertz",
            "1" => "",
            "%" => "percent",
            other => other,
        }
    }
    fn per_unit_name(unit: &str) -> &str {
        match unit {
            "s" => "second",
            "m" => "minute",
            "h" => "hour",
            "d" => "day",
            "w" => "week",
            "mo" => "month",
            "y" => "year",
            other => other,
        }
    }
    /// Characters outside `[a-zA-Z0-9_:]` become `_`; repeated and outer `_` go.
    fn clean(unit: &str) -> String {
        unit.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("_")
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || c == ':';
    let mut tokens: Vec<String> = name
        .split(|c: char| !valid(c))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit.split_once('/').unwrap_or((unit, ""));
    let (main, per) = (main.trim(), per.trim());
    let braces = |u: &str| u.contains(['{', '}']);
    let main = if main.is_empty() || braces(main) {
        String::new()
    } else {
        clean(unit_name(main))
    };
    let per = if per.is_empty() || braces(per) {
        String::new()
    } else {
        format!("per_{}", clean(per_unit_name(per)))
    };
    if !main.is_empty() && !tokens.contains(&main) {
        tokens.push(main);
    }
    if !per.is_empty() && !tokens.contains(&per) {
        tokens.push(per);
    }
    if kind == Kind::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// The label an OTLP attribute becomes: characters outside `[a-zA-Z0-9_]` become `_`, a name
/// starting with a digit gets `key_` in front (`url.template` → `url_template`).
pub fn prometheus_label(attribute: &str) -> String {
    let label: String = attribute
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{label}")
    } else {
        label
    }
}

/// The series names a Prometheus metric family of `kind` stores, with the labels each adds.
pub fn series_names(base: &str, kind: Kind) -> Vec<(String, &'static [&'static str])> {
    match kind {
        Kind::Histogram => vec![
            (format!("{base}_bucket"), &["le"]),
            (format!("{base}_sum"), &[]),
            (format!("{base}_count"), &[]),
        ],
        Kind::Summary => vec![
            (base.to_owned(), &["quantile"]),
            (format!("{base}_sum"), &[]),
            (format!("{base}_count"), &[]),
        ],
        Kind::Gauge | Kind::Counter | Kind::UpDownCounter | Kind::ExponentialHistogram => {
            vec![(base.to_owned(), &[])]
        }
    }
}

/// Prometheus series names → the labels their series may carry.
pub type Catalog = BTreeMap<String, BTreeSet<String>>;

/// The series the collector's Prometheus exporter exposes for `metrics`, with every label:
/// data-point attributes, `job` and `instance` (from `service.name` and `service.instance.id`),
/// the instrumentation scope (`otel_scope_*`) and `le`/`quantile`.
pub fn exporter_catalog(metrics: &[Metric]) -> Catalog {
    let mut catalog = Catalog::new();
    for metric in metrics {
        let (kind, attributes): (Kind, Vec<&[KeyValue]>) = match metric.data.as_ref().unwrap() {
            Data::Gauge(g) => (
                Kind::Gauge,
                g.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::Sum(s) => (
                if s.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::UpDownCounter
                },
                s.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::Histogram(h) => (
                Kind::Histogram,
                h.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::ExponentialHistogram(h) => (
                Kind::ExponentialHistogram,
                h.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
            Data::Summary(s) => (
                Kind::Summary,
                s.data_points.iter().map(|p| &p.attributes[..]).collect(),
            ),
        };
        let mut labels: BTreeSet<String> = attributes
            .iter()
            .flat_map(|attrs| attrs.iter().map(|kv| prometheus_label(&kv.key)))
            .collect();
        labels
            .extend(["job", "instance", "otel_scope_name", "otel_scope_version"].map(String::from));
        let base = prometheus_name(&metric.name, &metric.unit, kind);
        for (series, extra) in series_names(&base, kind) {
            let entry = catalog.entry(series).or_default();
            entry.extend(labels.iter().cloned());
            entry.extend(extra.iter().map(|l| l.to_string()));
        }
    }
    catalog
}

/// The series of a Prometheus/OpenMetrics text exposition (the bridge's admin `/metrics`),
/// with `job` and `instance`, which Prometheus adds when it scrapes.
pub fn exposition_catalog(text: &str) -> Catalog {
    let mut catalog = Catalog::new();
    let scrape_labels = ["job", "instance"].map(String::from);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            let kind = match kind {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                "summary" => Kind::Summary,
                other => panic!("unexpected metric type {other}"),
            };
            let base = if kind == Kind::Counter {
                format!("{}_total", family.trim_end_matches("_total"))
            } else {
                family.to_owned()
            };
            for (series, extra) in series_names(&base, kind) {
                let entry = catalog.entry(series).or_default();
                entry.extend(scrape_labels.iter().cloned());
                entry.extend(extra.iter().map(|l| l.to_string()));
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let labels = sample_label_names(&line[name_end..]);
            catalog
                .entry(line[..name_end].to_owned())
                .or_default()
                .extend(labels);
        }
    }
    catalog
}

/// Label names of a sample line's `{name="value",...}` part (values may hold escaped quotes).
pub fn sample_label_names(rest: &str) -> Vec<String> {
    let Some(body) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = body.chars();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let name = name.trim_start_matches(',').trim();
        if name.is_empty() || name.starts_with('}') {
            break;
        }
        names.push(name.to_owned());
        assert_eq!(chars.next(), Some('"'), "label value of {name}");
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
    }
    names
}
