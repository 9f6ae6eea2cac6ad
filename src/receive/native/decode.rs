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
//! It is single-pass over the body, borrowing strings where it can (see [`lenient`]): a page-load
//! beacon is on the hot path of the bridge.

mod lenient;
#[cfg(test)]
mod tests;
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

use lenient::{bounded, take, Any, Expect, Flag, Lenient, Num, Problem, Text, UInt};
use web_vitals::{Attribution, AttributionObj, EntryStarts};

/// The format version this decoder reads (`"v": 1`).
pub const FORMAT_VERSION: u32 = 1;
/// Deepest array/object nesting accepted in a body.
pub use crate::receive::body::MAX_JSON_DEPTH as MAX_DEPTH;
/// Most attributes kept per `attrs` object; the rest are ignored.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute key kept (bytes); longer keys are ignored.
const MAX_ATTRIBUTE_KEY_LEN: usize = 128;
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
                Key::Consent => {
                    c.consent = take(&mut map, List(TextItem { ctx }), "consent", &mut ignored)?
                }
                Key::Attrs => {
                    c.attributes =
                        take(&mut map, Attrs { ctx }, "attrs", &mut ignored)?.unwrap_or_default();
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

/// The event list (`ev`, or a bare array body), capped at `max_events_per_batch`.
struct Events<'a> {
    ctx: &'a Ctx,
    sink: &'a mut Sink,
    /// Inside a beacon, whose `t0` anchors web-vitals' relative times.
    in_beacon: bool,
}

impl<'de> Expect<'de> for Events<'_> {
    type Out = ();
    const EXPECTED: &'static str = "an array of events";

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<()>, A::Error> {
        loop {
            if self.sink.seen < self.ctx.max_events {
                match seq.next_element_seed(Any(EventObj { ctx: self.ctx }))? {
                    Some(item) => self.sink.accept(item, self.ctx, self.in_beacon),
                    None => break,
                }
            } else {
                match seq.next_element::<IgnoredAny>()? {
                    Some(_) => self.sink.seen += 1,
                    None => break,
                }
            }
        }
        Ok(Lenient::Value(()))
    }
}

/// One event as read: the union of every event type's fields, checked by [`RawEvent::finish`]
/// once `type` is known (it may come last).
#[derive(Default)]
struct RawEvent<'de> {
    kind: Option<Cow<'de, str>>,
    name: Option<Cow<'de, str>>,
    value: Option<f64>,
    delta: Option<f64>,
    id: Option<Cow<'de, str>>,
    rating: Option<Cow<'de, str>>,
    navigation_type: Option<Cow<'de, str>>,
    navigation_url: Option<Cow<'de, str>>,
    navigation_start_time: Option<f64>,
    /// `startTime` of the last web-vitals `entries` item.
    last_entry_start: Option<f64>,
    attribution: Option<Attribution>,
    time: Option<f64>,
    start: Option<f64>,
    dur: Option<f64>,
    target: Option<Cow<'de, str>>,
    input_delay: Option<f64>,
    processing_duration: Option<f64>,
    presentation_delay: Option<f64>,
    trace: Option<Cow<'de, str>>,
    span: Option<Cow<'de, str>>,
    parent: Option<Cow<'de, str>>,
    method: Option<Cow<'de, str>>,
    url: Option<Cow<'de, str>>,
    status: Option<u64>,
    server_tp: Option<Cow<'de, str>>,
    initiator: Option<Cow<'de, str>>,
    error: Option<Cow<'de, str>>,
    req_size: Option<u64>,
    res_size: Option<u64>,
    timing: Option<TimingEntry>,
    message: Option<Cow<'de, str>>,
    stack: Option<Cow<'de, str>>,
    handled: Option<bool>,
    level: Option<Cow<'de, str>>,
    attrs: Attributes,
    nav: Option<TimingEntry>,
    res: Vec<ResourceTiming>,
    /// The first field that had an unusable value: it makes the event rejected.
    problem: Option<Problem>,
}

struct EventObj<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for EventObj<'_> {
    type Out = RawEvent<'de>;
    const EXPECTED: &'static str = "an event object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<RawEvent<'de>>, A::Error> {
        let mut raw = RawEvent::default();
        while let Some(key) = map.next_key::<Key>()? {
            event_field(&mut raw, key, &mut map, self.ctx)?;
        }
        Ok(Lenient::Value(raw))
    }
}

/// Reads the value of one event key into `raw`.
fn event_field<'de, A: MapAccess<'de>>(
    raw: &mut RawEvent<'de>,
    key: Key,
    map: &mut A,
    ctx: &Ctx,
) -> Result<(), A::Error> {
    let p = &mut raw.problem;
    match key {
        Key::Type => raw.kind = take(map, Text, "type", p)?,
        Key::Name => raw.name = take(map, Text, "name", p)?,
        Key::Value => raw.value = take(map, Num, "value", p)?,
        Key::Delta => raw.delta = take(map, Num, "delta", p)?,
        Key::Id => raw.id = take(map, Text, "id", p)?,
        Key::Rating => raw.rating = take(map, Text, "rating", p)?,
        Key::NavigationType => raw.navigation_type = take(map, Text, "navigationType", p)?,
        Key::NavigationUrl => raw.navigation_url = take(map, Text, "navigationURL", p)?,
        Key::NavigationStartTime => {
            raw.navigation_start_time = take(map, Num, "navigationStartTime", p)?
        }
        Key::Entries => raw.last_entry_start = take(map, EntryStarts, "entries", p)?.flatten(),
        Key::Attribution => raw.attribution = take(map, AttributionObj { ctx }, "attribution", p)?,
        Key::Time => raw.time = take(map, Num, "time", p)?,
        Key::Start => raw.start = take(map, Num, "start", p)?,
        Key::Dur => raw.dur = take(map, Num, "dur", p)?,
        Key::Target => raw.target = take(map, Text, "target", p)?,
        Key::InputDelay => raw.input_delay = take(map, Num, "inputDelay", p)?,
        Key::ProcessingDuration => {
            raw.processing_duration = take(map, Num, "processingDuration", p)?
        }
        Key::PresentationDelay => raw.presentation_delay = take(map, Num, "presentationDelay", p)?,
        Key::Trace => raw.trace = take(map, Text, "trace", p)?,
        Key::Span => raw.span = take(map, Text, "span", p)?,
        Key::Parent => raw.parent = take(map, Text, "parent", p)?,
        Key::Method => raw.method = take(map, Text, "method", p)?,
        Key::Url => raw.url = take(map, Text, "url", p)?,
        Key::Status => raw.status = take(map, UInt(999), "status", p)?,
        Key::ServerTp => raw.server_tp = take(map, Text, "serverTp", p)?,
        Key::Initiator => raw.initiator = take(map, Text, "initiator", p)?,
        Key::Error => raw.error = take(map, Text, "error", p)?,
        Key::ReqSize => raw.req_size = take(map, UInt(MAX_SAFE_INTEGER), "reqSize", p)?,
        Key::ResSize => raw.res_size = take(map, UInt(MAX_SAFE_INTEGER), "resSize", p)?,
        Key::Message => raw.message = take(map, Text, "message", p)?,
        Key::Stack => raw.stack = take(map, Text, "stack", p)?,
        Key::Handled => raw.handled = take(map, Flag, "handled", p)?,
        Key::Level => raw.level = take(map, Text, "level", p)?,
        Key::Attrs => raw.attrs = take(map, Attrs { ctx }, "attrs", p)?.unwrap_or_default(),
        Key::Res => raw.res = take(map, Resources { ctx }, "res", p)?.unwrap_or_default(),
        Key::Nav => {
            raw.nav = take(map, TimingObj { ctx }, "nav", p)?;
            lift_problem(p, raw.nav.as_mut(), "nav");
        }
        Key::Timing => {
            raw.timing = take(map, TimingObj { ctx }, "timing", p)?;
            lift_problem(p, raw.timing.as_mut(), "timing");
        }
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(())
}

/// A problem inside a nested timing object is a problem of the event.
fn lift_problem(problem: &mut Option<Problem>, entry: Option<&mut TimingEntry>, key: &'static str) {
    if let Some(inner) = entry.and_then(|e| e.problem.take()) {
        problem.get_or_insert(inner.within(key));
    }
}

/// `Number.MAX_SAFE_INTEGER`: the largest size a browser reports exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why an event could not be used: (reason token, message).
type Unusable = (Reason, String);

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, Unusable> {
    value.ok_or_else(|| (Reason::MissingField, format!("`{field}` is required")))
}

/// Both ids valid, or nothing: invalid ids are ignored and the bridge makes its own.
fn span_ref(trace: Option<&str>, span: Option<&str>) -> Option<SpanRef> {
    Some(SpanRef {
        trace_id: parse_trace_id(trace?)?,
        span_id: parse_span_id(span?)?,
    })
}

impl RawEvent<'_> {
    /// Checks the fields `type` requires and builds the model event.
    fn finish(self, ctx: &Ctx, in_beacon: bool, hints: &mut Hints) -> Result<RumEvent, Unusable> {
        if let Some(problem) = self.problem {
            return Err((problem.found.reason(), problem.to_string()));
        }
        match self.kind.as_deref() {
            Some("page_load") => self.page_load(),
            Some("vital") => self.vital(ctx, in_beacon, hints),
            // No `type`: a web-vitals Metric as-is.
            None if self.value.is_some() => self.vital(ctx, in_beacon, hints),
            None => Err((
                Reason::UnknownType,
                "has no `type` and is not a web-vitals metric".to_owned(),
            )),
            Some("interaction") => self.interaction(ctx),
            Some("http") => self.http(ctx),
            Some("error") => self.error(ctx),
            Some("log") => self.log(ctx),
            Some("custom") => self.custom(ctx),
            Some(other) => Err((
                Reason::UnknownType,
                format!("unknown type `{}`", bounded(Cow::Borrowed(other), 32)),
            )),
        }
    }

    fn page_load(self) -> Result<RumEvent, Unusable> {
        let nav = required(self.nav, "nav")?;
        Ok(RumEvent::PageLoad(PageLoad {
            navigation: nav.nav,
            resources: self.res,
        }))
    }

    fn vital(self, ctx: &Ctx, in_beacon: bool, hints: &mut Hints) -> Result<RumEvent, Unusable> {
        let name_text = required(self.name, "name")?;
        let name = VitalName::parse(&name_text).ok_or_else(|| {
            (
                Reason::UnsupportedVital,
                format!(
                    "vital `{}` is not supported (LCP, INP, CLS, FCP and TTFB are)",
                    bounded(name_text, 32)
                ),
            )
        })?;
        let value = required(self.value, "value")?;
        let attribution = self.attribution.unwrap_or_default();
        let time = self.time.or_else(|| {
            in_beacon
                .then(|| {
                    attribution.time(
                        name,
                        value,
                        self.navigation_start_time,
                        self.last_entry_start,
                    )
                })
                .flatten()
        });
        if let Some(tc) = attribution.server_trace {
            hints.server_trace.get_or_insert(tc);
        }
        if hints.page_url.is_none() {
            hints.page_url = ctx.opt(self.navigation_url).or(attribution.navigation_url);
        }
        let mut attributes = self.attrs;
        attributes.extend(attribution.attrs);
        Ok(RumEvent::Vital(WebVital {
            name,
            value,
            delta: self.delta.unwrap_or(value),
            id: ctx.opt(self.id).unwrap_or_default(),
            rating: self
                .rating
                .as_deref()
                .and_then(Rating::parse)
                .unwrap_or_else(|| name.rate(value)),
            navigation_type: ctx.opt(self.navigation_type),
            time,
            target: ctx.opt(self.target).or(attribution.target),
            attribution: attributes,
        }))
    }

    fn interaction(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
        Ok(RumEvent::Interaction(Interaction {
            kind: ctx.s(required(self.name, "name")?),
            target: ctx.opt(self.target),
            start: required(self.start, "start")?,
            duration: self.dur.unwrap_or(0.0),
            input_delay: self.input_delay,
            processing_duration: self.processing_duration,
            presentation_delay: self.presentation_delay,
            span: span_ref(self.trace.as_deref(), self.span.as_deref()),
            attributes: self.attrs,
        }))
    }

    fn http(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
        let initiator = self.initiator.map(|i| match i.as_ref() {
            "xhr" | "xmlhttprequest" => "xmlhttprequest".to_owned(),
            _ => ctx.s(i),
        });
        Ok(RumEvent::HttpCall(HttpCall {
            url_template: None,
            method: self.method.map_or_else(|| "GET".to_owned(), |m| ctx.s(m)),
            url: ctx.s(required(self.url, "url")?),
            // 0 is how browsers report "no response".
            status: self.status.filter(|&s| s != 0).map(|s| s as u16),
            start: required(self.start, "start")?,
            duration: self.dur.unwrap_or(0.0),
            span: span_ref(self.trace.as_deref(), self.span.as_deref()),
            parent_span_id: self.parent.as_deref().and_then(parse_span_id),
            server_trace: self
                .server_tp
                .and_then(|tp| TraceContext::parse_traceparent(&tp).ok()),
            initiator,
            error_type: ctx.opt(self.error),
            request_body_size: self.req_size,
            response_body_size: self.res_size,
            timing: self.timing.map(|t| t.nav.timing),
            attributes: self.attrs,
        }))
    }

    fn error(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
        if self.name.is_none() && self.message.is_none() {
            return Err((
                Reason::MissingField,
                "`message` or `name` is required".to_owned(),
            ));
        }
        Ok(RumEvent::Error(ErrorEvent {
            time: required(self.time, "time")?,
            error_type: ctx.opt(self.name),
            message: ctx.opt(self.message),
            stack: ctx.opt(self.stack),
            handled: self.handled.unwrap_or(false),
            active_span: span_ref(self.trace.as_deref(), self.span.as_deref()),
            attributes: self.attrs,
        }))
    }

    fn log(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
        Ok(RumEvent::Log(LogEvent {
            time: required(self.time, "time")?,
            severity: self
                .level
                .as_deref()
                .and_then(Severity::parse)
                .unwrap_or_default(),
            message: ctx.s(required(self.message, "message")?),
            active_span: span_ref(self.trace.as_deref(), self.span.as_deref()),
            attributes: self.attrs,
        }))
    }

    fn custom(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
        Ok(RumEvent::Custom(CustomEvent {
            time: required(self.time, "time")?,
            name: ctx.s(required(self.name, "name")?),
            active_span: span_ref(self.trace.as_deref(), self.span.as_deref()),
            attributes: self.attrs,
        }))
    }
}

/// Keys of a `PerformanceNavigationTiming` / `PerformanceResourceTiming` JSON (`toJSON()`), plus
/// the paint times the loader adds to the navigation entry.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(field_identifier, rename_all = "camelCase")]
enum TimingKey {
    Name,
    Type,
    InitiatorType,
    RenderBlockingStatus,
    NextHopProtocol,
    StartTime,
    Duration,
    RedirectStart,
    RedirectEnd,
    WorkerStart,
    FetchStart,
    DomainLookupStart,
    DomainLookupEnd,
    ConnectStart,
    SecureConnectionStart,
    ConnectEnd,
    RequestStart,
    ResponseStart,
    ResponseEnd,
    TransferSize,
    EncodedBodySize,
    DecodedBodySize,
    ResponseStatus,
    ServerTiming,
    UnloadEventStart,
    UnloadEventEnd,
    DomInteractive,
    DomContentLoadedEventStart,
    DomContentLoadedEventEnd,
    DomComplete,
    LoadEventStart,
    LoadEventEnd,
    RedirectCount,
    FirstPaint,
    FirstContentfulPaint,
    #[serde(other)]
    Other,
}

/// A navigation or resource timing entry as read (a resource uses the shared part).
#[derive(Default)]
struct TimingEntry {
    nav: NavigationTiming,
    initiator_type: Option<String>,
    render_blocking_status: Option<String>,
    problem: Option<Problem>,
}

impl TimingEntry {
    fn into_resource(self) -> Option<ResourceTiming> {
        Some(ResourceTiming {
            url: self.nav.url?,
            initiator_type: self.initiator_type,
            render_blocking_status: self.render_blocking_status,
            timing: self.nav.timing,
        })
    }
}

/// A timing field; absent reads as 0 ("not reached"), as in the browser's own entries.
fn zero_or<'de, A: MapAccess<'de>>(
    map: &mut A,
    field: &'static str,
    p: &mut Option<Problem>,
) -> Result<f64, A::Error> {
    Ok(take(map, Num, field, p)?.unwrap_or(0.0))
}

struct TimingObj<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for TimingObj<'_> {
    type Out = TimingEntry;
    const EXPECTED: &'static str = "a timing entry object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<TimingEntry>, A::Error> {
        let ctx = self.ctx;
        let mut e = TimingEntry::default();
        let p = &mut e.problem;
        let n = &mut e.nav;
        let t = &mut n.timing;
        let size = UInt(MAX_SAFE_INTEGER);
        while let Some(key) = map.next_key::<TimingKey>()? {
            match key {
                TimingKey::Name => n.url = ctx.opt(take(&mut map, Text, "name", p)?),
                TimingKey::Type => n.navigation_type = ctx.opt(take(&mut map, Text, "type", p)?),
                TimingKey::InitiatorType => {
                    e.initiator_type = ctx.opt(take(&mut map, Text, "initiatorType", p)?)
                }
                TimingKey::RenderBlockingStatus => {
                    e.render_blocking_status =
                        ctx.opt(take(&mut map, Text, "renderBlockingStatus", p)?)
                }
                TimingKey::NextHopProtocol => {
                    t.next_hop_protocol = ctx.opt(take(&mut map, Text, "nextHopProtocol", p)?)
                }
                TimingKey::StartTime => t.start_time = zero_or(&mut map, "startTime", p)?,
                TimingKey::Duration => t.duration = zero_or(&mut map, "duration", p)?,
                TimingKey::RedirectStart => {
                    t.redirect_start = zero_or(&mut map, "redirectStart", p)?
                }
                TimingKey::RedirectEnd => t.redirect_end = zero_or(&mut map, "redirectEnd", p)?,
                TimingKey::WorkerStart => t.worker_start = zero_or(&mut map, "workerStart", p)?,
                TimingKey::FetchStart => t.fetch_start = zero_or(&mut map, "fetchStart", p)?,
                TimingKey::DomainLookupStart => {
                    t.domain_lookup_start = zero_or(&mut map, "domainLookupStart", p)?
                }
                TimingKey::DomainLookupEnd => {
                    t.domain_lookup_end = zero_or(&mut map, "domainLookupEnd", p)?
                }
                TimingKey::ConnectStart => t.connect_start = zero_or(&mut map, "connectStart", p)?,
                TimingKey::SecureConnectionStart => {
                    t.secure_connection_start = zero_or(&mut map, "secureConnectionStart", p)?
                }
                TimingKey::ConnectEnd => t.connect_end = zero_or(&mut map, "connectEnd", p)?,
                TimingKey::RequestStart => t.request_start = zero_or(&mut map, "requestStart", p)?,
                TimingKey::ResponseStart => {
                    t.response_start = zero_or(&mut map, "responseStart", p)?
                }
                TimingKey::ResponseEnd => t.response_end = zero_or(&mut map, "responseEnd", p)?,
                TimingKey::TransferSize => {
                    t.transfer_size = take(&mut map, size, "transferSize", p)?
                }
                TimingKey::EncodedBodySize => {
                    t.encoded_body_size = take(&mut map, size, "encodedBodySize", p)?
                }
                TimingKey::DecodedBodySize => {
                    t.decoded_body_size = take(&mut map, size, "decodedBodySize", p)?
                }
                TimingKey::ResponseStatus => {
                    t.response_status = take(&mut map, UInt(999), "responseStatus", p)?
                        .filter(|&s| s != 0)
                        .map(|s| s as u16)
                }
                TimingKey::ServerTiming => {
                    t.server_trace = take(&mut map, ServerTiming, "serverTiming", p)?.flatten()
                }
                TimingKey::UnloadEventStart => {
                    n.unload_event_start = zero_or(&mut map, "unloadEventStart", p)?
                }
                TimingKey::UnloadEventEnd => {
                    n.unload_event_end = zero_or(&mut map, "unloadEventEnd", p)?
                }
                TimingKey::DomInteractive => {
                    n.dom_interactive = zero_or(&mut map, "domInteractive", p)?
                }
                TimingKey::DomContentLoadedEventStart => {
                    n.dom_content_loaded_event_start =
                        zero_or(&mut map, "domContentLoadedEventStart", p)?
                }
                TimingKey::DomContentLoadedEventEnd => {
                    n.dom_content_loaded_event_end =
                        zero_or(&mut map, "domContentLoadedEventEnd", p)?
                }
                TimingKey::DomComplete => n.dom_complete = zero_or(&mut map, "domComplete", p)?,
                TimingKey::LoadEventStart => {
                    n.load_event_start = zero_or(&mut map, "loadEventStart", p)?
                }
                TimingKey::LoadEventEnd => n.load_event_end = zero_or(&mut map, "loadEventEnd", p)?,
                TimingKey::RedirectCount => {
                    n.redirect_count = take(&mut map, UInt(u32::MAX.into()), "redirectCount", p)?
                        .map_or(0, |c| c as u32)
                }
                TimingKey::FirstPaint => n.first_paint = take(&mut map, Num, "firstPaint", p)?,
                TimingKey::FirstContentfulPaint => {
                    n.first_contentful_paint = take(&mut map, Num, "firstContentfulPaint", p)?
                }
                TimingKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(e))
    }
}

/// The `res` list: keeps the `max_resources_per_page_load` longest entries, in start order.
/// Entries that are not objects, have no `name` or have a wrong field are skipped: a resource is
/// detail of its page load, not an item of its own.
struct Resources<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for Resources<'_> {
    type Out = Vec<ResourceTiming>;
    const EXPECTED: &'static str = "an array of resource timing entries";

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<Self::Out>, A::Error> {
        let cap = self.ctx.max_resources;
        let mut kept: Vec<ResourceTiming> = Vec::new();
        let mut trimmed = false;
        while let Some(item) = seq.next_element_seed(Any(TimingObj { ctx: self.ctx }))? {
            let Lenient::Value(entry) = item else {
                continue;
            };
            if entry.problem.is_some() {
                continue;
            }
            let Some(resource) = entry.into_resource() else {
                continue;
            };
            if kept.len() < cap {
                kept.push(resource);
                continue;
            }
            trimmed = true;
            let shortest = kept
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.timing.duration.total_cmp(&b.1.timing.duration));
            if let Some((i, r)) = shortest {
                if resource.timing.duration > r.timing.duration {
                    kept[i] = resource;
                }
            }
        }
        if trimmed {
            kept.sort_by(|a, b| a.timing.start_time.total_cmp(&b.timing.start_time));
        }
        Ok(Lenient::Value(kept))
    }
}

/// `serverTiming`: the entries of a timing entry (`[{name, duration, description}]`) or a raw
/// `Server-Timing` header value. Yields the first valid `traceparent`/`trace` entry.
struct ServerTiming;

impl<'de> Expect<'de> for ServerTiming {
    type Out = Option<TraceContext>;
    const EXPECTED: &'static str = "an array of server timing entries";

    fn text(self, v: Cow<'de, str>) -> Lenient<Self::Out> {
        Lenient::Value(crate::model::parse_server_timing(&v))
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut found = None;
        while let Some(entry) = seq.next_element_seed(Any(ServerTimingEntry))? {
            if let (None, Lenient::Value(tc)) = (found, entry) {
                found = tc;
            }
        }
        Ok(Lenient::Value(found))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum ServerTimingKey {
    Name,
    Description,
    #[serde(other)]
    Other,
}

/// One `PerformanceServerTiming` entry; a trace context when it is a trace entry.
struct ServerTimingEntry;

impl<'de> Expect<'de> for ServerTimingEntry {
    type Out = Option<TraceContext>;
    const EXPECTED: &'static str = "a server timing entry";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut ignored = None;
        let (mut name, mut description) = (None, None);
        while let Some(key) = map.next_key::<ServerTimingKey>()? {
            match key {
                ServerTimingKey::Name => name = take(&mut map, Text, "name", &mut ignored)?,
                ServerTimingKey::Description => {
                    description = take(&mut map, Text, "description", &mut ignored)?
                }
                ServerTimingKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let is_trace = name.is_some_and(|n| {
            n.eq_ignore_ascii_case("traceparent") || n.eq_ignore_ascii_case("trace")
        });
        let tc = description
            .filter(|_| is_trace)
            .and_then(|d| TraceContext::parse_traceparent(d.trim_matches('"')).ok());
        Ok(Lenient::Value(tc))
    }
}

/// `attrs`: string, number and boolean values; other values, empty or overlong keys and keys
/// beyond [`MAX_ATTRIBUTES`] are ignored.
struct Attrs<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for Attrs<'_> {
    type Out = Attributes;
    const EXPECTED: &'static str = "an object of attributes";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Attributes>, A::Error> {
        let mut out = Attributes::new();
        while let Some(key) = map.next_key_seed(Any(Text))? {
            let value = map.next_value_seed(Any(AttrVal { ctx: self.ctx }))?;
            if let (Lenient::Value(key), Lenient::Value(value)) = (key, value) {
                if out.len() < MAX_ATTRIBUTES
                    && !key.is_empty()
                    && key.len() <= MAX_ATTRIBUTE_KEY_LEN
                {
                    out.push((key.into_owned(), value));
                }
            }
        }
        Ok(Lenient::Value(out))
    }
}

struct AttrVal<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for AttrVal<'_> {
    type Out = AttrValue;
    const EXPECTED: &'static str = "a string, number or boolean";

    fn boolean(self, v: bool) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Bool(v))
    }
    fn int(self, v: i64) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Int(v))
    }
    fn float(self, v: f64) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Float(v))
    }
    fn text(self, v: Cow<'de, str>) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Str(self.ctx.s(v)))
    }
}

/// An array of `E` values, capped at [`MAX_LIST_ITEMS`]; wrong items are skipped.
struct List<E>(E);

impl<'de, E: Expect<'de> + Copy> Expect<'de> for List<E> {
    type Out = Vec<E::Out>;
    const EXPECTED: &'static str = "an array";

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(Any(self.0))? {
            if let Lenient::Value(v) = item {
                if out.len() < MAX_LIST_ITEMS {
                    out.push(v);
                }
            }
        }
        Ok(Lenient::Value(out))
    }
}

/// A string list item, truncated.
#[derive(Clone, Copy)]
struct TextItem<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for TextItem<'_> {
    type Out = String;
    const EXPECTED: &'static str = "a string";

    fn text(self, v: Cow<'de, str>) -> Lenient<String> {
        Lenient::Value(self.ctx.s(v))
    }
}

/// A UA Client Hints brand: `"Chromium 156"`, or `{"brand": "Chromium", "version": "156"}`
/// as `navigator.userAgentData.brands` holds it.
#[derive(Clone, Copy)]
struct Brand<'a> {
    ctx: &'a Ctx,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum BrandKey {
    Brand,
    Version,
    #[serde(other)]
    Other,
}

impl<'de> Expect<'de> for Brand<'_> {
    type Out = String;
    const EXPECTED: &'static str = "a brand";

    fn text(self, v: Cow<'de, str>) -> Lenient<String> {
        Lenient::Value(self.ctx.s(v))
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<String>, A::Error> {
        let mut ignored = None;
        let (mut brand, mut version) = (None, None);
        while let Some(key) = map.next_key::<BrandKey>()? {
            match key {
                BrandKey::Brand => brand = take(&mut map, Text, "brand", &mut ignored)?,
                BrandKey::Version => version = take(&mut map, Text, "version", &mut ignored)?,
                BrandKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match (brand, version) {
            (Some(b), Some(v)) => Lenient::Value(self.ctx.s(Cow::Owned(format!("{b} {v}")))),
            (Some(b), None) => Lenient::Value(self.ctx.s(b)),
            (None, _) => Lenient::Bad(lenient::Found::Object),
        })
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum BrowserKey {
    Brands,
    Platform,
    Mobile,
    Lang,
    #[serde(other)]
    Other,
}

/// `br`: browser facts.
struct BrowserObj<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for BrowserObj<'_> {
    type Out = BrowserInfo;
    const EXPECTED: &'static str = "a browser object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<BrowserInfo>, A::Error> {
        let ctx = self.ctx;
        let mut ignored = None;
        let mut b = BrowserInfo::default();
        while let Some(key) = map.next_key::<BrowserKey>()? {
            match key {
                BrowserKey::Brands => {
                    b.brands = take(&mut map, List(Brand { ctx }), "brands", &mut ignored)?
                        .unwrap_or_default()
                }
                BrowserKey::Platform => {
                    b.platform = ctx.opt(take(&mut map, Text, "platform", &mut ignored)?)
                }
                BrowserKey::Mobile => b.mobile = take(&mut map, Flag, "mobile", &mut ignored)?,
                BrowserKey::Lang => {
                    b.language = ctx.opt(take(&mut map, Text, "lang", &mut ignored)?)
                }
                BrowserKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(b))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum SdkKey {
    Name,
    Version,
    #[serde(other)]
    Other,
}

/// `sdk`: the client library's name and version.
struct SdkObj<'a> {
    ctx: &'a Ctx,
}

impl<'de> Expect<'de> for SdkObj<'_> {
    type Out = (Option<String>, Option<String>);
    const EXPECTED: &'static str = "an sdk object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut ignored = None;
        let (mut name, mut version) = (None, None);
        while let Some(key) = map.next_key::<SdkKey>()? {
            match key {
                SdkKey::Name => name = self.ctx.opt(take(&mut map, Text, "name", &mut ignored)?),
                SdkKey::Version => {
                    version = self.ctx.opt(take(&mut map, Text, "version", &mut ignored)?)
                }
                SdkKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value((name, version)))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum SpanKey {
    Trace,
    Span,
    #[serde(other)]
    Other,
}

/// `load`: `{trace, span}` of the page-load span; `None` unless both ids are valid.
struct SpanIds;

impl<'de> Expect<'de> for SpanIds {
    type Out = Option<SpanRef>;
    const EXPECTED: &'static str = "an object with `trace` and `span`";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut ignored = None;
        let (mut trace, mut span) = (None, None);
        while let Some(key) = map.next_key::<SpanKey>()? {
            match key {
                SpanKey::Trace => trace = take(&mut map, Text, "trace", &mut ignored)?,
                SpanKey::Span => span = take(&mut map, Text, "span", &mut ignored)?,
                SpanKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(span_ref(trace.as_deref(), span.as_deref())))
    }
}
