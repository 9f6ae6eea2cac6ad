//! App keys and allowed origins.
//!
//! Browsers send a public app key; the edge maps it to the app's identity (`service.name`,
//! environment, version) and checks the request's `Origin` against the app's allow-list. With no
//! apps configured the bridge runs in development mode and accepts any key and origin.

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
            Some(o) => self.any_origin || self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)),
        }
    }
}

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
                detail: "no app key: send it in the beacon, the `x-api-key` header or the `key` query parameter".into(),
            }),
            Some(k) => self.by_key.get(k).cloned().map(Resolved::Known).ok_or_else(|| {
                EdgeError::UnknownApp {
                    detail: format!("app key `{}` is not configured", truncate(k, 64)),
                }
            }),
        }
    }

    /// Resolves the key and checks the origin against the app's allow-list.
    pub fn authorize(
        &self,
        key: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Resolved, EdgeError> {
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

    /// Whether any app accepts this origin (used for CORS preflights, which carry no key).
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.development_mode() || self.by_key.values().any(|a| a.allows_origin(Some(origin)))
    }
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
}
