//! The normalized, format-independent RUM event model.
//!
//! Every decoder (native beacon, Faro, …) produces a [`RumBatch`]; every converter consumes one.
//! Keeping one model means privacy rules, sampling and the OTLP mapping are written once, not
//! once per wire format.
//!
//! Times: every event time is in **milliseconds relative to [`PageContext::time_origin_ms`]**
//! (the browser's `performance.timeOrigin`, in Unix epoch milliseconds), the same domain as
//! `performance.now()` and the Performance Timeline. Formats that send absolute epoch times set
//! `time_origin_ms = 0`. Clock-skew correction then only has to move `time_origin_ms`.

pub mod bounds;
pub mod faro_contrib;
pub mod http;
pub mod otlp;
mod reason;
pub mod semconv;
pub mod trace_context;

pub use reason::Reason;
pub use trace_context::{parse_server_timing, TraceContext};

/// An attribute value carried from the client through to OTLP.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Attributes as an ordered list of key/value pairs (small, so a Vec beats a map).
pub type Attributes = Vec<(String, AttrValue)>;

/// Identifies a span the client already knows (it created the ids itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanRef {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// One decoded request: the shared context plus its events.
#[derive(Debug, Clone, Default)]
pub struct RumBatch {
    pub context: PageContext,
    pub events: Vec<RumEvent>,
    /// Items the decoder dropped, with the reason (counted as `items_rejected{reason}`).
    pub rejected: Vec<Rejected>,
}

/// An item the decoder could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: Reason,
    /// Human-readable detail (index and problem), returned to the client in the 202 body.
    pub detail: String,
}

/// Context shared by every event of a beacon: who, where, which page view.
#[derive(Debug, Clone, Default)]
pub struct PageContext {
    /// The app, as resolved from the app key by the edge (`service.name`).
    pub app: AppInfo,
    pub session_id: Option<String>,
    pub page_view_id: Option<String>,
    pub page_url: Option<String>,
    /// `url.template` of the page (ids folded), set by `process` when it scrubs `page_url`.
    pub page_url_template: Option<String>,
    pub referrer: Option<String>,
    /// The client's address, as the edge found it (peer or trusted proxy headers). Used for
    /// rate limiting and geo; never exported as is (`process` decides about `client.address`).
    pub client_ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    pub browser: BrowserInfo,
    /// The device class (`rum.device.class`), set once by `process` from the parsed user agent
    /// (else the `mobile` client hint). Spans, logs and metric points all take it from here.
    pub device_class: Option<DeviceClass>,
    /// Hashed or plain user id (privacy rules decide, in `process`).
    pub user_id: Option<String>,
    /// The client library that sent the beacon (`telemetry.sdk.name` / `.version`).
    pub sdk_name: Option<String>,
    pub sdk_version: Option<String>,
    /// The server span that rendered the page (meta tag or navigation `Server-Timing`).
    pub server_trace: Option<TraceContext>,
    /// The page-load (`documentLoad`) span, when the client chose its ids (the loader does, so
    /// calls made during the load can be its children). Derived from `page_view_id` otherwise.
    pub page_span: Option<SpanRef>,
    /// `performance.timeOrigin` in Unix epoch ms; event times are relative to it.
    pub time_origin_ms: f64,
    /// Browser clock at send time (Unix epoch ms), for skew correction.
    pub sent_at_ms: Option<f64>,
    /// Bridge clock when the request arrived (Unix epoch ms).
    pub received_at_ms: f64,
    /// How much the bridge shifted browser times (ms), when it corrected skew.
    pub clock_skew_ms: Option<f64>,
    /// Consent categories granted by the page (`setConsent`), when the client reports them.
    pub consent: Option<Vec<String>>,
    /// The client's own session sampling decision (the loader's `smp`), which the `traceparent`
    /// flags of its calls already told the backend; the bridge keeps to it (docs/sampling.md).
    pub sampled: Option<bool>,
    /// Extra resource-level attributes from the client (already semconv-named).
    pub attributes: Attributes,
    /// Client attributes the decoder left out beyond its cap (`dropped_attributes_count`).
    pub dropped_attributes: u32,
}

impl PageContext {
    /// Converts a time relative to the time origin into Unix epoch nanoseconds.
    pub fn unix_nanos(&self, rel_ms: f64) -> u64 {
        // Split the origin and the relative time so the sub-millisecond parts keep their
        // precision: epoch nanoseconds (~1.7e18) do not fit exactly in an f64, and formats with
        // absolute times (origin 0, Faro) pass epoch milliseconds as `rel_ms`.
        let (whole, rel_whole) = (self.time_origin_ms.trunc(), rel_ms.trunc());
        let frac_ns = ((self.time_origin_ms - whole) + (rel_ms - rel_whole)) * 1_000_000.0;
        if !whole.is_finite() || !rel_whole.is_finite() || !frac_ns.is_finite() || whole < 0.0 {
            return 0;
        }
        let whole_ms = (whole as i128).saturating_add(rel_whole as i128);
        let total = whole_ms
            .saturating_mul(1_000_000)
            .saturating_add(frac_ns.round() as i128);
        total.clamp(0, u64::MAX as i128) as u64
    }
}

/// The app a beacon belongs to, resolved by the edge from its key.
#[derive(Debug, Clone, Default)]
pub struct AppInfo {
    pub key: Option<String>,
    /// `service.name`.
    pub name: String,
    pub version: Option<String>,
    pub environment: Option<String>,
}

/// Browser facts reported by the client (UA Client Hints, `navigator.language`), plus the
/// browser name `process` parsed.
#[derive(Debug, Clone, Default)]
pub struct BrowserInfo {
    pub brands: Vec<String>,
    pub platform: Option<String>,
    pub mobile: Option<bool>,
    pub language: Option<String>,
    /// The browser's name (`user_agent.name`), set once by `process` from the parsed user
    /// agent, else from the UA-CH brands. Never taken from the client's attributes.
    pub name: Option<String>,
}

/// A device class (`rum.device.class`, bridge-defined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    Desktop,
    Mobile,
    Tablet,
    Bot,
}

impl DeviceClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Desktop => "desktop",
            DeviceClass::Mobile => "mobile",
            DeviceClass::Tablet => "tablet",
            DeviceClass::Bot => "bot",
        }
    }
}

/// One RUM observation.
#[derive(Debug, Clone)]
pub enum RumEvent {
    PageLoad(PageLoad),
    Vital(WebVital),
    Interaction(Interaction),
    HttpCall(HttpCall),
    Error(ErrorEvent),
    Log(LogEvent),
    Custom(CustomEvent),
}

impl RumEvent {
    /// Low-cardinality kind name, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            RumEvent::PageLoad(_) => "page_load",
            RumEvent::Vital(_) => "vital",
            RumEvent::Interaction(_) => "interaction",
            RumEvent::HttpCall(_) => "http",
            RumEvent::Error(_) => "error",
            RumEvent::Log(_) => "log",
            RumEvent::Custom(_) => "custom",
        }
    }
}

/// A page load: the navigation entry and (a capped list of) resource entries.
#[derive(Debug, Clone, Default)]
pub struct PageLoad {
    pub navigation: NavigationTiming,
    pub resources: Vec<ResourceTiming>,
}

/// `PerformanceNavigationTiming`, times in ms relative to the time origin (0 = not reached).
#[derive(Debug, Clone, Default)]
pub struct NavigationTiming {
    /// `navigate`, `reload`, `back_forward`, `prerender`.
    pub navigation_type: Option<String>,
    pub url: Option<String>,
    pub timing: ResourceTimingPhases,
    pub unload_event_start: f64,
    pub unload_event_end: f64,
    pub dom_interactive: f64,
    pub dom_content_loaded_event_start: f64,
    pub dom_content_loaded_event_end: f64,
    pub dom_complete: f64,
    pub load_event_start: f64,
    pub load_event_end: f64,
    pub redirect_count: u32,
    pub first_paint: Option<f64>,
    pub first_contentful_paint: Option<f64>,
}

impl NavigationTiming {
    /// The navigation's own milestones after `fetchStart` (the phases are in `timing`), named
    /// as OpenTelemetry JS names its `documentLoad` events; 0 is "not reached".
    pub fn milestones(&self) -> [(&'static str, f64); 10] {
        [
            ("unloadEventStart", self.unload_event_start),
            ("unloadEventEnd", self.unload_event_end),
            ("domInteractive", self.dom_interactive),
            (
                "domContentLoadedEventStart",
                self.dom_content_loaded_event_start,
            ),
            (
                "domContentLoadedEventEnd",
                self.dom_content_loaded_event_end,
            ),
            ("domComplete", self.dom_complete),
            ("loadEventStart", self.load_event_start),
            ("loadEventEnd", self.load_event_end),
            ("firstPaint", self.first_paint.unwrap_or(0.0)),
            (
                "firstContentfulPaint",
                self.first_contentful_paint.unwrap_or(0.0),
            ),
        ]
    }
}

/// The timing fields shared by navigation and resource entries.
#[derive(Debug, Clone, Default)]
pub struct ResourceTimingPhases {
    pub start_time: f64,
    pub duration: f64,
    pub redirect_start: f64,
    pub redirect_end: f64,
    pub worker_start: f64,
    pub fetch_start: f64,
    pub domain_lookup_start: f64,
    pub domain_lookup_end: f64,
    pub connect_start: f64,
    pub secure_connection_start: f64,
    pub connect_end: f64,
    pub request_start: f64,
    pub response_start: f64,
    pub response_end: f64,
    pub transfer_size: Option<u64>,
    pub encoded_body_size: Option<u64>,
    pub decoded_body_size: Option<u64>,
    pub next_hop_protocol: Option<String>,
    pub response_status: Option<u16>,
    /// Server-Timing trace entry on this response, if any.
    pub server_trace: Option<TraceContext>,
}

impl ResourceTimingPhases {
    /// The network phases from `fetchStart` to `responseEnd`, named as the Resource Timing API
    /// names them; 0 is "not reached".
    pub fn network_phases(&self) -> [(&'static str, f64); 9] {
        [
            ("fetchStart", self.fetch_start),
            ("domainLookupStart", self.domain_lookup_start),
            ("domainLookupEnd", self.domain_lookup_end),
            ("connectStart", self.connect_start),
            ("secureConnectionStart", self.secure_connection_start),
            ("connectEnd", self.connect_end),
            ("requestStart", self.request_start),
            ("responseStart", self.response_start),
            ("responseEnd", self.response_end),
        ]
    }
}

/// `PerformanceResourceTiming`.
#[derive(Debug, Clone, Default)]
pub struct ResourceTiming {
    pub url: String,
    pub initiator_type: Option<String>,
    pub render_blocking_status: Option<String>,
    pub timing: ResourceTimingPhases,
}

/// The five Core Web Vitals (and friends) the bridge knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VitalName {
    Lcp,
    Inp,
    Cls,
    Fcp,
    Ttfb,
}

impl VitalName {
    pub const ALL: [VitalName; 5] = [Self::Lcp, Self::Inp, Self::Cls, Self::Fcp, Self::Ttfb];

    /// Lower-case semconv name (`browser.web_vital.name`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lcp => "lcp",
            Self::Inp => "inp",
            Self::Cls => "cls",
            Self::Fcp => "fcp",
            Self::Ttfb => "ttfb",
        }
    }

    /// Parses `LCP`, `lcp`, … (web-vitals uses upper case, semconv lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    /// Google's thresholds: (good ≤, poor >).
    pub fn thresholds(self) -> (f64, f64) {
        match self {
            Self::Lcp => (2500.0, 4000.0),
            Self::Inp => (200.0, 500.0),
            Self::Cls => (0.1, 0.25),
            Self::Fcp => (1800.0, 3000.0),
            Self::Ttfb => (800.0, 1800.0),
        }
    }

    /// Rating per web-vitals' rule: `> poor` is poor, `> good` needs improvement.
    pub fn rate(self, value: f64) -> Rating {
        let (good, poor) = self.thresholds();
        if value > poor {
            Rating::Poor
        } else if value > good {
            Rating::NeedsImprovement
        } else {
            Rating::Good
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rating {
    Good,
    NeedsImprovement,
    Poor,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::NeedsImprovement => "needs-improvement",
            Rating::Poor => "poor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "good" => Some(Rating::Good),
            "needs-improvement" | "needs_improvement" => Some(Rating::NeedsImprovement),
            "poor" => Some(Rating::Poor),
            _ => None,
        }
    }
}

/// A web vital report (a Google `web-vitals` `Metric`, normalized).
#[derive(Debug, Clone)]
pub struct WebVital {
    pub name: VitalName,
    pub value: f64,
    pub delta: f64,
    /// web-vitals `id` (`v6-…`): groups repeated reports of one metric instance.
    pub id: String,
    pub rating: Rating,
    /// `navigate`, `reload`, `back-forward`, `back-forward-cache`, `prerender`, `restore`.
    pub navigation_type: Option<String>,
    /// When it was observed (relative ms); the converter falls back to the send time.
    pub time: Option<f64>,
    /// The element or selector the metric is attributed to (LCP element, INP target, CLS shift).
    pub target: Option<String>,
    /// Other attribution, flattened (`browser.web_vital.attribution.*` keys are added by convert).
    pub attribution: Attributes,
    /// Client attributes the decoder left out beyond its cap (`dropped_attributes_count`).
    pub dropped_attributes: u32,
}

/// A user interaction (click, key press), possibly the INP candidate.
#[derive(Debug, Clone, Default)]
pub struct Interaction {
    /// `click`, `keydown`, `pointerdown`, …
    pub kind: String,
    pub target: Option<String>,
    pub start: f64,
    pub duration: f64,
    pub input_delay: Option<f64>,
    pub processing_duration: Option<f64>,
    pub presentation_delay: Option<f64>,
    /// Ids the client chose so calls it starts can be children; generated when absent.
    pub span: Option<SpanRef>,
    pub attributes: Attributes,
    /// Client attributes the decoder left out beyond its cap (`dropped_attributes_count`).
    pub dropped_attributes: u32,
}

/// A fetch/XHR made by the page.
#[derive(Debug, Clone, Default)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    /// `url.template` (ids folded), set by `process` when it scrubs `url`.
    pub url_template: Option<String>,
    /// Absent or 0: no response (network error, abort).
    pub status: Option<u16>,
    pub start: f64,
    pub duration: f64,
    /// The ids the client sent in `traceparent` (the CLIENT span's own ids).
    pub span: Option<SpanRef>,
    /// The span that was active when the call started (interaction or page load).
    pub parent_span_id: Option<[u8; 8]>,
    /// `Server-Timing` trace entry on the response (becomes a Link).
    pub server_trace: Option<TraceContext>,
    /// `fetch` or `xmlhttprequest`.
    pub initiator: Option<String>,
    /// Transport failure or abort reason, low cardinality.
    pub error_type: Option<String>,
    pub request_body_size: Option<u64>,
    pub response_body_size: Option<u64>,
    pub timing: Option<ResourceTimingPhases>,
    pub attributes: Attributes,
    /// Client attributes the decoder left out beyond its cap (`dropped_attributes_count`).
    pub dropped_attributes: u32,
}

/// A JavaScript error or unhandled rejection.
#[derive(Debug, Clone, Default)]
pub struct ErrorEvent {
    pub time: f64,
    pub error_type: Option<String>,
    pub message: Option<String>,
    pub stack: Option<String>,
    pub handled: bool,
    /// The span active when it was thrown; the page-load span when absent.
    pub active_span: Option<SpanRef>,
    pub attributes: Attributes,
    /// Client attributes the decoder left out beyond its cap (`dropped_attributes_count`).
    pub dropped_attributes: u32,
}

/// Log severity, mapped to OTLP severity numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    /// OTLP `SeverityNumber` (TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21).
    pub fn number(self) -> i32 {
        match self {
            Severity::Trace => 1,
            Severity::Debug => 5,
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
            Severity::Fatal => 21,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Severity::Trace => "TRACE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }

    /// Parses console/Faro level names: `trace|debug|info|log|warn|warning|error|fatal`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => Severity::Trace,
            "debug" => Severity::Debug,
            "info" | "log" => Severity::Info,
            "warn" | "warning" => Severity::Warn,
            "error" => Severity::Error,
            "fatal" | "critical" => Severity::Fatal,
            _ => return None,
        })
    }
}

/// A console log line or a client log call.
#[derive(Debug, Clone, Default)]
pub struct LogEvent {
    pub time: f64,
    pub severity: Severity,
    pub message: String,
    pub active_span: Option<SpanRef>,
    pub attributes: Attributes,
    /// Client attributes the decoder left out beyond its cap (`dropped_attributes_count`).
    pub dropped_attributes: u32,
}

/// A business event (`rumBridge.track(name, attrs)`), e.g. a conversion.
#[derive(Debug, Clone, Default)]
pub struct CustomEvent {
    pub time: f64,
    pub name: String,
    pub active_span: Option<SpanRef>,
    pub attributes: Attributes,
    /// Client attributes the decoder left out beyond its cap (`dropped_attributes_count`).
    pub dropped_attributes: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_follows_google_rule() {
        assert_eq!(VitalName::Lcp.rate(2500.0), Rating::Good);
        assert_eq!(VitalName::Lcp.rate(2500.1), Rating::NeedsImprovement);
        assert_eq!(VitalName::Lcp.rate(4000.0), Rating::NeedsImprovement);
        assert_eq!(VitalName::Lcp.rate(4000.1), Rating::Poor);
        assert_eq!(VitalName::Cls.rate(0.094), Rating::Good);
        assert_eq!(VitalName::Inp.rate(201.0), Rating::NeedsImprovement);
    }

    #[test]
    fn vital_names_parse_any_case() {
        assert_eq!(VitalName::parse("LCP"), Some(VitalName::Lcp));
        assert_eq!(VitalName::parse("ttfb"), Some(VitalName::Ttfb));
        assert_eq!(VitalName::parse("FID"), None);
    }

    #[test]
    fn unix_nanos_adds_origin() {
        let ctx = PageContext {
            time_origin_ms: 1_700_000_000_000.0,
            ..Default::default()
        };
        assert_eq!(ctx.unix_nanos(1.5), 1_700_000_000_001_500_000);
        assert_eq!(ctx.unix_nanos(f64::NAN), 0);
        assert_eq!(ctx.unix_nanos(1e300), u64::MAX);
        let absolute = PageContext::default();
        assert_eq!(
            absolute.unix_nanos(1_795_839_354_566.25),
            1_795_839_354_566_250_000,
            "epoch ms relative to a zero origin keep nanosecond precision"
        );
        assert_eq!(absolute.unix_nanos(-5.0), 0);
    }
}
