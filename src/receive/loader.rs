//! `GET /rum.js`: the browser loader, served by the bridge itself (docs/architecture.md#browser-loader).
//!
//! One script tag installs the loader, and its beacons go back to the origin it came from, so
//! the bridge serves it. The loader's source is `loader/rum.js`; `scripts/build-loader.sh`
//! minifies it into `loader/rum.min.js`, which is compiled into the binary. Everything a response
//! needs (the gzip encoding, the ETags) is computed once when the router is built; a request only
//! compares headers and clones reference-counted bytes.
//!
//! Caching: a strong `ETag` per encoding (a hash of the bytes) with `If-None-Match` → `304`,
//! and `Cache-Control: public, max-age=300`: a new loader reaches browsers within five minutes
//! of a deploy, and revalidations after that cost a `304`.
//!
//! The loader posts its beacons to `v1/rum` next to itself (`new URL("v1/rum", script.src)`,
//! which also holds when a proxy mounts the bridge under a prefix). When `[routes]` moves the
//! loader or the native route, the served script gets the path from the loader's place to the
//! native route's instead (`../in/b`), once, when the edge is built ([`Loader::for_routes`]).
//!
//! The session sample rate is in the script too (docs/sampling.md): `/rum.js?key={app_key}`
//! (or the path form, `/a/{app_key}/rum.js`) serves the script with that app's `sample_rate`,
//! any other request the one with `[sampling].default_rate`, so the loader's decision, and the
//! `traceparent` flag it sends, follow the bridge's configuration without a page deploy. The
//! variants (one per distinct rate) are built once at startup ([`Loaders`]).

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use xxhash_rust::xxh3::xxh3_128;

use std::collections::HashMap;

use super::{EdgeState, KeyQuery};
use crate::admin::RouteStatus;
use crate::config::{Config, RoutesConfig};

/// Where the loader is served (its canonical path, and its label in the request counter).
pub const ROUTE: &str = "/rum.js";
/// The minified loader, as built by `scripts/build-loader.sh`.
pub const SCRIPT: &[u8] = include_bytes!("../../loader/rum.min.js");
/// The endpoint as `loader/rum.js` writes it (relative to the script), once in the minified
/// build: the literal a renamed route replaces.
const ENDPOINT_LITERAL: &str = "\"v1/rum\"";
/// The sample rate as `loader/rum.js` writes it (`SERVED_RATE`), once in the minified build.
const RATE_LITERAL: &str = "\"rb:rate=1\"";
/// Browsers may reuse the loader this long (seconds) before revalidating it.
const CACHE_CONTROL: &str = "public, max-age=300";
const CONTENT_TYPE: &str = "text/javascript; charset=utf-8";

/// The loader in both encodings, each with its own strong ETag.
pub struct Loader {
    plain: Variant,
    gzip: Variant,
}

struct Variant {
    body: Bytes,
    etag: HeaderValue,
}

/// The loader for each app: by app key, else the one with `[sampling].default_rate`.
pub struct Loaders {
    default: Arc<Loader>,
    by_key: HashMap<String, Arc<Loader>>,
}

impl Loaders {
    /// Every variant the configuration needs, computed once: one per distinct rate.
    pub fn new(config: &Config) -> Self {
        let mut by_rate: HashMap<u64, Arc<Loader>> = HashMap::new();
        let mut variant = |rate: f64| {
            by_rate
                .entry(rate.to_bits())
                .or_insert_with(|| Arc::new(Loader::for_routes_and_rate(&config.routes, rate)))
                .clone()
        };
        let default = variant(config.sampling.default_rate);
        let by_key = config
            .apps
            .iter()
            .map(|a| {
                let rate = a.sample_rate.unwrap_or(config.sampling.default_rate);
                (a.key.clone(), variant(rate))
            })
            .collect();
        Self { default, by_key }
    }

    /// The variant for an app key (the default for none, or one not configured).
    fn for_key(&self, key: Option<&str>) -> &Loader {
        key.and_then(|k| self.by_key.get(k))
            .unwrap_or(&self.default)
    }
}

/// The `GET /rum.js` handler (axum answers `HEAD` with the same headers and no body).
pub async fn serve(
    State(st): State<Arc<EdgeState>>,
    query: KeyQuery,
    headers: HeaderMap,
) -> Response {
    // The key only picks the sample rate: a script is no secret, so no key is refused.
    let key = super::key_outside_body(&headers, &query).ok().flatten();
    let resp = st.loader.for_key(key).respond(&headers);
    st.metrics
        .requests
        .get_or_create(&RouteStatus {
            route: ROUTE,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Where the loader at public path `loader` finds the native route at public path `native`,
/// as a URL relative to the script (`v1/rum` by default).
pub fn endpoint(loader: &str, native: &str) -> String {
    let dir: Vec<&str> = loader.trim_start_matches('/').split('/').collect();
    let dir = &dir[..dir.len() - 1];
    let target: Vec<&str> = native.trim_start_matches('/').split('/').collect();
    let common = dir
        .iter()
        .zip(&target[..target.len() - 1])
        .take_while(|(a, b)| a == b)
        .count();
    let up = "../".repeat(dir.len() - common);
    let rest = target[common..].join("/");
    // `a:b` alone would read as a URL scheme.
    if up.is_empty() && rest.split('/').next().is_some_and(|s| s.contains(':')) {
        format!("./{rest}")
    } else {
        format!("{up}{rest}")
    }
}

impl Loader {
    /// The loader as served under `routes`, computed once (script, gzip, ETags).
    pub fn for_routes(routes: &RoutesConfig) -> Self {
        Self::for_routes_and_rate(routes, 1.0)
    }

    /// The loader as served under `routes` with session sample rate `rate`.
    pub fn for_routes_and_rate(routes: &RoutesConfig, rate: f64) -> Self {
        let public = |canonical| routes.public(canonical).unwrap_or_default();
        let endpoint = endpoint(&public(ROUTE), &public(super::native::ROUTE));
        if endpoint == "v1/rum" && rate == 1.0 {
            return Self::new(Bytes::from_static(SCRIPT));
        }
        let mut script = String::from_utf8_lossy(SCRIPT).into_owned();
        if endpoint != "v1/rum" {
            let literal = serde_json::to_string(&endpoint).expect("a string serializes");
            script = script.replacen(ENDPOINT_LITERAL, &literal, 1);
        }
        if rate != 1.0 {
            // Rust prints the shortest text that reads back as the same f64, as JavaScript's
            // `+"…"` reads it.
            script = script.replacen(RATE_LITERAL, &format!("\"rb:rate={rate}\""), 1);
        }
        Self::new(Bytes::from(script))
    }

    fn new(script: Bytes) -> Self {
        let hash = format!("{:032x}", xxh3_128(&script));
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        let gzip = gz
            .write_all(&script)
            .and_then(|()| gz.finish())
            .expect("gzip into memory cannot fail");
        let etag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{hash}{suffix}\"")).expect("hex is a valid header")
        };
        Self {
            plain: Variant {
                body: script,
                etag: etag(""),
            },
            gzip: Variant {
                body: Bytes::from(gzip),
                etag: etag("-gzip"),
            },
        }
    }

    fn respond(&self, headers: &HeaderMap) -> Response {
        let gzip = accepts_gzip(headers);
        let variant = if gzip { &self.gzip } else { &self.plain };
        // Either ETag names this version of the loader, whichever encoding the cache holds.
        let fresh = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|v| etag_matches(v, &[&self.plain.etag, &self.gzip.etag]));
        let mut builder = Response::builder()
            .header(header::ETAG, variant.etag.clone())
            .header(header::CACHE_CONTROL, CACHE_CONTROL)
            .header(header::VARY, "Accept-Encoding")
            // A script may be loaded with `crossorigin` (to see error details); it holds no secret.
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header("cross-origin-resource-policy", "cross-origin")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        if fresh {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .expect("static headers are valid");
        }
        builder = builder.header(header::CONTENT_TYPE, CONTENT_TYPE);
        if gzip {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
        }
        builder
            .status(StatusCode::OK)
            .body(Body::from(variant.body.clone()))
            .expect("static headers are valid")
    }
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`, or `*` when gzip is not named)
/// with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(quality);
            } else if coding == "*" {
                any = Some(quality);
            }
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

/// `If-None-Match` (a list of entity tags, or `*`) against our ETags, with the weak comparison
/// RFC 9110 prescribes for it.
fn etag_matches(value: &HeaderValue, ours: &[&HeaderValue]) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    value.split(',').map(str::trim).any(|tag| {
        tag == "*" || {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            ours.iter().any(|o| o.as_bytes() == tag.as_bytes())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use flate2::read::GzDecoder;
    use http_body_util::BodyExt;
    use std::io::Read;
    use std::sync::LazyLock;
    use tower::ServiceExt;

    static LOADER: LazyLock<Loader> = LazyLock::new(|| Loader::new(Bytes::from_static(SCRIPT)));

    /// The hard budget: the loader, minified and gzipped, under 5 KB.
    const GZIP_BUDGET: usize = 5120;

    fn gzip_best(data: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn loader_is_under_5_kb_gzipped() {
        let size = gzip_best(SCRIPT).len();
        println!(
            "loader/rum.min.js: {} bytes, {size} bytes gzipped",
            SCRIPT.len()
        );
        assert!(
            size < GZIP_BUDGET,
            "loader/rum.min.js is {size} bytes gzipped, over the {GZIP_BUDGET}-byte budget"
        );
    }

    #[test]
    fn embedded_loader_is_the_minified_build() {
        let text = std::str::from_utf8(SCRIPT).expect("UTF-8");
        assert!(
            text.starts_with("/*! rum-bridge loader "),
            "{}",
            &text[..40]
        );
        assert!(!text.contains("RB_TEST"), "the test hook must be built out");
        assert!(text.contains("v1/rum") && text.contains("rumBridge"));
    }

    fn request(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    async fn body(resp: Response) -> Vec<u8> {
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    fn header(resp: &Response, name: header::HeaderName) -> &str {
        resp.headers()
            .get(&name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn serves_the_script_with_caching_headers() {
        let resp = LOADER.respond(&HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header(&resp, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header(&resp, header::CACHE_CONTROL), "public, max-age=300");
        assert_eq!(header(&resp, header::VARY), "Accept-Encoding");
        let etag = header(&resp, header::ETAG).to_owned();
        assert_eq!(etag, format!("\"{:032x}\"", xxh3_128(SCRIPT)));
        assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body(resp).await, SCRIPT);
    }

    #[tokio::test]
    async fn gzip_when_accepted() {
        for accept in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1, GZIP;q=0.5",
            "*",
            "x-gzip",
        ] {
            let resp = LOADER.respond(&request(&[(header::ACCEPT_ENCODING, accept)]));
            assert_eq!(resp.status(), StatusCode::OK, "{accept}");
            assert_eq!(header(&resp, header::CONTENT_ENCODING), "gzip", "{accept}");
            let etag = header(&resp, header::ETAG).to_owned();
            assert_eq!(etag, format!("\"{:032x}-gzip\"", xxh3_128(SCRIPT)));
            let mut plain = Vec::new();
            GzDecoder::new(&body(resp).await[..])
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, SCRIPT, "{accept}");
        }
        for accept in [
            "gzip;q=0",
            "br, deflate",
            "identity",
            "*;q=0",
            "gzip;q=0, *",
            "",
        ] {
            let resp = LOADER.respond(&request(&[(header::ACCEPT_ENCODING, accept)]));
            assert!(
                resp.headers().get(header::CONTENT_ENCODING).is_none(),
                "{accept}"
            );
            assert_eq!(body(resp).await, SCRIPT, "{accept}");
        }
    }

    #[tokio::test]
    async fn if_none_match_answers_304() {
        let plain = format!("\"{:032x}\"", xxh3_128(SCRIPT));
        let gz = format!("\"{:032x}-gzip\"", xxh3_128(SCRIPT));
        for tag in [
            plain.clone(),
            gz.clone(),
            format!("W/{plain}"),
            format!("\"other\", {gz}"),
            "*".to_owned(),
        ] {
            let resp = LOADER.respond(&request(&[
                (header::IF_NONE_MATCH, &tag),
                (header::ACCEPT_ENCODING, "gzip"),
            ]));
            assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{tag}");
            assert_eq!(
                header(&resp, header::ETAG),
                gz,
                "the selected encoding's tag"
            );
            assert_eq!(header(&resp, header::CACHE_CONTROL), "public, max-age=300");
            assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
            assert!(body(resp).await.is_empty(), "{tag}");
        }
        for tag in ["\"stale\"", "W/\"stale\"", &plain[1..], ""] {
            let resp = LOADER.respond(&request(&[(header::IF_NONE_MATCH, tag)]));
            assert_eq!(resp.status(), StatusCode::OK, "{tag}");
            assert_eq!(body(resp).await, SCRIPT);
        }
    }

    #[tokio::test]
    async fn head_gets_the_headers_without_the_body() {
        let app = Router::new().route(
            ROUTE,
            get(|headers: HeaderMap| async move { LOADER.respond(&headers) }),
        );
        let req = http::Request::head(ROUTE).body(Body::empty()).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header(&resp, header::CONTENT_LENGTH),
            SCRIPT.len().to_string()
        );
        assert!(body(resp).await.is_empty());
    }

    #[test]
    fn etag_is_computed_from_the_bytes() {
        let a = Loader::new(Bytes::from_static(b"a"));
        let b = Loader::new(Bytes::from_static(b"b"));
        assert_ne!(a.plain.etag, b.plain.etag);
        assert_eq!(
            a.plain.etag,
            Loader::new(Bytes::from_static(b"a")).plain.etag
        );
        assert_ne!(a.plain.etag, a.gzip.etag);
        assert_eq!(&a.plain.body[..], b"a");
    }

    #[test]
    fn the_endpoint_is_relative_to_the_loader() {
        assert_eq!(endpoint("/rum.js", "/v1/rum"), "v1/rum");
        assert_eq!(endpoint("/t/rum.js", "/t/v1/rum"), "v1/rum");
        assert_eq!(endpoint("/static/app.js", "/in/b"), "../in/b");
        assert_eq!(endpoint("/t/s/x/app.js", "/t/in/b"), "../../in/b");
        assert_eq!(endpoint("/s/app.js", "/s/b"), "b");
        assert_eq!(endpoint("/app.js", "/b:c/d"), "./b:c/d");
    }

    #[test]
    fn each_app_gets_its_sample_rate() {
        let config: Config = toml::from_str(
            "[sampling]\ndefault_rate = 0.25\n\
             [[apps]]\nname = \"a\"\nkey = \"pk_a\"\nallowed_origins = [\"*\"]\nsample_rate = 0.5\n\
             [[apps]]\nname = \"b\"\nkey = \"pk_b\"\nallowed_origins = [\"*\"]\n",
        )
        .unwrap();
        assert_eq!(
            SCRIPT
                .windows(RATE_LITERAL.len())
                .filter(|w| *w == RATE_LITERAL.as_bytes())
                .count(),
            1,
            "the minified loader holds the rate literal once"
        );
        let loaders = Loaders::new(&config);
        let text = |key| String::from_utf8(loaders.for_key(key).plain.body.to_vec()).unwrap();
        assert!(text(Some("pk_a")).contains("\"rb:rate=0.5\""));
        for key in [Some("pk_b"), Some("pk_unknown"), None] {
            let t = text(key);
            assert!(
                t.contains("\"rb:rate=0.25\"") && !t.contains(RATE_LITERAL),
                "{key:?}"
            );
        }
        // One variant per distinct rate.
        assert!(Arc::ptr_eq(&loaders.by_key["pk_b"], &loaders.default));
        assert_ne!(
            loaders.by_key["pk_a"].plain.etag,
            loaders.default.plain.etag
        );
        let full = Loader::for_routes_and_rate(&RoutesConfig::default(), 1.0);
        assert_eq!(&full.plain.body[..], SCRIPT);
    }

    #[tokio::test]
    async fn renamed_routes_are_in_the_served_script() {
        assert_eq!(
            SCRIPT
                .windows(ENDPOINT_LITERAL.len())
                .filter(|w| *w == ENDPOINT_LITERAL.as_bytes())
                .count(),
            1,
            "the minified loader holds the endpoint literal once"
        );
        let default = Loader::for_routes(&RoutesConfig::default());
        assert_eq!(&default.plain.body[..], SCRIPT);
        let routes: RoutesConfig =
            toml::from_str("prefix = \"/t\"\nloader = \"/s/app.js\"\nnative = \"/in/b\"").unwrap();
        let renamed = Loader::for_routes(&routes);
        let text = std::str::from_utf8(&renamed.plain.body).unwrap();
        assert!(text.contains("new URL(\"../in/b\","), "{}", &text[..200]);
        assert!(!text.contains("\"v1/rum\""));
        assert_ne!(renamed.plain.etag, default.plain.etag);
        let mut plain = Vec::new();
        GzDecoder::new(&renamed.gzip.body[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, &renamed.plain.body[..]);
    }
}
