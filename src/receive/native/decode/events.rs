//! The event list and each event of a native beacon: fields read leniently into a raw
//! event, then checked and turned into a model event.

use super::*;

/// The event list (`ev`, or a bare array body), capped at `max_events_per_batch`.
pub(super) struct Events<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) sink: &'a mut Sink,
    /// Inside a beacon, whose `t0` anchors web-vitals' relative times.
    pub(super) in_beacon: bool,
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
pub(super) struct RawEvent<'de> {
    pub(super) kind: Option<Cow<'de, str>>,
    pub(super) name: Option<Cow<'de, str>>,
    pub(super) value: Option<f64>,
    pub(super) delta: Option<f64>,
    pub(super) id: Option<Cow<'de, str>>,
    pub(super) rating: Option<Cow<'de, str>>,
    pub(super) navigation_type: Option<Cow<'de, str>>,
    pub(super) navigation_url: Option<Cow<'de, str>>,
    pub(super) navigation_start_time: Option<f64>,
    /// `startTime` of the last web-vitals `entries` item.
    pub(super) last_entry_start: Option<f64>,
    pub(super) attribution: Option<Attribution>,
    pub(super) time: Option<f64>,
    pub(super) start: Option<f64>,
    pub(super) dur: Option<f64>,
    pub(super) target: Option<Cow<'de, str>>,
    pub(super) input_delay: Option<f64>,
    pub(super) processing_duration: Option<f64>,
    pub(super) presentation_delay: Option<f64>,
    pub(super) trace: Option<Cow<'de, str>>,
    pub(super) span: Option<Cow<'de, str>>,
    pub(super) parent: Option<Cow<'de, str>>,
    pub(super) method: Option<Cow<'de, str>>,
    pub(super) url: Option<Cow<'de, str>>,
    pub(super) status: Option<u64>,
    pub(super) server_tp: Option<Cow<'de, str>>,
    pub(super) initiator: Option<Cow<'de, str>>,
    pub(super) error: Option<Cow<'de, str>>,
    pub(super) req_size: Option<u64>,
    pub(super) res_size: Option<u64>,
    pub(super) timing: Option<TimingEntry>,
    pub(super) message: Option<Cow<'de, str>>,
    pub(super) stack: Option<Cow<'de, str>>,
    pub(super) handled: Option<bool>,
    pub(super) level: Option<Cow<'de, str>>,
    pub(super) attrs: Attributes,
    /// `attrs` entries beyond [`MAX_ATTRIBUTES`], skipped.
    pub(super) attrs_dropped: u32,
    pub(super) nav: Option<TimingEntry>,
    pub(super) res: Vec<ResourceTiming>,
    /// The first field that had an unusable value: it makes the event rejected.
    pub(super) problem: Option<Problem>,
}

pub(super) struct EventObj<'a> {
    pub(super) ctx: &'a Ctx,
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
pub(super) fn event_field<'de, A: MapAccess<'de>>(
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
        Key::Attrs => {
            let attrs = take(map, Attrs { ctx }, "attrs", p)?.unwrap_or_default();
            raw.attrs = attrs.kept;
            raw.attrs_dropped = attrs.dropped;
        }
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
pub(super) fn lift_problem(
    problem: &mut Option<Problem>,
    entry: Option<&mut TimingEntry>,
    key: &'static str,
) {
    if let Some(inner) = entry.and_then(|e| e.problem.take()) {
        problem.get_or_insert(inner.within(key));
    }
}

/// `Number.MAX_SAFE_INTEGER`: the largest size a browser reports exactly.
pub(super) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why an event could not be used: (reason token, message).
pub(super) type Unusable = (Reason, String);

pub(super) fn required<T>(value: Option<T>, field: &'static str) -> Result<T, Unusable> {
    value.ok_or_else(|| (Reason::MissingField, format!("`{field}` is required")))
}

/// Both ids valid, or nothing: invalid ids are ignored and the bridge makes its own.
pub(super) fn span_ref(trace: Option<&str>, span: Option<&str>) -> Option<SpanRef> {
    Some(SpanRef {
        trace_id: parse_trace_id(trace?)?,
        span_id: parse_span_id(span?)?,
    })
}

impl RawEvent<'_> {
    /// Checks the fields `type` requires and builds the model event.
    pub(super) fn finish(
        self,
        ctx: &Ctx,
        in_beacon: bool,
        hints: &mut Hints,
    ) -> Result<RumEvent, Unusable> {
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

    pub(super) fn page_load(self) -> Result<RumEvent, Unusable> {
        let nav = required(self.nav, "nav")?;
        Ok(RumEvent::PageLoad(PageLoad {
            navigation: nav.nav,
            resources: self.res,
        }))
    }

    pub(super) fn vital(
        self,
        ctx: &Ctx,
        in_beacon: bool,
        hints: &mut Hints,
    ) -> Result<RumEvent, Unusable> {
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
            dropped_attributes: self.attrs_dropped,
        }))
    }

    pub(super) fn interaction(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
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
            dropped_attributes: self.attrs_dropped,
        }))
    }

    pub(super) fn http(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
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
            dropped_attributes: self.attrs_dropped,
        }))
    }

    pub(super) fn error(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
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
            dropped_attributes: self.attrs_dropped,
        }))
    }

    pub(super) fn log(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
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
            dropped_attributes: self.attrs_dropped,
        }))
    }

    pub(super) fn custom(self, ctx: &Ctx) -> Result<RumEvent, Unusable> {
        Ok(RumEvent::Custom(CustomEvent {
            time: required(self.time, "time")?,
            name: ctx.s(required(self.name, "name")?),
            active_span: span_ref(self.trace.as_deref(), self.span.as_deref()),
            attributes: self.attrs,
            dropped_attributes: self.attrs_dropped,
        }))
    }
}
