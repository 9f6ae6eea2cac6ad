//! [`MetricsAggregator`]: records the events of each batch into the instruments (the hot path,
//! shared by every ingest request) and flushes them as one OTLP `ResourceMetrics`, on demand or
//! from its flusher task. What the metrics are is in `descriptors`, how one metric keeps its
//! series in `instrument`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::descriptors::{
    vital_instrument_spec, vital_slot, ERRORS, ERROR_GROUPS, HTTP_DURATION, HTTP_DURATION_BOUNDS_S,
    PAGE_VIEWS,
};
use super::instrument::{lock, CountAgg, HistogramAgg, Instrument, Limits, Measurement, Window};
use super::key::{push_decimal, put_int, put_str, put_str_with, put_url_template, KEY_BUFFER};
use super::labels::{call_host, country, device_class, normalize_method};
use crate::config::{MetricsConfig, Temporality};
use crate::handoff::Payload;
use crate::model::bounds::{within, MAX_DURATION_MS};
use crate::model::otlp::find;
use crate::model::semconv::{
    DEPLOYMENT_ENVIRONMENT_NAME, EXCEPTION_FINGERPRINT, EXCEPTION_TYPE, SERVICE_NAME,
    SERVICE_VERSION,
};
use crate::model::{PageContext, RumBatch, RumEvent, SpanRef, VitalName};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};

/// Aggregates RUM events into OTLP metrics; shared by the ingest handlers and the flusher.
pub struct MetricsAggregator {
    resource: Resource,
    temporality: Temporality,
    limits: Limits,
    /// One histogram per vital, in the order of `VitalName::ALL` (see [`vital_slot`]).
    vitals: [Instrument<HistogramAgg>; 5],
    http_duration: Instrument<HistogramAgg>,
    page_views: Instrument<CountAgg>,
    errors: Instrument<CountAgg>,
    /// Exported exceptions by fingerprint ([`record_error_groups`](Self::record_error_groups)).
    error_groups: Instrument<CountAgg>,
    /// Time of the previous flush (the start of the current delta interval). Its lock also
    /// keeps flushes one at a time.
    last_flush_ns: Mutex<u64>,
}

impl MetricsAggregator {
    /// An empty aggregator; `resource` is normally [`bridge_resource`](super::bridge_resource).
    pub fn new(cfg: &MetricsConfig, resource: Resource) -> Self {
        Self {
            resource,
            temporality: cfg.temporality,
            limits: Limits {
                cardinality: cfg.cardinality_limit,
                exemplars: cfg.max_exemplars,
            },
            vitals: VitalName::ALL.map(|name| {
                let (descriptor, bounds) = vital_instrument_spec(name);
                Instrument::new(descriptor, HistogramAgg::new(bounds, name.max_value()))
            }),
            http_duration: Instrument::new(
                &HTTP_DURATION,
                HistogramAgg::new(HTTP_DURATION_BOUNDS_S, MAX_DURATION_MS / 1000.0),
            ),
            page_views: Instrument::new(&PAGE_VIEWS, CountAgg(0)),
            errors: Instrument::new(&ERRORS, CountAgg(0)),
            error_groups: Instrument::new(&ERROR_GROUPS, CountAgg(0)),
            last_flush_ns: Mutex::new(unix_now_ns()),
        }
    }

    /// Records a batch's vitals, HTTP calls, page loads and errors; exemplars of vitals and
    /// page views carry `batch.context.page_span`.
    pub fn record_batch(&self, batch: &RumBatch) {
        self.record_batch_with_page_span(batch, batch.context.page_span);
    }

    /// Like [`record_batch`](Self::record_batch), with the page-load span's ids supplied by the
    /// caller (when convert derived them, e.g. from the page-view id).
    pub fn record_batch_with_page_span(&self, batch: &RumBatch, page_span: Option<SpanRef>) {
        if batch.events.is_empty() {
            return;
        }
        let ctx = &batch.context;
        let recorded_ns = bridge_time_ns(ctx);
        KEY_BUFFER.with_borrow_mut(|key| {
            key.clear();
            put_str(
                key,
                Some(ctx.app.name.as_str()).filter(|name| !name.is_empty()),
            );
            put_str(key, ctx.app.version.as_deref());
            put_str(key, ctx.app.environment.as_deref());
            let app_len = key.len();
            put_url_template(
                key,
                ctx.page_url_template.as_deref(),
                ctx.page_url.as_deref(),
            );
            put_str(key, Some(device_class(ctx)));
            put_str(key, ctx.browser.name.as_deref());
            put_str(key, country(ctx));
            let page_len = key.len();

            for event in &batch.events {
                key.truncate(page_len);
                match event {
                    RumEvent::Vital(vital) => {
                        // The pipeline rejected implausible vitals already; the histogram
                        // refuses them again (`HistogramAgg::record`), so skip the key work.
                        if !vital.name.is_plausible(vital.value) {
                            continue;
                        }
                        put_str(key, Some(vital.rating.as_str()));
                        let time_ns = vital
                            .time
                            .map_or(recorded_ns, |t| event_time_ns(ctx, t, recorded_ns));
                        self.vitals[vital_slot(vital.name)].record(
                            self.limits,
                            key,
                            Measurement {
                                input: vital.value,
                                time_ns,
                                recorded_ns,
                                span: page_span,
                            },
                        );
                    }
                    RumEvent::PageLoad(page_load) => {
                        let start = page_load.navigation.timing.start_time;
                        self.page_views.record(
                            self.limits,
                            key,
                            Measurement {
                                input: 1,
                                time_ns: event_time_ns(ctx, start, recorded_ns),
                                recorded_ns,
                                span: page_span,
                            },
                        );
                    }
                    RumEvent::Error(error) => {
                        put_str(key, error.error_type.as_deref());
                        self.errors.record(
                            self.limits,
                            key,
                            Measurement {
                                input: 1,
                                time_ns: event_time_ns(ctx, error.time, recorded_ns),
                                recorded_ns,
                                span: error.active_span.or(page_span),
                            },
                        );
                    }
                    RumEvent::HttpCall(call) => {
                        let seconds = call.duration / 1000.0;
                        if !within(seconds, MAX_DURATION_MS / 1000.0) {
                            continue;
                        }
                        // The HTTP key repeats the app prefix after the page attributes.
                        key.extend_from_within(..app_len);
                        let status = call.status.filter(|&status| status != 0);
                        put_str(key, Some(normalize_method(&call.method)));
                        put_int(key, status.map(i64::from));
                        match (call.error_type.as_deref(), status) {
                            (Some(error_type), _) => put_str(key, Some(error_type)),
                            (None, Some(status)) if status >= 400 => {
                                put_str_with(key, |out| push_decimal(out, status))
                            }
                            _ => put_str(key, None),
                        }
                        put_url_template(key, call.url_template.as_deref(), Some(&call.url));
                        let host = call_host(&call.url, ctx.page_url.as_deref());
                        put_str(key, host.as_deref());
                        self.http_duration.record(
                            self.limits,
                            &key[page_len..],
                            Measurement {
                                input: seconds,
                                time_ns: event_time_ns(
                                    ctx,
                                    call.start + call.duration,
                                    recorded_ns,
                                ),
                                recorded_ns,
                                span: call.span,
                            },
                        );
                    }
                    RumEvent::Interaction(_) | RumEvent::Log(_) | RumEvent::Custom(_) => {}
                }
            }
        });
    }

    /// The exceptions of a payload about to be exported, grouped by app, exception type and
    /// fingerprint: log records and span `exception` events that carry
    /// [`EXCEPTION_FINGERPRINT`] (every input's exceptions do, after symbolication, so one bug
    /// from different releases and users is one series). Nothing is counted until
    /// [`record_error_groups`](Self::record_error_groups), once the payload is kept.
    pub fn error_groups(&self, payload: &Payload) -> ErrorGroups {
        let recorded_ns = unix_now_ns();
        let mut groups = ErrorGroups(Vec::new());
        for entry in &payload.logs {
            let resource = entry.resource.as_ref().map_or(&[][..], |r| &r.attributes);
            for record in entry.scope_logs.iter().flat_map(|s| &s.log_records) {
                let span = span_ref(&record.trace_id, &record.span_id);
                let time_ns = nonzero_or(record.time_unix_nano, recorded_ns);
                groups.add(resource, &record.attributes, span, time_ns, recorded_ns);
            }
        }
        for entry in &payload.spans {
            let resource = entry.resource.as_ref().map_or(&[][..], |r| &r.attributes);
            for span in entry.scope_spans.iter().flat_map(|s| &s.spans) {
                let at = span_ref(&span.trace_id, &span.span_id);
                for event in span.events.iter().filter(|e| e.name == "exception") {
                    let time_ns = nonzero_or(event.time_unix_nano, recorded_ns);
                    groups.add(resource, &event.attributes, at, time_ns, recorded_ns);
                }
            }
        }
        groups
    }

    /// Counts what [`error_groups`](Self::error_groups) found, with exemplars pointing at each
    /// exception's trace.
    pub fn record_error_groups(&self, groups: ErrorGroups) {
        for (key, measurement) in groups.0 {
            self.error_groups.record(self.limits, &key, measurement);
        }
    }

    /// Reports every series as of `now_unix_nanos`, per the configured temporality; `None` when
    /// there is nothing to report.
    pub fn flush(&self, now_unix_nanos: u64) -> Option<ResourceMetrics> {
        let mut last_flush = lock(&self.last_flush_ns);
        let window = Window {
            temporality: self.temporality,
            interval_start: (*last_flush).min(now_unix_nanos),
            now: now_unix_nanos,
        };
        *last_flush = now_unix_nanos;

        let mut metrics = Vec::new();
        for histogram in self.vitals.iter().chain([&self.http_duration]) {
            metrics.extend(histogram.histogram_metric(window));
        }
        for counter in [&self.page_views, &self.errors, &self.error_groups] {
            metrics.extend(counter.sum_metric(window));
        }
        if metrics.is_empty() {
            return None;
        }
        Some(ResourceMetrics {
            resource: Some(self.resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: env!("CARGO_PKG_NAME").to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
    }

    /// Flushes every `interval` and hands non-empty results to `submit`; when `shutdown` turns
    /// true (or its sender is dropped) it flushes once more and ends.
    pub fn spawn_flusher(
        self: Arc<Self>,
        interval: Duration,
        submit: impl Fn(Payload) + Send + Sync + 'static,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        // A zero period would make tokio's interval panic; config validation rejects it too.
        let interval = interval.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let flush = || {
                if let Some(metrics) = self.flush(unix_now_ns()) {
                    submit(Payload {
                        metrics: vec![metrics],
                        ..Default::default()
                    });
                }
            };
            let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            while !*shutdown.borrow_and_update() {
                tokio::select! {
                    _ = ticker.tick() => flush(),
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
            flush();
        })
    }
}

/// Exceptions found in a payload, not yet counted: one series key and measurement each.
#[derive(Default)]
pub struct ErrorGroups(Vec<(Vec<u8>, Measurement<u64>)>);

impl ErrorGroups {
    /// One exception, if it has a fingerprint.
    fn add(
        &mut self,
        resource: &[KeyValue],
        attributes: &[KeyValue],
        span: Option<SpanRef>,
        time_ns: u64,
        recorded_ns: u64,
    ) {
        let Some(fingerprint) = str_value(attributes, EXCEPTION_FINGERPRINT) else {
            return;
        };
        let mut key = Vec::with_capacity(64);
        put_str(&mut key, str_value(resource, SERVICE_NAME));
        put_str(&mut key, str_value(resource, SERVICE_VERSION));
        put_str(&mut key, str_value(resource, DEPLOYMENT_ENVIRONMENT_NAME));
        put_str(&mut key, str_value(attributes, EXCEPTION_TYPE));
        put_str(&mut key, Some(fingerprint));
        let measurement = Measurement {
            input: 1,
            time_ns,
            recorded_ns,
            span,
        };
        self.0.push((key, measurement));
    }
}

fn nonzero_or(time_ns: u64, fallback: u64) -> u64 {
    if time_ns == 0 {
        fallback
    } else {
        time_ns
    }
}

/// A string attribute's value, when present and not empty.
fn str_value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match find(attributes, key) {
        Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The span an OTLP record belongs to, when both ids are valid.
fn span_ref(trace_id: &[u8], span_id: &[u8]) -> Option<SpanRef> {
    let trace_id: [u8; 16] = trace_id.try_into().ok()?;
    let span_id: [u8; 8] = span_id.try_into().ok()?;
    (trace_id != [0; 16] && span_id != [0; 8]).then_some(SpanRef { trace_id, span_id })
}

/// Bridge clock when the batch arrived, in Unix nanoseconds (now, if the edge did not say).
fn bridge_time_ns(ctx: &PageContext) -> u64 {
    let ms = ctx.received_at_ms;
    if ms.is_finite() && ms > 0.0 {
        (ms * 1_000_000.0) as u64
    } else {
        unix_now_ns()
    }
}

/// An event time (ms relative to the time origin) in Unix nanoseconds, or `fallback`.
fn event_time_ns(ctx: &PageContext, relative_ms: f64, fallback: u64) -> u64 {
    match ctx.unix_nanos(relative_ms) {
        0 => fallback,
        ns => ns,
    }
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::metrics::bridge_resource;
    use crate::convert::metrics::descriptors::*;
    use crate::convert::metrics::key::tests::{attribute, string};
    use crate::model::semconv::{
        DEVICE_CLASS, ERROR_TYPE, EXCEPTION_TYPE, SERVER_ADDRESS, URL_TEMPLATE,
    };
    use crate::model::{AppInfo, BrowserInfo, ErrorEvent, HttpCall, PageLoad, WebVital};
    use crate::model::{AttrValue, DeviceClass};
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::{
        exemplar, metric, number_data_point, AggregationTemporality, Histogram, Metric, Sum,
    };

    const RECEIVED_MS: f64 = 1_700_000_000_000.0;
    const RECEIVED_NS: u64 = 1_700_000_000_000_000_000;
    const PAGE_SPAN: SpanRef = SpanRef {
        trace_id: [0x4d; 16],
        span_id: [0xa1; 8],
    };
    const CALL_SPAN: SpanRef = SpanRef {
        trace_id: [0x5e; 16],
        span_id: [0xb2; 8],
    };

    fn aggregator_with(
        temporality: Temporality,
        cardinality_limit: usize,
        max_exemplars: usize,
    ) -> MetricsAggregator {
        let config = MetricsConfig {
            temporality,
            cardinality_limit,
            max_exemplars,
            ..MetricsConfig::default()
        };
        MetricsAggregator::new(&config, bridge_resource("replica-1", []))
    }

    fn aggregator(temporality: Temporality) -> MetricsAggregator {
        aggregator_with(temporality, 100, 4)
    }

    fn context(page_url: &str) -> PageContext {
        PageContext {
            app: AppInfo {
                name: "shop-web".into(),
                version: Some("1.2.3".into()),
                environment: Some("production".into()),
                ..AppInfo::default()
            },
            page_url: Some(page_url.into()),
            browser: BrowserInfo {
                brands: vec![
                    "Chromium 156".into(),
                    "Google Chrome 156".into(),
                    "Not_A Brand 24".into(),
                ],
                mobile: Some(false),
                name: Some("Chrome".into()),
                ..BrowserInfo::default()
            },
            device_class: Some(DeviceClass::Desktop),
            page_span: Some(PAGE_SPAN),
            time_origin_ms: RECEIVED_MS - 5000.0,
            received_at_ms: RECEIVED_MS,
            ..PageContext::default()
        }
    }

    fn batch_on(page_url: &str, events: Vec<RumEvent>) -> RumBatch {
        RumBatch {
            context: context(page_url),
            events,
            rejected: Vec::new(),
        }
    }

    fn batch(events: Vec<RumEvent>) -> RumBatch {
        batch_on(
            "https://shop.example.com/products/12345?ref=mail#reviews",
            events,
        )
    }

    fn vital(name: VitalName, value: f64) -> RumEvent {
        RumEvent::Vital(WebVital {
            dropped_attributes: 0,
            name,
            value,
            delta: value,
            id: "v6-1700000000000-1".into(),
            rating: name.rate(value),
            navigation_type: Some("navigate".into()),
            time: Some(1000.0),
            target: None,
            attribution: Vec::new(),
        })
    }

    fn call(method: &str, url: &str, status: Option<u16>, duration_ms: f64) -> RumEvent {
        RumEvent::HttpCall(HttpCall {
            method: method.into(),
            url: url.into(),
            status,
            start: 1500.0,
            duration: duration_ms,
            span: Some(CALL_SPAN),
            ..HttpCall::default()
        })
    }

    fn metric<'a>(metrics: &'a ResourceMetrics, name: &str) -> &'a Metric {
        metrics.scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    fn histogram(metric: &Metric) -> &Histogram {
        match &metric.data {
            Some(metric::Data::Histogram(h)) => h,
            other => panic!("not a histogram: {other:?}"),
        }
    }

    fn sum(metric: &Metric) -> &Sum {
        match &metric.data {
            Some(metric::Data::Sum(s)) => s,
            other => panic!("not a sum: {other:?}"),
        }
    }

    #[test]
    fn vital_slots_follow_vital_name_order() {
        let aggregator = aggregator(Temporality::Cumulative);
        for name in VitalName::ALL {
            let (descriptor, _) = vital_instrument_spec(name);
            assert_eq!(
                aggregator.vitals[vital_slot(name)].descriptor.name,
                descriptor.name
            );
            assert!(descriptor.name.ends_with(name.as_str()));
        }
    }

    #[test]
    fn a_value_on_a_bound_lands_in_the_bucket_that_bound_closes() {
        let aggregator = aggregator(Temporality::Cumulative);
        aggregator.record_batch(&batch(vec![
            vital(VitalName::Lcp, 2500.0),
            vital(VitalName::Lcp, 2500.5),
            vital(VitalName::Lcp, 50.0),
            vital(VitalName::Lcp, 99_999.0),
            vital(VitalName::Cls, 0.1),
        ]));
        let flushed = aggregator.flush(RECEIVED_NS + 1).expect("data");

        // The ratings differ, so the LCP values fall into several series; merge their buckets.
        let lcp = histogram(metric(&flushed, "browser.web_vital.lcp"));
        let mut buckets = vec![0u64; TIMING_BOUNDS_MS.len() + 1];
        for point in &lcp.data_points {
            assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
            assert_eq!(point.explicit_bounds, TIMING_BOUNDS_MS);
            for (total, n) in buckets.iter_mut().zip(&point.bucket_counts) {
                *total += n;
            }
        }
        let at = |bound: f64| TIMING_BOUNDS_MS.iter().position(|&b| b == bound).unwrap();
        assert_eq!(buckets[at(2500.0)], 1, "2500 belongs to (2000, 2500]");
        assert_eq!(buckets[at(3000.0)], 1, "2500.5 belongs to (2500, 3000]");
        assert_eq!(buckets[0], 1, "50 belongs to (-inf, 100]");
        assert_eq!(buckets[TIMING_BOUNDS_MS.len()], 1, "99999 is above 20000");

        let cls_metric = metric(&flushed, "browser.web_vital.cls");
        assert_eq!(cls_metric.unit, "1");
        let cls = &histogram(cls_metric).data_points[0];
        let cls_bucket = CLS_BOUNDS.iter().position(|&b| b == 0.1).unwrap();
        assert_eq!(cls.bucket_counts[cls_bucket], 1);
        assert_eq!(cls.sum, Some(0.1), "CLS is the raw score, not scaled");
    }

    #[test]
    fn histogram_points_carry_count_sum_min_max_and_consistent_buckets() {
        let aggregator = aggregator(Temporality::Cumulative);
        aggregator.record_batch(&batch(vec![
            vital(VitalName::Inp, 40.0),
            vital(VitalName::Inp, 120.0),
            vital(VitalName::Inp, 180.0),
        ]));
        let flushed = aggregator.flush(RECEIVED_NS + 10).unwrap();
        let inp = metric(&flushed, "browser.web_vital.inp");
        assert_eq!(inp.unit, "ms");
        let hist = histogram(inp);
        assert_eq!(
            hist.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let point = &hist.data_points[0];
        assert_eq!(point.count, 3);
        assert_eq!(point.bucket_counts.iter().sum::<u64>(), 3);
        assert_eq!(point.bucket_counts.len(), INP_BOUNDS_MS.len() + 1);
        assert_eq!(point.sum, Some(340.0));
        assert_eq!(point.min, Some(40.0));
        assert_eq!(point.max, Some(180.0));
        assert_eq!(point.start_time_unix_nano, RECEIVED_NS);
        assert_eq!(point.time_unix_nano, RECEIVED_NS + 10);
        assert_eq!(
            flushed.scope_metrics[0].metrics.len(),
            1,
            "only instruments with data are reported"
        );
    }

    #[test]
    fn vital_points_describe_the_app_page_device_and_browser() {
        let aggregator = aggregator(Temporality::Cumulative);
        aggregator.record_batch(&batch(vec![vital(VitalName::Lcp, 3100.0)]));
        let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();

        let resource = flushed.resource.as_ref().unwrap();
        assert_eq!(
            attribute(&resource.attributes, "service.name"),
            Some(&string("rum-bridge"))
        );
        assert_eq!(
            attribute(&resource.attributes, "service.instance.id"),
            Some(&string("replica-1"))
        );

        let point = &histogram(metric(&flushed, "browser.web_vital.lcp")).data_points[0];
        let expected = [
            (RATING, "needs-improvement"),
            (URL_TEMPLATE, "/products/{id}"),
            (APP_NAME, "shop-web"),
            (APP_VERSION, "1.2.3"),
            (APP_ENVIRONMENT, "production"),
            (DEVICE_CLASS, "desktop"),
            (BROWSER_NAME, "Chrome"),
        ];
        for (key, value) in expected {
            assert_eq!(
                attribute(&point.attributes, key),
                Some(&string(value)),
                "{key}"
            );
        }
        assert_eq!(point.attributes.len(), expected.len());
        assert_eq!(attribute(&point.attributes, "service.name"), None);
    }

    #[test]
    fn absent_context_values_are_left_out_of_the_attributes() {
        let aggregator = aggregator(Temporality::Cumulative);
        let mut batch = batch(vec![vital(VitalName::Ttfb, 300.0)]);
        batch.context.app.version = None;
        batch.context.page_url = None;
        batch.context.browser = BrowserInfo::default();
        batch.context.device_class = None;
        aggregator.record_batch(&batch);
        let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();
        let point = &histogram(metric(&flushed, "browser.web_vital.ttfb")).data_points[0];
        assert_eq!(attribute(&point.attributes, APP_VERSION), None);
        assert_eq!(attribute(&point.attributes, URL_TEMPLATE), None);
        assert_eq!(attribute(&point.attributes, BROWSER_NAME), None);
        assert_eq!(
            attribute(&point.attributes, DEVICE_CLASS),
            Some(&string("unknown"))
        );
        assert_eq!(attribute(&point.attributes, RATING), Some(&string("good")));
    }

    #[test]
    fn cumulative_keeps_the_start_time_and_grows_across_flushes() {
        let aggregator = aggregator(Temporality::Cumulative);
        aggregator.record_batch(&batch(vec![vital(VitalName::Fcp, 1000.0)]));
        let first = aggregator.flush(RECEIVED_NS + 1_000).unwrap();

        let mut later = batch(vec![vital(VitalName::Fcp, 1200.0)]);
        later.context.received_at_ms = RECEIVED_MS + 30_000.0;
        aggregator.record_batch(&later);
        let second = aggregator.flush(RECEIVED_NS + 60_000_000_000).unwrap();
        let third = aggregator.flush(RECEIVED_NS + 120_000_000_000).unwrap();

        let point = |rm: &ResourceMetrics| {
            histogram(metric(rm, "browser.web_vital.fcp")).data_points[0].clone()
        };
        let (first, second, third) = (point(&first), point(&second), point(&third));
        assert_eq!(first.count, 1);
        assert_eq!(second.count, 2);
        assert_eq!(second.sum, Some(2200.0));
        assert_eq!(second.min, Some(1000.0));
        assert_eq!(third.count, 2, "an idle series is still reported");
        for p in [&first, &second, &third] {
            assert_eq!(p.start_time_unix_nano, RECEIVED_NS);
        }
        assert_eq!(second.time_unix_nano, RECEIVED_NS + 60_000_000_000);
        assert_eq!(second.exemplars.len(), 1, "exemplars are per interval");
        assert_eq!(
            second.exemplars[0].value,
            Some(exemplar::Value::AsDouble(1200.0))
        );
        assert!(third.exemplars.is_empty());
    }

    #[test]
    fn delta_reports_each_interval_once_starting_at_the_previous_flush() {
        let aggregator = aggregator(Temporality::Delta);
        aggregator.record_batch(&batch(vec![vital(VitalName::Fcp, 1000.0)]));
        let t1 = unix_now_ns() + 1_000_000_000;
        let first = aggregator.flush(t1).unwrap();

        aggregator.record_batch(&batch(vec![vital(VitalName::Fcp, 1200.0)]));
        let t2 = t1 + 60_000_000_000;
        let second = aggregator.flush(t2).unwrap();

        let point = |rm: &ResourceMetrics| {
            let h = histogram(metric(rm, "browser.web_vital.fcp"));
            assert_eq!(
                h.aggregation_temporality,
                AggregationTemporality::Delta as i32
            );
            h.data_points[0].clone()
        };
        let (first, second) = (point(&first), point(&second));
        assert_eq!(first.count, 1);
        assert!(
            first.start_time_unix_nano < t1,
            "first interval starts at creation"
        );
        assert_eq!(second.count, 1, "counts restart after a flush");
        assert_eq!(second.sum, Some(1200.0));
        assert_eq!(second.start_time_unix_nano, t1);
        assert_eq!(second.time_unix_nano, t2);
        assert!(aggregator.flush(t2 + 60_000_000_000).is_none());
    }

    #[test]
    fn nothing_recorded_flushes_nothing() {
        assert!(aggregator(Temporality::Cumulative)
            .flush(RECEIVED_NS)
            .is_none());
        assert!(aggregator(Temporality::Delta).flush(RECEIVED_NS).is_none());
    }

    #[test]
    fn invalid_values_are_ignored() {
        let aggregator = aggregator(Temporality::Cumulative);
        aggregator.record_batch(&batch(vec![
            vital(VitalName::Lcp, f64::NAN),
            vital(VitalName::Lcp, -1.0),
            vital(VitalName::Inp, f64::INFINITY),
            call("GET", "/api/cart", Some(200), f64::NAN),
        ]));
        assert!(aggregator.flush(RECEIVED_NS).is_none());
    }

    #[test]
    fn attribute_sets_beyond_the_limit_fold_into_the_overflow_series() {
        let aggregator = aggregator_with(Temporality::Cumulative, 2, 4);
        for page in ["/a", "/b", "/c", "/d", "/a"] {
            let url = format!("https://shop.example.com{page}");
            aggregator.record_batch(&batch_on(&url, vec![vital(VitalName::Lcp, 1000.0)]));
        }
        let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();
        let points = &histogram(metric(&flushed, "browser.web_vital.lcp")).data_points;
        assert_eq!(points.len(), 3, "two series plus overflow");

        let overflow: Vec<_> = points
            .iter()
            .filter(|p| attribute(&p.attributes, OVERFLOW).is_some())
            .collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(
            overflow[0].attributes.len(),
            1,
            "overflow has only its marker"
        );
        assert_eq!(
            attribute(&overflow[0].attributes, OVERFLOW),
            Some(&any_value::Value::BoolValue(true))
        );
        assert_eq!(overflow[0].count, 2, "/c and /d");

        let a = points
            .iter()
            .find(|p| attribute(&p.attributes, URL_TEMPLATE) == Some(&string("/a")))
            .expect("series /a");
        assert_eq!(
            a.count, 2,
            "an existing series keeps its own point after the limit"
        );
        assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 5);
    }

    #[test]
    fn the_cardinality_limit_is_per_metric_and_resets_with_delta() {
        let aggregator = aggregator_with(Temporality::Delta, 1, 4);
        aggregator.record_batch(&batch_on(
            "https://shop.example.com/a",
            vec![vital(VitalName::Lcp, 1.0), vital(VitalName::Fcp, 1.0)],
        ));
        aggregator.record_batch(&batch_on(
            "https://shop.example.com/b",
            vec![vital(VitalName::Inp, 1.0)],
        ));
        let first = aggregator.flush(unix_now_ns() + 1).unwrap();
        for name in [
            "browser.web_vital.lcp",
            "browser.web_vital.fcp",
            "browser.web_vital.inp",
        ] {
            let point = &histogram(metric(&first, name)).data_points[0];
            assert_eq!(attribute(&point.attributes, OVERFLOW), None, "{name}");
        }

        aggregator.record_batch(&batch_on(
            "https://shop.example.com/b",
            vec![vital(VitalName::Lcp, 1.0)],
        ));
        let second = aggregator.flush(unix_now_ns() + 2).unwrap();
        let point = &histogram(metric(&second, "browser.web_vital.lcp")).data_points[0];
        assert_eq!(
            attribute(&point.attributes, URL_TEMPLATE),
            Some(&string("/b")),
            "delta forgets old series, so /b fits now"
        );
    }

    #[test]
    fn exemplars_carry_the_page_span_and_are_capped() {
        let aggregator = aggregator_with(Temporality::Cumulative, 100, 2);
        let values: Vec<f64> = (1..=10).map(|i| f64::from(i) * 100.0).collect();
        aggregator.record_batch(&batch(
            values.iter().map(|&v| vital(VitalName::Lcp, v)).collect(),
        ));
        let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();
        let point = &histogram(metric(&flushed, "browser.web_vital.lcp")).data_points[0];
        assert_eq!(point.count, 10);
        assert_eq!(point.exemplars.len(), 2);
        for exemplar in &point.exemplars {
            assert_eq!(exemplar.trace_id, PAGE_SPAN.trace_id);
            assert_eq!(exemplar.span_id, PAGE_SPAN.span_id);
            // time = time origin + 1000 ms
            assert_eq!(exemplar.time_unix_nano, RECEIVED_NS - 4_000_000_000);
            let Some(exemplar::Value::AsDouble(value)) = exemplar.value else {
                panic!("exemplar without a double value");
            };
            assert!(values.contains(&value));
        }
    }

    #[test]
    fn exemplar_ids_come_from_the_caller_or_are_left_empty() {
        let derived = SpanRef {
            trace_id: [7; 16],
            span_id: [8; 8],
        };
        let aggregator = aggregator(Temporality::Delta);
        aggregator
            .record_batch_with_page_span(&batch(vec![vital(VitalName::Cls, 0.05)]), Some(derived));
        let flushed = aggregator.flush(unix_now_ns() + 1).unwrap();
        let exemplar =
            &histogram(metric(&flushed, "browser.web_vital.cls")).data_points[0].exemplars[0];
        assert_eq!(exemplar.trace_id, derived.trace_id);
        assert_eq!(exemplar.span_id, derived.span_id);

        let mut without_span = batch(vec![vital(VitalName::Cls, 0.05)]);
        without_span.context.page_span = None;
        aggregator.record_batch(&without_span);
        let flushed = aggregator.flush(unix_now_ns() + 2).unwrap();
        let exemplar =
            &histogram(metric(&flushed, "browser.web_vital.cls")).data_points[0].exemplars[0];
        assert!(exemplar.trace_id.is_empty() && exemplar.span_id.is_empty());
        assert_eq!(exemplar.value, Some(exemplar::Value::AsDouble(0.05)));
    }

    #[test]
    fn zero_max_exemplars_keeps_none() {
        let aggregator = aggregator_with(Temporality::Cumulative, 100, 0);
        aggregator.record_batch(&batch(vec![vital(VitalName::Lcp, 1000.0)]));
        let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();
        assert!(
            histogram(metric(&flushed, "browser.web_vital.lcp")).data_points[0]
                .exemplars
                .is_empty()
        );
    }

    #[test]
    fn http_calls_become_duration_histograms_in_seconds() {
        let aggregator = aggregator(Temporality::Cumulative);
        aggregator.record_batch(&batch(vec![
            call(
                "get",
                "https://user:pw@API.example.com:8443/users/550e8400-e29b-41d4-a716-446655440000/orders?page=2",
                Some(200),
                250.0,
            ),
            call("POST", "/api/cart", Some(503), 80.0),
            call("BREW", "/api/cart", None, 10.0),
        ]));
        let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();
        let duration = metric(&flushed, "http.client.request.duration");
        assert_eq!(duration.unit, "s");
        let points = &histogram(duration).data_points;
        assert_eq!(points.len(), 3);
        let by_method = |method: &str| {
            points
                .iter()
                .find(|p| attribute(&p.attributes, HTTP_METHOD) == Some(&string(method)))
                .unwrap_or_else(|| panic!("no {method} point"))
        };

        let get = by_method("GET");
        assert_eq!(get.explicit_bounds, HTTP_DURATION_BOUNDS_S);
        assert_eq!(get.sum, Some(0.25));
        let bucket = HTTP_DURATION_BOUNDS_S
            .iter()
            .position(|&b| b == 0.25)
            .unwrap();
        assert_eq!(get.bucket_counts[bucket], 1);
        assert_eq!(
            attribute(&get.attributes, HTTP_STATUS),
            Some(&any_value::Value::IntValue(200))
        );
        assert_eq!(
            attribute(&get.attributes, URL_TEMPLATE),
            Some(&string("/users/{id}/orders"))
        );
        assert_eq!(
            attribute(&get.attributes, SERVER_ADDRESS),
            Some(&string("api.example.com"))
        );
        assert_eq!(
            attribute(&get.attributes, APP_NAME),
            Some(&string("shop-web"))
        );
        assert_eq!(attribute(&get.attributes, ERROR_TYPE), None);
        assert_eq!(attribute(&get.attributes, DEVICE_CLASS), None);
        assert_eq!(get.exemplars[0].trace_id, CALL_SPAN.trace_id);
        assert_eq!(get.exemplars[0].span_id, CALL_SPAN.span_id);
        // The call ended at time origin + 1500 + 250 ms.
        assert_eq!(get.exemplars[0].time_unix_nano, RECEIVED_NS - 3_250_000_000);

        let post = by_method("POST");
        assert_eq!(
            attribute(&post.attributes, ERROR_TYPE),
            Some(&string("503"))
        );
        assert_eq!(
            attribute(&post.attributes, SERVER_ADDRESS),
            Some(&string("shop.example.com")),
            "relative calls go to the page's host"
        );
        assert_eq!(
            attribute(&post.attributes, URL_TEMPLATE),
            Some(&string("/api/cart"))
        );

        let other = by_method("_OTHER");
        assert_eq!(attribute(&other.attributes, HTTP_STATUS), None);
    }

    #[test]
    fn page_views_and_errors_are_counted() {
        let aggregator = aggregator(Temporality::Cumulative);
        let error = |error_type: &str| {
            RumEvent::Error(ErrorEvent {
                time: 1000.0,
                error_type: Some(error_type.into()),
                message: Some("boom".into()),
                ..ErrorEvent::default()
            })
        };
        aggregator.record_batch(&batch(vec![
            RumEvent::PageLoad(PageLoad::default()),
            error("TypeError"),
            error("TypeError"),
            error("RangeError"),
        ]));
        aggregator.record_batch(&batch(vec![RumEvent::PageLoad(PageLoad::default())]));
        let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();

        let views = sum(metric(&flushed, "rum.page_views"));
        assert!(views.is_monotonic);
        assert_eq!(
            views.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(views.data_points.len(), 1);
        let view = &views.data_points[0];
        assert_eq!(view.value, Some(number_data_point::Value::AsInt(2)));
        assert_eq!(
            attribute(&view.attributes, URL_TEMPLATE),
            Some(&string("/products/{id}"))
        );
        assert_eq!(view.exemplars[0].span_id, PAGE_SPAN.span_id);

        let errors = sum(metric(&flushed, "rum.errors"));
        let count_of = |error_type: &str| {
            errors
                .data_points
                .iter()
                .find(|p| attribute(&p.attributes, EXCEPTION_TYPE) == Some(&string(error_type)))
                .and_then(|p| p.value)
        };
        assert_eq!(
            count_of("TypeError"),
            Some(number_data_point::Value::AsInt(2))
        );
        assert_eq!(
            count_of("RangeError"),
            Some(number_data_point::Value::AsInt(1))
        );
    }

    #[test]
    fn device_and_browser_labels_come_from_the_typed_context_only() {
        // What the client says in its attributes or user agent does not reach the labels: the
        // page context's typed fields, which `process` parsed once, do.
        let label = |ctx: PageContext| {
            let aggregator = aggregator(Temporality::Cumulative);
            aggregator.record_batch(&RumBatch {
                context: ctx,
                events: vec![vital(VitalName::Lcp, 1000.0)],
                rejected: Vec::new(),
            });
            let flushed = aggregator.flush(RECEIVED_NS + 1).unwrap();
            let point = &histogram(metric(&flushed, "browser.web_vital.lcp")).data_points[0];
            (
                attribute(&point.attributes, DEVICE_CLASS).cloned(),
                attribute(&point.attributes, BROWSER_NAME).cloned(),
            )
        };
        let mut ctx = context("https://shop.example.com/");
        ctx.user_agent = Some("Mozilla/5.0 (iPhone) Mobile/15E148 Firefox/128.0".into());
        ctx.browser.mobile = Some(true);
        ctx.attributes = vec![
            (DEVICE_CLASS.into(), AttrValue::Str("fridge".into())),
            (BROWSER_NAME.into(), AttrValue::Str("FromClient".into())),
        ];
        assert_eq!(
            label(ctx.clone()),
            (Some(string("desktop")), Some(string("Chrome")))
        );
        ctx.device_class = Some(DeviceClass::Tablet);
        ctx.browser.name = Some("Safari".into());
        assert_eq!(
            label(ctx.clone()),
            (Some(string("tablet")), Some(string("Safari")))
        );
        ctx.device_class = None;
        ctx.browser.name = None;
        assert_eq!(label(ctx), (Some(string("unknown")), None));
    }

    #[tokio::test(start_paused = true)]
    async fn the_flusher_flushes_every_interval_and_once_more_on_shutdown() {
        let aggregator = Arc::new(aggregator(Temporality::Cumulative));
        let (payloads, mut received) = tokio::sync::mpsc::unbounded_channel();
        let (stop, shutdown) = watch::channel(false);
        let started = Instant::now();
        let flusher = Arc::clone(&aggregator).spawn_flusher(
            Duration::from_secs(60),
            move |payload| payloads.send(payload).unwrap(),
            shutdown,
        );
        aggregator.record_batch(&batch(vec![vital(VitalName::Lcp, 1000.0)]));

        let payload = received.recv().await.expect("periodic flush");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert_eq!(payload.metrics.len(), 1);
        assert!(payload.spans.is_empty() && payload.logs.is_empty());

        tokio::time::advance(Duration::from_secs(10)).await;
        stop.send(true).unwrap();
        let last = received.recv().await.expect("final flush");
        assert_eq!(started.elapsed(), Duration::from_secs(70));
        assert_eq!(last.counts().metric_points, 1);
        flusher.await.unwrap();
        assert!(received.recv().await.is_none(), "the flusher has ended");
    }

    #[tokio::test(start_paused = true)]
    async fn the_flusher_submits_nothing_when_there_is_nothing_to_report() {
        let aggregator = Arc::new(aggregator(Temporality::Delta));
        let (payloads, mut received) = tokio::sync::mpsc::unbounded_channel();
        let (stop, shutdown) = watch::channel(false);
        let flusher = aggregator.spawn_flusher(
            Duration::from_secs(60),
            move |payload| payloads.send(payload).unwrap(),
            shutdown,
        );
        tokio::time::sleep(Duration::from_secs(185)).await;
        drop(stop); // a dropped sender also means shutdown
        flusher.await.unwrap();
        assert!(received.recv().await.is_none());
    }
}
