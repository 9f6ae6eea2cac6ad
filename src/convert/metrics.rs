//! The metric aggregator: web vitals, browser HTTP calls, page views and errors → OTLP metrics.
//!
//! Backends answer "what share of page views had a poor LCP on `/products/{id}` this week" from
//! histograms, not from millions of single `browser.web_vital` events. So the bridge folds what
//! every beacon carries into a few series and flushes them every interval (design.md §5
//! "Metrics", otel.md §4.10 and §6.2–6.3).
//!
//! | metric | kind, unit | attributes besides the app's |
//! | --- | --- | --- |
//! | `browser.web_vital.lcp`, `.inp`, `.fcp`, `.ttfb` | histogram, `ms` | page attributes, `browser.web_vital.rating` |
//! | `browser.web_vital.cls` | histogram, `1` (the raw score) | same |
//! | `http.client.request.duration` | histogram, `s` (semconv buckets) | `http.request.method`, `http.response.status_code`, `error.type`, `url.template`, `server.address` |
//! | `rum.page_views` | monotonic sum | page attributes |
//! | `rum.errors` | monotonic sum | page attributes, `exception.type` |
//!
//! Page attributes: `url.template` (of the page), `rum.device.class` (`desktop`, `mobile`,
//! `tablet`, `bot` or `unknown`) and `user_agent.name` (the browser name), both as `process`
//! parsed them once into the page context, so that points agree with the resource of the
//! page's spans and logs (never from the client's attributes), `geo.country.iso_code` (when
//! `[geo]` is configured).
//!
//! **Who the app is.** The bridge writes these streams, so the OTLP resource is the bridge's own
//! ([`bridge_resource`]: `service.name = rum-bridge` plus a per-replica `service.instance.id`, as
//! the single-writer rule requires). The app a point describes is therefore a data-point
//! attribute: `rum.app.name`, `rum.app.version` and `rum.app.environment`. We do not repeat
//! `service.name` / `service.version` / `deployment.environment.name` on points: semconv makes
//! them resource attributes, and backends that copy resource attributes onto series (Prometheus
//! `resource_to_telemetry_conversion`, Datadog tags) would then see two conflicting values.
//!
//! **Buckets.** Vital histograms use otel.md §6.3's bounds, which contain each Google threshold
//! exactly; OTLP buckets are upper-bound inclusive, like web-vitals' rating rule, so the
//! good / needs-improvement / poor shares can be read off the buckets.
//!
//! **Hot path.** [`MetricsAggregator::record_batch`] encodes each series key (its attribute
//! values) into a reused thread-local buffer, then locks only the one instrument it updates
//! (one `Mutex` per instrument) for a hash lookup and a few additions. Nothing is allocated when
//! the series exists; attributes are decoded from the key once, when a series is created.
//!
//! **Cardinality.** Each instrument keeps at most `cardinality_limit` attribute sets; measurements
//! for further sets go to one series whose only attribute is `otel.metric.overflow = true` (the
//! OpenTelemetry SDK rule: no overflow while the distinct sets stay within the limit).
//!
//! **Temporality.** Cumulative: a series' start time is the arrival of its first measurement and
//! its counts keep growing; every series is reported at every flush. Delta: each flush reports
//! (and forgets) what arrived since the previous flush, with that flush as the start time.
//!
//! **Exemplars.** Each point keeps at most `max_exemplars` per interval, chosen uniformly
//! (reservoir sampling, the SDK's `SimpleFixedSizeExemplarReservoir`). Vitals and page views carry
//! the page-load span's ids, HTTP calls their own client span, errors the span active when they
//! were thrown; an exemplar without known ids still carries its value and time.
//!
//! Each web-vitals report counts as one observation: clients should report final values (the
//! loader and web-vitals' default do), not every change of CLS/INP.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, Exemplar, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{MetricsConfig, Temporality};
use crate::handoff::Payload;
use crate::model::semconv::{
    DEVICE_CLASS, ERROR_TYPE, EXCEPTION_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE,
    SERVER_ADDRESS, URL_TEMPLATE, USER_AGENT_NAME,
};
use crate::model::{AttrValue, DeviceClass, PageContext, RumBatch, RumEvent, SpanRef, VitalName};
use crate::process::url::UrlRules;

// Attribute names.
const APP_NAME: &str = "rum.app.name";
const APP_VERSION: &str = "rum.app.version";
const APP_ENVIRONMENT: &str = "rum.app.environment";
const BROWSER_NAME: &str = USER_AGENT_NAME;
const RATING: &str = "browser.web_vital.rating";
const HTTP_METHOD: &str = HTTP_REQUEST_METHOD;
const HTTP_STATUS: &str = HTTP_RESPONSE_STATUS_CODE;
const OVERFLOW: &str = "otel.metric.overflow";
const COUNTRY: &str = crate::process::geo::COUNTRY;

// Attribute schemas: the order in which `record_batch` encodes values into a series key. Every
// schema starts with the app's three attributes; page schemas continue with the page's three.
const PAGE_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    URL_TEMPLATE,
    DEVICE_CLASS,
    BROWSER_NAME,
    COUNTRY,
];
const VITAL_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    URL_TEMPLATE,
    DEVICE_CLASS,
    BROWSER_NAME,
    COUNTRY,
    RATING,
];
const ERROR_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    URL_TEMPLATE,
    DEVICE_CLASS,
    BROWSER_NAME,
    COUNTRY,
    EXCEPTION_TYPE,
];
const HTTP_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    HTTP_METHOD,
    HTTP_STATUS,
    ERROR_TYPE,
    URL_TEMPLATE,
    SERVER_ADDRESS,
];

/// LCP, FCP and TTFB bounds (ms): contain 800, 1800, 2500, 3000 and 4000.
const TIMING_BOUNDS_MS: &[f64] = &[
    100.0, 200.0, 400.0, 600.0, 800.0, 1000.0, 1200.0, 1500.0, 1800.0, 2000.0, 2500.0, 3000.0,
    3500.0, 4000.0, 5000.0, 6000.0, 8000.0, 10000.0, 15000.0, 20000.0,
];
/// INP bounds (ms): contain 200 and 500.
const INP_BOUNDS_MS: &[f64] = &[
    25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1500.0,
    2000.0, 5000.0,
];
/// CLS bounds (unitless score): contain 0.1 and 0.25.
const CLS_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0,
];
/// Semconv advisory buckets of `http.client.request.duration` (s).
const HTTP_DURATION_BOUNDS_S: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// What a metric is called and which attributes its series keys hold.
struct Descriptor {
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    attributes: &'static [&'static str],
}

static LCP: Descriptor = Descriptor {
    name: "browser.web_vital.lcp",
    description: "Largest Contentful Paint reported by browsers.",
    unit: "ms",
    attributes: VITAL_ATTRS,
};
static INP: Descriptor = Descriptor {
    name: "browser.web_vital.inp",
    description: "Interaction to Next Paint reported by browsers.",
    unit: "ms",
    attributes: VITAL_ATTRS,
};
static CLS: Descriptor = Descriptor {
    name: "browser.web_vital.cls",
    description: "Cumulative Layout Shift score reported by browsers.",
    unit: "1",
    attributes: VITAL_ATTRS,
};
static FCP: Descriptor = Descriptor {
    name: "browser.web_vital.fcp",
    description: "First Contentful Paint reported by browsers.",
    unit: "ms",
    attributes: VITAL_ATTRS,
};
static TTFB: Descriptor = Descriptor {
    name: "browser.web_vital.ttfb",
    description: "Time to First Byte of the document reported by browsers.",
    unit: "ms",
    attributes: VITAL_ATTRS,
};
static HTTP_DURATION: Descriptor = Descriptor {
    name: "http.client.request.duration",
    description: "Duration of fetch/XHR calls made by browser pages.",
    unit: "s",
    attributes: HTTP_ATTRS,
};
static PAGE_VIEWS: Descriptor = Descriptor {
    name: "rum.page_views",
    description: "Page loads reported by browsers.",
    unit: "{page_view}",
    attributes: PAGE_ATTRS,
};
static ERRORS: Descriptor = Descriptor {
    name: "rum.errors",
    description: "JavaScript errors and unhandled rejections reported by browsers.",
    unit: "{error}",
    attributes: ERROR_ATTRS,
};

/// The descriptor and bucket bounds of a vital's histogram.
fn vital_instrument_spec(name: VitalName) -> (&'static Descriptor, &'static [f64]) {
    match name {
        VitalName::Lcp => (&LCP, TIMING_BOUNDS_MS),
        VitalName::Inp => (&INP, INP_BOUNDS_MS),
        VitalName::Cls => (&CLS, CLS_BOUNDS),
        VitalName::Fcp => (&FCP, TIMING_BOUNDS_MS),
        VitalName::Ttfb => (&TTFB, TIMING_BOUNDS_MS),
    }
}

/// Index of a vital's instrument in [`MetricsAggregator::vitals`] (the order of `VitalName::ALL`).
fn vital_slot(name: VitalName) -> usize {
    match name {
        VitalName::Lcp => 0,
        VitalName::Inp => 1,
        VitalName::Cls => 2,
        VitalName::Fcp => 3,
        VitalName::Ttfb => 4,
    }
}

/// The OTLP resource of bridge-aggregated metrics: the bridge itself, one per replica.
/// `operator` are the operator's `[resource_attributes]` (e.g. `k8s.cluster.name`), added
/// beside the bridge's `service.name`, `service.version` and `service.instance.id`, which they
/// cannot replace.
pub fn bridge_resource<'a>(
    instance_id: &str,
    operator: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Resource {
    let mut attributes = vec![
        string_attribute("service.name", "rum-bridge"),
        string_attribute("service.instance.id", instance_id),
        string_attribute("service.version", env!("CARGO_PKG_VERSION")),
    ];
    for (key, value) in operator {
        match key {
            "service.name" | "service.version" | "service.instance.id" => {}
            _ => attributes.push(string_attribute(key, value)),
        }
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

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
    /// Time of the previous flush (the start of the current delta interval). Its lock also
    /// keeps flushes one at a time.
    last_flush_ns: Mutex<u64>,
}

impl MetricsAggregator {
    /// An empty aggregator; `resource` is normally [`bridge_resource`].
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
                Instrument::new(descriptor, HistogramAgg::new(bounds))
            }),
            http_duration: Instrument::new(
                &HTTP_DURATION,
                HistogramAgg::new(HTTP_DURATION_BOUNDS_S),
            ),
            page_views: Instrument::new(&PAGE_VIEWS, CountAgg(0)),
            errors: Instrument::new(&ERRORS, CountAgg(0)),
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
        let page_host = ctx.page_url.as_deref().and_then(url_host);
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
                        if !is_valid_measurement(vital.value) {
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
                        if !is_valid_measurement(seconds) {
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
                        match url_host(&call.url).or(page_host) {
                            Some(host) => put_str_with(key, |out| {
                                out.extend(host.bytes().map(|b| b.to_ascii_lowercase()))
                            }),
                            None => put_str(key, None),
                        }
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
        for counter in [&self.page_views, &self.errors] {
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

thread_local! {
    /// Scratch space for series keys, reused so that recording does not allocate.
    static KEY_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Per-instrument limits from the config.
#[derive(Debug, Clone, Copy)]
struct Limits {
    cardinality: usize,
    exemplars: usize,
}

/// One measurement on its way into a series.
struct Measurement<I> {
    input: I,
    /// When the event happened (exemplar time).
    time_ns: u64,
    /// When the bridge received it (start time of a new cumulative series).
    recorded_ns: u64,
    span: Option<SpanRef>,
}

/// The reporting window of one flush.
#[derive(Debug, Clone, Copy)]
struct Window {
    temporality: Temporality,
    interval_start: u64,
    now: u64,
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
trait Aggregate: Clone {
    /// One measurement: a value for histograms, an increment for counters.
    type Input: Copy;
    fn record(&mut self, input: Self::Input);
    fn exemplar_value(input: Self::Input) -> exemplar::Value;
}

/// An explicit-bucket histogram; bucket `i` holds `(bounds[i-1], bounds[i]]`.
#[derive(Debug, Clone)]
struct HistogramAgg {
    bounds: &'static [f64],
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    bucket_counts: Box<[u64]>,
}

impl HistogramAgg {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
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

    fn record(&mut self, value: f64) {
        // Upper bounds are inclusive: a value equal to a bound belongs to the bucket it closes.
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.bucket_counts[bucket] += 1;
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn exemplar_value(value: f64) -> exemplar::Value {
        exemplar::Value::AsDouble(value)
    }
}

/// A monotonic counter.
#[derive(Debug, Clone, Copy)]
struct CountAgg(u64);

impl Aggregate for CountAgg {
    type Input = u64;

    fn record(&mut self, increment: u64) {
        self.0 = self.0.saturating_add(increment);
    }

    fn exemplar_value(increment: u64) -> exemplar::Value {
        exemplar::Value::AsInt(i64::try_from(increment).unwrap_or(i64::MAX))
    }
}

/// An exemplar as kept between flushes (no allocation per sample).
#[derive(Debug, Clone, Copy)]
struct Sample {
    time_ns: u64,
    value: exemplar::Value,
    span: Option<SpanRef>,
}

/// A uniform sample of at most `capacity` measurements per interval (Algorithm R).
#[derive(Debug, Clone)]
struct Reservoir {
    capacity: usize,
    seen: u64,
    samples: Vec<Sample>,
}

impl Reservoir {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: 0,
            samples: Vec::with_capacity(capacity),
        }
    }

    fn offer(&mut self, sample: Sample) {
        if self.capacity == 0 {
            return;
        }
        self.seen += 1;
        if self.samples.len() < self.capacity {
            self.samples.push(sample);
        } else if let Ok(slot) = usize::try_from(rand::random_range(0..self.seen)) {
            if let Some(kept) = self.samples.get_mut(slot) {
                *kept = sample;
            }
        }
    }

    fn reset(&mut self) {
        self.seen = 0;
        self.samples.clear();
    }

    fn to_proto(&self) -> Vec<Exemplar> {
        self.samples
            .iter()
            .map(|sample| Exemplar {
                time_unix_nano: sample.time_ns,
                trace_id: sample.span.map_or_else(Vec::new, |s| s.trace_id.to_vec()),
                span_id: sample.span.map_or_else(Vec::new, |s| s.span_id.to_vec()),
                value: Some(sample.value),
                ..Default::default()
            })
            .collect()
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
        self.aggregate.record(measurement.input);
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
struct Instrument<A> {
    descriptor: &'static Descriptor,
    /// The aggregate of a series with no measurement yet.
    empty: A,
    table: Mutex<SeriesTable<A>>,
}

impl<A: Aggregate> Instrument<A> {
    fn new(descriptor: &'static Descriptor, empty: A) -> Self {
        Self {
            descriptor,
            empty,
            table: Mutex::new(SeriesTable::default()),
        }
    }

    /// Adds a measurement to the series of `key` (encoded per the descriptor's attributes),
    /// creating it within the cardinality limit or folding it into the overflow series.
    fn record(&self, limits: Limits, key: &[u8], measurement: Measurement<A::Input>) {
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
    fn histogram_metric(&self, window: Window) -> Option<Metric> {
        let data_points = self.collect(window, |series, start| {
            let histogram = &series.aggregate;
            HistogramDataPoint {
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
            }
        });
        (!data_points.is_empty()).then(|| {
            self.metric(metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: window.proto_temporality(),
            }))
        })
    }
}

impl Instrument<CountAgg> {
    fn sum_metric(&self, window: Window) -> Option<Metric> {
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
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// Series keys: attribute values in schema order, each a tag byte followed by its payload.
const ABSENT: u8 = 0;
/// Followed by the length (u32, little endian) and the UTF-8 bytes.
const STR: u8 = 1;
/// Followed by an i64, little endian.
const INT: u8 = 2;

fn put_str(key: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => put_str_with(key, |out| out.extend_from_slice(text.as_bytes())),
        None => key.push(ABSENT),
    }
}

/// Writes a string value produced by `write`, which must append valid UTF-8.
fn put_str_with(key: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    key.push(STR);
    let len_at = key.len();
    key.extend_from_slice(&[0; 4]);
    write(key);
    let len = u32::try_from(key.len() - len_at - 4).unwrap_or(u32::MAX);
    key[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_int(key: &mut Vec<u8>, value: Option<i64>) {
    match value {
        Some(n) => {
            key.push(INT);
            key.extend_from_slice(&n.to_le_bytes());
        }
        None => key.push(ABSENT),
    }
}

/// Writes the `url.template` attribute: the one `process` computed, else the built-in
/// template of the URL (batches that skipped processing, e.g. in tests).
fn put_url_template(key: &mut Vec<u8>, template: Option<&str>, url: Option<&str>) {
    match (template, url) {
        (Some(template), _) => put_str(key, Some(template)),
        (None, Some(url)) => put_str_with(key, |out| {
            UrlRules::builtin()
                .template_pieces(url, |piece| out.extend_from_slice(piece.as_bytes()))
        }),
        (None, None) => key.push(ABSENT),
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Decodes a series key into its attributes (absent values are left out).
fn decode_key(names: &[&'static str], mut key: &[u8]) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(names.len());
    for &name in names {
        let Some((&tag, rest)) = key.split_first() else {
            break;
        };
        key = rest;
        let value = match tag {
            STR => {
                let Some((len, rest)) = key.split_first_chunk::<4>() else {
                    break;
                };
                let Some((text, rest)) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)
                else {
                    break;
                };
                key = rest;
                any_value::Value::StringValue(String::from_utf8_lossy(text).into_owned())
            }
            INT => {
                let Some((n, rest)) = key.split_first_chunk::<8>() else {
                    break;
                };
                key = rest;
                any_value::Value::IntValue(i64::from_le_bytes(*n))
            }
            _ => continue,
        };
        attributes.push(KeyValue {
            key: name.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }
    attributes
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// Splits an absolute or scheme-relative URL into its authority and the rest (path, query,
/// fragment); a relative URL has no authority.
fn split_authority(url: &str) -> (Option<&str>, &str) {
    let scheme_end = url.find("://").filter(|&end| {
        end > 0
            && url[..end]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    let after_scheme = match (scheme_end, url.strip_prefix("//")) {
        (Some(end), _) => &url[end + 3..],
        (None, Some(rest)) => rest,
        (None, None) => return (None, url),
    };
    let end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    (Some(&after_scheme[..end]), &after_scheme[end..])
}

/// The host of an absolute URL (`server.address`): no user info, port or IPv6 brackets.
fn url_host(url: &str) -> Option<&str> {
    let authority = split_authority(url).0?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or(bracketed, |(ip, _)| ip),
        None => host_port
            .split_once(':')
            .map_or(host_port, |(host, _)| host),
    };
    (!host.is_empty()).then_some(host)
}

/// `http.request.method`: the known methods in canonical case, anything else `_OTHER`.
fn normalize_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(method))
        .unwrap_or("_OTHER")
}

/// `geo.country.iso_code`, when the geo lookup (`[geo]`) found the client's country.
fn country(ctx: &PageContext) -> Option<&str> {
    ctx.attributes.iter().find_map(|(key, value)| match value {
        AttrValue::Str(code) if key == COUNTRY => Some(code.as_str()),
        _ => None,
    })
}

/// `rum.device.class`: the one `process` derived from the user agent, else `unknown`.
fn device_class(ctx: &PageContext) -> &'static str {
    ctx.device_class.map_or("unknown", DeviceClass::as_str)
}

/// Histogram values must be finite and non-negative (durations and scores).
fn is_valid_measurement(value: f64) -> bool {
    value.is_finite() && value >= 0.0
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
mod resource_tests {
    use super::*;

    #[test]
    fn operator_attributes_join_the_bridge_resource_without_replacing_its_identity() {
        let r = bridge_resource(
            "random-id",
            [
                ("k8s.pod.name", "rum-bridge-7d9f"),
                ("service.instance.id", "app-replica"),
                ("service.name", "not-the-bridge"),
            ],
        );
        let get = |key: &str| {
            r.attributes
                .iter()
                .filter(|kv| kv.key == key)
                .map(|kv| format!("{:?}", kv.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(get("service.instance.id").len(), 1);
        assert!(get("service.instance.id")[0].contains("random-id"));
        assert!(get("service.name")[0].contains("\"rum-bridge\""));
        assert_eq!(get("service.name").len(), 1);
        assert!(get("k8s.pod.name")[0].contains("rum-bridge-7d9f"));
        let plain = bridge_resource("random-id", []);
        assert_eq!(plain.attributes.len(), 3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppInfo, BrowserInfo, ErrorEvent, HttpCall, PageLoad, WebVital};

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

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn string(value: &str) -> any_value::Value {
        any_value::Value::StringValue(value.into())
    }

    #[test]
    fn bucket_bounds_contain_each_google_threshold_exactly() {
        for name in VitalName::ALL {
            let (_, bounds) = vital_instrument_spec(name);
            let (good, poor) = name.thresholds();
            assert!(bounds.contains(&good), "{name:?} lacks {good}");
            assert!(bounds.contains(&poor), "{name:?} lacks {poor}");
        }
        for threshold in [2500.0, 4000.0, 1800.0, 3000.0, 800.0] {
            assert!(TIMING_BOUNDS_MS.contains(&threshold));
        }
        assert!(INP_BOUNDS_MS.contains(&200.0) && INP_BOUNDS_MS.contains(&500.0));
        assert!(CLS_BOUNDS.contains(&0.1) && CLS_BOUNDS.contains(&0.25));
        for bounds in [
            TIMING_BOUNDS_MS,
            INP_BOUNDS_MS,
            CLS_BOUNDS,
            HTTP_DURATION_BOUNDS_S,
        ] {
            assert!(
                bounds.windows(2).all(|w| w[0] < w[1]),
                "not increasing: {bounds:?}"
            );
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
    fn hosts_are_parsed_without_user_info_port_or_brackets() {
        assert_eq!(
            url_host("https://a:b@Example.com:8080/x"),
            Some("Example.com")
        );
        assert_eq!(url_host("http://[2001:db8::1]:8080/x"), Some("2001:db8::1"));
        assert_eq!(url_host("//cdn.example.com"), Some("cdn.example.com"));
        assert_eq!(url_host("/relative/path"), None);
        assert_eq!(url_host("https:///nohost"), None);
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

    #[test]
    fn methods_are_normalized() {
        assert_eq!(normalize_method("get"), "GET");
        assert_eq!(normalize_method("PATCH"), "PATCH");
        assert_eq!(normalize_method("BREW"), "_OTHER");
        assert_eq!(normalize_method(""), "_OTHER");
    }

    #[test]
    fn keys_round_trip_through_decoding() {
        let mut key = Vec::new();
        put_str(&mut key, Some("a\u{0}b"));
        put_str(&mut key, None);
        put_int(&mut key, Some(-7));
        put_str_with(&mut key, |out| push_decimal(out, 404));
        let attributes = decode_key(&["one", "two", "three", "four"], &key);
        let keys: Vec<_> = attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["one", "three", "four"]);
        assert_eq!(attribute(&attributes, "one"), Some(&string("a\u{0}b")));
        assert_eq!(
            attribute(&attributes, "three"),
            Some(&any_value::Value::IntValue(-7))
        );
        assert_eq!(attribute(&attributes, "four"), Some(&string("404")));
        // A truncated key decodes what it can and never panics.
        assert_eq!(decode_key(&["one", "two"], &key[..3]).len(), 0);
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
