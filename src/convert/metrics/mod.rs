//! The metric aggregator: web vitals, browser HTTP calls, page views and errors → OTLP metrics.
//!
//! Backends answer "what share of page views had a poor LCP on `/products/{id}` this week" from
//! histograms, not from millions of single `browser.web_vital` events. So the bridge folds what
//! every beacon carries into a few series and flushes them every interval (docs/otlp-mapping.md,
//! "Metrics").
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
//! **Buckets.** Vital histograms use the bounds of docs/otlp-mapping.md, "Web-vital
//! histograms", which contain each Google threshold exactly; OTLP buckets are upper-bound inclusive, like web-vitals' rating rule, so the
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
//!
//! The parts, one file each: `descriptors` (what is reported: names, units, attribute keys,
//! bucket bounds), `aggregator` ([`MetricsAggregator`]: record and flush), `instrument` (one
//! metric's series, the cardinality cap, points per temporality), `reservoir` (exemplars),
//! `key` (series keys), `labels` (attribute values read from the page context and the event)
//! and `resource` ([`bridge_resource`]).

mod aggregator;
mod descriptors;
mod instrument;
mod key;
mod labels;
mod reservoir;
mod resource;

pub use aggregator::{ErrorGroups, MetricsAggregator};
pub use resource::bridge_resource;
