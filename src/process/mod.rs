//! Process: what happens to decoded RUM data between the edge and the OTLP mapping.
//!
//! Every batch — native beacons, Faro payloads and OTLP passthrough alike — goes through this
//! stage, so rules written once apply to all formats (design.md §1, §7):
//!
//! - **clock skew** ([`skew`]): browser clocks are often wrong; times are moved onto the
//!   bridge's clock when the difference is large, and the shift is recorded.
//! - **privacy** ([`Processor`]): URL scrubbing and templating ([`url`]), PII redaction in
//!   messages, stack traces and attributes and user-id hashing ([`pii`]).
//! - **client address** ([`client_ip`]): the peer or what trusted proxies say; exported only
//!   truncated and only when configured.
//! - **consent and sampling** ([`Processor::withhold`], [`sampling`]): a page that reports
//!   consent without the analytics category, or an honoured `Sec-GPC: 1`, sends no spans or
//!   logs; sessions are sampled deterministically on their id, so kept sessions are whole,
//!   and errors and poor vitals may be kept regardless. Withheld events still feed the
//!   aggregate metrics (counted in `items_dropped{reason}`).
//! - **enrichment**: user-agent parsing ([`user_agent`]: `user_agent.name/version/os.*`,
//!   `rum.device.class`) on the resource; geo lookup and source maps are to come.
//!
//! - **size caps** ([`limits`]): attributes per item and value lengths, on every payload just
//!   before it is queued.
//!
//! Rules are data from the configuration, compiled once at start-up ([`Processor::new`]);
//! applying them must be cheap and must never panic on hostile input.
//!
//! What the privacy rules touch:
//!
//! | where | what |
//! | --- | --- |
//! | URLs: page, referrer, navigation, resources, HTTP calls | [`url::UrlRules::scrub`], then PII rules on the query; the page's and each call's `url.template` are kept in the model |
//! | free text: error messages and stacks, log messages, CSS selectors (interaction and vital targets) | PII rules |
//! | string attributes (also inside arrays and maps) | URL keys (`url.full`, `http.url`, `*url`, …) scrubbed as URLs, `url.query` as a query, `url.fragment` removed, user-id keys hashed, `user_agent.original` and `server.address` untouched, everything else PII rules |
//! | the user id | hashed, kept or dropped (`privacy.user_id`) |
//! | the client's address ([`client_ip`]) | never exported, unless `privacy.export_client_ip`: then truncated, as the resource attribute `client.address` |
//! | OTLP passthrough | resource, span, span-event, link and log attributes as above, span names and log bodies by PII rules; `url.template` added next to a `url.full` that has none |
//! | Faro items kept for `[faro] compat = "faro-contrib"` ([`faro_contrib`]) | as their model counterparts: texts by PII rules, frame URLs as in stacks, context and event attributes as attributes, a performance event's `name` as a URL, session and page attributes as attributes; browser name, version, OS and brands untouched, like the user agent |

pub mod client_ip;
mod faro_contrib;
pub mod geo;
pub mod limits;
pub mod otlp;
pub mod pii;
pub mod sampling;
pub mod skew;
pub mod url;
pub mod user_agent;

use std::borrow::Cow;
use std::net::IpAddr;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::admin::Metrics;
use crate::config::privacy::UserIdMode;
use crate::config::Config;
use crate::model::semconv::{DEVICE_CLASS, USER_AGENT_ORIGINAL};
use crate::model::{AttrValue, Attributes, PageContext, RumBatch, RumEvent};

use client_ip::ClientIps;
use geo::GeoIp;
use pii::{PiiRules, UserIds};
use sampling::{string_attribute, Sampling};
use url::UrlRules;
use user_agent::{UserAgent, UserAgents};

/// Why the processing rules could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A custom pattern does not compile (config validation reports it first, with its key).
    #[error("invalid privacy rule: {0}")]
    Rule(#[from] regex::Error),
    #[error("server.trusted_proxies: {0}")]
    TrustedProxy(String),
    #[error(transparent)]
    Geo(#[from] geo::GeoError),
}

/// What the edge knows about a request beyond its body.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo {
    /// The client's address ([`Processor::client_ip`]).
    pub client_ip: Option<IpAddr>,
    /// The request carried `Sec-GPC: 1` (Global Privacy Control).
    pub gpc: bool,
    /// The app's own session sample rate, when configured.
    pub sample_rate: Option<f64>,
}

/// Reasons data is held back from span/log export (`items_dropped{reason}`).
pub mod dropped {
    /// The session is outside the sample.
    pub const SAMPLED_OUT: &str = "sampled_out";
    /// The page reported its consent without the analytics category.
    pub const NO_CONSENT: &str = "no_consent";
    /// `Sec-GPC: 1` with `privacy.honor_gpc`.
    pub const GPC: &str = "gpc";
}

/// Events of a batch held back from span/log export: they may still feed aggregate metrics.
#[derive(Debug)]
pub struct Withheld {
    /// One of the [`dropped`] reasons.
    pub reason: &'static str,
    pub events: Vec<RumEvent>,
}

/// What of a batch may leave as spans or logs ([`Processor::export_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportPolicy {
    Everything,
    /// Nothing, for one of the [`dropped`] reasons.
    Nothing(&'static str),
    /// The session is outside the sample: only errors and poor vitals, when configured.
    KeptAnyway,
}

/// OTLP items removed from a passthrough request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// One of the [`dropped`] reasons.
    pub reason: &'static str,
    pub count: usize,
}

use crate::model::semconv::{CLIENT_ADDRESS as ATTR_CLIENT_ADDRESS, SESSION_ID as ATTR_SESSION_ID};

/// The compiled processing rules, shared by every request.
#[derive(Debug)]
pub struct Processor {
    url: UrlRules,
    pii: PiiRules,
    user_ids: UserIds,
    client_ips: ClientIps,
    sampling: Sampling,
    consent_category: String,
    honor_gpc: bool,
    user_agents: UserAgents,
    geo: Option<GeoIp>,
}

/// Attribute keys holding a user id.
const USER_ID_KEYS: [&str; 2] = ["user.id", "enduser.id"];
/// Attribute keys left as they are: user agents are not personal data but look like IPs
/// (`Chrome/120.0.0.0`), and a server's address is the server's, not the user's (URL hosts
/// are kept too).
const UNTOUCHED_KEYS: [&str; 4] = [
    "user_agent.original",
    "http.user_agent",
    "url.template",
    "server.address",
];
/// Attribute keys holding a whole (possibly relative) URL.
const URL_KEYS: [&str; 6] = [
    "url.full",
    "http.url",
    "http.target",
    "url.path",
    "url.original",
    "referrer",
];

/// What kind of value an attribute key holds, for scrubbing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    Untouched,
    UserId,
    Url,
    Query,
    Fragment,
    Stack,
    Text,
}

impl KeyClass {
    fn of(key: &str) -> Self {
        if UNTOUCHED_KEYS.contains(&key) {
            KeyClass::Untouched
        } else if USER_ID_KEYS.contains(&key) {
            KeyClass::UserId
        } else if key == "url.query" {
            KeyClass::Query
        } else if key == "url.fragment" {
            KeyClass::Fragment
        } else if key == "exception.stacktrace" {
            KeyClass::Stack
        } else if URL_KEYS.contains(&key)
            || key.ends_with("url")
            || key.ends_with("Url")
            || key.ends_with("URL")
            || key.ends_with(".url.full")
            || key.ends_with(".href")
        {
            KeyClass::Url
        } else {
            KeyClass::Text
        }
    }
}

impl Processor {
    /// Compiles the `[privacy]` rules; redactions are counted in `metrics`.
    pub fn new(config: &Config, metrics: &Metrics) -> Result<Self, ProcessError> {
        let privacy = &config.privacy;
        if privacy.user_id == UserIdMode::Hash && privacy.user_id_key.is_none() {
            tracing::warn!(
                "privacy.user_id_key and RUM_BRIDGE_USER_ID_KEY are unset: user ids are hashed \
                 with a random key, so hashes change on restart and differ between replicas"
            );
        }
        Ok(Self {
            url: UrlRules::new(&privacy.url)?,
            pii: PiiRules::new(&privacy.pii, metrics)?,
            user_ids: UserIds::new(privacy.user_id, privacy.user_id_key.as_deref()),
            client_ips: ClientIps::new(config).map_err(ProcessError::TrustedProxy)?,
            sampling: Sampling::new(&config.sampling),
            consent_category: privacy.consent_category.clone(),
            honor_gpc: privacy.honor_gpc,
            user_agents: UserAgents::default(),
            geo: config
                .geo
                .database
                .as_deref()
                .map(GeoIp::open)
                .transpose()?,
        })
    }

    /// The compiled URL rules (scrubbing and `url.template`).
    pub fn url_rules(&self) -> &UrlRules {
        &self.url
    }

    /// Why nothing of this request may leave as spans or logs, if so: consent reported
    /// without the configured category, or an honoured `Sec-GPC: 1`.
    fn restriction(
        &self,
        consent: Option<&[String]>,
        request: &RequestInfo,
    ) -> Option<&'static str> {
        if consent.is_some_and(|granted| !granted.contains(&self.consent_category)) {
            Some(dropped::NO_CONSENT)
        } else if self.honor_gpc && request.gpc {
            Some(dropped::GPC)
        } else {
            None
        }
    }

    /// What of a batch may leave as spans or logs: nothing under a consent restriction, else
    /// everything of a session in the sample, else only what is kept anyway (errors and poor
    /// vitals, when configured).
    pub fn export_policy(&self, ctx: &PageContext, request: &RequestInfo) -> ExportPolicy {
        if let Some(reason) = self.restriction(ctx.consent.as_deref(), request) {
            return ExportPolicy::Nothing(reason);
        }
        let rate = self.sampling.rate(request.sample_rate);
        if Sampling::keeps_session(ctx.session_id.as_deref(), rate) {
            ExportPolicy::Everything
        } else {
            ExportPolicy::KeptAnyway
        }
    }

    /// Whether `policy` lets an item leave; `event` is the model event it was made into, if any.
    pub fn exports(&self, policy: ExportPolicy, event: Option<&RumEvent>) -> bool {
        match policy {
            ExportPolicy::Everything => true,
            ExportPolicy::Nothing(_) => false,
            ExportPolicy::KeptAnyway => event.is_some_and(|e| self.sampling.keeps_event_anyway(e)),
        }
    }

    /// Takes out of `batch.events` what must not leave as spans or logs
    /// ([`export_policy`](Self::export_policy)). The caller still feeds them to the aggregate
    /// metrics and counts them.
    pub fn withhold(&self, batch: &mut RumBatch, request: &RequestInfo) -> Option<Withheld> {
        if batch.events.is_empty() {
            return None;
        }
        let reason = match self.export_policy(&batch.context, request) {
            ExportPolicy::Everything => return None,
            ExportPolicy::Nothing(reason) => {
                return Some(Withheld {
                    reason,
                    events: std::mem::take(&mut batch.events),
                })
            }
            ExportPolicy::KeptAnyway => dropped::SAMPLED_OUT,
        };
        let (kept, withheld): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.events)
            .into_iter()
            .partition(|e| self.exports(ExportPolicy::KeptAnyway, Some(e)));
        batch.events = kept;
        (!withheld.is_empty()).then_some(Withheld {
            reason,
            events: withheld,
        })
    }

    /// Applies the privacy rules to every URL and text field of a batch (module docs), and
    /// records the `url.template` of the page and of each HTTP call.
    pub fn process_batch(&self, batch: &mut RumBatch) {
        let ctx = &mut batch.context;
        if let Some(page_url) = &mut ctx.page_url {
            ctx.page_url_template = Some(self.scrub_url(page_url));
        }
        if let Some(referrer) = &mut ctx.referrer {
            self.scrub_url_full(referrer);
        }
        self.user_ids.apply(&mut ctx.user_id);
        self.scrub_attributes(&mut ctx.attributes);
        self.add_user_agent(ctx);
        if let (Some(geo), Some(ip)) = (&self.geo, ctx.client_ip) {
            for (key, value) in geo.lookup(ip) {
                ctx.attributes.retain(|(k, _)| k != key);
                ctx.attributes.push((key.to_owned(), AttrValue::Str(value)));
            }
        }
        if let Some(address) = ctx.client_ip.and_then(|ip| self.client_ips.exported(ip)) {
            ctx.attributes.retain(|(key, _)| key != ATTR_CLIENT_ADDRESS);
            ctx.attributes
                .push((ATTR_CLIENT_ADDRESS.to_owned(), AttrValue::Str(address)));
        }
        for event in &mut batch.events {
            match event {
                RumEvent::PageLoad(page_load) => {
                    if let Some(url) = &mut page_load.navigation.url {
                        self.scrub_url_full(url);
                    }
                    for resource in &mut page_load.resources {
                        self.scrub_url_full(&mut resource.url);
                    }
                }
                RumEvent::Vital(vital) => {
                    self.redact_opt(&mut vital.target);
                    self.scrub_attributes(&mut vital.attribution);
                }
                RumEvent::Interaction(interaction) => {
                    self.redact_opt(&mut interaction.target);
                    self.scrub_attributes(&mut interaction.attributes);
                }
                RumEvent::HttpCall(call) => {
                    call.url_template = Some(self.scrub_url(&mut call.url));
                    self.scrub_attributes(&mut call.attributes);
                }
                RumEvent::Error(error) => {
                    self.redact_opt(&mut error.message);
                    if let Some(stack) = &mut error.stack {
                        self.scrub_stack(stack);
                    }
                    self.scrub_attributes(&mut error.attributes);
                }
                RumEvent::Log(log) => {
                    self.pii.redact_string(&mut log.message);
                    self.scrub_attributes(&mut log.attributes);
                }
                RumEvent::Custom(custom) => self.scrub_attributes(&mut custom.attributes),
            }
        }
    }

    /// Applies the privacy rules to OTLP spans from browser SDKs: resource, span, event and
    /// link attributes, and span names; `client.address` on the resource when exported.
    /// Spans held back (GPC, or sessions outside the sample by their `session.id`) are removed
    /// first and reported.
    pub fn process_otlp_spans(
        &self,
        resource_spans: &mut Vec<ResourceSpans>,
        request: &RequestInfo,
    ) -> Option<Dropped> {
        let dropped = self.withhold_otlp(
            resource_spans,
            request,
            |rs| rs.scope_spans.iter().map(|ss| ss.spans.len()).sum(),
            |rs, keep| {
                for ss in &mut rs.scope_spans {
                    ss.spans.retain(|span| {
                        keep(&span.attributes, self.sampling.keeps_span_anyway(span))
                    });
                }
            },
            |rs| rs.resource.as_ref(),
        );
        for rs in resource_spans.iter_mut() {
            self.scrub_resource(&mut rs.resource, request);
            for span in rs.scope_spans.iter_mut().flat_map(|ss| &mut ss.spans) {
                self.pii.redact_string(&mut span.name);
                self.scrub_key_values(&mut span.attributes);
                self.add_url_template(&mut span.attributes);
                for event in &mut span.events {
                    self.scrub_key_values(&mut event.attributes);
                }
                for link in &mut span.links {
                    self.scrub_key_values(&mut link.attributes);
                }
            }
        }
        dropped
    }

    /// Applies the privacy rules to OTLP log records from browser SDKs: resource and record
    /// attributes, and bodies; `client.address` on the resource when exported. Records held
    /// back (as for spans) are removed first and reported.
    pub fn process_otlp_logs(
        &self,
        resource_logs: &mut Vec<ResourceLogs>,
        request: &RequestInfo,
    ) -> Option<Dropped> {
        let dropped = self.withhold_otlp(
            resource_logs,
            request,
            |rl| rl.scope_logs.iter().map(|sl| sl.log_records.len()).sum(),
            |rl, keep| {
                for sl in &mut rl.scope_logs {
                    sl.log_records
                        .retain(|r| keep(&r.attributes, self.sampling.keeps_log_anyway(r)));
                }
            },
            |rl| rl.resource.as_ref(),
        );
        for rl in resource_logs.iter_mut() {
            self.scrub_resource(&mut rl.resource, request);
            for record in rl.scope_logs.iter_mut().flat_map(|sl| &mut sl.log_records) {
                if let Some(body) = &mut record.body {
                    self.scrub_any_value(KeyClass::Text, body);
                }
                self.scrub_key_values(&mut record.attributes);
            }
        }
        dropped
    }

    /// Removes held-back OTLP items: all of them under a GPC restriction, else the items
    /// whose session (`session.id` on the item, else on the resource) is outside the sample
    /// and that are not kept anyway. Resources left empty are removed.
    fn withhold_otlp<R>(
        &self,
        resources: &mut Vec<R>,
        request: &RequestInfo,
        count: impl Fn(&R) -> usize,
        retain: impl Fn(&mut R, &dyn Fn(&[KeyValue], bool) -> bool),
        resource: impl Fn(&R) -> Option<&Resource>,
    ) -> Option<Dropped> {
        let before: usize = resources.iter().map(&count).sum();
        if before == 0 {
            return None;
        }
        if let Some(reason) = self.restriction(None, request) {
            resources.clear();
            return Some(Dropped {
                reason,
                count: before,
            });
        }
        let rate = self.sampling.rate(request.sample_rate);
        if rate >= 1.0 {
            return None;
        }
        for r in resources.iter_mut() {
            let resource_session = resource(r)
                .and_then(|res| string_attribute(&res.attributes, ATTR_SESSION_ID))
                .map(str::to_owned);
            retain(r, &|attributes, keep_anyway| {
                let session =
                    string_attribute(attributes, ATTR_SESSION_ID).or(resource_session.as_deref());
                keep_anyway || Sampling::keeps_session(session, rate)
            });
        }
        resources.retain(|r| count(r) > 0);
        let after: usize = resources.iter().map(&count).sum();
        (after < before).then_some(Dropped {
            reason: dropped::SAMPLED_OUT,
            count: before - after,
        })
    }

    /// Scrubs a URL in place and returns its template; the PII rules then run on the query,
    /// whose allow-listed values may still hold e-mail addresses (`utm_content=…`).
    fn scrub_url(&self, url: &mut String) -> String {
        let scrubbed = self.url.scrub(url);
        *url = scrubbed.full;
        self.redact_query(url);
        scrubbed.template
    }

    fn scrub_url_full(&self, url: &mut String) {
        *url = self.url.scrub_full(url);
        self.redact_query(url);
    }

    fn redact_query(&self, url: &mut String) {
        let Some(start) = url.find('?') else { return };
        if let Cow::Owned(query) = self.pii.redact(&url[start..]) {
            url.truncate(start);
            url.push_str(&query);
        }
    }

    /// A stack trace: the URLs of its frames keep scheme, host and path (source maps need
    /// them exactly) but their query values are redacted like any URL's and fragments
    /// dropped; then the PII rules run over the whole text.
    fn scrub_stack(&self, stack: &mut String) {
        if stack.contains("://") && stack.contains(['?', '#']) {
            let mut out = String::with_capacity(stack.len());
            let mut rest = stack.as_str();
            while let Some(at) = rest.find("://") {
                let start = rest[..at]
                    .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+' && c != '-' && c != '.')
                    .map_or(0, |i| i + 1);
                let len = rest[at..]
                    .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>'))
                    .unwrap_or(rest.len() - at);
                let end = at + len;
                out.push_str(&rest[..start]);
                self.scrub_frame_url(&rest[start..end], &mut out);
                rest = &rest[end..];
            }
            out.push_str(rest);
            *stack = out;
        }
        self.pii.redact_string(stack);
    }

    /// Appends `url` (a frame location, maybe ending in `:line:column`) to `out` with its
    /// query scrubbed and its fragment removed.
    fn scrub_frame_url(&self, url: &str, out: &mut String) {
        let Some(cut) = url.find(['?', '#']) else {
            out.push_str(url);
            return;
        };
        let (location, tail) = url.split_at(cut);
        // `:line` or `:line:column` after the query belongs to the frame, not to the URL.
        let mut position = tail.len();
        for _ in 0..2 {
            match tail[..position].rfind(':') {
                Some(colon)
                    if colon + 1 < position
                        && tail[colon + 1..position]
                            .bytes()
                            .all(|b| b.is_ascii_digit()) =>
                {
                    position = colon;
                }
                _ => break,
            }
        }
        let (query, line_col) = tail.split_at(position);
        out.push_str(location);
        let query = query.split('#').next().unwrap_or_default();
        if query.len() > 1 {
            let mut scrubbed = format!("https://x{query}");
            self.scrub_url_full(&mut scrubbed);
            if let Some(q) = scrubbed.find('?') {
                out.push_str(&scrubbed[q..]);
            }
        }
        out.push_str(line_col);
    }

    fn redact_opt(&self, text: &mut Option<String>) {
        if let Some(text) = text {
            self.pii.redact_string(text);
        }
    }

    fn scrub_attributes(&self, attributes: &mut Attributes) {
        attributes.retain_mut(|(key, value)| match value {
            AttrValue::Str(text) => self.scrub_text(KeyClass::of(key), text),
            _ => KeyClass::of(key) != KeyClass::Fragment,
        });
    }

    /// Scrubs one string value by the class of its key; `false` when the value must go
    /// (a fragment, or a user id under `privacy.user_id = "drop"`).
    fn scrub_text(&self, class: KeyClass, text: &mut String) -> bool {
        match class {
            KeyClass::Untouched => {}
            KeyClass::Fragment => return false,
            KeyClass::UserId => {
                let mut id = Some(std::mem::take(text));
                self.user_ids.apply(&mut id);
                match id {
                    Some(id) => *text = id,
                    None => return false,
                }
            }
            KeyClass::Url => self.scrub_url_full(text),
            KeyClass::Query => {
                let mut query = format!("?{text}");
                self.scrub_url_full(&mut query);
                text.clear();
                text.push_str(query.strip_prefix('?').unwrap_or_default());
            }
            KeyClass::Stack => self.scrub_stack(text),
            KeyClass::Text => self.pii.redact_string(text),
        }
        true
    }

    fn scrub_resource(&self, resource: &mut Option<Resource>, request: &RequestInfo) {
        if let Some(resource) = resource {
            self.scrub_key_values(&mut resource.attributes);
            self.add_user_agent_attributes(&mut resource.attributes);
        }
        if let (Some(geo), Some(ip)) = (&self.geo, request.client_ip) {
            let found = geo.lookup(ip);
            if !found.is_empty() {
                let attributes = &mut resource.get_or_insert_with(Resource::default).attributes;
                for (key, value) in found {
                    attributes.retain(|kv| kv.key != key);
                    attributes.push(string_kv(key, value));
                }
            }
        }
        let Some(address) = request
            .client_ip
            .and_then(|ip| self.client_ips.exported(ip))
        else {
            return;
        };
        let attributes = &mut resource.get_or_insert_with(Resource::default).attributes;
        attributes.retain(|kv| kv.key != ATTR_CLIENT_ADDRESS);
        attributes.push(string_kv(ATTR_CLIENT_ADDRESS, address));
    }

    fn scrub_key_values(&self, attributes: &mut Vec<KeyValue>) {
        attributes.retain_mut(|kv| {
            let class = KeyClass::of(&kv.key);
            match &mut kv.value {
                Some(value) => self.scrub_any_value(class, value),
                None => class != KeyClass::Fragment,
            }
        });
    }

    /// Scrubs a value (arrays and maps included); `false` when it must go (see
    /// [`scrub_text`](Self::scrub_text)).
    fn scrub_any_value(&self, class: KeyClass, value: &mut AnyValue) -> bool {
        match &mut value.value {
            Some(Value::StringValue(text)) => return self.scrub_text(class, text),
            Some(Value::ArrayValue(array)) => {
                array.values.retain_mut(|v| self.scrub_any_value(class, v));
            }
            Some(Value::KvlistValue(list)) => self.scrub_key_values(&mut list.values),
            _ => {}
        }
        class != KeyClass::Fragment
    }

    /// Parses the page's user agent, once: sets the typed device class and browser name every
    /// signal reads, adds the parsed `user_agent.*` attributes the client did not send, and
    /// writes `rum.device.class` from the device class (a client's value never wins).
    fn add_user_agent(&self, ctx: &mut PageContext) {
        let parsed = ctx
            .user_agent
            .as_deref()
            .map(|ua| self.user_agents.parse(ua));
        let parsed = parsed.as_deref();
        ctx.device_class = user_agent::device_class(parsed, ctx.browser.mobile);
        ctx.browser.name = user_agent::browser_name(parsed, &ctx.browser.brands);
        for (key, value) in parsed.into_iter().flat_map(UserAgent::attributes) {
            if !ctx.attributes.iter().any(|(k, _)| k == key) {
                ctx.attributes
                    .push((key.to_owned(), AttrValue::Str(value.to_owned())));
            }
        }
        ctx.attributes.retain(|(key, _)| key != DEVICE_CLASS);
        if let Some(class) = ctx.device_class {
            ctx.attributes.push((
                DEVICE_CLASS.to_owned(),
                AttrValue::Str(class.as_str().into()),
            ));
        }
    }

    /// The OTLP counterpart of [`add_user_agent`](Self::add_user_agent) on a resource: adds the
    /// parsed `user_agent.*` attributes it lacks and writes `rum.device.class` (from the parse,
    /// else `browser.mobile`).
    fn add_user_agent_attributes(&self, attributes: &mut Vec<KeyValue>) {
        let Some(ua) = string_attribute(attributes, USER_AGENT_ORIGINAL) else {
            return;
        };
        let parsed = self.user_agents.parse(ua);
        let mobile = attributes.iter().find_map(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(Value::BoolValue(mobile)),
            }) if kv.key == "browser.mobile" => Some(*mobile),
            _ => None,
        });
        for (key, value) in parsed.attributes() {
            if !attributes.iter().any(|kv| kv.key == key) {
                attributes.push(string_kv(key, value.to_owned()));
            }
        }
        attributes.retain(|kv| kv.key != DEVICE_CLASS);
        if let Some(class) = user_agent::device_class(Some(&parsed), mobile) {
            attributes.push(string_kv(DEVICE_CLASS, class.as_str().to_owned()));
        }
    }

    /// Adds `url.template` next to a `url.full` (already scrubbed) when the span has none.
    fn add_url_template(&self, attributes: &mut Vec<KeyValue>) {
        if attributes.iter().any(|kv| kv.key == "url.template") {
            return;
        }
        let full = attributes.iter().find_map(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(Value::StringValue(url)),
            }) if kv.key == "url.full" => Some(url),
            _ => None,
        });
        if let Some(url) = full {
            let template = self.url.template(url);
            attributes.push(string_kv("url.template", template));
        }
    }
}

fn string_kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        CustomEvent, DeviceClass, ErrorEvent, HttpCall, Interaction, LogEvent, NavigationTiming,
        PageContext, PageLoad, Rating, ResourceTiming, VitalName, WebVital,
    };
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    const EMAIL: &str = "alice@example.com";
    const CARD: &str = "4111 1111 1111 1111";
    const KEY: &str = "0123456789abcdef0123";

    fn processor_with(config: &Config) -> (Processor, Metrics) {
        let metrics = Metrics::new();
        (Processor::new(config, &metrics).unwrap(), metrics)
    }

    fn processor() -> Processor {
        let mut config = Config::default();
        config.privacy.user_id_key = Some(KEY.into());
        processor_with(&config).0
    }

    fn s(text: &str) -> AttrValue {
        AttrValue::Str(text.into())
    }

    #[test]
    fn stack_frame_urls_keep_their_path_and_position_but_not_their_query() {
        let p = processor();
        let cases = [
            (
                "Error: x\n    at pay (https://shop.example.com/app.3f2a.js?token=a8Fk29xQ7mP3zL0w:10:5)",
                "Error: x\n    at pay (https://shop.example.com/app.3f2a.js?token=REDACTED:10:5)",
            ),
            (
                "at https://cdn.example.com/v/12345/main.js?utm_source=x&sid=s3cr3t#frag:1:2",
                "at https://cdn.example.com/v/12345/main.js?utm_source=x&sid=REDACTED:1:2",
            ),
            (
                "lookup@https://shop.example.com/a.js:3:7\nglobal code@https://shop.example.com/?email=a%40b.io:1:1",
                "lookup@https://shop.example.com/a.js:3:7\nglobal code@https://shop.example.com/?email=REDACTED:1:1",
            ),
            // Nothing to do: paths are never templated in stacks (source maps need them).
            (
                "at f (https://shop.example.com/static/5f8e9a1b2c3d4e5f.js:1:2)",
                "at f (https://shop.example.com/static/5f8e9a1b2c3d4e5f.js:1:2)",
            ),
            ("ünïcödé ?x=1 no url", "ünïcödé ?x=1 no url"),
        ];
        for (input, expected) in cases {
            let mut stack = input.to_owned();
            p.scrub_stack(&mut stack);
            assert_eq!(stack, expected);
        }
        let mut long = format!("at f (https://e.com/a.js?q={}:1:2)", "é".repeat(10_000));
        p.scrub_stack(&mut long);
        assert_eq!(long, "at f (https://e.com/a.js?q=REDACTED:1:2)");
    }

    fn batch() -> RumBatch {
        RumBatch {
            context: PageContext {
                page_url: Some(format!(
                    "https://alice:pw@shop.example.com/users/{EMAIL}/orders/12345?token=abc#x"
                )),
                referrer: Some("https://mail.example.com/inbox/98765?u=bob".into()),
                user_id: Some("user-42".into()),
                user_agent: Some("Mozilla/5.0 Chrome/120.0.0.0".into()),
                attributes: vec![
                    ("app.note".into(), s(&format!("owner {EMAIL}"))),
                    ("user_agent.original".into(), s("Chrome/120.0.0.0")),
                ],
                ..Default::default()
            },
            events: vec![
                RumEvent::PageLoad(PageLoad {
                    navigation: NavigationTiming {
                        url: Some("https://shop.example.com/reset/a8Fk29xQ7mP3zL0w".into()),
                        ..Default::default()
                    },
                    resources: vec![ResourceTiming {
                        url: "https://cdn.example.com/img/42.png?sig=zzz".into(),
                        ..Default::default()
                    }],
                }),
                RumEvent::Vital(WebVital {
                    name: VitalName::Lcp,
                    value: 1.0,
                    delta: 1.0,
                    id: "v1".into(),
                    rating: Rating::Good,
                    navigation_type: None,
                    time: None,
                    target: Some(format!("a[href=\"mailto:{EMAIL}\"]")),
                    attribution: vec![("url".into(), s("https://x.test/p/777?q=1"))],
                }),
                RumEvent::Interaction(Interaction {
                    target: Some(format!("#user-{EMAIL}")),
                    attributes: vec![("note".into(), s("ip 203.0.113.9"))],
                    ..Default::default()
                }),
                RumEvent::HttpCall(HttpCall {
                    method: "GET".into(),
                    url: "https://api.example.com/users/12345/cards?utm_content=bob%40example.com&x=1"
                        .into(),
                    attributes: vec![
                        ("http.url".into(), s("https://api.example.com/a/99?k=v")),
                        ("url.query".into(), s("k=v&utm_source=news")),
                        ("url.fragment".into(), s("secret")),
                    ],
                    ..Default::default()
                }),
                RumEvent::Error(ErrorEvent {
                    message: Some(format!("charge failed for {CARD}")),
                    stack: Some(format!("Error: {EMAIL}\n at pay (https://shop.example.com/app.js:1:2)")),
                    attributes: vec![("enduser.id".into(), s("bob"))],
                    ..Default::default()
                }),
                RumEvent::Log(LogEvent {
                    message: "Authorization: Bearer abc.DEF-123".into(),
                    ..Default::default()
                }),
                RumEvent::Custom(CustomEvent {
                    name: "checkout".into(),
                    attributes: vec![
                        ("amount".into(), AttrValue::Int(10)),
                        ("email".into(), s(EMAIL)),
                    ],
                    ..Default::default()
                }),
            ],
            rejected: vec![],
        }
    }

    #[test]
    fn every_url_and_text_field_of_a_batch_is_scrubbed() {
        let p = processor();
        let mut b = batch();
        p.process_batch(&mut b);
        let ctx = &b.context;
        assert_eq!(
            ctx.page_url.as_deref(),
            Some(
                "https://REDACTED:REDACTED@shop.example.com/users/{id}/orders/{id}?token=REDACTED"
            )
        );
        assert_eq!(
            ctx.page_url_template.as_deref(),
            Some("/users/{id}/orders/{id}")
        );
        assert_eq!(
            ctx.referrer.as_deref(),
            Some("https://mail.example.com/inbox/{id}?u=REDACTED")
        );
        assert_eq!(
            ctx.user_id.as_deref(),
            Some(
                UserIds::new(UserIdMode::Hash, Some(KEY))
                    .hash("user-42")
                    .as_str()
            )
        );
        assert_eq!(
            ctx.user_agent.as_deref(),
            Some("Mozilla/5.0 Chrome/120.0.0.0")
        );
        assert_eq!(ctx.attributes[0].1, s("owner [email]"));
        assert_eq!(ctx.attributes[1].1, s("Chrome/120.0.0.0"));

        let RumEvent::PageLoad(pl) = &b.events[0] else {
            panic!()
        };
        assert_eq!(
            pl.navigation.url.as_deref(),
            Some("https://shop.example.com/reset/{id}")
        );
        assert_eq!(
            pl.resources[0].url,
            "https://cdn.example.com/img/42.png?sig=REDACTED"
        );
        let RumEvent::Vital(v) = &b.events[1] else {
            panic!()
        };
        assert_eq!(v.target.as_deref(), Some("a[href=\"mailto:[email]\"]"));
        assert_eq!(v.attribution[0].1, s("https://x.test/p/{id}?q=REDACTED"));
        let RumEvent::Interaction(i) = &b.events[2] else {
            panic!()
        };
        assert_eq!(i.target.as_deref(), Some("#[email]"));
        assert_eq!(i.attributes[0].1, s("ip [ip]"));
        let RumEvent::HttpCall(c) = &b.events[3] else {
            panic!()
        };
        assert_eq!(
            c.url,
            "https://api.example.com/users/{id}/cards?utm_content=[email]&x=REDACTED"
        );
        assert_eq!(c.url_template.as_deref(), Some("/users/{id}/cards"));
        assert_eq!(
            c.attributes,
            vec![
                (
                    "http.url".into(),
                    s("https://api.example.com/a/{id}?k=REDACTED")
                ),
                ("url.query".into(), s("k=REDACTED&utm_source=news")),
            ]
        );
        let RumEvent::Error(e) = &b.events[4] else {
            panic!()
        };
        assert_eq!(e.message.as_deref(), Some("charge failed for [card]"));
        assert_eq!(
            e.stack.as_deref(),
            Some("Error: [email]\n at pay (https://shop.example.com/app.js:1:2)")
        );
        assert_eq!(e.attributes[0].1, s(&p.user_ids.hash("bob")));
        let RumEvent::Log(l) = &b.events[5] else {
            panic!()
        };
        assert_eq!(l.message, "Authorization: Bearer [token]");
        let RumEvent::Custom(c) = &b.events[6] else {
            panic!()
        };
        assert_eq!(
            c.attributes,
            vec![
                ("amount".into(), AttrValue::Int(10)),
                ("email".into(), s("[email]"))
            ]
        );
    }

    #[test]
    fn processing_twice_changes_nothing_more() {
        let mut config = Config::default();
        config.privacy.user_id = UserIdMode::Plain;
        let (p, _) = processor_with(&config);
        let mut b = batch();
        p.process_batch(&mut b);
        let once = format!("{b:?}");
        p.process_batch(&mut b);
        assert_eq!(format!("{b:?}"), once);
    }

    #[test]
    fn user_ids_can_be_dropped_or_kept() {
        let mut config = Config::default();
        config.privacy.user_id = UserIdMode::Drop;
        let (p, _) = processor_with(&config);
        let mut b = batch();
        p.process_batch(&mut b);
        assert_eq!(b.context.user_id, None);
        let RumEvent::Error(e) = &b.events[4] else {
            panic!()
        };
        assert!(e.attributes.is_empty());

        config.privacy.user_id = UserIdMode::Plain;
        let (p, _) = processor_with(&config);
        let mut b = batch();
        p.process_batch(&mut b);
        assert_eq!(b.context.user_id.as_deref(), Some("user-42"));
    }

    #[test]
    fn redactions_are_counted() {
        let (p, metrics) = processor_with(&Config::default());
        let mut b = batch();
        p.process_batch(&mut b);
        let text = metrics.encode();
        assert!(
            text.contains("rum_bridge_privacy_redactions_total{rule=\"email\"} 6"),
            "{text}"
        );
        assert!(
            text.contains("rum_bridge_privacy_redactions_total{rule=\"card\"} 1"),
            "{text}"
        );
    }

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn sv(text: &str) -> Value {
        Value::StringValue(text.into())
    }

    fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn otlp_spans_are_scrubbed() {
        let p = processor();
        let mut spans = vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("user_agent.original", sv("Chrome/120.0.0.0")),
                    kv("app.owner", sv(EMAIL)),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: format!("lookup {EMAIL}"),
                    attributes: vec![
                        kv(
                            "url.full",
                            sv("https://api.example.com/users/12345?email=x#f"),
                        ),
                        kv("user.id", sv("u1")),
                        kv("url.fragment", sv("f")),
                        kv(
                            "list",
                            Value::ArrayValue(ArrayValue {
                                values: vec![AnyValue {
                                    value: Some(sv(CARD)),
                                }],
                            }),
                        ),
                        kv(
                            "map",
                            Value::KvlistValue(KeyValueList {
                                values: vec![kv("page.url", sv("/p/1?a=b"))],
                            }),
                        ),
                    ],
                    events: vec![Event {
                        name: "exception".into(),
                        attributes: vec![
                            kv("exception.message", sv(&format!("no user {EMAIL}"))),
                            kv(
                                "exception.stacktrace",
                                sv("at f (https://10.0.0.1/a.js:1:1)"),
                            ),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }];
        p.process_otlp_spans(&mut spans, &RequestInfo::default());
        let rs = &spans[0];
        let res = &rs.resource.as_ref().unwrap().attributes;
        assert_eq!(
            find(res, "user_agent.original"),
            Some(&sv("Chrome/120.0.0.0"))
        );
        assert_eq!(find(res, "app.owner"), Some(&sv("[email]")));
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(span.name, "lookup [email]");
        let a = &span.attributes;
        assert_eq!(
            find(a, "url.full"),
            Some(&sv("https://api.example.com/users/{id}?email=REDACTED"))
        );
        assert_eq!(find(a, "url.template"), Some(&sv("/users/{id}")));
        assert_eq!(find(a, "user.id"), Some(&sv(&p.user_ids.hash("u1"))));
        assert_eq!(find(a, "url.fragment"), None);
        assert!(format!("{:?}", find(a, "list")).contains("[card]"));
        assert!(format!("{:?}", find(a, "map")).contains("/p/{id}?a=REDACTED"));
        let ev = &span.events[0].attributes;
        assert_eq!(find(ev, "exception.message"), Some(&sv("no user [email]")));
        assert_eq!(
            find(ev, "exception.stacktrace"),
            Some(&sv("at f (https://[ip]/a.js:1:1)"))
        );
    }

    #[test]
    fn otlp_log_bodies_and_attributes_are_scrubbed() {
        let p = processor();
        let mut logs = vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        body: Some(AnyValue {
                            value: Some(sv(&format!("signup {EMAIL}"))),
                        }),
                        attributes: vec![kv("http.url", sv("/a?b=c"))],
                        ..Default::default()
                    },
                    LogRecord {
                        body: Some(AnyValue {
                            value: Some(Value::KvlistValue(KeyValueList {
                                values: vec![kv("message", sv(CARD))],
                            })),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }];
        p.process_otlp_logs(&mut logs, &RequestInfo::default());
        let records = &logs[0].scope_logs[0].log_records;
        assert_eq!(
            records[0].body.as_ref().unwrap().value,
            Some(sv("signup [email]"))
        );
        assert_eq!(
            find(&records[0].attributes, "http.url"),
            Some(&sv("/a?b=REDACTED"))
        );
        assert!(format!("{:?}", records[1].body).contains("[card]"));
        assert!(logs[0].resource.is_none());
    }

    #[test]
    fn client_address_is_exported_only_when_configured_and_truncated() {
        let client: IpAddr = "203.0.113.77".parse().unwrap();
        let request = RequestInfo {
            client_ip: Some(client),
            ..Default::default()
        };
        let mut b = batch();
        b.context.client_ip = Some(client);
        b.context
            .attributes
            .push((ATTR_CLIENT_ADDRESS.into(), s("198.51.100.1")));
        let mut spans = vec![ResourceSpans::default()];
        processor().process_batch(&mut b);
        processor().process_otlp_spans(&mut spans, &request);
        // What conversion exports of the context: its attributes (never `client_ip` itself).
        let exported = format!("{:?}", b.context.attributes);
        for address in ["203.0.113", "198.51.100"] {
            assert!(!exported.contains(address), "{address} in {exported}");
        }
        assert!(spans[0].resource.is_none());

        let mut config = Config::default();
        config.privacy.export_client_ip = true;
        let (p, _) = processor_with(&config);
        let mut b = batch();
        b.context.client_ip = Some(client);
        b.context
            .attributes
            .push((ATTR_CLIENT_ADDRESS.into(), s("198.51.100.1")));
        p.process_batch(&mut b);
        let addresses: Vec<_> = b
            .context
            .attributes
            .iter()
            .filter(|(k, _)| k == ATTR_CLIENT_ADDRESS)
            .collect();
        assert_eq!(
            addresses,
            [&(ATTR_CLIENT_ADDRESS.to_owned(), s("203.0.113.0"))]
        );
        let mut logs = vec![ResourceLogs::default()];
        p.process_otlp_logs(&mut logs, &request);
        let res = &logs[0].resource.as_ref().unwrap().attributes;
        assert_eq!(find(res, ATTR_CLIENT_ADDRESS), Some(&sv("203.0.113.0")));
    }

    /// Session ids inside and outside a 50 % sample.
    fn sessions() -> (String, String) {
        let find = |kept: bool| {
            (0..)
                .map(|i| format!("session-{i}"))
                .find(|id| Sampling::keeps_session(Some(id), 0.5) == kept)
                .unwrap()
        };
        (find(true), find(false))
    }

    fn kinds(events: &[RumEvent]) -> Vec<&'static str> {
        events.iter().map(RumEvent::kind).collect()
    }

    #[test]
    fn consent_without_analytics_withholds_everything() {
        let p = processor();
        let all = kinds(&batch().events);
        let mut b = batch();
        b.context.consent = Some(vec!["functional".into()]);
        let w = p.withhold(&mut b, &RequestInfo::default()).unwrap();
        assert_eq!(w.reason, dropped::NO_CONSENT);
        assert_eq!(kinds(&w.events), all);
        assert!(b.events.is_empty());

        for consent in [None, Some(vec!["functional".into(), "analytics".into()])] {
            let mut b = batch();
            b.context.consent = consent;
            assert!(p.withhold(&mut b, &RequestInfo::default()).is_none());
            assert_eq!(kinds(&b.events), all);
        }
    }

    #[test]
    fn gpc_is_honoured_only_when_configured() {
        let gpc = RequestInfo {
            gpc: true,
            ..Default::default()
        };
        let mut b = batch();
        assert!(processor().withhold(&mut b, &gpc).is_none());
        let mut config = Config::default();
        config.privacy.honor_gpc = true;
        let (p, _) = processor_with(&config);
        let w = p.withhold(&mut b, &gpc).unwrap();
        assert_eq!((w.reason, w.events.len()), (dropped::GPC, 7));
        let mut spans = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(), Span::default()],
                ..Default::default()
            }],
            ..Default::default()
        }];
        assert_eq!(
            p.process_otlp_spans(&mut spans, &gpc),
            Some(Dropped {
                reason: dropped::GPC,
                count: 2
            })
        );
        assert!(spans.is_empty());
    }

    #[test]
    fn sessions_outside_the_sample_keep_only_errors_and_poor_vitals() {
        let (inside, outside) = sessions();
        let half = RequestInfo {
            sample_rate: Some(0.5),
            ..Default::default()
        };
        let p = processor();
        let mut b = batch();
        b.context.session_id = Some(inside);
        assert!(p.withhold(&mut b, &half).is_none());
        assert_eq!(b.events.len(), 7);

        let mut b = batch();
        b.context.session_id = Some(outside.clone());
        let w = p.withhold(&mut b, &half).unwrap();
        assert_eq!(w.reason, dropped::SAMPLED_OUT);
        assert_eq!(kinds(&b.events), ["error"]);
        assert_eq!(w.events.len(), 6);
        // The app's rate wins over the default; without one the default (1.0) keeps all.
        let mut b = batch();
        b.context.session_id = Some(outside.clone());
        assert!(p.withhold(&mut b, &RequestInfo::default()).is_none());

        let mut config = Config::default();
        config.sampling.default_rate = 0.5;
        config.sampling.keep_errors = false;
        let (p, _) = processor_with(&config);
        let mut b = batch();
        b.context.session_id = Some(outside);
        let w = p.withhold(&mut b, &RequestInfo::default()).unwrap();
        assert_eq!((b.events.len(), w.events.len()), (0, 7));
    }

    fn span(session: Option<&str>, error: bool) -> Span {
        Span {
            attributes: session
                .map(|s| vec![kv(ATTR_SESSION_ID, sv(s))])
                .unwrap_or_default(),
            events: if error {
                vec![Event {
                    name: "exception".into(),
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            ..Default::default()
        }
    }

    #[test]
    fn otlp_data_is_sampled_by_session() {
        let (inside, outside) = sessions();
        let half = RequestInfo {
            sample_rate: Some(0.5),
            ..Default::default()
        };
        let p = processor();
        let mut spans = vec![
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(Some(&inside), false),
                        span(Some(&outside), false),
                        span(Some(&outside), true),
                        span(None, false),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(ATTR_SESSION_ID, sv(&outside))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(None, false)],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ];
        assert_eq!(
            p.process_otlp_spans(&mut spans, &half),
            Some(Dropped {
                reason: dropped::SAMPLED_OUT,
                count: 2
            })
        );
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].scope_spans[0].spans.len(), 3);
        assert!(p
            .process_otlp_spans(&mut spans, &RequestInfo::default())
            .is_none());

        let record = |session: &str, severity: i32| LogRecord {
            severity_number: severity,
            attributes: vec![kv(ATTR_SESSION_ID, sv(session))],
            ..Default::default()
        };
        let mut logs = vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record(&outside, 9),
                    record(&outside, 17),
                    record(&inside, 9),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }];
        assert_eq!(
            p.process_otlp_logs(&mut logs, &half),
            Some(Dropped {
                reason: dropped::SAMPLED_OUT,
                count: 1
            })
        );
        assert_eq!(logs[0].scope_logs[0].log_records.len(), 2);
    }

    #[test]
    fn user_agents_are_parsed_onto_the_resource() {
        const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let p = processor();
        let mut b = batch();
        b.context.user_agent = Some(UA.into());
        b.context
            .attributes
            .push(("user_agent.name".into(), s("FromClient")));
        b.context
            .attributes
            .push((DEVICE_CLASS.into(), s("fridge")));
        p.process_batch(&mut b);
        let get = |key: &str| {
            let mut values = b.context.attributes.iter().filter(|(k, _)| k == key);
            let value = values.next().map(|(_, v)| v.clone());
            assert!(values.next().is_none(), "{key} is written once");
            value
        };
        assert_eq!(get("user_agent.name"), Some(s("FromClient")));
        assert_eq!(get("user_agent.os.name"), Some(s("iOS")));
        assert_eq!(
            get(DEVICE_CLASS),
            Some(s("mobile")),
            "the bridge's value wins"
        );
        assert_eq!(b.context.device_class, Some(DeviceClass::Mobile));
        assert_eq!(b.context.browser.name.as_deref(), Some("Safari"));

        let mut logs = vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("user_agent.original", sv(UA)),
                    kv(DEVICE_CLASS, sv("fridge")),
                ],
                ..Default::default()
            }),
            ..Default::default()
        }];
        p.process_otlp_logs(&mut logs, &RequestInfo::default());
        let res = &logs[0].resource.as_ref().unwrap().attributes;
        assert_eq!(find(res, "user_agent.name"), Some(&sv("Safari")));
        assert_eq!(find(res, "user_agent.os.version"), Some(&sv("17.0")));
        assert_eq!(find(res, DEVICE_CLASS), Some(&sv("mobile")));
        assert_eq!(res.iter().filter(|kv| kv.key == DEVICE_CLASS).count(), 1);
    }

    /// Runs `process_batch` on a context with this user agent and these client hints; returns
    /// the typed device class and browser name, and the `rum.device.class` attribute.
    fn parsed_context(
        user_agent: Option<&str>,
        mobile: Option<bool>,
        brands: &[&str],
    ) -> (Option<DeviceClass>, Option<String>, Option<AttrValue>) {
        let mut b = batch();
        b.context.user_agent = user_agent.map(str::to_owned);
        b.context.browser.mobile = mobile;
        b.context.browser.brands = brands.iter().map(|b| b.to_string()).collect();
        processor().process_batch(&mut b);
        let attribute = b
            .context
            .attributes
            .iter()
            .find(|(k, _)| k == DEVICE_CLASS)
            .map(|(_, v)| v.clone());
        (b.context.device_class, b.context.browser.name, attribute)
    }

    #[test]
    fn device_class_comes_from_the_user_agent_then_the_mobile_client_hint() {
        use DeviceClass::*;
        const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
        const FIREFOX_LINUX: &str =
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        const GOOGLEBOT: &str =
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let cases = [
            (Some(IPHONE), None, Some(Mobile)),
            (Some(IPAD), Some(false), Some(Tablet)),
            (Some(FIREFOX_LINUX), Some(true), Some(Desktop)),
            (Some(GOOGLEBOT), None, Some(Bot)),
            (Some("curl/8.0"), Some(true), Some(Mobile)),
            (None, Some(true), Some(Mobile)),
            (None, Some(false), Some(Desktop)),
            (None, None, None),
        ];
        for (ua, mobile, expected) in cases {
            let (class, _, attribute) = parsed_context(ua, mobile, &[]);
            assert_eq!(class, expected, "{ua:?} {mobile:?}");
            assert_eq!(
                attribute,
                expected.map(|c| s(c.as_str())),
                "{ua:?} {mobile:?}"
            );
        }
    }

    #[test]
    fn browser_names_come_from_the_user_agent_then_the_brands() {
        let chrome_brands = ["Chromium 156", "Google Chrome 156", "Not_A Brand 24"];
        let agents = [
            ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Safari"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", "Edge"),
        ];
        for (ua, name) in agents {
            // The parsed user agent wins over the brands.
            let (_, browser, _) = parsed_context(Some(ua), None, &chrome_brands);
            assert_eq!(browser.as_deref(), Some(name), "{ua}");
        }
        let brands = |brands: &[&str]| parsed_context(None, None, brands).1;
        assert_eq!(brands(&chrome_brands).as_deref(), Some("Chrome"));
        assert_eq!(
            brands(&["Not)A;Brand 8", "Microsoft Edge 120"]).as_deref(),
            Some("Edge")
        );
        assert_eq!(brands(&["Chromium 156"]).as_deref(), Some("Chromium"));
        assert_eq!(brands(&["Not)A;Brand 8"]), None);
        // A user agent that names no browser leaves the brands to say.
        let (_, browser, _) = parsed_context(Some("Mozilla/5.0"), None, &chrome_brands);
        assert_eq!(browser.as_deref(), Some("Chrome"));
    }

    #[test]
    fn key_classes() {
        for (key, class) in [
            ("url.full", KeyClass::Url),
            ("http.url", KeyClass::Url),
            ("browser.document.url.full", KeyClass::Url),
            ("pageUrl", KeyClass::Url),
            ("link.href", KeyClass::Url),
            ("url.query", KeyClass::Query),
            ("url.fragment", KeyClass::Fragment),
            ("user.id", KeyClass::UserId),
            ("user_agent.original", KeyClass::Untouched),
            ("server.address", KeyClass::Untouched),
            ("url.template", KeyClass::Untouched),
            ("exception.message", KeyClass::Text),
            ("browser.css_selector", KeyClass::Text),
        ] {
            assert_eq!(KeyClass::of(key), class, "{key}");
        }
    }
}
