//! Faro signal items (`logs`, `exceptions`, `measurements`, `events`) → [`RumEvent`]s.
//!
//! Each item is parsed on its own from its raw JSON, into a typed struct whose fields are all
//! read leniently ([`crate::receive::lenient`]): an item is rejected only when it is not an object, has
//! a duplicate key, or lacks what makes it meaningful (an event without a name). Times are Unix
//! epoch ms (`time_origin_ms` is 0 for Faro batches); an item without a readable `timestamp`
//! takes the bridge's receive time.
//!
//! | item | event | notes |
//! | --- | --- | --- |
//! | log | `Log` | level `trace`/`debug`/`info`/`log`/`warn`/`warning`/`error` (others: INFO); `context` → attributes |
//! | exception | `Error` | `type`, `value`, frames rendered V8-style into the stack trace; `fatal` → `faro.exception.fatal`, `fingerprint` → `faro.exception.fingerprint` |
//! | measurement `web-vitals` | `Vital` | the `lcp`/`inp`/`cls`/`fcp`/`ttfb` value, `delta`, other values and `context` as attribution; `rating` from `context` or computed |
//! | other measurement | `Custom` `faro.measurement` | `faro.measurement.type`, values and context as attributes |
//! | event `faro.performance.navigation` | `PageLoad` | its `trace` is the server span (`Server-Timing`), set as the page's server trace |
//! | event `faro.performance.resource` | resource entry of that page load | a `Custom` event when the batch has no navigation |
//! | event `faro.user.action` | `Interaction` | |
//! | event `session_start` | `Custom` `session.start` | semconv name; `session.previous_id` when the session continues one |
//! | other event | `Custom` with the Faro name | `domain` → `faro.event.domain` |
//!
//! Every item's `trace` (`trace_id`, `span_id`) is its active span; its `action` (`name`, `id`,
//! `parentId`) becomes `faro.action.name`, `faro.action.id`, `faro.action.parent_id`.

mod contrib;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lenient::timestamp;
use super::meta::MetaExtras;
use super::perf;
use crate::config::LimitsConfig;
use crate::model::faro_contrib::Record;
use crate::model::trace_context::{parse_span_id, parse_trace_id};
use crate::model::{
    AttrValue, Attributes, CustomEvent, ErrorEvent, LogEvent, PageLoad, Rating, Reason, Rejected,
    RumEvent, Severity, SpanRef, TraceContext, VitalName, WebVital,
};
use crate::receive::lenient::{
    boolean, number, number_map, object, string, string_map, Lax, LaxList,
};
use contrib::{contrib_event, contrib_exception, contrib_log, contrib_measurement};

const EVENT_NAVIGATION: &str = "faro.performance.navigation";
const EVENT_RESOURCE: &str = "faro.performance.resource";
const EVENT_USER_ACTION: &str = "faro.user.action";
const EVENT_SESSION_START: &str = "session_start";
/// Event name of measurements that are not web vitals.
pub(super) const EVENT_MEASUREMENT: &str = "faro.measurement";
/// Most stack frames rendered per exception.
const MAX_FRAMES: usize = 64;
/// W3C "sampled": Faro drops the flags of the server span; the SDK only reports sampled ones.
const SAMPLED: u8 = 0x01;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TraceIds {
    #[serde(deserialize_with = "string")]
    trace_id: Option<String>,
    #[serde(deserialize_with = "string")]
    span_id: Option<String>,
}

impl TraceIds {
    fn span(&self) -> Option<SpanRef> {
        Some(SpanRef {
            trace_id: parse_trace_id(self.trace_id.as_deref()?)?,
            span_id: parse_span_id(self.span_id.as_deref()?)?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Action {
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "string")]
    id: Option<String>,
    #[serde(deserialize_with = "string")]
    parent_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogItem {
    #[serde(default, deserialize_with = "string")]
    message: Option<String>,
    #[serde(default, deserialize_with = "string")]
    level: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<f64>,
    #[serde(default, deserialize_with = "string_map")]
    context: Vec<(String, String)>,
    #[serde(default)]
    trace: Lax<TraceIds>,
    #[serde(default)]
    action: Lax<Action>,
}

#[derive(Debug, Deserialize)]
struct ExceptionItem {
    #[serde(default, rename = "type", deserialize_with = "string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "string")]
    value: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<f64>,
    #[serde(default)]
    stacktrace: Lax<Stacktrace>,
    #[serde(default, deserialize_with = "string_map")]
    context: Vec<(String, String)>,
    #[serde(default)]
    trace: Lax<TraceIds>,
    #[serde(default)]
    action: Lax<Action>,
    #[serde(default, deserialize_with = "boolean")]
    fatal: Option<bool>,
    #[serde(default, deserialize_with = "string")]
    fingerprint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Stacktrace {
    frames: LaxList<Frame, MAX_FRAMES>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Frame {
    #[serde(deserialize_with = "string")]
    filename: Option<String>,
    #[serde(deserialize_with = "string")]
    function: Option<String>,
    #[serde(deserialize_with = "string")]
    module: Option<String>,
    #[serde(deserialize_with = "number")]
    lineno: Option<f64>,
    #[serde(deserialize_with = "number")]
    colno: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct MeasurementItem {
    #[serde(default, rename = "type", deserialize_with = "string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "number_map")]
    values: Vec<(String, f64)>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<f64>,
    #[serde(default, deserialize_with = "string_map")]
    context: Vec<(String, String)>,
    #[serde(default)]
    trace: Lax<TraceIds>,
    #[serde(default)]
    action: Lax<Action>,
}

#[derive(Debug, Deserialize)]
struct EventItem {
    #[serde(default, deserialize_with = "string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "string")]
    domain: Option<String>,
    #[serde(default, deserialize_with = "string_map")]
    attributes: Vec<(String, String)>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<f64>,
    #[serde(default)]
    trace: Lax<TraceIds>,
    #[serde(default)]
    action: Lax<Action>,
}

/// Which top-level array an item came from (for rejection details).
#[derive(Debug, Clone, Copy)]
pub(super) enum Section {
    Logs,
    Exceptions,
    Measurements,
    Events,
}

impl Section {
    pub(super) fn name(self) -> &'static str {
        match self {
            Section::Logs => "logs",
            Section::Exceptions => "exceptions",
            Section::Measurements => "measurements",
            Section::Events => "events",
        }
    }
}

/// Collects the events of one batch.
pub(super) struct Items<'l> {
    limits: &'l LimitsConfig,
    received_at_ms: f64,
    extras: MetaExtras,
    pub(super) events: Vec<RumEvent>,
    pub(super) rejected: Vec<Rejected>,
    /// Index in `events` of the page load, once a navigation event was read.
    page_load: Option<usize>,
    /// Resource events, placed once it is known whether the batch has a navigation.
    resources: Vec<EventItem>,
    /// The server span from the navigation event's `trace`.
    pub(super) server_trace: Option<TraceContext>,
    /// `faroNavigationId` of the navigation event.
    pub(super) navigation_id: Option<String>,
    /// A navigation id named by another item (`navigation_entry_id`, a resource's
    /// `faroNavigationId`).
    pub(super) referenced_navigation_id: Option<String>,
    pub(super) newest_ms: Option<f64>,
    /// The items as faro-contrib records, when that output is on (`None`: not kept).
    pub(super) contrib: Option<Vec<Record>>,
}

impl<'l> Items<'l> {
    pub(super) fn new(limits: &'l LimitsConfig, received_at_ms: f64, extras: MetaExtras) -> Self {
        Self {
            limits,
            received_at_ms,
            extras,
            events: Vec::new(),
            rejected: Vec::new(),
            page_load: None,
            resources: Vec::new(),
            server_trace: None,
            navigation_id: None,
            referenced_navigation_id: None,
            newest_ms: None,
            contrib: None,
        }
    }

    /// Parses and maps one item; a bad item is rejected with its position.
    pub(super) fn add(&mut self, section: Section, index: usize, raw: &RawValue) {
        let result = match section {
            Section::Logs => object(raw).map(|item| self.log(item)),
            Section::Exceptions => object(raw).map(|item| self.exception(item)),
            Section::Measurements => object(raw).map(|item| self.measurement(item)),
            Section::Events => object(raw).and_then(|item| self.event(item)),
        };
        if let Err(problem) = result {
            self.rejected.push(Rejected {
                reason: Reason::InvalidItem,
                detail: format!("{}[{index}]: {problem}", section.name()),
            });
        }
    }

    /// Places the resource events and returns the events.
    pub(super) fn finish(mut self) -> Self {
        let resources = std::mem::take(&mut self.resources);
        let max = self.limits.max_resources_per_page_load;
        for item in resources {
            let time = self.time(item.timestamp);
            let server = item
                .trace
                .0
                .as_ref()
                .and_then(TraceIds::span)
                .map(server_context);
            if self.referenced_navigation_id.is_none() {
                self.referenced_navigation_id = find(&item.attributes, "faroNavigationId");
            }
            match self.page_load.map(|i| &mut self.events[i]) {
                Some(RumEvent::PageLoad(page_load)) if page_load.resources.len() < max => {
                    page_load
                        .resources
                        .push(perf::resource(&item.attributes, time, server));
                }
                Some(_) => self.rejected.push(Rejected {
                    reason: Reason::TooManyResources,
                    detail: format!("{EVENT_RESOURCE}: beyond max_resources_per_page_load ({max})"),
                }),
                None => {
                    let event = self.custom(EVENT_RESOURCE.to_owned(), item, time);
                    self.events.push(event);
                }
            }
        }
        self
    }

    fn time(&mut self, timestamp: Option<f64>) -> f64 {
        match timestamp {
            Some(t) => {
                self.newest_ms = Some(self.newest_ms.map_or(t, |n| n.max(t)));
                t
            }
            None => self.received_at_ms,
        }
    }

    fn log(&mut self, item: LogItem) {
        let time = self.time(item.timestamp);
        if let Some(records) = &mut self.contrib {
            records.push(contrib_log(&item, time, self.events.len()));
        }
        let mut attributes = strings(item.context);
        action_attributes(&mut attributes, item.action.0);
        self.events.push(RumEvent::Log(LogEvent {
            dropped_attributes: 0,
            time,
            severity: item
                .level
                .as_deref()
                .and_then(Severity::parse)
                .unwrap_or_default(),
            message: item.message.unwrap_or_default(),
            active_span: item.trace.0.as_ref().and_then(TraceIds::span),
            attributes,
        }));
    }

    fn exception(&mut self, item: ExceptionItem) {
        let time = self.time(item.timestamp);
        if let Some(records) = &mut self.contrib {
            records.push(contrib_exception(&item, time, self.events.len()));
        }
        let frames = item.stacktrace.0.map(|s| s.frames.0).unwrap_or_default();
        let stack = render_stack(item.kind.as_deref(), item.value.as_deref(), &frames);
        let mut attributes = strings(item.context);
        if let Some(fatal) = item.fatal {
            attributes.push(("faro.exception.fatal".into(), AttrValue::Bool(fatal)));
        }
        if let Some(fingerprint) = item.fingerprint {
            attributes.push((
                "faro.exception.fingerprint".into(),
                AttrValue::Str(fingerprint),
            ));
        }
        action_attributes(&mut attributes, item.action.0);
        self.events.push(RumEvent::Error(ErrorEvent {
            dropped_attributes: 0,
            time,
            error_type: item.kind,
            message: item.value,
            stack,
            handled: false,
            active_span: item.trace.0.as_ref().and_then(TraceIds::span),
            attributes,
        }));
    }

    fn measurement(&mut self, item: MeasurementItem) {
        let time = self.time(item.timestamp);
        if let Some(records) = &mut self.contrib {
            records.push(contrib_measurement(&item, time, self.events.len()));
        }
        if self.referenced_navigation_id.is_none() {
            self.referenced_navigation_id =
                find(&item.context, "navigation_entry_id").filter(|id| id != "unknown");
        }
        let vital_at = (item.kind.as_deref() == Some("web-vitals"))
            .then(|| {
                item.values
                    .iter()
                    .position(|(k, _)| VitalName::parse(k).is_some())
            })
            .flatten();
        let event = match vital_at {
            Some(at) => RumEvent::Vital(web_vital(item, at, time)),
            None => {
                let mut attributes: Attributes =
                    Vec::with_capacity(1 + item.values.len() + item.context.len());
                if let Some(kind) = item.kind {
                    attributes.push(("faro.measurement.type".into(), AttrValue::Str(kind)));
                }
                attributes.extend(
                    item.values
                        .into_iter()
                        .map(|(k, v)| (k, AttrValue::Float(v))),
                );
                attributes.extend(strings(item.context));
                action_attributes(&mut attributes, item.action.0);
                RumEvent::Custom(CustomEvent {
                    dropped_attributes: 0,
                    time,
                    name: EVENT_MEASUREMENT.to_owned(),
                    active_span: item.trace.0.as_ref().and_then(TraceIds::span),
                    attributes,
                })
            }
        };
        self.events.push(event);
    }

    fn event(&mut self, item: EventItem) -> Result<(), String> {
        let Some(name) = item.name.clone().filter(|n| !n.is_empty()) else {
            return Err("an event needs a `name`".into());
        };
        if let Some(records) = &mut self.contrib {
            // Every event but a resource entry becomes the model event at the next index.
            let event = (name != EVENT_RESOURCE).then_some(self.events.len());
            let time = item.timestamp.unwrap_or(self.received_at_ms);
            records.push(contrib_event(&item, &name, time, event));
        }
        match name.as_str() {
            EVENT_NAVIGATION if self.page_load.is_none() => {
                let time = self.time(item.timestamp);
                let server = item
                    .trace
                    .0
                    .as_ref()
                    .and_then(TraceIds::span)
                    .map(server_context);
                self.server_trace = server;
                self.navigation_id = find(&item.attributes, "faroNavigationId");
                let navigation = perf::navigation(&item.attributes, time, server);
                self.page_load = Some(self.events.len());
                self.events.push(RumEvent::PageLoad(PageLoad {
                    navigation,
                    resources: Vec::new(),
                }));
            }
            EVENT_RESOURCE => self.resources.push(item),
            EVENT_USER_ACTION => {
                let time = self.time(item.timestamp);
                let mut interaction = perf::interaction(item.attributes, time);
                action_attributes(&mut interaction.attributes, item.action.0);
                self.events.push(RumEvent::Interaction(interaction));
            }
            _ => {
                let time = self.time(item.timestamp);
                let event = self.custom(name, item, time);
                self.events.push(event);
            }
        }
        Ok(())
    }

    fn custom(&self, name: String, item: EventItem, time: f64) -> RumEvent {
        let mut attributes = strings(item.attributes);
        let name = if name == EVENT_SESSION_START {
            if let Some(previous) = &self.extras.previous_session {
                attributes.push((
                    "session.previous_id".into(),
                    AttrValue::Str(previous.clone()),
                ));
            }
            "session.start".to_owned()
        } else {
            name
        };
        if let Some(domain) = item.domain {
            attributes.push(("faro.event.domain".into(), AttrValue::Str(domain)));
        }
        action_attributes(&mut attributes, item.action.0);
        RumEvent::Custom(CustomEvent {
            dropped_attributes: 0,
            time,
            name,
            active_span: item.trace.0.as_ref().and_then(TraceIds::span),
            attributes,
        })
    }
}

fn server_context(span: SpanRef) -> TraceContext {
    TraceContext {
        trace_id: span.trace_id,
        span_id: span.span_id,
        flags: SAMPLED,
    }
}

fn find(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

fn strings(pairs: Vec<(String, String)>) -> Attributes {
    pairs
        .into_iter()
        .map(|(k, v)| (k, AttrValue::Str(v)))
        .collect()
}

fn action_attributes(attributes: &mut Attributes, action: Option<Action>) {
    let Some(action) = action else { return };
    for (key, value) in [
        ("faro.action.name", action.name),
        ("faro.action.id", action.id),
        ("faro.action.parent_id", action.parent_id),
    ] {
        if let Some(v) = value {
            attributes.push((key.into(), AttrValue::Str(v)));
        }
    }
}

/// A `web-vitals` measurement whose `values[at]` is the vital.
fn web_vital(item: MeasurementItem, at: usize, time: f64) -> WebVital {
    let mut values = item.values;
    let (key, value) = values.remove(at);
    let name = VitalName::parse(&key).unwrap_or(VitalName::Lcp);
    let delta_at = values.iter().position(|(k, _)| k == "delta");
    let delta = delta_at.map_or(value, |i| values.remove(i).1);
    let mut id = String::new();
    let mut rating = None;
    let mut navigation_type = None;
    let mut target = None;
    let mut attribution: Attributes = Vec::with_capacity(values.len() + item.context.len());
    attribution.extend(values.into_iter().map(|(k, v)| (k, AttrValue::Float(v))));
    for (k, v) in item.context {
        match k.as_str() {
            "id" => id = v,
            "rating" => rating = Rating::parse(&v),
            "navigation_type" => navigation_type = Some(v),
            "element" | "interaction_target" | "largest_shift_target" if target.is_none() => {
                target = Some(v)
            }
            _ => attribution.push((k, AttrValue::Str(v))),
        }
    }
    action_attributes(&mut attribution, item.action.0);
    WebVital {
        dropped_attributes: 0,
        name,
        value,
        delta,
        id,
        rating: rating.unwrap_or_else(|| name.rate(value)),
        navigation_type,
        time: Some(time),
        target,
        attribution,
    }
}

/// The stack as V8 prints it: `Type: message`, then `    at fn (file:line:col)` per frame.
fn render_stack(kind: Option<&str>, value: Option<&str>, frames: &[Frame]) -> Option<String> {
    use std::fmt::Write;
    if frames.is_empty() {
        return None;
    }
    let mut out = match (kind, value) {
        (Some(k), Some(v)) => format!("{k}: {v}"),
        (Some(s), None) | (None, Some(s)) => s.to_owned(),
        (None, None) => String::new(),
    };
    for frame in frames {
        let location = frame
            .filename
            .as_deref()
            .or(frame.module.as_deref())
            .unwrap_or("<anonymous>");
        let mut place = location.to_owned();
        for n in [frame.lineno, frame.colno].into_iter().flatten() {
            let _ = write!(place, ":{n}");
        }
        if !out.is_empty() {
            out.push('\n');
        }
        match frame
            .function
            .as_deref()
            .filter(|f| !f.is_empty() && *f != "?")
        {
            Some(function) => {
                let _ = write!(out, "    at {function} ({place})");
            }
            None => {
                let _ = write!(out, "    at {place}");
            }
        }
    }
    Some(out)
}
