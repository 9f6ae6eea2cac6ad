//! Privacy rules applied to every URL, text, stack and attribute of a batch or of OTLP
//! passthrough (docs/architecture.md#privacy; the table in the [`super`] docs says what each
//! rule touches).

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{string_kv, Processor, RequestInfo};
use crate::model::semconv;
use crate::model::semconv::CLIENT_ADDRESS as ATTR_CLIENT_ADDRESS;
use crate::model::{AttrValue, Attributes};

/// Attribute keys holding a user id.
const USER_ID_KEYS: [&str; 2] = [semconv::USER_ID, semconv::ENDUSER_ID];
/// Attribute keys left as they are: user agents are not personal data but look like IPs
/// (`Chrome/120.0.0.0`), and a server's address is the server's, not the user's (URL hosts
/// are kept too).
const UNTOUCHED_KEYS: [&str; 4] = [
    semconv::USER_AGENT_ORIGINAL,
    "http.user_agent",
    semconv::URL_TEMPLATE,
    semconv::SERVER_ADDRESS,
];
/// Attribute keys holding a whole (possibly relative) URL.
const URL_KEYS: [&str; 6] = [
    semconv::URL_FULL,
    "http.url",
    "http.target",
    "url.path",
    "url.original",
    "referrer",
];

/// What kind of value an attribute key holds, for scrubbing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyClass {
    Untouched,
    UserId,
    Url,
    Query,
    Fragment,
    Stack,
    Text,
}

impl KeyClass {
    pub(super) fn of(key: &str) -> Self {
        if UNTOUCHED_KEYS.contains(&key) {
            KeyClass::Untouched
        } else if USER_ID_KEYS.contains(&key) {
            KeyClass::UserId
        } else if key == semconv::URL_QUERY {
            KeyClass::Query
        } else if key == semconv::URL_FRAGMENT {
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
    /// Scrubs a URL in place and returns its template; the PII rules then run on the query,
    /// whose allow-listed values may still hold e-mail addresses (`utm_content=…`).
    pub(super) fn scrub_url(&self, url: &mut String) -> String {
        let scrubbed = self.url.scrub(url);
        *url = scrubbed.full;
        self.redact_query(url);
        scrubbed.template
    }

    pub(super) fn scrub_url_full(&self, url: &mut String) {
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
    pub(super) fn scrub_stack(&self, stack: &mut String) {
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

    pub(super) fn redact_opt(&self, text: &mut Option<String>) {
        if let Some(text) = text {
            self.pii.redact_string(text);
        }
    }

    pub(super) fn scrub_attributes(&self, attributes: &mut Attributes) {
        attributes.retain_mut(|(key, value)| match value {
            AttrValue::Str(text) => self.scrub_text(KeyClass::of(key), text),
            _ => KeyClass::of(key) != KeyClass::Fragment,
        });
    }

    /// Scrubs one string value by the class of its key; `false` when the value must go
    /// (a fragment, or a user id under `privacy.user_id = "drop"`).
    pub(super) fn scrub_text(&self, class: KeyClass, text: &mut String) -> bool {
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

    pub(super) fn scrub_resource(&self, resource: &mut Option<Resource>, request: &RequestInfo) {
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

    pub(super) fn scrub_key_values(&self, attributes: &mut Vec<KeyValue>) {
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
    pub(super) fn scrub_any_value(&self, class: KeyClass, value: &mut AnyValue) -> bool {
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

    /// Adds `url.template` next to a `url.full` (already scrubbed) when the span has none.
    pub(super) fn add_url_template(&self, attributes: &mut Vec<KeyValue>) {
        if attributes.iter().any(|kv| kv.key == semconv::URL_TEMPLATE) {
            return;
        }
        let full = attributes.iter().find_map(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(Value::StringValue(url)),
            }) if kv.key == semconv::URL_FULL => Some(url),
            _ => None,
        });
        if let Some(url) = full {
            let template = self.url.template(url);
            attributes.push(string_kv(semconv::URL_TEMPLATE, template));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::privacy::UserIdMode;
    use crate::config::Config;
    use crate::model::RumEvent;
    use crate::process::pii::UserIds;
    use crate::process::tests::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::net::IpAddr;

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
