//! Decoding a Faro payload into the RUM model (docs/faro-mapping.md).

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::items::{Items, Section};
use super::{meta, traces};
use crate::config::{FaroCompat, LimitsConfig};
use crate::model::faro_contrib::FaroRecords;
use crate::model::{Reason, Rejected, RumBatch, RumEvent};
use crate::receive::body::{nesting_exceeds, MAX_JSON_DEPTH};
use crate::receive::lenient;

/// Why a whole Faro body was refused (`400`).
#[derive(Debug, thiserror::Error)]
pub enum FaroError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("the body must be a Faro payload (a JSON object with `meta`, `logs`, …), got {found}")]
    WrongShape { found: &'static str },
    #[error(
        "{count} items in one batch, more than twice max_events_per_batch ({max}); \
         send smaller batches"
    )]
    TooManyItems { count: usize, max: usize },
    #[error("JSON is nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
}

impl FaroError {
    /// Low-cardinality token for the `items_rejected` counter.
    pub fn reason(&self) -> Reason {
        match self {
            FaroError::InvalidJson(_) => Reason::InvalidJson,
            FaroError::WrongShape { .. } => Reason::WrongShape,
            FaroError::TooManyItems { .. } => Reason::TooManyItems,
            FaroError::TooDeep => Reason::TooDeep,
        }
    }
}

/// A decoded Faro payload.
#[derive(Debug, Default)]
pub struct FaroBatch {
    /// Logs, exceptions, measurements and events in the model, with `meta` as the context.
    /// Times are Unix epoch ms (`time_origin_ms` = 0). `app.name` is `meta.app.name`; the edge
    /// replaces it for configured apps.
    pub batch: RumBatch,
    /// The spans of the embedded OTLP export (`traces`), ids as sent, not yet enriched.
    pub resource_spans: Vec<ResourceSpans>,
    pub span_count: usize,
    /// Whether the batch reports the page's navigation (`faro.performance.navigation`).
    pub has_navigation: bool,
    /// The latest item timestamp (Unix epoch ms).
    pub newest_ms: Option<f64>,
    /// The items in collector-contrib's shape, with `compat = "faro-contrib"`
    /// (`convert::faro_contrib`); not yet scrubbed.
    pub contrib: Option<FaroRecords>,
}

#[derive(Deserialize)]
struct Sections<'a> {
    #[serde(borrow, default)]
    meta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logs: Option<&'a RawValue>,
    #[serde(borrow, default)]
    exceptions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    measurements: Option<&'a RawValue>,
    #[serde(borrow, default)]
    events: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traces: Option<&'a RawValue>,
}

/// Decodes a Faro payload (docs/faro-mapping.md).
///
/// The whole body is refused only when it is not a JSON object or holds more than twice
/// `limits.max_events_per_batch` items; otherwise bad parts are dropped and listed in
/// `batch.rejected`: items beyond `max_events_per_batch` (counted across all arrays and the
/// embedded spans), items that are not objects, a section that is not an array.
/// `received_at_ms` stamps items that have no readable timestamp. With
/// [`FaroCompat::FaroContrib`] the kept items are also returned in contrib's shape.
pub fn decode(
    body: &[u8],
    limits: &LimitsConfig,
    received_at_ms: f64,
    compat: FaroCompat,
) -> Result<FaroBatch, FaroError> {
    if let Some(found) = lenient::json_type(body).filter(|t| *t != "an object") {
        return Err(FaroError::WrongShape { found });
    }
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(FaroError::TooDeep);
    }
    let sections: Sections = serde_json::from_slice(body)?;
    let max = limits.max_events_per_batch;
    let mut rejected = Vec::new();
    let mut batch = RumBatch::default();
    let extras = match sections.meta {
        None => Default::default(),
        Some(raw) => match lenient::object::<meta::Meta>(raw) {
            Ok(meta) => meta.apply(&mut batch.context),
            Err(e) => {
                rejected.push(Rejected {
                    reason: Reason::InvalidMeta,
                    detail: format!("meta: {e}"),
                });
                Default::default()
            }
        },
    };
    let mut items = Items::new(limits, received_at_ms, extras);
    items.rejected = rejected;
    let contrib_meta = (compat == FaroCompat::FaroContrib).then(|| {
        items.contrib = Some(Vec::new());
        sections
            .meta
            .and_then(|raw| lenient::object::<meta::ContribMeta>(raw).ok())
            .map(meta::ContribMeta::into_meta)
            .unwrap_or_default()
    });
    let mut seen = 0usize;
    for (section, raw) in [
        (Section::Logs, sections.logs),
        (Section::Exceptions, sections.exceptions),
        (Section::Measurements, sections.measurements),
        (Section::Events, sections.events),
    ] {
        let Some(raw) = raw else { continue };
        match lenient::items(raw, max.saturating_sub(seen)) {
            Ok(list) => {
                seen += list.kept.len() + list.overflow;
                for (index, item) in list.kept.into_iter().enumerate() {
                    items.add(section, index, item);
                }
            }
            Err(e) => items.rejected.push(Rejected {
                reason: Reason::InvalidSection,
                detail: format!("{}: {e}", section.name()),
            }),
        }
    }
    let mut spans = traces::Decoded::default();
    if let Some(raw) = sections.traces {
        spans = traces::decode(
            raw,
            max.saturating_sub(seen),
            &traces::decoded_budget(limits),
            &mut items.rejected,
        );
        seen += spans.spans + spans.overflow;
    }
    if seen > max {
        if seen - max > max {
            return Err(FaroError::TooManyItems { count: seen, max });
        }
        items.rejected.extend((max..seen).map(|index| Rejected {
            reason: Reason::TooManyItems,
            detail: format!("item {index}: beyond max_events_per_batch ({max})"),
        }));
    }

    let Items {
        events,
        rejected,
        server_trace,
        navigation_id,
        referenced_navigation_id,
        newest_ms,
        contrib,
        ..
    } = items.finish();
    let ctx = &mut batch.context;
    ctx.server_trace = server_trace;
    if ctx.page_view_id.is_none() {
        ctx.page_view_id = navigation_id.or(referenced_navigation_id);
    }
    let has_navigation = events.iter().any(|e| matches!(e, RumEvent::PageLoad(_)));
    batch.events = events;
    batch.rejected = rejected;
    Ok(FaroBatch {
        batch,
        resource_spans: spans.resource_spans,
        span_count: spans.spans,
        has_navigation,
        newest_ms,
        contrib: contrib
            .zip(contrib_meta)
            .map(|(records, meta)| FaroRecords { records, meta }),
    })
}
