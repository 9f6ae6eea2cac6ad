//! Google `web-vitals` `Metric` objects (v4–v6, standard and attribution builds), read as-is.
//!
//! web-vitals defines no wire format: pages send `JSON.stringify(metric)`, raw performance
//! entries included. What the bridge needs from it is small: the target element, the INP and
//! LCP breakdowns, when it happened, and the server trace and page URL that the navigation
//! entry carries (web-vitals itself does no tracing; the server's `Server-Timing: traceparent`
//! survives in `attribution.navigationEntry.serverTiming`). This module picks exactly that and
//! skips the rest (long-animation-frame entries, layout-shift sources) unread.

use serde::de::{IgnoredAny, MapAccess, SeqAccess};
use serde::Deserialize;

use super::{Ctx, TimingObj};
use crate::model::{AttrValue, Attributes, TraceContext, VitalName};
use crate::receive::lenient::{take, Any, Expect, Lenient, Num, Text};

/// What the bridge keeps of `metric.attribution`.
#[derive(Debug, Default)]
pub(super) struct Attribution {
    /// `target` (v5+ LCP), `element` (v4 LCP), `interactionTarget` (INP),
    /// `largestShiftTarget` (CLS).
    pub(super) target: Option<String>,
    /// Useful numeric (and a few short text) fields, flattened under snake_case names.
    pub(super) attrs: Attributes,
    pub(super) interaction_time: Option<f64>,
    pub(super) largest_shift_time: Option<f64>,
    /// From `navigationEntry.serverTiming`.
    pub(super) server_trace: Option<TraceContext>,
    /// `navigationEntry.name`: the page URL.
    pub(super) navigation_url: Option<String>,
}

impl Attribution {
    /// When the metric was observed, in ms relative to the time origin, by metric: INP at the
    /// interaction, CLS at its largest shift, TTFB at the first byte, LCP and FCP at their (last)
    /// entry. `value` is measured from `navigationStartTime` (0 for hard navigations).
    pub(super) fn time(
        &self,
        name: VitalName,
        value: f64,
        navigation_start: Option<f64>,
        last_entry_start: Option<f64>,
    ) -> Option<f64> {
        let from_start = navigation_start.unwrap_or(0.0) + value;
        match name {
            VitalName::Inp => self.interaction_time.or(last_entry_start),
            VitalName::Cls => self.largest_shift_time.or(last_entry_start),
            VitalName::Ttfb => Some(from_start),
            VitalName::Lcp | VitalName::Fcp => last_entry_start.or(Some(from_start)),
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(field_identifier, rename_all = "camelCase")]
enum AttributionKey {
    Target,
    Element,
    InteractionTarget,
    LargestShiftTarget,
    Url,
    InteractionType,
    LoadState,
    TimeToFirstByte,
    ResourceLoadDelay,
    ResourceLoadDuration,
    ElementRenderDelay,
    #[serde(rename = "firstByteToFCP")]
    FirstByteToFcp,
    WaitingDuration,
    CacheDuration,
    DnsDuration,
    ConnectionDuration,
    RequestDuration,
    InputDelay,
    ProcessingDuration,
    PresentationDelay,
    InteractionTime,
    NextPaintTime,
    LargestShiftTime,
    LargestShiftValue,
    TotalScriptDuration,
    TotalStyleAndLayoutDuration,
    TotalPaintDuration,
    TotalUnattributedDuration,
    NavigationEntry,
    #[serde(other)]
    Other,
}

/// How an attribution field is kept.
enum Keep {
    Target,
    Text(&'static str),
    Number(&'static str),
    NavigationEntry,
    Skip,
}

impl AttributionKey {
    fn keep(self) -> Keep {
        use AttributionKey as K;
        match self {
            K::Target | K::Element | K::InteractionTarget | K::LargestShiftTarget => Keep::Target,
            K::Url => Keep::Text("url"),
            K::InteractionType => Keep::Text("interaction_type"),
            K::LoadState => Keep::Text("load_state"),
            K::TimeToFirstByte => Keep::Number("time_to_first_byte"),
            K::ResourceLoadDelay => Keep::Number("resource_load_delay"),
            K::ResourceLoadDuration => Keep::Number("resource_load_duration"),
            K::ElementRenderDelay => Keep::Number("element_render_delay"),
            K::FirstByteToFcp => Keep::Number("first_byte_to_fcp"),
            K::WaitingDuration => Keep::Number("waiting_duration"),
            K::CacheDuration => Keep::Number("cache_duration"),
            K::DnsDuration => Keep::Number("dns_duration"),
            K::ConnectionDuration => Keep::Number("connection_duration"),
            K::RequestDuration => Keep::Number("request_duration"),
            K::InputDelay => Keep::Number("input_delay"),
            K::ProcessingDuration => Keep::Number("processing_duration"),
            K::PresentationDelay => Keep::Number("presentation_delay"),
            K::InteractionTime => Keep::Number("interaction_time"),
            K::NextPaintTime => Keep::Number("next_paint_time"),
            K::LargestShiftTime => Keep::Number("largest_shift_time"),
            K::LargestShiftValue => Keep::Number("largest_shift_value"),
            K::TotalScriptDuration => Keep::Number("total_script_duration"),
            K::TotalStyleAndLayoutDuration => Keep::Number("total_style_and_layout_duration"),
            K::TotalPaintDuration => Keep::Number("total_paint_duration"),
            K::TotalUnattributedDuration => Keep::Number("total_unattributed_duration"),
            K::NavigationEntry => Keep::NavigationEntry,
            K::Other => Keep::Skip,
        }
    }
}

/// Reads `metric.attribution`. Best effort: a field of the wrong type is skipped, not fatal,
/// since the metric itself is still good.
pub(super) struct AttributionObj<'a> {
    pub(super) ctx: &'a Ctx,
}

impl<'de> Expect<'de> for AttributionObj<'_> {
    type Out = Attribution;
    const EXPECTED: &'static str = "an attribution object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Attribution>, A::Error> {
        let ctx = self.ctx;
        let mut ignored = None;
        let mut a = Attribution::default();
        while let Some(key) = map.next_key::<AttributionKey>()? {
            match key.keep() {
                Keep::Target => {
                    let target = take(&mut map, Text, "target", &mut ignored)?;
                    // INP reports "" when the element left the DOM.
                    if let Some(t) = target.filter(|t| !t.is_empty()) {
                        a.target.get_or_insert_with(|| ctx.s(t));
                    }
                }
                Keep::Text(name) => {
                    if let Some(v) = take(&mut map, Text, name, &mut ignored)? {
                        a.attrs.push((name.to_owned(), AttrValue::Str(ctx.s(v))));
                    }
                }
                Keep::Number(name) => {
                    if let Some(v) = take(&mut map, Num, name, &mut ignored)? {
                        match key {
                            AttributionKey::InteractionTime => a.interaction_time = Some(v),
                            AttributionKey::LargestShiftTime => a.largest_shift_time = Some(v),
                            _ => {}
                        }
                        a.attrs.push((name.to_owned(), AttrValue::Float(v)));
                    }
                }
                Keep::NavigationEntry => {
                    let entry = take(&mut map, TimingObj { ctx }, "navigationEntry", &mut ignored)?;
                    if let Some(entry) = entry {
                        a.server_trace = entry.nav.timing.server_trace;
                        a.navigation_url = entry.nav.url;
                    }
                }
                Keep::Skip => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(a))
    }
}

/// `metric.entries`: only the `startTime` of the last entry is kept (the reported LCP element,
/// the last layout shift, the interaction).
pub(super) struct EntryStarts;

impl<'de> Expect<'de> for EntryStarts {
    type Out = Option<f64>;
    const EXPECTED: &'static str = "an array of performance entries";

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<Option<f64>>, A::Error> {
        let mut last = None;
        while let Some(entry) = seq.next_element_seed(Any(EntryStart))? {
            if let Lenient::Value(Some(start)) = entry {
                last = Some(start);
            }
        }
        Ok(Lenient::Value(last))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum EntryKey {
    StartTime,
    #[serde(other)]
    Other,
}

struct EntryStart;

impl<'de> Expect<'de> for EntryStart {
    type Out = Option<f64>;
    const EXPECTED: &'static str = "a performance entry";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Option<f64>>, A::Error> {
        let mut ignored = None;
        let mut start = None;
        while let Some(key) = map.next_key::<EntryKey>()? {
            match key {
                EntryKey::StartTime => start = take(&mut map, Num, "startTime", &mut ignored)?,
                EntryKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(start))
    }
}
