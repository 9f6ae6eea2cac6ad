//! Decoder for the native beacon format, version 1.
//!
//! The native format is what our loader (`/rum.js`) sends, and what other clients (mobile apps,
//! server-rendered pages, Google `web-vitals` users) can send: one JSON object with the context
//! shared by all its events plus the list of events. It is specified for clients in
//! `docs/beacon-format.md` and `schema/rum-beacon-v1.schema.json`; this module is the reference
//! reader. A Google `web-vitals` `Metric` is accepted as-is: as an event, as the whole body, or
//! as a bare array of them (the two patterns of the web-vitals README).
//!
//! Decoding is lenient per item: a wrong event is dropped and recorded in
//! [`RumBatch::rejected`], the others are kept. Only whole-body problems are a [`NativeError`].
//! It is single-pass over the body, borrowing strings where it can (see [`crate::receive::lenient`]): a page-load
//! beacon is on the hot path of the bridge.

mod context;
mod events;
#[cfg(test)]
mod tests;
mod timing;
mod web_vitals;

use std::borrow::Cow;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use serde::Deserialize;

use crate::config::LimitsConfig;
use crate::model::trace_context::{parse_span_id, parse_trace_id};
use crate::model::{
    AttrValue, Attributes, BrowserInfo, CustomEvent, ErrorEvent, HttpCall, Interaction, LogEvent,
    NavigationTiming, PageContext, PageLoad, Rating, Reason, Rejected, ResourceTiming, RumBatch,
    RumEvent, Severity, SpanRef, TraceContext, VitalName, WebVital,
};
use crate::receive::body::nesting_exceeds;
use crate::receive::lenient::containers::MAX_KEY_LEN;

use crate::receive::lenient::{
    bounded, take, Any, Expect, Flag, Found, Lenient, List, Num, Problem, Text, UInt,
};
use context::*;
use events::*;
use timing::*;
use web_vitals::{Attribution, AttributionObj, EntryStarts};

/// The format version this decoder reads (`"v": 1`).
pub const FORMAT_VERSION: u32 = 1;
/// Deepest array/object nesting accepted in a body.
pub use crate::receive::body::MAX_JSON_DEPTH as MAX_DEPTH;
/// Most attributes kept per `attrs` object; the rest are skipped and counted as dropped.
pub const MAX_ATTRIBUTES: usize = 64;
/// Most entries kept in the small context lists (`br.brands`, `consent`).
const MAX_LIST_ITEMS: usize = 32;
/// `sdk.name` given to bare web-vitals bodies, which do not name their sender.
const WEB_VITALS_SDK: &str = "web-vitals";

/// Why a whole body was refused (the edge answers `400` with the message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NativeError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("JSON is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error(
        "body must be a beacon object, a web-vitals metric object or an array of metrics, \
         got {found}"
    )]
    WrongShape { found: &'static str },
    #[error("`ev` must be an array of events, got {found}")]
    EventsNotArray { found: &'static str },
    #[error("unsupported beacon version `v` = {found}; this bridge reads version 1")]
    UnsupportedVersion { found: String },
    #[error(
        "`t0` (performance.timeOrigin in Unix epoch ms) must be a non-negative number, got {found}"
    )]
    InvalidTimeOrigin { found: String },
    #[error(
        "{count} events in one beacon, more than twice max_events_per_batch ({max}); \
         send smaller batches"
    )]
    TooManyEvents { count: usize, max: usize },
}

impl NativeError {
    /// Low-cardinality token for the `items_rejected` counter.
    pub fn reason(&self) -> Reason {
        match self {
            NativeError::InvalidJson(_) => Reason::InvalidJson,
            NativeError::TooDeep => Reason::TooDeep,
            NativeError::WrongShape { .. } | NativeError::EventsNotArray { .. } => {
                Reason::WrongShape
            }
            NativeError::UnsupportedVersion { .. } => Reason::UnsupportedVersion,
            NativeError::InvalidTimeOrigin { .. } => Reason::InvalidTimeOrigin,
            NativeError::TooManyEvents { .. } => Reason::TooManyItems,
        }
    }
}

/// Decodes a native beacon, a bare web-vitals `Metric`, or a bare array of events/metrics.
///
/// `context.app.name` and `context.received_at_ms` are left for the edge to fill.
pub fn decode(body: &[u8], limits: &LimitsConfig) -> Result<RumBatch, NativeError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        NativeError::InvalidJson(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    if nesting_exceeds(body, MAX_DEPTH) {
        return Err(NativeError::TooDeep);
    }
    let ctx = Ctx {
        max_len: limits.max_attribute_value_len,
        max_events: limits.max_events_per_batch,
        max_resources: limits.max_resources_per_page_load,
    };
    let mut sink = Sink::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let shape = Any(Body {
        ctx: &ctx,
        sink: &mut sink,
    })
    .deserialize(&mut de)
    .and_then(|shape| de.end().map(|()| shape))
    .map_err(|e| NativeError::InvalidJson(e.to_string()))?;

    let mut context = match shape {
        Lenient::Value(Shape::Array) => PageContext {
            sdk_name: Some(WEB_VITALS_SDK.to_owned()),
            ..PageContext::default()
        },
        Lenient::Value(Shape::Object(top)) => top.finish(&ctx, &mut sink)?,
        Lenient::Bad(found) => {
            return Err(NativeError::WrongShape {
                found: found.describe(),
            })
        }
        Lenient::Absent => return Err(NativeError::WrongShape { found: "null" }),
    };

    let excess = sink.seen.saturating_sub(ctx.max_events);
    if excess > 0 {
        if excess > ctx.max_events {
            return Err(NativeError::TooManyEvents {
                count: sink.seen,
                max: ctx.max_events,
            });
        }
        sink.rejected
            .extend((ctx.max_events..sink.seen).map(|index| Rejected {
                reason: Reason::TooManyItems,
                detail: format!(
                    "event {index}: beyond max_events_per_batch ({})",
                    ctx.max_events
                ),
            }));
    }
    if context.server_trace.is_none() {
        context.server_trace = sink.hints.server_trace;
    }
    if context.page_url.is_none() {
        context.page_url = sink.hints.page_url;
    }
    Ok(RumBatch {
        context,
        events: sink.events,
        rejected: sink.rejected,
    })
}

/// The limits the decoder applies while reading.
struct Ctx {
    max_len: usize,
    max_events: usize,
    max_resources: usize,
}

impl Ctx {
    /// An owned string, truncated to the attribute value limit.
    fn s(&self, v: Cow<'_, str>) -> String {
        bounded(v, self.max_len)
    }

    fn opt(&self, v: Option<Cow<'_, str>>) -> Option<String> {
        v.map(|v| self.s(v))
    }
}

/// Where decoded events go while the body is read.
#[derive(Default)]
struct Sink {
    events: Vec<RumEvent>,
    rejected: Vec<Rejected>,
    /// Items met so far in the whole body, those beyond `max_events_per_batch` (skipped
    /// unread) included: the cap holds even if `ev` is repeated.
    seen: usize,
    /// Context recovered from web-vitals attribution, used where the beacon gave none.
    hints: Hints,
}

#[derive(Default)]
struct Hints {
    server_trace: Option<TraceContext>,
    page_url: Option<String>,
}

impl Sink {
    /// Converts one read item into an event, or records why it was rejected.
    fn accept(&mut self, item: Lenient<RawEvent<'_>>, ctx: &Ctx, in_beacon: bool) {
        let index = self.seen;
        self.seen += 1;
        let raw = match item {
            Lenient::Value(raw) => raw,
            Lenient::Bad(found) => {
                return self.reject(
                    Reason::NotAnObject,
                    index,
                    None,
                    format!("must be an object, got {}", found.describe()),
                )
            }
            Lenient::Absent => {
                return self.reject(
                    Reason::NotAnObject,
                    index,
                    None,
                    "must be an object, got null",
                )
            }
        };
        // Borrowed from the body (copied only if `type` had escapes), for the detail.
        let kind = raw.kind.clone();
        match raw.finish(ctx, in_beacon, &mut self.hints) {
            Ok(event) => self.events.push(event),
            Err((reason, message)) => {
                let kind = kind.map(|k| bounded(k, 32));
                self.reject(reason, index, kind.as_deref(), message)
            }
        }
    }

    fn reject(
        &mut self,
        reason: Reason,
        index: usize,
        kind: Option<&str>,
        message: impl std::fmt::Display,
    ) {
        let detail = match kind {
            Some(kind) => format!("event {index} ({kind}): {message}"),
            None => format!("event {index}: {message}"),
        };
        self.rejected.push(Rejected { reason, detail });
    }
}

/// Keys of the beacon object and of events. One enum, because a bare web-vitals body is both:
/// its top-level object carries context keys and the metric's own keys side by side.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(field_identifier, rename_all = "camelCase")]
enum Key {
    // Context (top level only).
    V,
    K,
    Sid,
    Pvid,
    Ref,
    Ua,
    Br,
    Uid,
    Sdk,
    AppVersion,
    Load,
    T0,
    Sent,
    Consent,
    Smp,
    Ev,
    // Top level (page) and events (request, attributes) alike.
    Url,
    ServerTp,
    Attrs,
    // Events.
    Type,
    Name,
    Value,
    Delta,
    Id,
    Rating,
    NavigationType,
    #[serde(rename = "navigationURL")]
    NavigationUrl,
    NavigationStartTime,
    Entries,
    Attribution,
    Time,
    Start,
    Dur,
    Target,
    InputDelay,
    ProcessingDuration,
    PresentationDelay,
    Trace,
    Span,
    Parent,
    Method,
    Status,
    Initiator,
    Error,
    ReqSize,
    ResSize,
    Timing,
    Message,
    Stack,
    Handled,
    Level,
    Nav,
    Res,
    #[serde(other)]
    Other,
}

/// What the body turned out to be.
enum Shape<'de> {
    /// A bare array: its items were read as events straight into the sink.
    Array,
    /// A beacon object or a bare event (a web-vitals metric).
    Object(Box<TopLevel<'de>>),
}

struct Body<'a> {
    ctx: &'a Ctx,
    sink: &'a mut Sink,
}

impl<'de> Expect<'de> for Body<'_> {
    type Out = Shape<'de>;
    const EXPECTED: &'static str = "a beacon object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Shape<'de>>, A::Error> {
        let Body { ctx, sink } = self;
        let mut top = Box::<TopLevel>::default();
        // Context fields are best effort: a wrong type only drops that field.
        let mut ignored = None;
        let c = &mut top.context;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::V => top.version = Some(map.next_value_seed(Any(Num))?),
                Key::T0 => top.time_origin = Some(map.next_value_seed(Any(Num))?),
                Key::Ev => {
                    let events = Events {
                        ctx,
                        sink: &mut *sink,
                        in_beacon: true,
                    };
                    top.events = Some(map.next_value_seed(Any(events))?);
                }
                Key::K => c.app.key = ctx.opt(take(&mut map, Text, "k", &mut ignored)?),
                Key::Sid => c.session_id = ctx.opt(take(&mut map, Text, "sid", &mut ignored)?),
                Key::Pvid => c.page_view_id = ctx.opt(take(&mut map, Text, "pvid", &mut ignored)?),
                Key::Url => c.page_url = ctx.opt(take(&mut map, Text, "url", &mut ignored)?),
                Key::Ref => c.referrer = ctx.opt(take(&mut map, Text, "ref", &mut ignored)?),
                Key::Ua => c.user_agent = ctx.opt(take(&mut map, Text, "ua", &mut ignored)?),
                Key::Uid => c.user_id = ctx.opt(take(&mut map, Text, "uid", &mut ignored)?),
                Key::AppVersion => {
                    c.app.version = ctx.opt(take(&mut map, Text, "appVersion", &mut ignored)?)
                }
                Key::Br => {
                    let browser = take(&mut map, BrowserObj { ctx }, "br", &mut ignored)?;
                    c.browser = browser.unwrap_or_default();
                }
                Key::Sdk => {
                    if let Some((name, version)) =
                        take(&mut map, SdkObj { ctx }, "sdk", &mut ignored)?
                    {
                        c.sdk_name = name;
                        c.sdk_version = version;
                    }
                }
                Key::ServerTp => {
                    c.server_trace = take(&mut map, Text, "serverTp", &mut ignored)?
                        .and_then(|tp| TraceContext::parse_traceparent(&tp).ok());
                }
                Key::Load => c.page_span = take(&mut map, SpanIds, "load", &mut ignored)?.flatten(),
                Key::Sent => c.sent_at_ms = take(&mut map, Num, "sent", &mut ignored)?,
                Key::Smp => c.sampled = take(&mut map, Flag, "smp", &mut ignored)?,
                Key::Consent => {
                    c.consent = take(&mut map, list(TextItem { ctx }), "consent", &mut ignored)?
                }
                Key::Attrs => {
                    let attrs = take(&mut map, Attrs { ctx }, "attrs", &mut ignored)?;
                    let attrs = attrs.unwrap_or_default();
                    c.attributes = attrs.kept;
                    c.dropped_attributes = attrs.dropped;
                }
                // Anything else may be a key of a bare web-vitals metric.
                key => event_field(&mut top.bare, key, &mut map, ctx)?,
            }
        }
        Ok(Lenient::Value(Shape::Object(top)))
    }

    fn array<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient<Shape<'de>>, A::Error> {
        let events = Events {
            ctx: self.ctx,
            sink: self.sink,
            in_beacon: false,
        };
        events.array(seq)?;
        Ok(Lenient::Value(Shape::Array))
    }
}

/// The top-level object as read: context, plus what decides how to interpret it.
#[derive(Default)]
struct TopLevel<'de> {
    context: PageContext,
    version: Option<Lenient<f64>>,
    time_origin: Option<Lenient<f64>>,
    /// `ev`, when present (its events are already in the sink).
    events: Option<Lenient<()>>,
    /// The object read as one event, used when it is not a beacon (no `v`, no `ev`).
    bare: RawEvent<'de>,
}

impl TopLevel<'_> {
    /// Checks the whole-body fields and returns the context; reads the object as a bare event
    /// when it is not a beacon.
    fn finish(self, ctx: &Ctx, sink: &mut Sink) -> Result<PageContext, NativeError> {
        let TopLevel {
            mut context,
            version,
            time_origin,
            events,
            bare,
        } = self;
        match version {
            None | Some(Lenient::Absent) => {}
            Some(Lenient::Value(v)) if v == f64::from(FORMAT_VERSION) => {}
            Some(Lenient::Value(v)) => {
                return Err(NativeError::UnsupportedVersion {
                    found: v.to_string(),
                })
            }
            Some(Lenient::Bad(found)) => {
                return Err(NativeError::UnsupportedVersion {
                    found: found.describe().to_owned(),
                })
            }
        }
        match time_origin {
            None | Some(Lenient::Absent) => {}
            Some(Lenient::Value(t0)) if t0 >= 0.0 => context.time_origin_ms = t0,
            Some(Lenient::Value(t0)) => {
                return Err(NativeError::InvalidTimeOrigin {
                    found: t0.to_string(),
                })
            }
            Some(Lenient::Bad(found)) => {
                return Err(NativeError::InvalidTimeOrigin {
                    found: found.describe().to_owned(),
                })
            }
        }
        if let Some(Lenient::Bad(found)) = events {
            return Err(NativeError::EventsNotArray {
                found: found.describe(),
            });
        }
        let is_beacon = matches!(version, Some(Lenient::Value(_))) || events.is_some();
        if !is_beacon {
            // Web-vitals times are relative to performance.timeOrigin: usable only with `t0`.
            let has_origin = matches!(time_origin, Some(Lenient::Value(_)));
            if sink.seen < ctx.max_events {
                sink.accept(Lenient::Value(bare), ctx, has_origin);
            } else {
                sink.seen += 1;
            }
            if context.sdk_name.is_none() {
                context.sdk_name = Some(WEB_VITALS_SDK.to_owned());
            }
        }
        Ok(context)
    }
}
