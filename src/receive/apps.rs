//! App keys and allowed origins: which app a request is for (docs/apps.md).
//!
//! Browsers send a public app key; the edge maps it to the app's identity (`service.name`,
//! environment, version) and checks the request's `Origin` against the app's allow-list. Agents
//! that cannot send our key at all (Elastic RUM, Boomerang) are served by the same rule on every
//! route, written once here and in [`super::key_outside_body`]: the key from the body, the
//! `x-api-key` header, `?key=` / `?auth=`, or the path form (`/a/{app_key}/…`,
//! [`super::routes`]); with no key, the one app whose `allowed_origins` lists the request's
//! `Origin` ([`AppRegistry::authorize`]). With no apps configured the bridge runs in
//! development mode and accepts any key and origin.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::AppConfig;

use super::error::EdgeError;

/// One configured app, ready for lookups.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub key: String,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub sample_rate: Option<f64>,
    any_origin: bool,
    origins: Vec<String>,
}

impl App {
    /// Whether a request from `origin` may send for this app. Requests without an `Origin`
    /// (server-side senders) are not browser CORS requests and are allowed.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => self.any_origin || self.lists_origin(o),
        }
    }

    /// Whether `origin` is one of the app's own origins (`*` names no origin in particular).
    fn lists_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|a| a.eq_ignore_ascii_case(origin))
    }
}

/// How to name the app when the refusal says none could be found.
const SEND_A_KEY: &str = "send the app key in the beacon, the `x-api-key` header, the `key` (or \
     `auth`) query parameter or the path (`/a/{app_key}/<route>`), or list the page's origin in \
     exactly one app's allowed_origins";

/// All configured apps by key.
#[derive(Debug, Clone, Default)]
pub struct AppRegistry {
    by_key: HashMap<String, Arc<App>>,
}

/// The app a request belongs to.
#[derive(Debug, Clone)]
pub enum Resolved {
    Known(Arc<App>),
    /// Development mode: no apps configured; carries the key the client sent, if any.
    Development(Option<String>),
}

impl AppRegistry {
    pub fn new(apps: &[AppConfig]) -> Self {
        let by_key = apps
            .iter()
            .map(|a| {
                let any_origin = a.allowed_origins.iter().any(|o| o == "*");
                let origins = a
                    .allowed_origins
                    .iter()
                    .filter(|o| *o != "*")
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .collect();
                (
                    a.key.clone(),
                    Arc::new(App {
                        name: a.name.clone(),
                        key: a.key.clone(),
                        environment: a.environment.clone(),
                        version: a.version.clone(),
                        sample_rate: a.sample_rate,
                        any_origin,
                        origins,
                    }),
                )
            })
            .collect();
        Self { by_key }
    }

    pub fn development_mode(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Resolves a key; unknown or missing keys are refused unless in development mode.
    pub fn resolve(&self, key: Option<&str>) -> Result<Resolved, EdgeError> {
        if self.development_mode() {
            return Ok(Resolved::Development(key.map(str::to_owned)));
        }
        match key {
            None => Err(EdgeError::UnknownApp {
                detail: format!("no app key: {SEND_A_KEY}"),
            }),
            Some(k) => self
                .by_key
                .get(k)
                .cloned()
                .map(Resolved::Known)
                .ok_or_else(|| EdgeError::UnknownApp {
                    detail: format!("app key {} is not configured", masked(k)),
                }),
        }
    }

    /// The app of a request: by its key, checking the origin against the app's allow-list;
    /// without a key, the one app whose `allowed_origins` lists the origin (an app allowing
    /// `*` lists none). Several such apps: refused, since which one is meant is a guess.
    pub fn authorize(
        &self,
        key: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Resolved, EdgeError> {
        if key.is_none() && !self.development_mode() {
            if let Some(origin) = origin {
                return self.by_origin(origin);
            }
        }
        let resolved = self.resolve(key)?;
        if let Resolved::Known(app) = &resolved {
            if !app.allows_origin(origin) {
                return Err(EdgeError::OriginNotAllowed {
                    origin: truncate(origin.unwrap_or_default(), 200).to_owned(),
                });
            }
        }
        Ok(resolved)
    }

    /// The one app listing `origin`.
    fn by_origin(&self, origin: &str) -> Result<Resolved, EdgeError> {
        let mut listing: Vec<&Arc<App>> = self
            .by_key
            .values()
            .filter(|a| a.lists_origin(origin))
            .collect();
        let shown = truncate(origin, 200);
        match listing.len() {
            1 => Ok(Resolved::Known(Arc::clone(listing[0]))),
            0 => Err(EdgeError::UnknownApp {
                detail: format!(
                    "no app key, and no app lists origin `{shown}` in its allowed_origins: \
                     {SEND_A_KEY}"
                ),
            }),
            n => {
                listing.sort_by(|a, b| a.name.cmp(&b.name));
                let names: Vec<&str> = listing.iter().map(|a| a.name.as_str()).collect();
                Err(EdgeError::AmbiguousOrigin {
                    detail: format!(
                        "no app key, and origin `{shown}` is in the allowed_origins of {n} apps \
                         ({}): send the app key in the `x-api-key` header, the `key` query \
                         parameter or the path (`/a/{{app_key}}/<route>`)",
                        names.join(", ")
                    ),
                })
            }
        }
    }

    /// Whether any app accepts this origin (used for CORS preflights, which carry no key).
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.development_mode() || self.by_key.values().any(|a| a.allows_origin(Some(origin)))
    }
}

/// A key as a refusal may show it: its first four characters and its length, so a typo can be
/// found without the answer (or a log of it) holding a whole key.
fn masked(key: &str) -> String {
    format!(
        "`{}…` ({} characters)",
        truncate(key, 4),
        key.chars().count()
    )
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> AppRegistry {
        AppRegistry::new(&[
            AppConfig {
                name: "shop-web".into(),
                key: "pk_shop".into(),
                allowed_origins: vec!["https://shop.example.com/".into()],
                environment: Some("production".into()),
                version: None,
                sample_rate: None,
            },
            AppConfig {
                name: "anywhere".into(),
                key: "pk_any".into(),
                allowed_origins: vec!["*".into()],
                environment: None,
                version: None,
                sample_rate: None,
            },
        ])
    }

    #[test]
    fn known_key_and_origin() {
        let r = registry();
        match r
            .authorize(Some("pk_shop"), Some("https://shop.example.com"))
            .unwrap()
        {
            Resolved::Known(app) => assert_eq!(app.name, "shop-web"),
            other => panic!("{other:?}"),
        }
        assert!(r.authorize(Some("pk_shop"), None).is_ok());
        assert!(r.authorize(Some("pk_any"), Some("https://x.test")).is_ok());
    }

    #[test]
    fn refusals() {
        let r = registry();
        assert_eq!(r.authorize(None, None).unwrap_err().reason(), "unknown_app");
        assert_eq!(
            r.authorize(Some("pk_nope"), None).unwrap_err().reason(),
            "unknown_app"
        );
        assert_eq!(
            r.authorize(Some("pk_shop"), Some("https://evil.example"))
                .unwrap_err()
                .reason(),
            "origin_not_allowed"
        );
    }

    #[test]
    fn development_mode_accepts_anything() {
        let r = AppRegistry::new(&[]);
        assert!(r.development_mode());
        assert!(r.authorize(Some("whatever"), Some("https://x")).is_ok());
        assert!(r.any_allows_origin("https://x"));
    }

    #[test]
    fn preflight_origin_check() {
        let r = AppRegistry::new(&[AppConfig {
            name: "a".into(),
            key: "k".into(),
            allowed_origins: vec!["https://a.example".into()],
            environment: None,
            version: None,
            sample_rate: None,
        }]);
        assert!(r.any_allows_origin("https://a.example"));
        assert!(!r.any_allows_origin("https://b.example"));
    }

    fn app(name: &str, key: &str, origins: &[&str]) -> AppConfig {
        AppConfig {
            name: name.into(),
            key: key.into(),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            environment: None,
            version: None,
            sample_rate: None,
        }
    }

    #[test]
    fn without_a_key_the_one_app_listing_the_origin() {
        let r = AppRegistry::new(&[
            app("shop", "pk_shop", &["https://shop.example"]),
            app(
                "blog",
                "pk_blog",
                &["https://blog.example", "https://both.example"],
            ),
            app("news", "pk_news", &["https://both.example/"]),
            app("any", "pk_any", &["*"]),
        ]);
        match r.authorize(None, Some("https://SHOP.example")).unwrap() {
            Resolved::Known(a) => assert_eq!(a.name, "shop"),
            other => panic!("{other:?}"),
        }
        let err = r.authorize(None, Some("https://both.example")).unwrap_err();
        assert_eq!(err.reason(), "ambiguous_origin");
        assert_eq!(err.status(), 400);
        let detail = err.detail();
        assert!(detail.contains("2 apps (blog, news)"), "{detail}");
        assert!(!detail.contains("pk_"), "no key in the answer: {detail}");
        // `*` names no origin: only an explicit listing picks an app.
        let err = r
            .authorize(None, Some("https://other.example"))
            .unwrap_err();
        assert_eq!(err.reason(), "unknown_app");
        assert!(
            err.detail().contains("no app lists origin"),
            "{}",
            err.detail()
        );
        assert_eq!(r.authorize(None, None).unwrap_err().reason(), "unknown_app");
        // A key still wins over the origin, and is still checked against it.
        match r
            .authorize(Some("pk_any"), Some("https://shop.example"))
            .unwrap()
        {
            Resolved::Known(a) => assert_eq!(a.name, "any"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.authorize(Some("pk_shop"), Some("https://blog.example"))
                .unwrap_err()
                .reason(),
            "origin_not_allowed"
        );
    }

    #[test]
    fn an_unknown_key_is_not_echoed_whole() {
        let r = registry();
        let detail = r
            .authorize(Some("pk_secret_typo"), None)
            .unwrap_err()
            .detail();
        assert_eq!(detail, "app key `pk_s…` (14 characters) is not configured");
    }
}
