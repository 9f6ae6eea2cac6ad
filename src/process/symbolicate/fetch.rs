//! Fetching scripts and maps from the listed origins, and from nowhere else.
//!
//! The URL in a stack frame is chosen by whoever sent the beacon. Before a connection is
//! opened the URL must be `http(s)` without credentials, and its origin (scheme, host and
//! port, the default port filled in) must be one of `fetch_origins`; that rules out odd
//! schemes and unlisted ports. Redirects are followed only within the same origin. A listed
//! origin named by a DNS name must resolve to public addresses (no loopback, private,
//! link-local, shared or unspecified ones), so a name cannot be pointed inside the network;
//! an internal server is listed by its address. Every read is bounded by `fetch_timeout`
//! (the whole script-then-map exchange) and `max_map_bytes` (checked while reading, not only
//! from `Content-Length`).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use url::{Origin, Url};

use crate::config::sourcemaps::parse_origin;

use super::Unresolved;

/// The fetcher of `[sourcemaps]`: `None` when no origin is listed.
pub struct Fetcher {
    client: reqwest::Client,
    origins: HashSet<Origin>,
    timeout: Duration,
    max_bytes: u64,
}

impl Fetcher {
    pub fn new(
        origins: &[String],
        timeout: Duration,
        max_bytes: u64,
    ) -> Result<Option<Self>, reqwest::Error> {
        let origins: HashSet<Origin> = origins
            .iter()
            .filter_map(|o| parse_origin(o).ok())
            .collect();
        if origins.is_empty() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(redirect::Policy::custom(|attempt| {
                let same = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same && attempt.previous().len() < 3 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .dns_resolver(Arc::new(PublicOnly))
            .no_proxy()
            .tls_backend_preconfigured(tls)
            .build()?;
        Ok(Some(Self {
            client,
            origins,
            timeout,
            max_bytes,
        }))
    }

    /// Whether a URL may be fetched: `http(s)`, no credentials, a listed origin.
    pub fn allows(&self, url: &str) -> bool {
        allowed(&self.origins, url).is_some()
    }

    /// The map of a script: the script is read for its `sourceMappingURL` (or `SourceMap`
    /// header), else `<script>.map` is tried; all within one `fetch_timeout`.
    pub async fn fetch_map(&self, script_url: &str) -> Result<Vec<u8>, Unresolved> {
        match tokio::time::timeout(self.timeout, self.script_then_map(script_url)).await {
            Ok(result) => result,
            Err(_) => Err(Unresolved::Timeout),
        }
    }

    async fn script_then_map(&self, script_url: &str) -> Result<Vec<u8>, Unresolved> {
        let script = allowed(&self.origins, script_url).ok_or(Unresolved::Refused)?;
        let (header, body) = self.get(&script, true).await?;
        let named = header.or_else(|| super::mapping_url(&body));
        let map_url = match named {
            Some(named) if named.starts_with("data:") => return data_url(&named),
            Some(named) => script.join(&named).map_err(|_| Unresolved::Refused)?,
            None => Url::parse(&format!(
                "{}.map",
                script.as_str().split(['?', '#']).next().unwrap_or_default()
            ))
            .map_err(|_| Unresolved::Refused)?,
        };
        let map_url = allowed(&self.origins, map_url.as_str()).ok_or(Unresolved::Refused)?;
        self.get(&map_url, false).await.map(|(_, body)| body)
    }

    /// One GET within the byte limit; the `SourceMap` header when asked.
    async fn get(&self, url: &Url, header: bool) -> Result<(Option<String>, Vec<u8>), Unresolved> {
        let mut response = self.client.get(url.clone()).send().await.map_err(|e| {
            if e.is_timeout() {
                Unresolved::Timeout
            } else {
                Unresolved::FetchFailed
            }
        })?;
        if response.status().is_redirection() {
            return Err(Unresolved::Refused);
        }
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(Unresolved::NotFound);
        }
        if !response.status().is_success() {
            return Err(Unresolved::FetchFailed);
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(Unresolved::TooLarge);
        }
        let named = header
            .then(|| {
                let h = response.headers();
                h.get("sourcemap")
                    .or_else(|| h.get("x-sourcemap"))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .flatten();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                Unresolved::Timeout
            } else {
                Unresolved::FetchFailed
            }
        })? {
            if (body.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(Unresolved::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((named, body))
    }
}

/// The URL when it may be fetched.
fn allowed(origins: &HashSet<Origin>, url: &str) -> Option<Url> {
    let url = Url::parse(url).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && origins.contains(&url.origin());
    ok.then_some(url)
}

/// An inline map (`data:application/json;base64,…`).
fn data_url(text: &str) -> Result<Vec<u8>, Unresolved> {
    use base64::Engine;
    let (meta, data) = text
        .strip_prefix("data:")
        .and_then(|t| t.split_once(','))
        .ok_or(Unresolved::ParseFailed)?;
    if meta.ends_with(";base64") {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| Unresolved::ParseFailed)
    } else {
        Ok(data.as_bytes().to_vec())
    }
}

/// Whether an address is one a public name may resolve to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The system resolver, keeping only public addresses: a listed name pointed at an internal
/// address resolves to nothing. (Addresses written in a URL are not resolved, so a listed
/// internal address works.)
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> HashSet<Origin> {
        list.iter().map(|o| parse_origin(o).unwrap()).collect()
    }

    #[test]
    fn only_listed_origins_without_credentials_or_odd_schemes_or_ports() {
        let o = origins(&["https://shop.example.com", "http://127.0.0.1:8080"]);
        assert!(allowed(&o, "https://shop.example.com/static/app.js").is_some());
        assert!(allowed(&o, "https://shop.example.com:443/app.js").is_some());
        assert!(allowed(&o, "http://127.0.0.1:8080/app.js").is_some());
        for bad in [
            "https://evil.example.com/app.js",
            "http://shop.example.com/app.js",
            "https://shop.example.com:8443/app.js",
            "https://user:pw@shop.example.com/app.js",
            "https://user@shop.example.com/app.js",
            "http://127.0.0.1:8081/app.js",
            "http://localhost:8080/app.js",
            "file:///etc/passwd",
            "data:text/javascript,alert(1)",
            "javascript:alert(1)",
            "https://shop.example.com.evil.net/app.js",
        ] {
            assert!(allowed(&o, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public("93.184.216.34".parse().unwrap()));
        assert!(is_public("2606:2800:220:1::1".parse().unwrap()));
    }

    #[test]
    fn listed_origins_are_origins_only() {
        assert!(parse_origin("https://shop.example.com/static").is_err());
        assert!(parse_origin("ftp://shop.example.com").is_err());
        assert!(parse_origin("https://a:b@shop.example.com").is_err());
        assert!(parse_origin("http://127.0.0.1:9000").is_ok());
    }
}
