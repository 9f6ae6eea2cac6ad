//! Public paths onto handler paths: the `[routes]` renames and prefix, and the path form of the
//! app key (docs/apps.md).
//!
//! The handlers are registered at their canonical paths (`/v1/rum`, `/collect`, …), which are
//! also their labels in the request counter. In front of them, one step maps the path a client
//! used onto a canonical one before the router sees it, so every route gets the same treatment
//! without any code of its own:
//!
//! - `{prefix}{name}` → the canonical path of the route configured as `name` (a sub-path such
//!   as Faro's `/collect/{app_key}` follows its route);
//! - `{prefix}{app_key_path}/{app_key}{name}` → the same, with the key kept as a [`PathKey`]
//!   request extension, which [`super::KeyQuery`] hands to every route's key rule; the key is
//!   then gone from the path, so nothing that shows the path can show the key;
//! - anything else is `404`, canonical names that were renamed included.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use tower::ServiceExt;

use crate::config::RoutesConfig;

/// The app key a request gave in the path form (`/a/{app_key}/…`).
#[derive(Clone)]
pub struct PathKey(pub String);

/// Masked: a debug print of the request's extensions shows no key.
impl std::fmt::Debug for PathKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathKey(***)")
    }
}

/// The public paths of the ingest listener and the canonical path each one stands for.
#[derive(Debug, Clone)]
pub struct PublicPaths {
    prefix: String,
    app_key_path: String,
    /// (configured name, canonical path), longest name first.
    routes: Vec<(String, &'static str)>,
}

impl PublicPaths {
    pub fn new(config: &RoutesConfig) -> Self {
        let mut routes: Vec<(String, &'static str)> = config
            .named()
            .into_iter()
            .map(|(_, canonical, name)| (name.to_owned(), canonical))
            .collect();
        routes.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        Self {
            prefix: config.prefix.clone(),
            app_key_path: config.app_key_path.clone(),
            routes,
        }
    }

    /// The canonical path a public `path` stands for, and the app key given in it, if any;
    /// `None` when `path` is not a public route.
    pub fn resolve<'a>(&self, path: &'a str) -> Option<(String, Option<&'a str>)> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        let (key, rest) = match rest
            .strip_prefix(self.app_key_path.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(keyed) => {
                let (key, rest) = keyed.split_at(keyed.find('/')?);
                if key.is_empty() {
                    return None;
                }
                (Some(key), rest)
            }
            None => (None, rest),
        };
        self.routes.iter().find_map(|(name, canonical)| {
            let tail = rest.strip_prefix(name.as_str())?;
            (tail.is_empty() || tail.starts_with('/')).then(|| (format!("{canonical}{tail}"), key))
        })
    }

    /// `router` behind this mapping: requests reach it at their canonical path, with the path
    /// key as a [`PathKey`] extension; paths that are not public answer `404`.
    pub fn in_front_of(self, router: Router) -> Router {
        let paths = Arc::new(self);
        Router::new().fallback(move |request: Request| {
            let (paths, router) = (Arc::clone(&paths), router.clone());
            async move {
                match paths.rewrite(request) {
                    Some(request) => router.oneshot(request).await.into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }
        })
    }

    /// The request at its canonical path, or `None` for a path that is not public.
    fn rewrite(&self, mut request: Request) -> Option<Request> {
        let (canonical, key) = self.resolve(request.uri().path())?;
        let key = key.map(|k| PathKey(k.to_owned()));
        if canonical != request.uri().path() {
            let path_and_query = match request.uri().query() {
                Some(query) => format!("{canonical}?{query}"),
                None => canonical,
            };
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
            *request.uri_mut() = Uri::from_parts(parts).ok()?;
        }
        if let Some(key) = key {
            request.extensions_mut().insert(key);
        }
        Some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(toml: &str) -> PublicPaths {
        PublicPaths::new(&toml::from_str(toml).unwrap())
    }

    fn resolve(p: &PublicPaths, path: &str) -> Option<(String, Option<String>)> {
        p.resolve(path).map(|(c, k)| (c, k.map(str::to_owned)))
    }

    fn to(canonical: &str, key: Option<&str>) -> Option<(String, Option<String>)> {
        Some((canonical.to_owned(), key.map(str::to_owned)))
    }

    #[test]
    fn default_paths_and_the_path_form() {
        let p = paths("");
        assert_eq!(resolve(&p, "/v1/rum"), to("/v1/rum", None));
        assert_eq!(resolve(&p, "/rum.js"), to("/rum.js", None));
        assert_eq!(resolve(&p, "/collect/pk_x"), to("/collect/pk_x", None));
        assert_eq!(resolve(&p, "/a/pk_x/v1/rum"), to("/v1/rum", Some("pk_x")));
        assert_eq!(
            resolve(&p, "/a/pk_x/collect/pk_y"),
            to("/collect/pk_y", Some("pk_x"))
        );
        assert_eq!(
            resolve(&p, "/a/pk_x/v1/traces"),
            to("/v1/traces", Some("pk_x"))
        );
        for not_public in [
            "/",
            "/v1",
            "/v1/rumx",
            "/a/pk_x",
            "/a//v1/rum",
            "/a/pk_x/nope",
            "/ab/v1/rum",
        ] {
            assert_eq!(resolve(&p, not_public), None, "{not_public}");
        }
    }

    #[test]
    fn a_path_key_prints_masked() {
        assert_eq!(format!("{:?}", PathKey("pk_x".into())), "PathKey(***)");
    }

    #[test]
    fn renamed_and_prefixed() {
        let p = paths("prefix = \"/t\"\nnative = \"/in/b\"\napp_key_path = \"/k\"\n");
        assert_eq!(resolve(&p, "/t/in/b"), to("/v1/rum", None));
        assert_eq!(resolve(&p, "/t/k/pk_x/in/b"), to("/v1/rum", Some("pk_x")));
        assert_eq!(resolve(&p, "/t/v1/traces"), to("/v1/traces", None));
        for old in [
            "/v1/rum",
            "/t/v1/rum",
            "/in/b",
            "/a/pk_x/v1/rum",
            "/k/pk_x/t/in/b",
            "/tin/b",
        ] {
            assert_eq!(resolve(&p, old), None, "{old}");
        }
    }

    #[tokio::test]
    async fn requests_reach_the_canonical_route_with_the_key() {
        use axum::body::Body;
        use axum::extract::Extension;
        use axum::routing::post;
        use http_body_util::BodyExt;

        let inner = Router::new().route(
            "/v1/rum",
            post(|uri: Uri, key: Option<Extension<PathKey>>| async move {
                format!("{uri} {:?}", key.map(|Extension(PathKey(k))| k))
            }),
        );
        let router = paths("native = \"/b\"").in_front_of(inner);
        let call = |uri: &str| {
            let router = router.clone();
            let request = Request::post(uri).body(Body::empty()).unwrap();
            async move {
                let resp = router.oneshot(request).await.unwrap();
                let status = resp.status();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        assert_eq!(
            call("/a/pk_x/b?auth=t").await,
            (StatusCode::OK, "/v1/rum?auth=t Some(\"pk_x\")".to_owned())
        );
        assert_eq!(
            call("/b").await,
            (StatusCode::OK, "/v1/rum None".to_owned())
        );
        assert_eq!(call("/v1/rum").await.0, StatusCode::NOT_FOUND);
    }
}
