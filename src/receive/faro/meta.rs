//! Faro `meta` → the batch's [`PageContext`] (docs/faro-mapping.md#meta).
//!
//! | Faro | model / attribute |
//! | --- | --- |
//! | `app.name`, `.version`, `.environment` | `AppInfo` (`service.name` in development mode, `service.version`, `deployment.environment.name`) |
//! | `app.namespace` | `service.namespace` |
//! | `app.release`, `.bundleId` | `faro.app.release`, `faro.app.bundle_id` † |
//! | `sdk.name`, `.version` | `telemetry.sdk.name`, `.version` |
//! | `session.id` | `session.id` (the `x-faro-session-id` header when absent) |
//! | `page.id`, `.url` | page-view id, page URL |
//! | `user.id` | user id (hashing is for `process`); `username`, `email` and user attributes are personal data and are not kept |
//! | `browser.userAgent`, `.language`, `.mobile`, `.brands` | `user_agent.original`, `browser.language`, `browser.mobile`, `browser.brands` (`"<brand> <version>"`, semconv) |
//! | `browser.name`, `.version` | `user_agent.name`, `user_agent.version` |
//! | `os.name` (else `browser.os`) | `browser.platform`; also `os.name`, `os.version`, `os.build_id`, `os.description` (`detail`) |
//! | `device.manufacturer`, `.model_identifier`, `.model_name` | `device.manufacturer`, `device.model.identifier`, `device.model.name` |
//! | `device.brand`, `.type`, `.is_physical` | `faro.device.brand`, `faro.device.type`, `faro.device.is_physical` † |
//! | `k6.isK6Browser` | `user_agent.synthetic.type = test`; `k6.testRunId` → `faro.k6.test_run_id` † |
//! | `session.attributes.previousSession` | `session.previous_id` on the `session.start` event |
//!
//! † no semantic convention exists; the `faro.` prefix keeps them apart from semconv names.
//! `geo` is ignored: a client cannot be trusted with it (Faro's spec has the receiver fill it
//! in). `view` and viewport sizes are not mapped.

use std::borrow::Cow;

use serde::de::SeqAccess;
use serde::Deserialize;

use crate::model::faro_contrib;
use crate::model::semconv;
use crate::model::{AttrValue, PageContext};
use crate::receive::lenient::{boolean, read, string, string_map, Expect, Lax, LaxList, Lenient};

/// Most brands kept from `browser.brands`.
const MAX_BRANDS: usize = 16;
/// Most `sdk.integrations` kept for faro-contrib output.
const MAX_INTEGRATIONS: usize = 32;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Meta {
    sdk: Lax<Sdk>,
    app: Lax<App>,
    user: Lax<User>,
    session: Lax<Session>,
    page: Lax<Page>,
    browser: Lax<Browser>,
    k6: Lax<K6>,
    os: Lax<Os>,
    device: Lax<Device>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Sdk {
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "string")]
    version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct App {
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "string")]
    namespace: Option<String>,
    #[serde(deserialize_with = "string")]
    version: Option<String>,
    #[serde(deserialize_with = "string")]
    release: Option<String>,
    #[serde(deserialize_with = "string")]
    environment: Option<String>,
    #[serde(deserialize_with = "string")]
    bundle_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    #[serde(deserialize_with = "string")]
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Session {
    #[serde(deserialize_with = "string")]
    id: Option<String>,
    #[serde(deserialize_with = "string_map")]
    attributes: Vec<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Page {
    #[serde(deserialize_with = "string")]
    id: Option<String>,
    #[serde(deserialize_with = "string")]
    url: Option<String>,
    /// Only for faro-contrib output.
    #[serde(deserialize_with = "string_map")]
    attributes: Vec<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Browser {
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "string")]
    version: Option<String>,
    #[serde(deserialize_with = "string")]
    os: Option<String>,
    #[serde(deserialize_with = "boolean")]
    mobile: Option<bool>,
    #[serde(deserialize_with = "string")]
    user_agent: Option<String>,
    #[serde(deserialize_with = "string")]
    language: Option<String>,
    brands: Brands,
    /// Only for faro-contrib output (the model keeps no viewport).
    #[serde(deserialize_with = "string")]
    viewport_width: Option<String>,
    #[serde(deserialize_with = "string")]
    viewport_height: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct K6 {
    #[serde(deserialize_with = "boolean")]
    is_k6_browser: Option<bool>,
    #[serde(deserialize_with = "string")]
    test_run_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Os {
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "string")]
    version: Option<String>,
    #[serde(deserialize_with = "string")]
    build_id: Option<String>,
    #[serde(deserialize_with = "string")]
    detail: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Device {
    #[serde(deserialize_with = "string")]
    manufacturer: Option<String>,
    #[serde(deserialize_with = "string")]
    model_identifier: Option<String>,
    #[serde(deserialize_with = "string")]
    model_name: Option<String>,
    #[serde(deserialize_with = "string")]
    brand: Option<String>,
    #[serde(deserialize_with = "boolean")]
    is_physical: Option<bool>,
    #[serde(rename = "type", deserialize_with = "string")]
    kind: Option<String>,
}

/// `browser.brands` as sent: an array of `{brand, version}` or one comma-separated string
/// (`Browser_Brands` union); at most [`MAX_BRANDS`] entries.
#[derive(Debug, Default)]
struct Brands(faro_contrib::Brands);

impl Brands {
    /// As `"<brand> <version>"` strings (the UA Client Hints form semconv uses).
    fn semconv(&self) -> Vec<String> {
        match &self.0 {
            faro_contrib::Brands::None => Vec::new(),
            faro_contrib::Brands::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .take(MAX_BRANDS)
                .map(str::to_owned)
                .collect(),
            faro_contrib::Brands::List(list) => list
                .iter()
                .filter(|(brand, _)| !brand.is_empty())
                .map(|(brand, version)| match version.as_str() {
                    "" => brand.clone(),
                    version => format!("{brand} {version}"),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Brand {
    #[serde(deserialize_with = "string")]
    brand: Option<String>,
    #[serde(deserialize_with = "string")]
    version: Option<String>,
}

impl<'de> Deserialize<'de> for Brands {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(read(d, BrandsExpect)?.unwrap_or_default())
    }
}

/// An array of brand objects or one string; any other type reads as no brands.
struct BrandsExpect;

impl<'de> Expect<'de> for BrandsExpect {
    type Out = Brands;
    const EXPECTED: &'static str = "an array of brands or a string";

    fn text(self, s: Cow<'de, str>) -> Lenient<Brands> {
        Lenient::Value(Brands(faro_contrib::Brands::Text(s.into_owned())))
    }
    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<Brands>, A::Error> {
        let mut out = Vec::new();
        while let Some(Lax(item)) = seq.next_element::<Lax<Brand>>()? {
            let Some(Brand { brand, version }) = item else {
                continue;
            };
            let (brand, version) = (brand.unwrap_or_default(), version.unwrap_or_default());
            if out.len() < MAX_BRANDS && !(brand.is_empty() && version.is_empty()) {
                out.push((brand, version));
            }
        }
        Ok(Lenient::Value(Brands(faro_contrib::Brands::List(out))))
    }
}

/// What the events of a batch need from `meta` besides the context.
#[derive(Debug, Default)]
pub(super) struct MetaExtras {
    /// `session.attributes.previousSession`: the session this one continues.
    pub(super) previous_session: Option<String>,
}

impl Meta {
    /// Moves everything into `ctx`; returns what the event mapping still needs.
    pub(super) fn apply(self, ctx: &mut PageContext) -> MetaExtras {
        let mut extras = MetaExtras::default();
        let attrs = &mut ctx.attributes;
        if let Some(sdk) = self.sdk.0 {
            ctx.sdk_name = sdk.name;
            ctx.sdk_version = sdk.version;
        }
        if let Some(app) = self.app.0 {
            ctx.app.name = app.name.unwrap_or_default();
            ctx.app.version = app.version;
            ctx.app.environment = app.environment;
            push(attrs, "service.namespace", app.namespace);
            push(attrs, "faro.app.release", app.release);
            push(attrs, "faro.app.bundle_id", app.bundle_id);
        }
        if let Some(user) = self.user.0 {
            ctx.user_id = user.id;
        }
        if let Some(session) = self.session.0 {
            ctx.session_id = session.id;
            extras.previous_session = session
                .attributes
                .into_iter()
                .find(|(k, _)| k == "previousSession")
                .map(|(_, v)| v);
        }
        if let Some(page) = self.page.0 {
            ctx.page_view_id = page.id;
            ctx.page_url = page.url;
        }
        let os = self.os.0.unwrap_or_default();
        if let Some(browser) = self.browser.0 {
            ctx.user_agent = browser.user_agent;
            ctx.browser.language = browser.language;
            ctx.browser.mobile = browser.mobile;
            ctx.browser.brands = browser.brands.semconv();
            ctx.browser.platform = os.name.clone().or(browser.os);
            push(attrs, semconv::USER_AGENT_NAME, browser.name);
            push(attrs, semconv::USER_AGENT_VERSION, browser.version);
        }
        push(attrs, "os.name", os.name);
        push(attrs, "os.version", os.version);
        push(attrs, "os.build_id", os.build_id);
        push(attrs, "os.description", os.detail);
        if let Some(device) = self.device.0 {
            push(attrs, "device.manufacturer", device.manufacturer);
            push(attrs, "device.model.identifier", device.model_identifier);
            push(attrs, "device.model.name", device.model_name);
            push(attrs, "faro.device.brand", device.brand);
            push(attrs, "faro.device.type", device.kind);
            if let Some(physical) = device.is_physical {
                attrs.push(("faro.device.is_physical".into(), AttrValue::Bool(physical)));
            }
        }
        if let Some(k6) = self.k6.0 {
            if k6.is_k6_browser == Some(true) {
                attrs.push((
                    "user_agent.synthetic.type".into(),
                    AttrValue::Str("test".into()),
                ));
            }
            push(attrs, "faro.k6.test_run_id", k6.test_run_id);
        }
        extras
    }
}

fn push(attrs: &mut Vec<(String, AttrValue)>, key: &str, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        attrs.push((key.to_owned(), AttrValue::Str(v)));
    }
}

/// The `meta` fields the faro-contrib layout writes and [`Meta`] does not keep
/// (`[faro] compat = "faro-contrib"`, `convert::faro_contrib`). Parsed only in that mode.
/// `user` (e-mail, user name, attributes) and `geo` are not read: the bridge keeps neither.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ContribMeta {
    sdk: Lax<ContribSdk>,
    session: Lax<Session>,
    page: Lax<Page>,
    browser: Lax<Browser>,
    k6: Lax<K6>,
    view: Lax<View>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContribSdk {
    integrations: LaxList<Integration, MAX_INTEGRATIONS>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Integration {
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "string")]
    version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct View {
    #[serde(deserialize_with = "string")]
    name: Option<String>,
}

impl ContribMeta {
    pub(super) fn into_meta(self) -> faro_contrib::Meta {
        let sdk = self.sdk.0.unwrap_or_default();
        let session = self.session.0.unwrap_or_default();
        let page = self.page.0.unwrap_or_default();
        let browser = self.browser.0.unwrap_or_default();
        faro_contrib::Meta {
            // A `,` in a name or version would split the exporter's `name:version` list
            // where it has no `:`, which it does not survive.
            sdk_integrations: sdk
                .integrations
                .0
                .into_iter()
                .map(|i| (i.name.unwrap_or_default(), i.version.unwrap_or_default()))
                .filter(|(name, version)| !name.contains(',') && !version.contains(','))
                .collect(),
            session_attributes: faro_contrib::sorted_unique(session.attributes),
            page_id: page.id,
            page_attributes: faro_contrib::sorted_unique(page.attributes),
            browser_name: browser.name,
            browser_version: browser.version,
            browser_os: browser.os,
            viewport_width: browser.viewport_width,
            viewport_height: browser.viewport_height,
            brands: browser.brands.0,
            k6_browser: self.k6.0.and_then(|k| k.is_k6_browser) == Some(true),
            view_name: self.view.0.and_then(|v| v.name),
        }
    }
}
