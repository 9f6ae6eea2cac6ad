//! The per-request flow, written once.
//!
//! The edge (`receive`) decodes a request and hands over what its decoder produced — a RUM
//! model batch ([`RumInput`], from native beacons or Faro) or a decoded OTLP export request
//! ([`OtlpSignal`]) — with the facts of the request ([`RequestFacts`]). [`Ingest`] runs the
//! same steps in the same order for every format:
//!
//! 0. **plausible numbers**: an event with a number outside its plausible range
//!    ([`crate::model::bounds`]) is rejected (`implausible_value`) before anything uses it;
//! 1. **context**: the app's identity, user agent and client hints, referrer, operator
//!    resource attributes, client address and receive time complete the batch's context;
//! 2. **clock**: browser times are moved onto the bridge's clock when they are off by more
//!    than `correlation.clock_skew_threshold_ms` ([`crate::process::skew`]), spans that came
//!    as spans (Faro's `traces`, Zipkin) included;
//! 3. **page view**: formats that report the page load once (Faro, Splunk RUM) get the page
//!    view of the session's last navigation ([`memory::PageViews`]);
//! 4. **privacy**: scrubbing, then consent, Global Privacy Control and sampling
//!    ([`crate::process`]); withheld events still feed the aggregate metrics;
//! 5. **conversion** to OTLP ([`crate::convert`]), with the spans that came embedded in the
//!    beacon made to look like the rest;
//! 6. **symbolication** of exception stacks and error fingerprints ([`symbolicate`]);
//! 7. **limits**: attribute counts and value lengths ([`crate::process::limits`]);
//! 8. **enqueue** for every exporter, waiting until every disk buffer holds the payload
//!    ([`crate::handoff::Receipt`]), so that the edge answers `202` only for what is kept
//!    (a payload waiting for source maps is the exception, see [`symbolicate`]);
//! 9. **metrics**: accepted and rejected items are counted, and the web-vital and HTTP
//!    histograms record the batch.
//!
//! OTLP passthrough takes steps 1 (as resource attributes), 4, 6, 7 and 8, and drops metric
//! points whose numbers are not finite ([`crate::process::metric_points`]). Nothing here knows
//! HTTP: the edge turns an [`Accepted`] into its answer and a [`Refused`] into a status.

pub mod memory;
mod otlp;
mod outlet;
mod symbolicate;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::admin::Metrics;
use crate::config::Config;
use crate::convert::metrics::MetricsAggregator;
use crate::convert::{self, ConvertOptions};
use crate::export::Exporters;
use crate::handoff::{Backpressure, Payload};
use crate::model::faro_contrib::FaroRecords;
use crate::model::{AttrValue, PageContext, Reason, Rejected, RumBatch, RumEvent};
use crate::process::identity::AppIdentity;
use crate::process::limits::ItemLimits;
use crate::process::otlp::Enrichment;
use crate::process::symbolicate::Symbolicator;
use crate::process::{Processor, RequestInfo};
use memory::{page_key, PageMemo, PageViews};
use outlet::Outlet;

pub use otlp::OtlpSignal;

/// The app a request belongs to, as the edge resolved it from its key.
#[derive(Debug, Clone, Copy)]
pub enum AppRef<'a> {
    /// A configured app: its identity is authoritative.
    Configured {
        key: &'a str,
        name: &'a str,
        environment: Option<&'a str>,
        version: Option<&'a str>,
        sample_rate: Option<f64>,
    },
    /// Development mode (no apps configured): the key the client sent, if any.
    Development { key: Option<&'a str> },
}

impl AppRef<'_> {
    /// A configured app's identity, which replaces the client's on every route.
    pub fn identity(&self) -> Option<AppIdentity<'_>> {
        match *self {
            AppRef::Configured {
                name,
                environment,
                version,
                ..
            } => Some(AppIdentity {
                name,
                environment,
                version,
            }),
            AppRef::Development { .. } => None,
        }
    }
}

/// What the edge knows about a request beyond its body.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub app: AppRef<'a>,
    /// The client's address (peer, or what trusted proxies say).
    pub client_ip: Option<IpAddr>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Sec-CH-UA-Mobile: ?1`.
    pub mobile_hint: Option<bool>,
    /// `Sec-CH-UA-Platform`, unquoted, when not empty.
    pub platform_hint: Option<&'a str>,
    /// `Referer`: the page, for clients that do not report it.
    pub referer: Option<&'a str>,
    /// `Sec-GPC: 1` (Global Privacy Control).
    pub gpc: bool,
    /// Bridge clock when the request arrived (Unix epoch ms).
    pub received_at_ms: f64,
}

impl RequestFacts<'_> {
    /// What the privacy rules need to know about the request.
    fn request_info(&self) -> RequestInfo {
        RequestInfo {
            client_ip: self.client_ip,
            gpc: self.gpc,
            sample_rate: match self.app {
                AppRef::Configured { sample_rate, .. } => sample_rate,
                AppRef::Development { .. } => None,
            },
        }
    }
}

/// How a format tells the browser's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BrowserClock {
    /// The beacon carries its send time (`context.sent_at_ms`): skew either way is corrected.
    SendTime,
    /// Only item times are known (the newest one, Unix epoch ms): a clock running ahead is
    /// corrected, a late batch looks like a slow clock and is left alone.
    NewestItem(Option<f64>),
}

/// How a batch finds the page view it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageView {
    /// Every batch carries its page view (native beacons).
    InBatch,
    /// The page load is reported once; later batches of the session take the page view of
    /// its last navigation (Faro, Splunk RUM). `navigation`: this batch reports one.
    Remembered {
        navigation: bool,
        /// Whose memory it is: a Faro batch that finds none is counted
        /// (`rum_bridge_faro_page_memory_misses_total`).
        format: RememberedFormat,
    },
}

/// The formats whose batches rely on the page-view memory ([`PageView::Remembered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RememberedFormat {
    /// Grafana Faro: a load balancer can keep a session on one replica by its
    /// `x-faro-session-id` header, so a batch without memory means the routing is wrong (or the
    /// replica restarted) and is counted.
    Faro,
    /// Splunk RUM (Zipkin): the session id is only in the body, so no header routes it; misses
    /// are not counted (docs/scaling.md).
    SplunkRum,
    /// Elastic RUM: the same, its session is only in the body.
    ElasticRum,
    /// Boomerang: the same, its session (`rt.si`) is only in the beacon.
    Boomerang,
}

/// What a RUM decoder (native beacons, Faro, Zipkin/Splunk RUM) produced.
#[derive(Debug)]
pub struct RumInput {
    pub batch: RumBatch,
    pub clock: BrowserClock,
    pub page_view: PageView,
    /// OTLP spans that came inside the beacon (Faro's `traces`), ids as sent.
    pub spans: Vec<ResourceSpans>,
    /// How many spans `spans` holds.
    pub span_count: usize,
    /// The items in collector-contrib's shape (`[faro] compat = "faro-contrib"`); they replace
    /// the model's log records.
    pub contrib: Option<FaroRecords>,
}

impl RumInput {
    /// A batch with nothing but model events, whose context carries its send time.
    pub fn batch(batch: RumBatch) -> Self {
        Self {
            batch,
            clock: BrowserClock::SendTime,
            page_view: PageView::InBatch,
            spans: Vec::new(),
            span_count: 0,
            contrib: None,
        }
    }
}

/// A request whose telemetry was enqueued (and counted).
#[derive(Debug)]
pub struct Accepted {
    /// Events and spans accepted.
    pub items: usize,
    /// Items the decoder dropped, with why.
    pub rejected: Vec<Rejected>,
}

/// Why the pipeline did not take a request.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// An export queue or disk buffer is full, or the bridge is shutting down.
    #[error(transparent)]
    Backpressure(#[from] Backpressure),
    /// More items than `limits.max_events_per_batch` in one OTLP request.
    #[error(
        "{count} {kind}s in one request, more than max_events_per_batch ({max}); \
         export smaller batches"
    )]
    TooManyItems {
        count: usize,
        max: usize,
        kind: &'static str,
    },
}

/// The per-request flow and what it needs, shared by all requests.
pub struct Ingest {
    processor: Processor,
    convert: ConvertOptions,
    max_items: usize,
    skew_threshold_ms: f64,
    /// Operator resource attributes added to every exported resource.
    resource_attributes: Vec<(String, String)>,
    aggregator: Option<Arc<MetricsAggregator>>,
    metrics: Arc<Metrics>,
    /// Caps, enqueue and error groups for every finished payload.
    outlet: Outlet,
    page_views: PageViews,
    symbolicator: Option<Arc<Symbolicator>>,
}

impl Ingest {
    pub fn new(
        config: &Config,
        processor: Processor,
        exporters: Exporters,
        aggregator: Option<Arc<MetricsAggregator>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            processor,
            convert: ConvertOptions::from(config),
            max_items: config.limits.max_events_per_batch,
            skew_threshold_ms: config.correlation.clock_skew_threshold_ms as f64,
            resource_attributes: config
                .resource_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            outlet: Outlet {
                exporters,
                limits: ItemLimits::new(&config.limits),
                metrics: Arc::clone(&metrics),
                aggregator: aggregator.clone(),
            },
            aggregator,
            metrics,
            page_views: PageViews::default(),
            symbolicator: None,
        }
    }

    /// Symbolicates exception stacks and fingerprints errors before enqueueing.
    pub fn with_symbolicator(mut self, symbolicator: Arc<Symbolicator>) -> Self {
        self.symbolicator = Some(symbolicator);
        self
    }

    /// Whether new payloads would be refused (an export queue or disk buffer is full): the edge
    /// refuses before reading a body.
    pub fn is_full(&self) -> bool {
        self.outlet.exporters.is_full()
    }

    /// Native beacons and Faro payloads: every step of the module docs.
    pub async fn rum(
        &self,
        input: RumInput,
        facts: &RequestFacts<'_>,
    ) -> Result<Accepted, Refused> {
        let RumInput {
            mut batch,
            clock,
            page_view,
            mut spans,
            span_count,
            mut contrib,
        } = input;
        // Numbers outside their plausible range never reach a span, a log or a histogram.
        if let Some(new_index) = batch.reject_implausible() {
            if let Some(records) = &mut contrib {
                records.reindex(&new_index);
            }
        }
        let ctx = &mut batch.context;
        self.complete_context(ctx, facts);
        self.correct_clock(ctx, clock);
        if let Some(skew) = ctx.clock_skew_ms {
            // Spans that came as spans move with the rest of the batch.
            convert::embedded::shift_times(&mut spans, skew);
        }
        if let PageView::Remembered { navigation, format } = page_view {
            self.correlate_page_view(ctx, navigation, format);
        }

        // The same privacy rules as every other format: scrub, then sample and apply consent.
        self.processor.process_batch(&mut batch);
        let request = facts.request_info();
        // Contrib-shaped records get the same rules and follow their model event's fate.
        let contrib = contrib.map(|mut records| {
            self.processor.process_faro_records(&mut records);
            let policy = self.processor.export_policy(&batch.context, &request);
            records.records.retain(|r| {
                let event = r.event.and_then(|i| batch.events.get(i));
                self.processor.exports(policy, event)
            });
            records
        });
        let withheld = self.processor.withhold(&mut batch, &request);

        let mut payload = match contrib {
            None => convert::convert(&batch, &self.convert),
            // They replace the model's log records; spans stay.
            Some(records) => {
                let mut payload = convert::convert_spans_only(&batch, &self.convert);
                let logs = convert::faro_contrib::convert(records, &batch.context, &self.convert);
                payload.logs.extend(logs);
                payload
            }
        };
        let mut calls = Vec::new();
        if !spans.is_empty() {
            convert::embedded::enrich(&mut spans, &batch.context, facts.app.identity());
            if let Some(d) = self.processor.process_otlp_spans(&mut spans, &request) {
                self.metrics.drop_items(d.reason, d.count as u64);
            }
            if self.aggregator.is_some() {
                calls = convert::embedded::http_calls(&spans);
            }
            payload.spans.append(&mut spans);
        }
        self.enqueue(payload).await?;

        // Withheld events (sampling, consent) still count in the aggregate metrics.
        if let Some(withheld) = withheld {
            self.metrics
                .drop_items(withheld.reason, withheld.events.len() as u64);
            batch.events.extend(withheld.events);
        }
        // Client attributes the decoder left out count with those the caps cut.
        let left_out = batch.events.iter().map(dropped_attributes).sum::<u64>()
            + u64::from(batch.context.dropped_attributes);
        if left_out > 0 {
            self.metrics.attributes_dropped.inc_by(left_out);
        }
        let accepted = self.count(batch.events.iter().map(RumEvent::kind), span_count);
        for r in &batch.rejected {
            self.metrics.reject(r.reason);
        }
        if let Some(agg) = &self.aggregator {
            let page_span = convert::page_span(&batch.context, self.convert.page_load);
            // Embedded CLIENT spans feed the HTTP histogram; they were exported as spans.
            batch
                .events
                .extend(calls.into_iter().map(RumEvent::HttpCall));
            agg.record_batch_with_page_span(&batch, Some(page_span));
        }
        Ok(Accepted {
            items: accepted,
            rejected: batch.rejected,
        })
    }

    /// OTLP passthrough: enrichment and normalisation, the item limit, the privacy rules,
    /// the attribute caps, enqueue.
    pub async fn otlp<T: OtlpSignal>(
        &self,
        mut request: T,
        facts: &RequestFacts<'_>,
    ) -> Result<Accepted, Refused> {
        let n = request.prepare(&Enrichment {
            identity: facts.app.identity(),
            user_agent: facts.user_agent,
            extra: &self.resource_attributes,
        });
        if n > self.max_items {
            return Err(Refused::TooManyItems {
                count: n,
                max: self.max_items,
                kind: T::KIND,
            });
        }
        // A non-finite number poisons whatever sums it downstream: such points go, one by one.
        let non_finite = request.drop_non_finite();
        self.metrics
            .reject_many(Reason::ImplausibleValue, non_finite.points as u64);
        let n = n - non_finite.metrics;
        if let Some(d) = request.apply_privacy(&self.processor, &facts.request_info()) {
            self.metrics.drop_items(d.reason, d.count as u64);
        }
        self.enqueue(request.into_payload()).await?;
        self.metrics.accept(T::KIND, n as u64);
        Ok(Accepted {
            items: n,
            rejected: Vec::new(),
        })
    }

    /// Fills the page context from the request's facts.
    fn complete_context(&self, ctx: &mut PageContext, facts: &RequestFacts<'_>) {
        match facts.app {
            AppRef::Configured { key, .. } => {
                ctx.app.key = Some(key.to_owned());
                if let Some(identity) = facts.app.identity() {
                    identity.apply_to_context(ctx);
                }
            }
            AppRef::Development { key } => {
                if ctx.app.name.is_empty() {
                    ctx.app.name = key.unwrap_or("unknown_app").to_owned();
                }
            }
        }
        if ctx.user_agent.is_none() {
            ctx.user_agent = facts.user_agent.map(str::to_owned);
        }
        if ctx.browser.mobile.is_none() {
            ctx.browser.mobile = facts.mobile_hint;
        }
        if ctx.browser.platform.is_none() {
            ctx.browser.platform = facts.platform_hint.map(str::to_owned);
        }
        if ctx.page_url.is_none() {
            ctx.page_url = facts.referer.map(str::to_owned);
        }
        for (k, v) in &self.resource_attributes {
            if !ctx.attributes.iter().any(|(ek, _)| ek == k) {
                ctx.attributes.push((k.clone(), AttrValue::Str(v.clone())));
            }
        }
        ctx.received_at_ms = facts.received_at_ms;
        ctx.client_ip = facts.client_ip;
    }

    fn correct_clock(&self, ctx: &mut PageContext, clock: BrowserClock) {
        let threshold = self.skew_threshold_ms;
        match clock {
            BrowserClock::SendTime => {
                crate::process::skew::correct_clock_skew(ctx, threshold);
            }
            BrowserClock::NewestItem(newest) => {
                if let Some(newest) = newest.filter(|n| n - ctx.received_at_ms > threshold) {
                    ctx.sent_at_ms = Some(newest);
                    crate::process::skew::correct_clock_skew(ctx, threshold);
                }
            }
        }
    }

    /// Ties a batch to its page view (see [`memory`]): a navigation is remembered for its
    /// session; a later batch without one takes the page-view id, server span and
    /// `documentLoad` span of the session's last navigation, unless it names another page view.
    ///
    /// Without a remembered navigation (another replica took it, this one restarted, or the
    /// SDK reports none) the batch keeps what it carries itself: its session, its page URL and
    /// the page-view id its items name, if any; with that id the `documentLoad` span id is
    /// derived as the navigation's was, but the server's trace id is unknowable. A Faro batch
    /// in that case is counted, so a load balancer without session affinity shows.
    fn correlate_page_view(
        &self,
        ctx: &mut PageContext,
        navigation: bool,
        format: RememberedFormat,
    ) {
        let Some(session) = ctx.session_id.as_deref() else {
            return;
        };
        let key = page_key(&ctx.app.name, session);
        let now = Instant::now();
        if navigation {
            let memo = PageMemo {
                page_view_id: ctx.page_view_id.clone(),
                server_trace: ctx.server_trace,
                page_span: convert::page_span(ctx, self.convert.page_load),
            };
            self.page_views.remember(key, memo, now);
            return;
        }
        let Some(memo) = self.page_views.recall(key, now) else {
            if format == RememberedFormat::Faro {
                self.metrics.faro_page_memory_misses.inc();
            }
            return;
        };
        match (&ctx.page_view_id, &memo.page_view_id) {
            (Some(own), Some(remembered)) if own != remembered => return,
            (None, _) => ctx.page_view_id = memo.page_view_id,
            _ => {}
        }
        if ctx.server_trace.is_none() {
            ctx.server_trace = memo.server_trace;
        }
        ctx.page_span.get_or_insert(memo.page_span);
    }

    /// Applies the item caps, enqueues for export and waits until every disk buffer holds the
    /// payload (at once without one).
    async fn enqueue(&self, mut payload: Payload) -> Result<(), Backpressure> {
        if let Some(symbolicator) = &self.symbolicator {
            match symbolicate::prepare(symbolicator, payload) {
                symbolicate::Ready::Now(ready) => payload = ready,
                symbolicate::Ready::Later(waiting) => {
                    waiting.spawn(self.outlet.clone());
                    return Ok(());
                }
            }
        }
        self.outlet.submit(payload).await
    }

    /// Counts accepted events by kind, plus `spans` passed through; returns the total.
    fn count(&self, kinds: impl Iterator<Item = &'static str>, spans: usize) -> usize {
        let mut n = 0;
        for kind in kinds {
            self.metrics.accept(kind, 1);
            n += 1;
        }
        if spans > 0 {
            self.metrics.accept("span", spans as u64);
        }
        n + spans
    }
}

/// The client attributes the decoder left out of `event`.
fn dropped_attributes(event: &RumEvent) -> u64 {
    u64::from(match event {
        RumEvent::Vital(v) => v.dropped_attributes,
        RumEvent::Interaction(i) => i.dropped_attributes,
        RumEvent::HttpCall(c) => c.dropped_attributes,
        RumEvent::Error(e) => e.dropped_attributes,
        RumEvent::Log(l) => l.dropped_attributes,
        RumEvent::Custom(c) => c.dropped_attributes,
        RumEvent::PageLoad(_) => 0,
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::metric;

    use super::*;
    use crate::config::MetricsConfig;
    use crate::convert::metrics::bridge_resource;
    use crate::model::semconv::DEVICE_CLASS;
    use crate::model::{AppInfo, ErrorEvent, PageLoad, VitalName, WebVital};

    const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";

    fn device_class(attributes: &[KeyValue]) -> Option<&str> {
        let mut values = attributes.iter().filter(|kv| kv.key == DEVICE_CLASS);
        let value = match values.next()?.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(class) => class.as_str(),
            other => panic!("{DEVICE_CLASS} is not a string: {other:?}"),
        };
        assert!(values.next().is_none(), "{DEVICE_CLASS} appears once");
        Some(value)
    }

    /// The device class is parsed once, in `process`: the resource of the page view's spans
    /// and logs and the web-vital points of the aggregator say the same, whatever the client
    /// claims (here a `mobile` hint and its own `rum.device.class`).
    #[test]
    fn spans_logs_and_metric_points_of_a_page_view_carry_the_same_device_class() {
        let config = Config::default();
        let processor = Processor::new(&config, &Metrics::new()).unwrap();
        let mut batch = RumBatch {
            context: PageContext {
                app: AppInfo {
                    name: "shop-web".into(),
                    ..AppInfo::default()
                },
                page_view_id: Some("pv-1".into()),
                page_url: Some("https://shop.example.com/products/12345".into()),
                user_agent: Some(IPAD.into()),
                time_origin_ms: 1_700_000_000_000.0,
                received_at_ms: 1_700_000_001_000.0,
                attributes: vec![(DEVICE_CLASS.into(), AttrValue::Str("mobile".into()))],
                ..PageContext::default()
            },
            events: vec![
                RumEvent::PageLoad(PageLoad::default()),
                RumEvent::Vital(WebVital {
                    dropped_attributes: 0,
                    name: VitalName::Lcp,
                    value: 1200.0,
                    delta: 1200.0,
                    id: "v1".into(),
                    rating: VitalName::Lcp.rate(1200.0),
                    navigation_type: None,
                    time: Some(900.0),
                    target: None,
                    attribution: Vec::new(),
                }),
                RumEvent::Error(ErrorEvent {
                    time: 950.0,
                    error_type: Some("TypeError".into()),
                    message: Some("boom".into()),
                    ..ErrorEvent::default()
                }),
            ],
            rejected: Vec::new(),
        };
        batch.context.browser.mobile = Some(true);

        processor.process_batch(&mut batch);
        let payload = convert::convert(&batch, &ConvertOptions::from(&config));
        let aggregator =
            MetricsAggregator::new(&MetricsConfig::default(), bridge_resource("r", []));
        aggregator.record_batch(&batch);
        let metrics = aggregator
            .flush(1_700_000_002_000_000_000)
            .expect("metrics");

        let resources = payload
            .spans
            .iter()
            .map(|r| r.resource.as_ref())
            .chain(payload.logs.iter().map(|r| r.resource.as_ref()));
        let mut signals = 0;
        for resource in resources {
            assert_eq!(device_class(&resource.unwrap().attributes), Some("tablet"));
            signals += 1;
        }
        assert!(!payload.spans.is_empty() && !payload.logs.is_empty());
        assert!(signals >= 2);

        let mut points = 0;
        for metric in &metrics.scope_metrics[0].metrics {
            if !metric.name.starts_with("browser.web_vital.") {
                continue;
            }
            let Some(metric::Data::Histogram(histogram)) = &metric.data else {
                panic!("{} is not a histogram", metric.name);
            };
            for point in &histogram.data_points {
                assert_eq!(device_class(&point.attributes), Some("tablet"));
                points += 1;
            }
        }
        assert_eq!(points, 1);
    }
}
