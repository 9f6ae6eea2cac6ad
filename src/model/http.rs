//! HTTP facts every part reads the same way: the method as semantic conventions name it, and
//! the server a request URL points at (parsed once, with the `url` crate).

/// HTTP methods semconv knows (`http.request.method`); others become [`OTHER_METHOD`].
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];
/// `http.request.method` of a method semconv does not know.
pub const OTHER_METHOD: &str = "_OTHER";

/// A known method in canonical (upper) case, anything else `_OTHER`. The flag says whether
/// the raw method differs, so `http.request.method_original` must be set.
pub fn normalize_method(raw: &str) -> (&'static str, bool) {
    match KNOWN_METHODS.iter().find(|m| m.eq_ignore_ascii_case(raw)) {
        Some(m) => (m, *m != raw),
        None => (OTHER_METHOD, !raw.is_empty()),
    }
}

/// A request URL as an absolute URL: parsed as is, or resolved against the page's URL when it
/// is relative (`/api/cart`, `//cdn.example.com/x.js`; then the flag is set). `None` when
/// neither works.
pub fn resolve_url(raw: &str, page_url: Option<&str>) -> Option<(url::Url, bool)> {
    match url::Url::parse(raw) {
        Ok(u) => Some((u, false)),
        Err(url::ParseError::RelativeUrlWithoutBase) => page_url
            .and_then(|base| url::Url::parse(base).ok())
            .and_then(|base| base.join(raw).ok())
            .map(|u| (u, true)),
        Err(_) => None,
    }
}

/// `server.address` of a URL: the host without user info, port or IPv6 brackets.
pub fn server_address(u: &url::Url) -> Option<String> {
    match u.host()? {
        url::Host::Domain(d) => (!d.is_empty()).then(|| d.to_owned()),
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

/// Splits a `host[:port]` authority (a legacy `http.host` value): the host as
/// [`server_address`] gives it and the port, when there is one. `None` when it is not an
/// authority.
pub fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    let u = url::Url::parse(&format!("http://{authority}")).ok()?;
    Some((server_address(&u)?, u.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(normalize_method("GET"), ("GET", false));
        assert_eq!(normalize_method("post"), ("POST", true));
        assert_eq!(normalize_method("BREW"), ("_OTHER", true));
        assert_eq!(normalize_method(""), ("_OTHER", false));
    }

    #[test]
    fn servers_of_urls() {
        let page = Some("https://shop.example.com/cart");
        let host = |raw: &str| resolve_url(raw, page).and_then(|(u, _)| server_address(&u));
        assert_eq!(
            host("https://user:pw@api.example.com:8443/x").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host("/api/cart").as_deref(), Some("shop.example.com"));
        assert_eq!(
            host("//cdn.example.com/a.js").as_deref(),
            Some("cdn.example.com")
        );
        assert_eq!(host("http://[::1]:8080/").as_deref(), Some("::1"));
        assert_eq!(resolve_url("/api", None), None);
        assert_eq!(
            split_host_port("127.0.0.1:18787"),
            Some(("127.0.0.1".into(), Some(18787)))
        );
        assert_eq!(
            split_host_port("[::1]:80"),
            Some(("::1".into(), None)),
            "default port"
        );
        assert_eq!(
            split_host_port("example.com"),
            Some(("example.com".into(), None))
        );
        assert_eq!(split_host_port("a/b"), None);
    }
}
