//! `[routes]`: the public paths of the ingest listener (docs/apps.md#renamed-routes).
//!
//! Ad blockers match well-known RUM paths (`/rum.js`, `/v1/rum`, `/collect`, `/intake/v2/rum/
//! events`), so an operator can rename every public route, or put them all under a prefix. The
//! handlers keep their canonical paths; the edge maps each public path onto its canonical one
//! (`receive::routes`), so a renamed route answers at its new name only and its old name is
//! `404`. The table below is the one list of renameable routes: a new route is one line in it.

use serde::{Deserialize, Serialize};

/// Declares `RoutesConfig` with one field per renameable route (its default is the canonical
/// path the handler is registered at) and [`RoutesConfig::named`], the list of them.
macro_rules! route_table {
    ($($(#[doc = $doc:literal])* $field:ident = $canonical:literal,)+) => {
        /// `[routes]`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct RoutesConfig {
            /// Put in front of every public path, the path form included (`""`: none).
            pub prefix: String,
            /// Path form for agents that cannot send a key: `{prefix}{app_key_path}/{app_key}
            /// {route}`.
            pub app_key_path: String,
            $($(#[doc = $doc])* pub $field: String,)+
        }

        impl Default for RoutesConfig {
            fn default() -> Self {
                Self {
                    prefix: String::new(),
                    app_key_path: DEFAULT_APP_KEY_PATH.to_owned(),
                    $($field: $canonical.to_owned(),)+
                }
            }
        }

        impl RoutesConfig {
            /// Every renameable route: (config key, canonical path, configured name).
            pub fn named(&self) -> Vec<(&'static str, &'static str, &str)> {
                vec![$((stringify!($field), $canonical, self.$field.as_str()),)+]
            }
        }
    };
}

/// The path form's default segment: `/a/{app_key}/v1/rum`.
pub const DEFAULT_APP_KEY_PATH: &str = "/a";

route_table! {
    /// The browser loader (`GET /rum.js`); it posts to `native`, wherever that is.
    loader = "/rum.js",
    /// Native beacons, and Splunk RUM's Zipkin arrays (`POST /v1/rum`).
    native = "/v1/rum",
    /// Grafana Faro (`POST /collect` and `/collect/{app_key}`).
    faro = "/collect",
    /// OTLP/HTTP traces.
    otlp_traces = "/v1/traces",
    /// OTLP/HTTP logs.
    otlp_logs = "/v1/logs",
    /// OTLP/HTTP metrics.
    otlp_metrics = "/v1/metrics",
    /// Zipkin v2 spans (`POST /api/v2/spans`).
    zipkin = "/api/v2/spans",
    /// Elastic RUM intake v2 (`POST /intake/v2/rum/events`).
    elastic_v2 = "/intake/v2/rum/events",
    /// Elastic RUM intake v3 (`POST /intake/v3/rum/events`).
    elastic_v3 = "/intake/v3/rum/events",
    /// Boomerang beacons (`POST` and `GET /v1/boomerang`).
    boomerang = "/v1/boomerang",
}

impl RoutesConfig {
    /// The public path of the route registered at `canonical` (`prefix` + its name); `None`
    /// for a path that is not in the table.
    pub fn public(&self, canonical: &str) -> Option<String> {
        self.named()
            .into_iter()
            .find(|(_, c, _)| *c == canonical)
            .map(|(_, _, name)| format!("{}{name}", self.prefix))
    }

    /// Problems, each starting with the key it concerns (see `validate`).
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.prefix.is_empty() {
            if let Err(m) = check_path(&self.prefix) {
                problems.push(format!("routes.prefix: {m}"));
            }
        }
        let named = self.named();
        let mut paths = vec![("app_key_path", self.app_key_path.as_str())];
        paths.extend(named.iter().map(|(key, _, name)| (*key, *name)));
        for (i, (key, path)) in paths.iter().enumerate() {
            if let Err(m) = check_path(path) {
                problems.push(format!("routes.{key}: {m}"));
                continue;
            }
            for (other, other_path) in &paths[..i] {
                if check_path(other_path).is_ok() && overlaps(path, other_path) {
                    let how = if path == other_path {
                        "is also"
                    } else {
                        "overlaps"
                    };
                    problems.push(format!(
                        "routes.{key}: {path:?} {how} routes.{other} ({other_path:?}); every \
                         route needs its own path, and none may lie under another"
                    ));
                }
            }
        }
        problems
    }
}

/// Whether one path equals the other or lies under it (`/collect` and `/collect/x`): the edge
/// could not tell which route a request is for.
pub fn overlaps(a: &str, b: &str) -> bool {
    let under = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under(a, b) || under(b, a)
}

/// A route is an absolute path of plain segments: it starts with `/`, has no empty segment or
/// trailing `/`, no `.`/`..` segment, and only characters that need no escaping in a URL path
/// or a JavaScript string (letters, digits, `-._~!$&()*+,;=:@`).
fn check_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("{path:?} must start with \"/\""));
    };
    if rest.is_empty()
        || rest
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "{path:?} must be a path of non-empty segments, without a trailing \"/\", \".\" or \"..\""
        ));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/-._~!$&()*+,;=:@".contains(*c)))
    {
        return Err(format!(
            "{path:?}: {bad:?} is not allowed (use letters, digits and -._~!$&()*+,;=:@)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        toml::from_str::<RoutesConfig>(toml).unwrap().problems()
    }

    #[test]
    fn defaults_are_the_canonical_paths_and_valid() {
        let r = RoutesConfig::default();
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        for (_, canonical, name) in r.named() {
            assert_eq!(canonical, name);
            assert_eq!(r.public(canonical).as_deref(), Some(canonical));
        }
        assert_eq!(r.public("/nope"), None);
    }

    #[test]
    fn prefix_and_renames() {
        let r: RoutesConfig = toml::from_str("prefix = \"/t\"\nloader = \"/s/app.js\"").unwrap();
        assert!(r.problems().is_empty());
        assert_eq!(r.public("/rum.js").as_deref(), Some("/t/s/app.js"));
        assert_eq!(r.public("/v1/rum").as_deref(), Some("/t/v1/rum"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<RoutesConfig>("nativ = \"/x\"").unwrap_err();
        assert!(err.to_string().contains("nativ"), "{err}");
    }

    #[test]
    fn bad_paths_name_the_key() {
        assert_eq!(
            problems("native = \"v1/b\""),
            ["routes.native: \"v1/b\" must start with \"/\""]
        );
        for bad in ["/", "/x/", "/x//y", "/x/../y"] {
            let p = problems(&format!("faro = \"{bad}\""));
            assert!(p.len() == 1 && p[0].starts_with("routes.faro: "), "{p:?}");
        }
        for bad in ["/x?y", "/x#y", "/x'y", "/x y", "/x%20", "/x\\\\y"] {
            let p = problems(&format!("zipkin = \"{bad}\""));
            assert!(
                p.len() == 1 && p[0].contains("is not allowed"),
                "{bad}: {p:?}"
            );
        }
        let p = problems("prefix = \"t\"");
        assert_eq!(p, ["routes.prefix: \"t\" must start with \"/\""]);
    }

    #[test]
    fn duplicates_and_overlaps_are_refused() {
        assert_eq!(
            problems("native = \"/b\"\nzipkin = \"/b\""),
            [
                "routes.zipkin: \"/b\" is also routes.native (\"/b\"); every route needs its own \
              path, and none may lie under another"
            ]
        );
        // Faro's `/collect/{app_key}` lies under `/collect`: nothing may live there.
        let p = problems("native = \"/collect/b\"");
        assert!(
            p.len() == 1 && p[0].starts_with("routes.faro: \"/collect\" overlaps routes.native"),
            "{p:?}"
        );
        let p = problems("loader = \"/a/rum.js\"");
        assert!(
            p.len() == 1
                && p[0].starts_with("routes.loader: \"/a/rum.js\" overlaps routes.app_key_path"),
            "{p:?}"
        );
        assert!(problems("native = \"/v1/rumx\"").is_empty());
    }
}
