//! Navigation and resource timing entries of a page-load event, with their server timing.

use super::*;

/// Keys of a `PerformanceNavigationTiming` / `PerformanceResourceTiming` JSON (`toJSON()`), plus
/// the paint times the loader adds to the navigation entry.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(field_identifier, rename_all = "camelCase")]
pub(super) enum TimingKey {
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
pub(super) struct TimingEntry {
    pub(super) nav: NavigationTiming,
    pub(super) initiator_type: Option<String>,
    pub(super) render_blocking_status: Option<String>,
    pub(super) problem: Option<Problem>,
}

impl TimingEntry {
    pub(super) fn into_resource(self) -> Option<ResourceTiming> {
        Some(ResourceTiming {
            url: self.nav.url?,
            initiator_type: self.initiator_type,
            render_blocking_status: self.render_blocking_status,
            timing: self.nav.timing,
        })
    }
}

/// A timing field; absent reads as 0 ("not reached"), as in the browser's own entries.
pub(super) fn zero_or<'de, A: MapAccess<'de>>(
    map: &mut A,
    field: &'static str,
    p: &mut Option<Problem>,
) -> Result<f64, A::Error> {
    Ok(take(map, Num, field, p)?.unwrap_or(0.0))
}

pub(super) struct TimingObj<'a> {
    pub(super) ctx: &'a Ctx,
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
pub(super) struct Resources<'a> {
    pub(super) ctx: &'a Ctx,
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
pub(super) struct ServerTiming;

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
pub(super) enum ServerTimingKey {
    Name,
    Description,
    #[serde(other)]
    Other,
}

/// One `PerformanceServerTiming` entry; a trace context when it is a trace entry.
pub(super) struct ServerTimingEntry;

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
