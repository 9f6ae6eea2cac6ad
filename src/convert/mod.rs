//! Convert: the RUM model → OTLP spans and log records (docs/architecture.md#correlation, docs/otlp-mapping.md).
//!
//! One [`RumBatch`] becomes at most one `ResourceSpans` and one `ResourceLogs`, both with the
//! resource of [`resource::build_resource`] and the instrumentation scope `rum-bridge` (the
//! crate version). Correlation is decided here:
//!
//! - **Page load** → `documentLoad` (INTERNAL, the root of the page view) with `documentFetch`
//!   and one `resourceFetch` per resource entry as children. Its ids are the client's, or
//!   derived deterministically ([`ids`]) so every beacon of a page view agrees. In
//!   `correlation.page_load = "child"` mode it joins the server trace with the server span as
//!   remote parent (`Span.flags` = `0x300 | trace flags`); in `"link"` mode it starts a new
//!   trace with an OTLP Link to the server span.
//! - **HTTP calls** → CLIENT spans with exactly the ids the browser put in `traceparent`.
//! - **Interactions** → INTERNAL spans; outside the page trace they start a trace of their own
//!   with a Link to `documentLoad`.
//! - **Errors, vitals, console logs, custom events** → log records (events) carrying the trace
//!   and span id of the active span, or of `documentLoad`.
//!
//! Attributes every span and log record carries (bridge-defined names marked †):
//!
//! | attribute | value |
//! | --- | --- |
//! | `session.id` | the browser session (semconv) |
//! | `browser.page_view.id` † | the page view (one document lifetime / SPA view) |
//! | `browser.document.url.full` | the page URL (semconv `browser.document` entity) |
//! | `user.id` | the (hashed) user id, when the client set one |
//! | `rum.clock_skew_ms` † | how far the bridge shifted browser times (ms), when it did |
//!
//! String values are truncated to `limits.max_attribute_value_len` bytes (on a character
//! boundary, `0` = no limit); non-finite numbers are dropped.

pub mod attrs;
pub mod embedded;
pub mod faro_contrib;
pub mod ids;
pub mod logs;
pub mod metrics;
pub mod resource;
pub mod spans;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use crate::config::{Config, LimitsConfig, PageLoadCorrelation};
use crate::handoff::Payload;
use crate::model::{PageContext, RumBatch, RumEvent};
use attrs::AttrList;
pub use ids::{page_span, PageSpan};

pub use crate::model::semconv::{
    CLOCK_SKEW_MS as ATTR_CLOCK_SKEW_MS, DOCUMENT_URL as ATTR_DOCUMENT_URL,
    PAGE_VIEW_ID as ATTR_PAGE_VIEW_ID, SESSION_ID as ATTR_SESSION_ID, USER_ID as ATTR_USER_ID,
};

/// Instrumentation scope name of everything the bridge converts.
pub const SCOPE_NAME: &str = "rum-bridge";

/// What the converter needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertOptions {
    pub page_load: PageLoadCorrelation,
    /// Longest string attribute value kept, in bytes (`0` = no limit).
    pub max_attribute_value_len: usize,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            page_load: PageLoadCorrelation::default(),
            max_attribute_value_len: LimitsConfig::default().max_attribute_value_len,
        }
    }
}

impl From<&Config> for ConvertOptions {
    fn from(config: &Config) -> Self {
        Self {
            page_load: config.correlation.page_load,
            max_attribute_value_len: config.limits.max_attribute_value_len,
        }
    }
}

/// Converts one batch into OTLP spans and log records (metrics are aggregated elsewhere).
/// Returns an empty payload when nothing in the batch maps to a span or a log record.
pub fn convert(batch: &RumBatch, opts: &ConvertOptions) -> Payload {
    convert_signals(batch, opts, true)
}

/// [`convert`] without the log records, for callers that export the batch's logs in another
/// shape ([`faro_contrib`]).
pub fn convert_spans_only(batch: &RumBatch, opts: &ConvertOptions) -> Payload {
    convert_signals(batch, opts, false)
}

fn convert_signals(batch: &RumBatch, opts: &ConvertOptions, with_logs: bool) -> Payload {
    let cx = BatchContext::new(batch, opts);
    let spans = spans::convert_spans(&cx);
    let logs = if with_logs {
        logs::convert_logs(&cx)
    } else {
        Vec::new()
    };
    if spans.is_empty() && logs.is_empty() {
        return Payload::default();
    }
    let mut resource = resource::build_resource(&batch.context);
    attrs::truncate_values(&mut resource.attributes, opts.max_attribute_value_len);
    let mut payload = Payload::default();
    if !spans.is_empty() {
        payload.spans.push(ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    }
    if !logs.is_empty() {
        payload.logs.push(ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: logs,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    }
    payload
}

/// The instrumentation scope of everything the bridge converts.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

/// Converts Unix epoch milliseconds to nanoseconds, keeping sub-millisecond precision.
/// Non-finite or negative input gives 0.
pub fn epoch_ms_to_nanos(ms: f64) -> u64 {
    if !ms.is_finite() || ms < 0.0 {
        return 0;
    }
    // Split so the sub-millisecond part keeps its precision (epoch ns exceed f64's 53 bits).
    let whole = ms.trunc();
    let frac_ns = ((ms - whole) * 1_000_000.0).round() as u64;
    (whole as u64)
        .saturating_mul(1_000_000)
        .saturating_add(frac_ns)
}

/// Everything the span and log converters share for one batch, computed once.
pub(crate) struct BatchContext<'a> {
    pub ctx: &'a PageContext,
    pub events: &'a [RumEvent],
    pub opts: &'a ConvertOptions,
    /// The page view's `documentLoad` span and its relation to the server span.
    pub page: PageSpan,
    /// Attributes every span and log record carries.
    pub common: Vec<KeyValue>,
    /// End of the page load (relative ms), when the batch reports the navigation: calls that
    /// start before it belong to the page-load trace.
    pub page_load_end: Option<f64>,
}

impl<'a> BatchContext<'a> {
    pub fn new(batch: &'a RumBatch, opts: &'a ConvertOptions) -> Self {
        let ctx = &batch.context;
        let mut common = AttrList::with_capacity(5, opts.max_attribute_value_len);
        common.opt_str(ATTR_SESSION_ID, ctx.session_id.as_deref());
        common.opt_str(ATTR_PAGE_VIEW_ID, ctx.page_view_id.as_deref());
        common.opt_str(ATTR_DOCUMENT_URL, ctx.page_url.as_deref());
        common.opt_str(ATTR_USER_ID, ctx.user_id.as_deref());
        common.opt_float(ATTR_CLOCK_SKEW_MS, ctx.clock_skew_ms);
        let page_load_end = batch.events.iter().find_map(|e| match e {
            RumEvent::PageLoad(pl) => Some(spans::document_load_bounds(&pl.navigation).1),
            _ => None,
        });
        Self {
            ctx,
            events: &batch.events,
            opts,
            page: PageSpan::resolve(ctx, opts.page_load),
            common: common.into_vec(),
            page_load_end,
        }
    }

    /// A new attribute list starting with the common attributes, with room for `extra` more.
    pub fn attrs(&self, extra: usize) -> AttrList {
        AttrList::from_base(&self.common, extra, self.opts.max_attribute_value_len)
    }

    /// Epoch nanoseconds of a time relative to the (skew-corrected) time origin.
    pub fn nanos(&self, rel_ms: f64) -> u64 {
        self.ctx.unix_nanos(rel_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ErrorEvent, Interaction};

    #[test]
    fn options_from_config() {
        let mut config = Config::default();
        config.correlation.page_load = PageLoadCorrelation::Link;
        config.limits.max_attribute_value_len = 100;
        let opts = ConvertOptions::from(&config);
        assert_eq!(opts.page_load, PageLoadCorrelation::Link);
        assert_eq!(opts.max_attribute_value_len, 100);
    }

    #[test]
    fn empty_batch_gives_empty_payload() {
        assert!(convert(&RumBatch::default(), &ConvertOptions::default()).is_empty());
    }

    #[test]
    fn one_resource_and_scope_per_signal() {
        let batch = RumBatch {
            context: PageContext {
                session_id: Some("s".into()),
                time_origin_ms: 1_700_000_000_000.0,
                received_at_ms: 1_700_000_005_000.0,
                ..Default::default()
            },
            events: vec![
                RumEvent::Interaction(Interaction {
                    kind: "click".into(),
                    ..Default::default()
                }),
                RumEvent::Error(ErrorEvent::default()),
                RumEvent::Error(ErrorEvent::default()),
            ],
            rejected: vec![],
        };
        let p = convert(&batch, &ConvertOptions::default());
        let counts = p.counts();
        assert_eq!((counts.spans, counts.logs), (1, 2));
        assert_eq!(p.spans.len(), 1);
        assert_eq!(p.logs.len(), 1);
        let scope = p.spans[0].scope_spans[0].scope.as_ref().unwrap();
        assert_eq!(scope.name, "rum-bridge");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(p.spans[0].resource, p.logs[0].resource);
        assert_eq!(
            p.logs[0].scope_logs[0].log_records[0].observed_time_unix_nano,
            1_700_000_005_000_000_000
        );
    }

    #[test]
    fn epoch_conversion_keeps_submillisecond_precision() {
        assert_eq!(
            epoch_ms_to_nanos(1_700_000_000_000.25),
            1_700_000_000_000_250_000
        );
        assert_eq!(epoch_ms_to_nanos(f64::NAN), 0);
        assert_eq!(epoch_ms_to_nanos(-5.0), 0);
    }
}
