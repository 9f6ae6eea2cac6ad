//! The batcher: turns many small payloads into few export requests.
//!
//! Each accepted request yields a handful of items; sending each as its own OTLP request would
//! waste the collector's time and ours. The batcher accumulates per signal, merges entries whose
//! `Resource` (and schema URL) are identical into one `Resource*` entry, and seals a batch when it
//! reaches `batch.max_items` items or `batch.max_bytes` encoded bytes, or when its oldest item
//! has waited `batch.timeout`. Oversize payloads are split at span / log record / data point
//! granularity so that no request exceeds the limits (vendors reject big ones, e.g. New Relic at
//! 1 MB); only a single item that alone exceeds `max_bytes` is sent on its own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum, Summary,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::acks::Hold;
use crate::config::BatchConfig;
use crate::handoff::attributes::AttributeCaps;
use crate::handoff::{metric_points, Payload, Signal};

/// One export request's worth of one signal.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Spans, log records or metric data points inside.
    pub items: usize,
    pub data: BatchData,
    /// The disk buffer records with items in this batch (none without a disk buffer).
    pub(crate) holds: Vec<Hold>,
}

/// The entries of one export request.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchData {
    Traces(Vec<ResourceSpans>),
    Logs(Vec<ResourceLogs>),
    Metrics(Vec<ResourceMetrics>),
}

impl BatchData {
    /// Cuts every string attribute value (also inside arrays and maps, and log bodies) longer
    /// than `max_len` bytes down to that on a character boundary, for destinations with a
    /// value limit ([`AttributeCaps::values_only`]); returns how many were cut.
    pub fn truncate_attribute_values(&mut self, max_len: usize) -> usize {
        let caps = AttributeCaps::values_only(max_len);
        let cut = match self {
            BatchData::Traces(entries) => caps.spans(entries),
            BatchData::Logs(entries) => caps.logs(entries),
            BatchData::Metrics(entries) => caps.metrics(entries),
        };
        usize::try_from(cut.truncated).unwrap_or(usize::MAX)
    }
}

impl Batch {
    pub fn signal(&self) -> Signal {
        match self.data {
            BatchData::Traces(_) => Signal::Traces,
            BatchData::Logs(_) => Signal::Logs,
            BatchData::Metrics(_) => Signal::Metrics,
        }
    }
}

/// Accumulates payloads into batches. Not thread-safe: one per exporter task.
#[derive(Debug)]
pub struct Batcher {
    limits: Limits,
    traces: Accumulator<ResourceSpans>,
    logs: Accumulator<ResourceLogs>,
    metrics: Accumulator<ResourceMetrics>,
    /// Reused buffer for encoding resource headers (their bytes are the merge key).
    scratch: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_items: usize,
    max_bytes: usize,
    timeout: Duration,
}

impl Batcher {
    /// `max_items` and `max_bytes` of zero are treated as one (the pipeline rejects them).
    pub fn new(config: &BatchConfig) -> Self {
        Self {
            limits: Limits {
                max_items: config.max_items.max(1),
                max_bytes: config.max_bytes.max(1),
                timeout: config.timeout,
            },
            traces: Accumulator::default(),
            logs: Accumulator::default(),
            metrics: Accumulator::default(),
            scratch: Vec::new(),
        }
    }

    /// Adds a payload; batches that became full are appended to `out`. Every batch that gets
    /// some of its items keeps a clone of `hold` (the disk buffer record it came from).
    pub(crate) fn push(
        &mut self,
        payload: Payload,
        hold: Option<&Hold>,
        now: Instant,
        out: &mut Vec<Batch>,
    ) {
        let Payload {
            spans,
            logs,
            metrics,
        } = payload;
        let mut push = Push {
            limits: &self.limits,
            hold,
            now,
            scratch: &mut self.scratch,
            out,
        };
        for entry in spans {
            self.traces.push(entry, &mut push);
        }
        for entry in logs {
            self.logs.push(entry, &mut push);
        }
        for entry in metrics {
            self.metrics.push(entry, &mut push);
        }
    }

    /// When the oldest open batch times out, if any batch is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.traces.opened, self.logs.opened, self.metrics.opened]
            .into_iter()
            .flatten()
            .min()
            .map(|opened| opened + self.limits.timeout)
    }

    /// Seals the batches whose oldest item has waited `batch.timeout` by `now`.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Batch>) {
        let expired = |opened: Option<Instant>| {
            opened.is_some_and(|opened| opened + self.limits.timeout <= now)
        };
        if expired(self.traces.opened) {
            self.traces.seal(out);
        }
        if expired(self.logs.opened) {
            self.logs.seal(out);
        }
        if expired(self.metrics.opened) {
            self.metrics.seal(out);
        }
    }

    /// Seals every open batch.
    pub fn flush_all(&mut self, out: &mut Vec<Batch>) {
        self.traces.seal(out);
        self.logs.seal(out);
        self.metrics.seal(out);
    }
}

/// Bytes a length-delimited field adds to its parent when its content may still grow: tag plus
/// the longest varint length prefix. Using it for growing containers keeps the running byte count
/// an upper bound of the request's `encoded_len`.
const GROWING_FIELD_OVERHEAD: usize = 1 + 5;

/// Bytes a length-delimited field of final size `len` adds to its parent.
fn field_cost(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

/// What [`Batcher::push`] hands to each accumulator.
struct Push<'a> {
    limits: &'a Limits,
    hold: Option<&'a Hold>,
    now: Instant,
    /// Reused buffer for encoding resource headers.
    scratch: &'a mut Vec<u8>,
    out: &'a mut Vec<Batch>,
}

/// The open batch of one signal.
#[derive(Debug)]
struct Accumulator<E> {
    entries: Vec<E>,
    /// Disk buffer records with items in the open batch.
    holds: Vec<Hold>,
    /// xxh3 of an entry's encoded header (resource + schema URL) → its index in `entries`.
    by_resource: HashMap<u64, usize>,
    items: usize,
    /// Upper bound of the encoded request size.
    bytes: usize,
    /// When the first item of the open batch arrived.
    opened: Option<Instant>,
}

impl<E> Default for Accumulator<E> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            holds: Vec::new(),
            by_resource: HashMap::new(),
            items: 0,
            bytes: 0,
            opened: None,
        }
    }
}

impl<E: Entry> Accumulator<E> {
    fn fits(&self, items: usize, bytes: usize, limits: &Limits) -> bool {
        self.items + items <= limits.max_items && self.bytes + bytes <= limits.max_bytes
    }

    fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Index of the open entry with the same resource as `header`.
    fn find(&self, key: u64, header: &E) -> Option<usize> {
        self.by_resource
            .get(&key)
            .copied()
            .filter(|&idx| self.entries[idx].same_resource(header))
    }

    /// Appends a new entry and indexes it (a hash collision just leaves it unindexed).
    fn add_entry(&mut self, key: u64, entry: E) -> usize {
        let idx = self.entries.len();
        self.entries.push(entry);
        self.by_resource.entry(key).or_insert(idx);
        idx
    }

    fn seal(&mut self, out: &mut Vec<Batch>) {
        if self.entries.is_empty() {
            return;
        }
        out.push(Batch {
            items: self.items,
            data: E::into_data(std::mem::take(&mut self.entries)),
            holds: std::mem::take(&mut self.holds),
        });
        self.by_resource.clear();
        self.items = 0;
        self.bytes = 0;
        self.opened = None;
    }

    /// Records that the open batch has items of `hold`'s record (payloads arrive whole, so
    /// only the last hold can be the same).
    fn keep(&mut self, hold: Option<&Hold>) {
        if let Some(hold) = hold {
            if !self.holds.last().is_some_and(|last| last.same(hold)) {
                self.holds.push(hold.clone());
            }
        }
    }

    fn push(&mut self, mut entry: E, push: &mut Push<'_>) {
        let (limits, hold, now) = (push.limits, push.hold, push.now);
        let scratch = &mut *push.scratch;
        let out = &mut *push.out;
        // With the scopes taken out, `entry` is just its header: resource and schema URL.
        let scopes = std::mem::take(entry.scopes_mut());
        scratch.clear();
        // Encoding into a Vec cannot fail: it grows as needed.
        let _ = entry.encode(scratch);
        let header_len = scratch.len();
        let key = xxhash_rust::xxh3::xxh3_64(scratch);

        let items: usize = scopes
            .iter()
            .flat_map(|s| E::units(s))
            .map(E::unit_items)
            .sum();
        if items == 0 {
            return;
        }
        let scopes_cost: usize = scopes.iter().map(|s| field_cost(s.encoded_len())).sum();
        let whole_cost = GROWING_FIELD_OVERHEAD + header_len + scopes_cost;

        if self.fits(items, whole_cost, limits) {
            match self.find(key, &entry) {
                Some(idx) => {
                    self.entries[idx].scopes_mut().extend(scopes);
                    self.bytes += scopes_cost;
                }
                None => {
                    *entry.scopes_mut() = scopes;
                    self.add_entry(key, entry);
                    self.bytes += whole_cost;
                }
            }
            self.items += items;
            self.opened.get_or_insert(now);
            self.keep(hold);
            if self.items >= limits.max_items {
                self.seal(out);
            }
            return;
        }

        // Too big for what is left of the open batch: place unit by unit.
        let entry_header_cost = GROWING_FIELD_OVERHEAD + header_len;
        let mut todo: Vec<E::Unit> = Vec::new();
        for mut scope in scopes {
            todo.extend(std::mem::take(E::units_mut(&mut scope)).into_iter().rev());
            let scope_header_cost = GROWING_FIELD_OVERHEAD + scope.encoded_len();
            // Entry whose last scope receives this scope's units, once created.
            let mut slot: Option<usize> = None;
            while let Some(mut unit) = todo.pop() {
                let items = E::unit_items(&unit);
                if items == 0 {
                    continue;
                }
                let cost = field_cost(unit.encoded_len());
                let header_cost = match slot {
                    Some(_) => 0,
                    None if self.find(key, &entry).is_some() => scope_header_cost,
                    None => scope_header_cost + entry_header_cost,
                };
                if self.fits(items, cost + header_cost, limits) {
                    self.place(
                        &entry,
                        key,
                        &scope,
                        &mut slot,
                        unit,
                        items,
                        cost + header_cost,
                        now,
                    );
                    self.keep(hold);
                    if self.items >= limits.max_items {
                        self.seal(out);
                        slot = None;
                    }
                    continue;
                }
                if !self.is_empty() {
                    self.seal(out);
                    slot = None;
                    todo.push(unit);
                    continue;
                }
                // Alone in an empty batch and still too big: split it if it has several items.
                let budget = limits.max_bytes.saturating_sub(header_cost);
                let by_bytes = items.saturating_mul(budget) / cost.max(1);
                let at = items.min(limits.max_items).min(by_bytes).max(1);
                if at < items {
                    if let Some(tail) = E::split_unit(&mut unit, at) {
                        todo.push(tail);
                        todo.push(unit);
                        continue;
                    }
                }
                tracing::warn!(
                    bytes = cost,
                    max_bytes = limits.max_bytes,
                    "one telemetry item exceeds batch.max_bytes; sending it alone"
                );
                self.place(
                    &entry,
                    key,
                    &scope,
                    &mut slot,
                    unit,
                    items,
                    cost + header_cost,
                    now,
                );
                self.keep(hold);
                self.seal(out);
                slot = None;
            }
        }
    }

    /// Puts one unit into the open batch, creating its entry and scope as needed.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        header: &E,
        key: u64,
        scope_header: &E::Scope,
        slot: &mut Option<usize>,
        unit: E::Unit,
        items: usize,
        cost: usize,
        now: Instant,
    ) {
        let idx = match *slot {
            Some(idx) => idx,
            None => {
                let idx = match self.find(key, header) {
                    Some(idx) => idx,
                    None => self.add_entry(key, header.clone()),
                };
                self.entries[idx].scopes_mut().push(scope_header.clone());
                *slot = Some(idx);
                idx
            }
        };
        let scope = self.entries[idx]
            .scopes_mut()
            .last_mut()
            .expect("the slot entry ends with the scope pushed when the slot was set");
        E::units_mut(scope).push(unit);
        self.items += items;
        self.bytes += cost;
        self.opened.get_or_insert(now);
    }
}

/// A top-level entry of an export request (`ResourceSpans`, …) seen as a header (resource and
/// schema URL), scopes, and units inside the scopes (spans, log records, metrics).
trait Entry: Message + Clone + Default {
    type Scope: Message + Clone;
    type Unit: Message;

    fn same_resource(&self, other: &Self) -> bool;
    fn scopes_mut(&mut self) -> &mut Vec<Self::Scope>;
    fn units(scope: &Self::Scope) -> &[Self::Unit];
    fn units_mut(scope: &mut Self::Scope) -> &mut Vec<Self::Unit>;
    fn into_data(entries: Vec<Self>) -> BatchData;

    /// Items counted in one unit.
    fn unit_items(_unit: &Self::Unit) -> usize {
        1
    }

    /// Moves the items from index `at` on into a new unit, if the unit can be divided.
    fn split_unit(_unit: &mut Self::Unit, _at: usize) -> Option<Self::Unit> {
        None
    }
}

macro_rules! entry_impl {
    ($entry:ty, $scope:ty, $unit:ty, $scopes:ident, $units:ident, $variant:ident $(, $extra:item)*) => {
        impl Entry for $entry {
            type Scope = $scope;
            type Unit = $unit;

            fn same_resource(&self, other: &Self) -> bool {
                self.resource == other.resource && self.schema_url == other.schema_url
            }
            fn scopes_mut(&mut self) -> &mut Vec<$scope> {
                &mut self.$scopes
            }
            fn units(scope: &$scope) -> &[$unit] {
                &scope.$units
            }
            fn units_mut(scope: &mut $scope) -> &mut Vec<$unit> {
                &mut scope.$units
            }
            fn into_data(entries: Vec<Self>) -> BatchData {
                BatchData::$variant(entries)
            }
            $($extra)*
        }
    };
}

entry_impl!(ResourceSpans, ScopeSpans, Span, scope_spans, spans, Traces);
entry_impl!(
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    scope_logs,
    log_records,
    Logs
);
entry_impl!(
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    scope_metrics,
    metrics,
    Metrics,
    fn unit_items(unit: &Metric) -> usize {
        metric_points(unit)
    },
    fn split_unit(unit: &mut Metric, at: usize) -> Option<Metric> {
        split_metric(unit, at)
    }
);

/// Splits a metric's data points at `at`; the tail keeps name, unit, metadata and temporality.
fn split_metric(metric: &mut Metric, at: usize) -> Option<Metric> {
    if at == 0 || at >= metric_points(metric) {
        return None;
    }
    let data = match metric.data.as_mut()? {
        Data::Gauge(g) => Data::Gauge(Gauge {
            data_points: g.data_points.split_off(at),
        }),
        Data::Sum(s) => Data::Sum(Sum {
            data_points: s.data_points.split_off(at),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        }),
        Data::Histogram(h) => Data::Histogram(Histogram {
            data_points: h.data_points.split_off(at),
            aggregation_temporality: h.aggregation_temporality,
        }),
        Data::ExponentialHistogram(h) => Data::ExponentialHistogram(ExponentialHistogram {
            data_points: h.data_points.split_off(at),
            aggregation_temporality: h.aggregation_temporality,
        }),
        Data::Summary(s) => Data::Summary(Summary {
            data_points: s.data_points.split_off(at),
        }),
    };
    Some(Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data: Some(data),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    pub(crate) fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    pub(crate) fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![kv("service.name", service)],
            ..Default::default()
        })
    }

    pub(crate) fn span(n: u8) -> Span {
        Span {
            trace_id: vec![0xab; 16],
            span_id: vec![n; 8],
            name: format!("span-{n}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            ..Default::default()
        }
    }

    /// A traces payload of one resource, one scope, and spans numbered `ids`.
    pub(crate) fn spans_payload(service: &str, ids: impl IntoIterator<Item = u8>) -> Payload {
        Payload {
            spans: vec![ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "rum-bridge".into(),
                        ..Default::default()
                    }),
                    spans: ids.into_iter().map(span).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn config(max_items: usize, max_bytes: usize) -> BatchConfig {
        BatchConfig {
            max_items,
            max_bytes,
            timeout: Duration::from_secs(1),
        }
    }

    fn traces(batch: &Batch) -> &[ResourceSpans] {
        match &batch.data {
            BatchData::Traces(entries) => entries,
            other => panic!("expected traces, got {other:?}"),
        }
    }

    fn span_names(entries: &[ResourceSpans]) -> Vec<String> {
        entries
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    #[test]
    fn attribute_values_are_truncated_on_char_boundaries() {
        let long = "é".repeat(10);
        let mut payload = spans_payload("shop", [1]);
        let span = &mut payload.spans[0].scope_spans[0].spans[0];
        span.attributes.push(kv("long", &long));
        span.attributes.push(kv("short", "ok"));
        span.attributes.push(KeyValue {
            key: "list".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(
                    opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values: vec![kv("x", &long).value.unwrap()],
                    },
                )),
            }),
            ..Default::default()
        });
        let mut data = BatchData::Traces(payload.spans);
        assert_eq!(data.truncate_attribute_values(4), 2);
        let BatchData::Traces(entries) = &data else {
            unreachable!()
        };
        let attrs = &entries[0].scope_spans[0].spans[0].attributes;
        let text = |i: usize| match &attrs[i].value.as_ref().unwrap().value {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::ArrayValue(a)) => match &a.values[0].value {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        // One rule with the edge caps: bytes, cut on a character boundary.
        assert_eq!(text(0), "éé");
        assert_eq!(text(1), "ok");
        assert_eq!(text(2), "éé");
        assert_eq!(data.truncate_attribute_values(4), 0, "nothing left to cut");
    }

    #[test]
    fn merges_entries_with_identical_resource() {
        let mut batcher = Batcher::new(&config(100, 1 << 20));
        let now = Instant::now();
        let mut out = Vec::new();
        batcher.push(spans_payload("shop", [1, 2]), None, now, &mut out);
        batcher.push(spans_payload("blog", [3]), None, now, &mut out);
        batcher.push(spans_payload("shop", [4]), None, now, &mut out);
        assert!(out.is_empty(), "nothing is full yet");
        batcher.flush_all(&mut out);
        assert_eq!(out.len(), 1);
        let entries = traces(&out[0]);
        assert_eq!(out[0].items, 4);
        assert_eq!(entries.len(), 2, "shop twice merged into one entry");
        assert_eq!(entries[0].resource, resource("shop"));
        assert_eq!(entries[0].scope_spans.len(), 2);
        assert_eq!(span_names(&entries[..1]), ["span-1", "span-2", "span-4"]);
        assert_eq!(entries[1].resource, resource("blog"));
    }

    #[test]
    fn different_schema_url_is_not_merged() {
        let mut batcher = Batcher::new(&config(100, 1 << 20));
        let mut other = spans_payload("shop", [2]);
        other.spans[0].schema_url = "https://opentelemetry.io/schemas/1.44.0".into();
        let mut out = Vec::new();
        batcher.push(spans_payload("shop", [1]), None, Instant::now(), &mut out);
        batcher.push(other, None, Instant::now(), &mut out);
        batcher.flush_all(&mut out);
        assert_eq!(traces(&out[0]).len(), 2);
    }

    #[test]
    fn respects_max_items_and_keeps_order() {
        let mut batcher = Batcher::new(&config(4, 1 << 20));
        let mut out = Vec::new();
        batcher.push(spans_payload("shop", 0..3), None, Instant::now(), &mut out);
        batcher.push(spans_payload("blog", 3..10), None, Instant::now(), &mut out);
        batcher.flush_all(&mut out);
        let sizes: Vec<usize> = out.iter().map(|b| b.items).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let mut names = Vec::new();
        for batch in &out {
            let entries = traces(batch);
            let n = span_names(entries);
            assert_eq!(n.len(), batch.items);
            names.extend(n);
        }
        let expected: Vec<String> = (0..10).map(|n| format!("span-{n}")).collect();
        assert_eq!(names, expected);
        // The split entries keep resource and scope.
        assert_eq!(traces(&out[0])[1].resource, resource("blog"));
        assert_eq!(
            traces(&out[1])[0].scope_spans[0]
                .scope
                .as_ref()
                .map(|s| s.name.as_str()),
            Some("rum-bridge")
        );
    }

    #[test]
    fn respects_max_bytes() {
        let one_span = ExportTraceServiceRequest {
            resource_spans: spans_payload("shop", [0]).spans,
        }
        .encoded_len();
        let max_bytes = one_span * 3;
        let mut batcher = Batcher::new(&config(1000, max_bytes));
        let mut out = Vec::new();
        for n in 0..10 {
            batcher.push(
                spans_payload(&format!("app-{n}"), [n]),
                None,
                Instant::now(),
                &mut out,
            );
        }
        batcher.push(spans_payload("big", 10..40), None, Instant::now(), &mut out);
        batcher.flush_all(&mut out);
        let mut total = 0;
        for batch in &out {
            let request = ExportTraceServiceRequest {
                resource_spans: traces(batch).to_vec(),
            };
            assert!(
                request.encoded_len() <= max_bytes,
                "{} > {max_bytes}",
                request.encoded_len()
            );
            assert!(batch.items >= 1);
            total += batch.items;
        }
        assert_eq!(total, 40);
        assert!(
            out.len() >= 40 / 3,
            "batches are reasonably full: {}",
            out.len()
        );
    }

    #[test]
    fn splits_large_metrics_by_data_points() {
        let points: Vec<NumberDataPoint> = (0..10)
            .map(|n| NumberDataPoint {
                attributes: vec![kv("n", &n.to_string())],
                ..Default::default()
            })
            .collect();
        let payload = Payload {
            metrics: vec![ResourceMetrics {
                resource: resource("bridge"),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "page_views".into(),
                        unit: "1".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: points,
                            aggregation_temporality: 1,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut batcher = Batcher::new(&config(4, 1 << 20));
        let mut out = Vec::new();
        batcher.push(payload, None, Instant::now(), &mut out);
        batcher.flush_all(&mut out);
        let sizes: Vec<usize> = out.iter().map(|b| b.items).collect();
        assert_eq!(sizes, [4, 4, 2]);
        for batch in &out {
            let BatchData::Metrics(entries) = &batch.data else {
                panic!("metrics expected")
            };
            let request = ExportMetricsServiceRequest {
                resource_metrics: entries.clone(),
            };
            let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
            assert_eq!(metric.name, "page_views");
            let Some(Data::Sum(sum)) = &metric.data else {
                panic!("sum expected")
            };
            assert!(sum.is_monotonic);
            assert_eq!(sum.aggregation_temporality, 1);
            assert_eq!(sum.data_points.len(), batch.items);
        }
    }

    #[test]
    fn oversize_single_item_is_sent_alone() {
        let mut batcher = Batcher::new(&config(100, 10));
        let mut out = Vec::new();
        batcher.push(
            spans_payload("shop", [1, 2]),
            None,
            Instant::now(),
            &mut out,
        );
        batcher.flush_all(&mut out);
        let sizes: Vec<usize> = out.iter().map(|b| b.items).collect();
        assert_eq!(sizes, [1, 1]);
    }

    #[test]
    fn deadline_follows_oldest_item() {
        let mut batcher = Batcher::new(&config(100, 1 << 20));
        assert_eq!(batcher.next_deadline(), None);
        let t0 = Instant::now();
        let mut out = Vec::new();
        batcher.push(spans_payload("shop", [1]), None, t0, &mut out);
        batcher.push(
            spans_payload("shop", [2]),
            None,
            t0 + Duration::from_millis(500),
            &mut out,
        );
        assert_eq!(batcher.next_deadline(), Some(t0 + Duration::from_secs(1)));
        batcher.flush_expired(t0 + Duration::from_millis(999), &mut out);
        assert!(out.is_empty());
        batcher.flush_expired(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, 2);
        assert_eq!(batcher.next_deadline(), None);
    }

    #[test]
    fn empty_entries_are_dropped() {
        let mut batcher = Batcher::new(&config(100, 1 << 20));
        let mut out = Vec::new();
        batcher.push(spans_payload("shop", []), None, Instant::now(), &mut out);
        batcher.flush_all(&mut out);
        assert!(out.is_empty());
    }
}
