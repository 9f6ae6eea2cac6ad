//! Process: what happens to decoded RUM data between the edge and the OTLP mapping.
//!
//! Every batch — native beacons, Faro payloads and OTLP passthrough alike — goes through this
//! stage, so rules written once apply to all formats (docs/architecture.md#process,
//! docs/architecture.md#privacy):
//!
//! - **clock skew** ([`skew`]): browser clocks are often wrong; times are moved onto the
//!   bridge's clock when the difference is large, and the shift is recorded.
//! - **privacy** ([`privacy`]): URL scrubbing and templating ([`url`]), PII redaction in
//!   messages, stack traces and attributes and user-id hashing ([`pii`]).
//! - **client address** ([`client_ip`]): the peer or what trusted proxies say; exported only
//!   truncated and only when configured.
//! - **consent and sampling** ([`consent`], [`sampling`]): a page that reports
//!   consent without the analytics category, or an honoured `Sec-GPC: 1`, sends no spans or
//!   logs; sessions are sampled deterministically on their id, so kept sessions are whole,
//!   and errors and poor vitals may be kept regardless. Withheld events still feed the
//!   aggregate metrics (counted in `items_dropped{reason}`).
//! - **enrichment**: user-agent parsing ([`user_agent`]: `user_agent.name/version/os.*`,
//!   `rum.device.class`) and geo lookup ([`geo`]: `geo.*` from the client's address, with
//!   `[geo] database`) on the resource. Source maps are not applied yet
//!   (docs/architecture.md#known-gaps-against-the-design).
//!
//! - **identity** ([`identity`]): a configured app's `service.name`, environment and version
//!   replace what the client claims, on every route.
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
mod consent;
mod faro_contrib;
pub mod geo;
pub mod identity;
pub mod limits;
pub mod metric_points;
pub mod otlp;
pub mod pii;
mod privacy;
pub mod sampling;
pub mod skew;
pub mod symbolicate;
pub mod url;
pub mod user_agent;

use std::net::IpAddr;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::admin::Metrics;
use crate::config::privacy::UserIdMode;
use crate::config::Config;
use crate::model::semconv::{
    CLIENT_ADDRESS as ATTR_CLIENT_ADDRESS, DEVICE_CLASS, USER_AGENT_ORIGINAL,
};
use crate::model::{AttrValue, PageContext, RumBatch, RumEvent};

use client_ip::ClientIps;
use geo::GeoIp;
use pii::{PiiRules, UserIds};
use sampling::{string_attribute, Sampling};
use url::UrlRules;
use user_agent::{UserAgent, UserAgents};

pub use consent::{dropped, Dropped, ExportPolicy, Withheld};
use privacy::KeyClass;

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
    use opentelemetry_proto::tonic::resource::v1::Resource;

    pub(super) const EMAIL: &str = "alice@example.com";
    pub(super) const CARD: &str = "4111 1111 1111 1111";
    pub(super) const KEY: &str = "0123456789abcdef0123";

    pub(super) fn processor_with(config: &Config) -> (Processor, Metrics) {
        let metrics = Metrics::new();
        (Processor::new(config, &metrics).unwrap(), metrics)
    }

    pub(super) fn processor() -> Processor {
        let mut config = Config::default();
        config.privacy.user_id_key = Some(KEY.into());
        processor_with(&config).0
    }

    pub(super) fn s(text: &str) -> AttrValue {
        AttrValue::Str(text.into())
    }

    pub(super) fn batch() -> RumBatch {
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
                    dropped_attributes: 0,
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

    pub(super) fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    pub(super) fn sv(text: &str) -> Value {
        Value::StringValue(text.into())
    }

    pub(super) fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
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
}
