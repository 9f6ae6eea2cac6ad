//! `[sourcemaps]`: where source maps for minified JavaScript come from, and the bounds on
//! fetching and holding them (docs/symbolication.md).
//!
//! Fetching is off unless origins are listed: a beacon names script URLs, and a bridge that
//! fetched whatever a client named would be a server-side request forgery tool. Maps on disk
//! (`[[sourcemaps.local]]`) need no network at all.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[sourcemaps]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcemapsConfig {
    /// Origins (`scheme://host[:port]`) whose scripts and maps may be fetched; empty: no
    /// fetching. A redirect to any other origin is not followed. A name here must resolve to
    /// public addresses; list an internal server by its address (`http://10.0.0.5:8080`).
    pub fetch_origins: Vec<String>,
    /// Time for one script and its map, connection to last byte.
    #[serde(with = "duration::millis")]
    pub fetch_timeout: Duration,
    /// Largest map (and script), on the wire and parsed.
    pub max_map_bytes: u64,
    /// All parsed maps in memory together; the least recently used go first.
    pub cache_bytes: u64,
    /// How long a missing or failed map is not tried again.
    #[serde(with = "duration::secs")]
    pub negative_cache: Duration,
    /// How long a payload whose maps are not cached waits for them before it is exported
    /// unresolved.
    #[serde(with = "duration::millis")]
    pub max_wait: Duration,
    /// Payloads waiting for maps at once; beyond this, payloads are exported unresolved at once.
    pub max_pending: usize,
    /// Frames whose file matches one of these regular expressions are library frames: they
    /// are left out of the error fingerprint.
    pub library_frames: Vec<String>,
    /// In-app frames (from the top) that make the error fingerprint.
    pub fingerprint_frames: usize,
    /// Maps on disk.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub local: Vec<LocalMaps>,
}

/// `[[sourcemaps.local]]`: a script URL starting with `url_prefix` has its map under `dir`, at
/// the rest of the URL's path plus `.map` (or where the script's `sourceMappingURL` says).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalMaps {
    pub url_prefix: String,
    pub dir: PathBuf,
}

impl Default for SourcemapsConfig {
    fn default() -> Self {
        Self {
            fetch_origins: Vec::new(),
            fetch_timeout: Duration::from_secs(2),
            max_map_bytes: 16 * 1024 * 1024,
            cache_bytes: 128 * 1024 * 1024,
            negative_cache: Duration::from_secs(300),
            max_wait: Duration::from_secs(3),
            max_pending: 256,
            library_frames: vec![r"/node_modules/".into(), r"^webpack/".into()],
            fingerprint_frames: 3,
            local: Vec::new(),
        }
    }
}

impl SourcemapsConfig {
    /// Problems, each starting with the key it concerns (see `validate`).
    pub(super) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (i, origin) in self.fetch_origins.iter().enumerate() {
            if let Err(why) = parse_origin(origin) {
                p.push(format!("sourcemaps.fetch_origins[{i}]: {origin:?}: {why}"));
            }
        }
        for (i, pattern) in self.library_frames.iter().enumerate() {
            if let Err(e) = regex::Regex::new(pattern) {
                p.push(format!("sourcemaps.library_frames[{i}]: {e}"));
            }
        }
        for (i, local) in self.local.iter().enumerate() {
            if local.url_prefix.is_empty() {
                p.push(format!(
                    "sourcemaps.local[{i}].url_prefix: must not be empty"
                ));
            }
            if !local.dir.is_dir() {
                p.push(format!(
                    "sourcemaps.local[{i}].dir: {} is not a directory",
                    local.dir.display()
                ));
            }
        }
        if self.max_map_bytes == 0 || self.cache_bytes < self.max_map_bytes {
            p.push(format!(
                "sourcemaps.cache_bytes: {} must be at least max_map_bytes ({}), which must not be 0",
                self.cache_bytes, self.max_map_bytes
            ));
        }
        if self.fetch_timeout.is_zero() {
            p.push("sourcemaps.fetch_timeout: must be more than 0".into());
        }
        p
    }
}

/// An origin as listed: `http(s)://host[:port]`, nothing else (no path, user or query).
pub fn parse_origin(text: &str) -> Result<url::Origin, &'static str> {
    let url = url::Url::parse(text).map_err(|_| "not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("scheme must be http or https");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must be an origin only (scheme://host[:port]), without a path");
    }
    Ok(url.origin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetching_is_off_by_default_and_unknown_keys_are_refused() {
        let c: SourcemapsConfig = toml::from_str("").unwrap();
        assert!(c.fetch_origins.is_empty() && c.local.is_empty());
        assert!(c.problems().is_empty());
        let e = toml::from_str::<SourcemapsConfig>("fetch_origin = []").unwrap_err();
        assert!(e.to_string().contains("fetch_origin"), "{e}");
        let e = toml::from_str::<SourcemapsConfig>(
            "[[local]]\nurl_prefix = \"x\"\ndir = \"/\"\nroot = 1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("root"), "{e}");
    }

    #[test]
    fn bad_origins_patterns_and_sizes_are_named() {
        let c: SourcemapsConfig = toml::from_str(
            "fetch_origins = [\"https://shop.example.com/static\", \"file:///srv\"]\n\
             library_frames = [\"(\"]\nmax_map_bytes = 10\ncache_bytes = 5\nfetch_timeout = 0",
        )
        .unwrap();
        let p = c.problems().join("\n");
        for key in [
            "sourcemaps.fetch_origins[0]",
            "sourcemaps.fetch_origins[1]",
            "sourcemaps.library_frames[0]",
            "sourcemaps.cache_bytes",
            "sourcemaps.fetch_timeout",
        ] {
            assert!(p.contains(key), "{key} in {p}");
        }
    }
}
