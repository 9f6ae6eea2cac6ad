//! One metric's state: its series by attribute set, what each series accumulates (histogram
//! buckets or a counter), the cardinality cap with its overflow series, and how a flush turns
//! the series into OTLP points per temporality (see docs/otlp-mapping.md, "Temporality" and
//! "Cardinality"). Each instrument has its own lock, so recording one metric never waits for
//! another.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, Sum,
};

use super::descriptors::{Descriptor, OVERFLOW};
use super::key::decode_key;
use super::reservoir::{Reservoir, Sample};
use crate::config::Temporality;
use crate::model::SpanRef;

/// Per-instrument limits from the config.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) cardinality: usize,
    pub(super) exemplars: usize,
}

/// One measurement on its way into a series.
pub(super) struct Measurement<I> {
    pub(super) input: I,
    /// When the event happened (exemplar time).
    pub(super) time_ns: u64,
    /// When the bridge received it (start time of a new cumulative series).
    pub(super) recorded_ns: u64,
    pub(super) span: Option<SpanRef>,
}

/// The reporting window of one flush.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) temporality: Temporality,
    pub(super) interval_start: u64,
    pub(super) now: u64,
}

impl Window {
    fn proto_temporality(self) -> i32 {
        match self.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative as i32,
            Temporality::Delta => AggregationTemporality::Delta as i32,
        }
    }
}

/// What a series accumulates.
pub(super) trait Aggregate: Clone {
    /// One measurement: a value for histograms, an increment for counters.
    type Input: Copy;
    /// Adds `input`; `false` when the aggregate refused it (then it is no exemplar either).
    fn record(&mut self, input: Self::Input) -> bool;
    fn exemplar_value(input: Self::Input) -> exemplar::Value;
}

/// An explicit-bucket histogram; bucket `i` holds `(bounds[i-1], bounds[i]]`.
///
/// Its sum can never become `+Inf` or NaN, whatever reaches it: values that are not finite or
/// outside `0..=limit` (the plausible range, `crate::model::bounds`) are refused, and the sum
/// saturates at `f64::MAX` (the counts at `u64::MAX`). The pipeline rejects implausible values
/// before they get here; this is the last line, for a cumulative series lives until restart.
#[derive(Debug, Clone)]
pub(super) struct HistogramAgg {
    bounds: &'static [f64],
    /// Largest value accepted.
    limit: f64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    bucket_counts: Box<[u64]>,
}

impl HistogramAgg {
    pub(super) fn new(bounds: &'static [f64], limit: f64) -> Self {
        Self {
            bounds,
            limit,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            bucket_counts: vec![0; bounds.len() + 1].into_boxed_slice(),
        }
    }
}

impl Aggregate for HistogramAgg {
    type Input = f64;

    fn record(&mut self, value: f64) -> bool {
        if !(value.is_finite() && (0.0..=self.limit).contains(&value)) {
            return false;
        }
        // Upper bounds are inclusive: a value equal to a bound belongs to the bucket it closes.
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.bucket_counts[bucket] = self.bucket_counts[bucket].saturating_add(1);
        self.count = self.count.saturating_add(1);
        // Both terms are finite and non-negative, so only overflow can leave the finite range.
        self.sum = (self.sum + value).min(f64::MAX);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        true
    }

    fn exemplar_value(value: f64) -> exemplar::Value {
        exemplar::Value::AsDouble(value)
    }
}

/// A monotonic counter.
#[derive(Debug, Clone, Copy)]
pub(super) struct CountAgg(pub(super) u64);

impl Aggregate for CountAgg {
    type Input = u64;

    fn record(&mut self, increment: u64) -> bool {
        self.0 = self.0.saturating_add(increment);
        true
    }

    fn exemplar_value(increment: u64) -> exemplar::Value {
        exemplar::Value::AsInt(i64::try_from(increment).unwrap_or(i64::MAX))
    }
}

/// One attribute set of one metric.
#[derive(Debug)]
struct Series<A> {
    attributes: Vec<KeyValue>,
    /// Arrival of the first measurement (the cumulative start time).
    start_ns: u64,
    aggregate: A,
    exemplars: Reservoir,
}

impl<A: Aggregate> Series<A> {
    fn record(&mut self, measurement: Measurement<A::Input>) {
        if !self.aggregate.record(measurement.input) {
            return;
        }
        self.exemplars.offer(Sample {
            time_ns: measurement.time_ns,
            value: A::exemplar_value(measurement.input),
            span: measurement.span,
        });
    }
}

/// The series of one metric, by encoded key, plus the overflow series.
#[derive(Debug)]
struct SeriesTable<A> {
    by_key: HashMap<Box<[u8]>, Series<A>>,
    overflow: Option<Series<A>>,
}

impl<A> Default for SeriesTable<A> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            overflow: None,
        }
    }
}

impl<A> SeriesTable<A> {
    fn into_series(self) -> impl Iterator<Item = Series<A>> {
        self.by_key.into_values().chain(self.overflow)
    }

    fn series_mut(&mut self) -> impl Iterator<Item = &mut Series<A>> {
        self.by_key.values_mut().chain(self.overflow.as_mut())
    }
}

/// One metric: its descriptor and its series, behind its own lock.
pub(super) struct Instrument<A> {
    pub(super) descriptor: &'static Descriptor,
    /// The aggregate of a series with no measurement yet.
    empty: A,
    table: Mutex<SeriesTable<A>>,
}

impl<A: Aggregate> Instrument<A> {
    pub(super) fn new(descriptor: &'static Descriptor, empty: A) -> Self {
        Self {
            descriptor,
            empty,
            table: Mutex::new(SeriesTable::default()),
        }
    }

    /// Adds a measurement to the series of `key` (encoded per the descriptor's attributes),
    /// creating it within the cardinality limit or folding it into the overflow series.
    pub(super) fn record(&self, limits: Limits, key: &[u8], measurement: Measurement<A::Input>) {
        let mut table = lock(&self.table);
        if let Some(series) = table.by_key.get_mut(key) {
            series.record(measurement);
            return;
        }
        let new_series = |attributes| Series {
            attributes,
            start_ns: measurement.recorded_ns,
            aggregate: self.empty.clone(),
            exemplars: Reservoir::new(limits.exemplars),
        };
        let series = if table.by_key.len() < limits.cardinality {
            table
                .by_key
                .entry(key.into())
                .or_insert_with(|| new_series(decode_key(self.descriptor.attributes, key)))
        } else {
            table.overflow.get_or_insert_with(|| {
                new_series(vec![KeyValue {
                    key: OVERFLOW.to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    }),
                    ..Default::default()
                }])
            })
        };
        series.record(measurement);
    }

    /// Turns the series into points for this window: delta takes (and forgets) them, cumulative
    /// reports them and keeps the counts, clearing only the exemplars.
    fn collect<P>(&self, window: Window, mut point: impl FnMut(&Series<A>, u64) -> P) -> Vec<P> {
        match window.temporality {
            Temporality::Delta => {
                let table = std::mem::take(&mut *lock(&self.table));
                table
                    .into_series()
                    .map(|series| point(&series, window.interval_start))
                    .collect()
            }
            Temporality::Cumulative => {
                let mut table = lock(&self.table);
                table
                    .series_mut()
                    .map(|series| {
                        let point = point(series, series.start_ns.min(window.now));
                        series.exemplars.reset();
                        point
                    })
                    .collect()
            }
        }
    }

    fn metric(&self, data: metric::Data) -> Metric {
        Metric {
            name: self.descriptor.name.to_owned(),
            description: self.descriptor.description.to_owned(),
            unit: self.descriptor.unit.to_owned(),
            data: Some(data),
            ..Default::default()
        }
    }
}

impl Instrument<HistogramAgg> {
    pub(super) fn histogram_metric(&self, window: Window) -> Option<Metric> {
        let data_points = self.collect(window, |series, start| {
            let histogram = &series.aggregate;
            // A series whose every value was refused has nothing to report.
            (histogram.count > 0).then(|| HistogramDataPoint {
                attributes: series.attributes.clone(),
                start_time_unix_nano: start,
                time_unix_nano: window.now,
                count: histogram.count,
                sum: Some(histogram.sum),
                bucket_counts: histogram.bucket_counts.to_vec(),
                explicit_bounds: histogram.bounds.to_vec(),
                exemplars: series.exemplars.to_proto(),
                flags: 0,
                min: Some(histogram.min),
                max: Some(histogram.max),
            })
        });
        let data_points: Vec<_> = data_points.into_iter().flatten().collect();
        (!data_points.is_empty()).then(|| {
            self.metric(metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: window.proto_temporality(),
            }))
        })
    }
}

impl Instrument<CountAgg> {
    pub(super) fn sum_metric(&self, window: Window) -> Option<Metric> {
        let data_points = self.collect(window, |series, start| NumberDataPoint {
            attributes: series.attributes.clone(),
            start_time_unix_nano: start,
            time_unix_nano: window.now,
            exemplars: series.exemplars.to_proto(),
            flags: 0,
            value: Some(number_data_point::Value::AsInt(
                i64::try_from(series.aggregate.0).unwrap_or(i64::MAX),
            )),
        });
        (!data_points.is_empty()).then(|| {
            self.metric(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: window.proto_temporality(),
                is_monotonic: true,
            }))
        })
    }
}

/// Locks, ignoring poisoning: the tables stay consistent even if a holder panicked.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_refuses_what_is_not_finite_or_out_of_range() {
        let mut h = HistogramAgg::new(&[10.0, 100.0], 3_600_000.0);
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -1e308,
            1.7e308,
        ] {
            assert!(!h.record(bad), "{bad} refused");
        }
        assert_eq!(h.count, 0);
        assert!(h.record(3_600_000.0));
        assert!(h.record(0.0));
        assert_eq!(h.count, 2);
        assert_eq!(h.sum, 3_600_000.0);
        assert_eq!((h.min, h.max), (0.0, 3_600_000.0));
        assert_eq!(&*h.bucket_counts, &[1, 0, 1]);
    }

    #[test]
    fn a_histogram_sum_saturates_instead_of_overflowing() {
        // Even with no range limit, the sum stays finite.
        let mut h = HistogramAgg::new(&[], f64::MAX);
        for _ in 0..3 {
            assert!(h.record(1.7e308));
        }
        assert_eq!(h.count, 3);
        assert!(h.sum.is_finite());
        assert_eq!(h.sum, f64::MAX);
    }

    #[test]
    fn refused_values_leave_no_point_and_no_exemplar() {
        let instrument = Instrument::new(
            &super::super::descriptors::HTTP_DURATION,
            HistogramAgg::new(&[1.0], 10.0),
        );
        let limits = Limits {
            cardinality: 10,
            exemplars: 4,
        };
        let measurement = |input| Measurement {
            input,
            time_ns: 1,
            recorded_ns: 1,
            span: None,
        };
        instrument.record(limits, b"", measurement(f64::NAN));
        instrument.record(limits, b"", measurement(11.0));
        let window = Window {
            temporality: Temporality::Cumulative,
            interval_start: 0,
            now: 2,
        };
        assert!(instrument.histogram_metric(window).is_none());
        instrument.record(limits, b"", measurement(2.0));
        let Some(metric::Data::Histogram(h)) = instrument.histogram_metric(window).unwrap().data
        else {
            panic!("a histogram");
        };
        let point = &h.data_points[0];
        assert_eq!((point.count, point.sum), (1, Some(2.0)));
        assert_eq!(point.exemplars.len(), 1);
    }
}
