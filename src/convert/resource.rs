//! The OTLP `Resource` of browser telemetry: "this web app, in this browser".
//!
//! Attributes (docs/otlp-mapping.md#resource): `service.name` (the app; `unknown_service:webjs` when
//! unnamed), `service.version`, `deployment.environment.name`, `telemetry.sdk.language = webjs`,
//! `telemetry.sdk.name` / `.version` of the client library, `browser.brands`,
//! `browser.platform`, `browser.mobile`, `browser.language`, `user_agent.original`, then the
//! client's own resource attributes. Per-session and per-page facts (`session.id`, the page URL)
//! are record attributes, not resource ones, so one app's resource stays stable across pages.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attrs::{has_key, AttrList};
use crate::model::semconv;
use crate::model::PageContext;

/// `service.name` when the app has no name (the SDK fallback form `unknown_service:<exe>`).
pub const UNKNOWN_SERVICE: &str = "unknown_service:webjs";

/// Builds the resource of a native (model) batch.
pub fn build_resource(ctx: &PageContext) -> Resource {
    Resource {
        attributes: resource_attributes(ctx),
        dropped_attributes_count: ctx.dropped_attributes,
        ..Default::default()
    }
}

/// Adds to `resource` the attributes [`build_resource`] would set, skipping keys it already
/// has. Used to enrich OTLP passthrough data, whose own values win.
pub fn enrich_resource(resource: &mut Resource, ctx: &PageContext) {
    let mut missing = resource_attributes(ctx);
    missing.retain(|kv| !has_key(&resource.attributes, &kv.key));
    resource.attributes.extend(missing);
}

/// The resource attributes of `ctx`.
fn resource_attributes(ctx: &PageContext) -> Vec<KeyValue> {
    // No length limit here: the convert entry point truncates the finished resource.
    let mut attrs = AttrList::with_capacity(11 + ctx.attributes.len(), 0);
    let app = &ctx.app;
    let service = if app.name.is_empty() {
        UNKNOWN_SERVICE
    } else {
        &app.name
    };
    attrs.str(semconv::SERVICE_NAME, service);
    attrs.opt_str(semconv::SERVICE_VERSION, app.version.as_deref());
    attrs.opt_str(
        semconv::DEPLOYMENT_ENVIRONMENT_NAME,
        app.environment.as_deref(),
    );
    attrs.str(semconv::TELEMETRY_SDK_LANGUAGE, "webjs");
    attrs.opt_str("telemetry.sdk.name", ctx.sdk_name.as_deref());
    attrs.opt_str("telemetry.sdk.version", ctx.sdk_version.as_deref());
    let browser = &ctx.browser;
    if !browser.brands.is_empty() {
        attrs.str_array("browser.brands", &browser.brands);
    }
    attrs.opt_str("browser.platform", browser.platform.as_deref());
    if let Some(mobile) = browser.mobile {
        attrs.bool("browser.mobile", mobile);
    }
    attrs.opt_str("browser.language", browser.language.as_deref());
    attrs.opt_str(semconv::USER_AGENT_ORIGINAL, ctx.user_agent.as_deref());
    attrs.extend_model(&ctx.attributes);
    attrs.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppInfo, AttrValue, BrowserInfo};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    fn get<'a>(r: &'a Resource, key: &str) -> Option<&'a Value> {
        crate::convert::attrs::find(&r.attributes, key)
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.into())
    }

    fn ctx() -> PageContext {
        PageContext {
            app: AppInfo {
                name: "shop-web".into(),
                version: Some("1.2.3".into()),
                environment: Some("production".into()),
                key: Some("pk".into()),
            },
            sdk_name: Some("rum-bridge-loader".into()),
            sdk_version: Some("0.1.0".into()),
            browser: BrowserInfo {
                brands: vec!["Chromium 156".into()],
                platform: Some("Linux".into()),
                mobile: Some(false),
                language: Some("en-US".into()),
                ..BrowserInfo::default()
            },
            user_agent: Some("Mozilla/5.0".into()),
            session_id: Some("sess".into()),
            attributes: vec![
                ("service.name".into(), AttrValue::Str("spoofed".into())),
                ("app.tier".into(), AttrValue::Str("gold".into())),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn resource_has_app_browser_and_sdk() {
        let r = build_resource(&ctx());
        assert_eq!(get(&r, "service.name"), Some(&s("shop-web")));
        assert_eq!(get(&r, "service.version"), Some(&s("1.2.3")));
        assert_eq!(
            get(&r, "deployment.environment.name"),
            Some(&s("production"))
        );
        assert_eq!(get(&r, "telemetry.sdk.language"), Some(&s("webjs")));
        assert_eq!(get(&r, "telemetry.sdk.name"), Some(&s("rum-bridge-loader")));
        assert_eq!(get(&r, "telemetry.sdk.version"), Some(&s("0.1.0")));
        assert_eq!(get(&r, "browser.platform"), Some(&s("Linux")));
        assert_eq!(get(&r, "browser.mobile"), Some(&Value::BoolValue(false)));
        assert_eq!(get(&r, "browser.language"), Some(&s("en-US")));
        assert_eq!(get(&r, "user_agent.original"), Some(&s("Mozilla/5.0")));
        assert_eq!(get(&r, "app.tier"), Some(&s("gold")));
        assert!(
            matches!(get(&r, "browser.brands"), Some(Value::ArrayValue(a)) if a.values.len() == 1)
        );
        assert_eq!(
            get(&r, "session.id"),
            None,
            "session.id is a record attribute"
        );
        let names = r.attributes.iter().filter(|kv| kv.key == "service.name");
        assert_eq!(names.count(), 1, "the app name wins over client attributes");
    }

    #[test]
    fn unnamed_app_gets_unknown_service() {
        let r = build_resource(&PageContext::default());
        assert_eq!(get(&r, "service.name"), Some(&s(UNKNOWN_SERVICE)));
        assert_eq!(get(&r, "browser.mobile"), None);
    }

    #[test]
    fn enrich_adds_only_missing_keys() {
        let mut r = Resource {
            attributes: vec![super::super::attrs::kv("service.name", s("otel-js-app"))],
            ..Default::default()
        };
        enrich_resource(&mut r, &ctx());
        assert_eq!(get(&r, "service.name"), Some(&s("otel-js-app")));
        assert_eq!(
            get(&r, "deployment.environment.name"),
            Some(&s("production"))
        );
        let n = r.attributes.len();
        enrich_resource(&mut r, &ctx());
        assert_eq!(r.attributes.len(), n, "enrichment is idempotent");
    }
}
