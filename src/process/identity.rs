//! A configured app's identity, imposed on its data on every route.
//!
//! The app key is what authenticates a sender; whatever the body says about which service it
//! is, is a claim. For a configured app (`[[apps]]`) the exported `service.name` is therefore
//! always the app's `name`, and `deployment.environment.name` and `service.version` are the
//! app's `environment` and `version` when it configures them — for native beacons, Faro
//! payloads (and the OTLP spans embedded in them) and OTLP passthrough alike. A client value
//! that differs is not lost: it moves to `rum.claimed.<key>` (for example
//! `rum.claimed.service.name`), so a misconfigured SDK can still be found
//! (docs/otlp-mapping.md#resource). In development mode (no apps configured) there is no
//! identity to impose and the client's values stand.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::model::otlp::kv;
use crate::model::semconv::{DEPLOYMENT_ENVIRONMENT_NAME, SERVICE_NAME, SERVICE_VERSION};
use crate::model::{AttrValue, PageContext};

/// Prefix of the attribute that keeps a client's differing claim (`rum.claimed.service.name`).
pub const CLAIMED_PREFIX: &str = "rum.claimed.";

/// What a configured app says about itself.
#[derive(Debug, Clone, Copy)]
pub struct AppIdentity<'a> {
    pub name: &'a str,
    pub environment: Option<&'a str>,
    pub version: Option<&'a str>,
}

impl AppIdentity<'_> {
    /// The resource keys this identity sets, with their values.
    fn pairs(&self) -> [(&'static str, Option<&str>); 3] {
        [
            (SERVICE_NAME, Some(self.name)),
            (DEPLOYMENT_ENVIRONMENT_NAME, self.environment),
            (SERVICE_VERSION, self.version),
        ]
    }

    /// Sets the app's identity on a model batch's context; the client's differing values go to
    /// `rum.claimed.*` context attributes.
    pub fn apply_to_context(&self, ctx: &mut PageContext) {
        let app = &mut ctx.app;
        let mut claims = Vec::new();
        claim(&mut claims, SERVICE_NAME, &mut app.name, self.name);
        if let Some(env) = self.environment {
            let mut current = app.environment.take().unwrap_or_default();
            claim(&mut claims, DEPLOYMENT_ENVIRONMENT_NAME, &mut current, env);
            app.environment = Some(current);
        }
        if let Some(version) = self.version {
            let mut current = app.version.take().unwrap_or_default();
            claim(&mut claims, SERVICE_VERSION, &mut current, version);
            app.version = Some(current);
        }
        let attrs = &mut ctx.attributes;
        attrs.retain(|(k, _)| !k.starts_with(CLAIMED_PREFIX));
        attrs.extend(claims.into_iter().map(|(k, v)| (k, AttrValue::Str(v))));
    }

    /// Sets the app's identity on an OTLP resource (replacing what the client sent); a
    /// client's differing value moves to `rum.claimed.<key>`.
    pub fn apply_to_resource(&self, resource: &mut Resource) {
        let attrs = &mut resource.attributes;
        attrs.retain(|kv| !kv.key.starts_with(CLAIMED_PREFIX));
        for (key, value) in self.pairs() {
            let Some(value) = value else { continue };
            let mut claimed = None;
            attrs.retain(|kv| {
                if kv.key != key {
                    return true;
                }
                if claimed.is_none() && !is_string(kv.value.as_ref(), value) {
                    claimed = kv.value.as_ref().and_then(|v| v.value.clone());
                }
                false
            });
            attrs.push(string_kv(key, value));
            if let Some(v) = claimed {
                attrs.push(kv(&format!("{CLAIMED_PREFIX}{key}"), v));
            }
        }
    }
}

/// Replaces `current` with `ours`, recording a non-empty differing `current` as a claim.
fn claim(claims: &mut Vec<(String, String)>, key: &str, current: &mut String, ours: &str) {
    if !current.is_empty() && current != ours {
        claims.push((format!("{CLAIMED_PREFIX}{key}"), std::mem::take(current)));
    }
    ours.clone_into(current);
}

fn is_string(value: Option<&AnyValue>, expected: &str) -> bool {
    matches!(value.and_then(|v| v.value.as_ref()), Some(Value::StringValue(s)) if s == expected)
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> AppIdentity<'static> {
        AppIdentity {
            name: "shop-web",
            environment: Some("production"),
            version: None,
        }
    }

    fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Vec<&'a str> {
        attrs
            .iter()
            .filter(|kv| kv.key == key)
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn resource_gets_the_apps_identity_and_keeps_the_claim() {
        let mut res = Resource {
            attributes: vec![
                string_kv(SERVICE_NAME, "evil-svc"),
                string_kv(SERVICE_NAME, "evil-2"),
                string_kv(SERVICE_VERSION, "9.9"),
                string_kv(DEPLOYMENT_ENVIRONMENT_NAME, "production"),
                string_kv("rum.claimed.service.name", "forged"),
            ],
            ..Default::default()
        };
        shop().apply_to_resource(&mut res);
        let a = &res.attributes;
        assert_eq!(get(a, SERVICE_NAME), ["shop-web"]);
        assert_eq!(get(a, "rum.claimed.service.name"), ["evil-svc"]);
        // Not configured: the client's version stands.
        assert_eq!(get(a, SERVICE_VERSION), ["9.9"]);
        // Same value: no claim.
        assert_eq!(get(a, DEPLOYMENT_ENVIRONMENT_NAME), ["production"]);
        assert!(get(a, "rum.claimed.deployment.environment.name").is_empty());
    }

    #[test]
    fn empty_resource_gets_the_identity() {
        let mut res = Resource::default();
        shop().apply_to_resource(&mut res);
        assert_eq!(get(&res.attributes, SERVICE_NAME), ["shop-web"]);
        assert_eq!(
            get(&res.attributes, DEPLOYMENT_ENVIRONMENT_NAME),
            ["production"]
        );
        assert_eq!(res.attributes.len(), 2);
    }

    #[test]
    fn context_gets_the_apps_identity() {
        let mut ctx = PageContext::default();
        ctx.app.name = "evil-svc".into();
        ctx.app.environment = Some("staging".into());
        ctx.app.version = Some("1.0".into());
        shop().apply_to_context(&mut ctx);
        assert_eq!(ctx.app.name, "shop-web");
        assert_eq!(ctx.app.environment.as_deref(), Some("production"));
        assert_eq!(ctx.app.version.as_deref(), Some("1.0"));
        let claimed: Vec<_> = ctx.attributes.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            claimed,
            [
                "rum.claimed.service.name",
                "rum.claimed.deployment.environment.name"
            ]
        );
    }
}
