//! OTLP passthrough: what the bridge adds to and normalises in OTLP data from browser SDKs.
//!
//! Browser SDKs already speak OTLP, so their data stays in `opentelemetry-proto` types: ids and
//! attributes pass through unchanged. A configured app's identity (`service.name`, environment,
//! version) replaces the client's claim ([`super::identity`]); the bridge adds what a browser
//! cannot know or forgets (user agent, the operator's attributes) and renames legacy HTTP attributes to the
//! stable semantic conventions (docs/otlp-mapping.md#legacy-http-attributes), so the backend
//! sees one vocabulary.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::identity::AppIdentity;
use crate::model::http::split_host_port;
use crate::model::otlp::kv;
use crate::model::semconv;

/// What the edge knows about the sender: a configured app's identity, imposed; the rest added
/// to resources that lack it.
#[derive(Debug, Default)]
pub struct Enrichment<'a> {
    /// The configured app's identity ([`AppIdentity`]); `None` in development mode.
    pub identity: Option<AppIdentity<'a>>,
    pub user_agent: Option<&'a str>,
    /// Operator-configured attributes (`OTEL_RESOURCE_ATTRIBUTES`-style), added when missing.
    pub extra: &'a [(String, String)],
}

impl Enrichment<'_> {
    /// Imposes the app's identity, then adds the missing resource attributes; never
    /// overwrites anything else the client sent.
    pub fn apply(&self, resource: &mut Option<Resource>) {
        let res = resource.get_or_insert_with(Resource::default);
        if let Some(identity) = &self.identity {
            identity.apply_to_resource(res);
        }
        let attrs = &mut res.attributes;
        let pairs = [
            (semconv::USER_AGENT_ORIGINAL, self.user_agent),
            (semconv::TELEMETRY_SDK_LANGUAGE, Some("webjs")),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                add_missing(attrs, k, v);
            }
        }
        for (k, v) in self.extra {
            add_missing(attrs, k, v);
        }
    }
}

fn add_missing(attrs: &mut Vec<KeyValue>, key: &str, value: &str) {
    if !attrs.iter().any(|kv| kv.key == key) {
        attrs.push(string_kv(key, value));
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

/// Enriches and normalizes a trace export; returns the number of spans.
pub fn prepare_traces(req: &mut ExportTraceServiceRequest, enrich: &Enrichment<'_>) -> usize {
    let mut n = 0;
    for rs in &mut req.resource_spans {
        enrich.apply(&mut rs.resource);
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                normalize_span(span);
                n += 1;
            }
        }
    }
    n
}

/// Enriches a log export; returns the number of log records.
pub fn prepare_logs(req: &mut ExportLogsServiceRequest, enrich: &Enrichment<'_>) -> usize {
    let mut n = 0;
    for rl in &mut req.resource_logs {
        enrich.apply(&mut rl.resource);
        for sl in &mut rl.scope_logs {
            for record in &mut sl.log_records {
                normalize_attributes(&mut record.attributes);
                n += 1;
            }
        }
    }
    n
}

/// Enriches a metrics export; returns the number of metrics.
pub fn prepare_metrics(req: &mut ExportMetricsServiceRequest, enrich: &Enrichment<'_>) -> usize {
    let mut n = 0;
    for rm in &mut req.resource_metrics {
        enrich.apply(&mut rm.resource);
        n += rm
            .scope_metrics
            .iter()
            .map(|s| s.metrics.len())
            .sum::<usize>();
    }
    n
}

/// Renames legacy HTTP attributes and span names to the stable conventions.
pub fn normalize_span(span: &mut Span) {
    normalize_attributes(&mut span.attributes);
    if let Some(method) = span.name.strip_prefix("HTTP ") {
        if !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) {
            span.name = method.to_owned();
        }
    }
}

/// Legacy name → stable name (docs/otlp-mapping.md#legacy-http-attributes).
const RENAMES: [(&str, &str); 6] = [
    ("http.method", semconv::HTTP_REQUEST_METHOD),
    ("http.url", semconv::URL_FULL),
    ("http.status_code", semconv::HTTP_RESPONSE_STATUS_CODE),
    ("http.host", semconv::SERVER_ADDRESS),
    ("http.scheme", semconv::URL_SCHEME),
    ("http.user_agent", semconv::USER_AGENT_ORIGINAL),
];

/// Renames legacy keys in place (dropping the legacy one when the stable key already exists),
/// splits `host:port` of `http.host`, and drops a status code of 0 (no response).
pub fn normalize_attributes(attrs: &mut Vec<KeyValue>) {
    if !attrs.iter().any(|kv| kv.key.starts_with("http.")) {
        return;
    }
    let mut i = 0;
    let mut port: Option<i64> = None;
    while i < attrs.len() {
        let Some(&(_, new)) = RENAMES.iter().find(|(old, _)| attrs[i].key == *old) else {
            i += 1;
            continue;
        };
        if attrs.iter().any(|kv| kv.key == new) {
            attrs.remove(i);
            continue;
        }
        attrs[i].key = new.to_owned();
        if new == semconv::SERVER_ADDRESS {
            if let Some(Value::StringValue(host)) =
                attrs[i].value.as_mut().and_then(|v| v.value.as_mut())
            {
                if let Some((h, Some(p))) = split_host_port(host) {
                    port = Some(i64::from(p));
                    *host = h;
                }
            }
        }
        i += 1;
    }
    if let Some(p) = port {
        if !attrs.iter().any(|kv| kv.key == semconv::SERVER_PORT) {
            attrs.push(KeyValue {
                key: semconv::SERVER_PORT.into(),
                value: Some(AnyValue {
                    value: Some(Value::IntValue(p)),
                }),
                ..Default::default()
            });
        }
    }
    attrs.retain(|kv| {
        !(kv.key == semconv::HTTP_RESPONSE_STATUS_CODE
            && matches!(
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(Value::IntValue(0))
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv_int(k: &str, v: i64) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(v)),
            }),
            ..Default::default()
        }
    }

    use crate::model::otlp::find as get;

    #[test]
    fn legacy_http_names_are_renamed() {
        let mut span = Span {
            name: "HTTP POST".into(),
            attributes: vec![
                string_kv("http.method", "POST"),
                string_kv("http.url", "http://127.0.0.1:18787/api/cart"),
                kv_int("http.status_code", 200),
                string_kv("http.host", "127.0.0.1:18787"),
                string_kv("component", "fetch"),
            ],
            ..Default::default()
        };
        normalize_span(&mut span);
        assert_eq!(span.name, "POST");
        let a = &span.attributes;
        assert!(
            matches!(get(a, "http.request.method"), Some(Value::StringValue(m)) if m == "POST")
        );
        assert!(get(a, "url.full").is_some());
        assert!(matches!(
            get(a, "http.response.status_code"),
            Some(Value::IntValue(200))
        ));
        assert!(
            matches!(get(a, "server.address"), Some(Value::StringValue(h)) if h == "127.0.0.1")
        );
        assert!(matches!(
            get(a, "server.port"),
            Some(Value::IntValue(18787))
        ));
        assert!(get(a, "http.method").is_none());
        assert!(get(a, "component").is_some());
    }

    #[test]
    fn stable_name_wins_and_zero_status_is_dropped() {
        let mut attrs = vec![
            string_kv("http.method", "GET"),
            string_kv("http.request.method", "POST"),
            kv_int("http.status_code", 0),
        ];
        normalize_attributes(&mut attrs);
        assert_eq!(attrs.len(), 1);
        assert!(
            matches!(get(&attrs, "http.request.method"), Some(Value::StringValue(m)) if m == "POST")
        );
    }

    #[test]
    fn enrichment_imposes_the_identity_and_adds_only_missing() {
        let mut res = Some(Resource {
            attributes: vec![
                string_kv("service.name", "from-client"),
                string_kv("user_agent.original", "client UA"),
            ],
            ..Default::default()
        });
        let extra = vec![("k8s.cluster.name".to_owned(), "c1".to_owned())];
        Enrichment {
            identity: Some(AppIdentity {
                name: "from-config",
                environment: Some("production"),
                version: None,
            }),
            user_agent: Some("UA"),
            extra: &extra,
        }
        .apply(&mut res);
        let a = &res.unwrap().attributes;
        assert!(
            matches!(get(a, "service.name"), Some(Value::StringValue(s)) if s == "from-config")
        );
        assert!(
            matches!(get(a, "rum.claimed.service.name"), Some(Value::StringValue(s)) if s == "from-client")
        );
        assert!(
            matches!(get(a, "user_agent.original"), Some(Value::StringValue(s)) if s == "client UA")
        );
        assert!(
            matches!(get(a, "deployment.environment.name"), Some(Value::StringValue(s)) if s == "production")
        );
        assert!(get(a, "user_agent.original").is_some());
        assert!(get(a, "k8s.cluster.name").is_some());
    }
}
