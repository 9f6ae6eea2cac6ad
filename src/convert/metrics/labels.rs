//! The values of the page and HTTP attributes of a point, read from the page context and the
//! event: the call's host, its normalised method, the client's country and the device class.
//! Kept apart so the aggregator's hot path reads as "encode these values"; none of them parses
//! a user agent (the device class and browser name are the page context's, set by `process`).

use super::descriptors::COUNTRY;
use crate::model::{AttrValue, DeviceClass, PageContext};

/// Splits an absolute or scheme-relative URL into its authority and the rest (path, query,
/// fragment); a relative URL has no authority.
fn split_authority(url: &str) -> (Option<&str>, &str) {
    let scheme_end = url.find("://").filter(|&end| {
        end > 0
            && url[..end]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    let after_scheme = match (scheme_end, url.strip_prefix("//")) {
        (Some(end), _) => &url[end + 3..],
        (None, Some(rest)) => rest,
        (None, None) => return (None, url),
    };
    let end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    (Some(&after_scheme[..end]), &after_scheme[end..])
}

/// The host of an absolute URL (`server.address`): no user info, port or IPv6 brackets.
pub(super) fn url_host(url: &str) -> Option<&str> {
    let authority = split_authority(url).0?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or(bracketed, |(ip, _)| ip),
        None => host_port
            .split_once(':')
            .map_or(host_port, |(host, _)| host),
    };
    (!host.is_empty()).then_some(host)
}

/// `http.request.method`: the known methods in canonical case, anything else `_OTHER`.
pub(super) fn normalize_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(method))
        .unwrap_or("_OTHER")
}

/// `geo.country.iso_code`, when the geo lookup (`[geo]`) found the client's country.
pub(super) fn country(ctx: &PageContext) -> Option<&str> {
    ctx.attributes.iter().find_map(|(key, value)| match value {
        AttrValue::Str(code) if key == COUNTRY => Some(code.as_str()),
        _ => None,
    })
}

/// `rum.device.class`: the one `process` derived from the user agent, else `unknown`.
pub(super) fn device_class(ctx: &PageContext) -> &'static str {
    ctx.device_class.map_or("unknown", DeviceClass::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_parsed_without_user_info_port_or_brackets() {
        assert_eq!(
            url_host("https://a:b@Example.com:8080/x"),
            Some("Example.com")
        );
        assert_eq!(url_host("http://[2001:db8::1]:8080/x"), Some("2001:db8::1"));
        assert_eq!(url_host("//cdn.example.com"), Some("cdn.example.com"));
        assert_eq!(url_host("/relative/path"), None);
        assert_eq!(url_host("https:///nohost"), None);
    }

    #[test]
    fn methods_are_normalized() {
        assert_eq!(normalize_method("get"), "GET");
        assert_eq!(normalize_method("PATCH"), "PATCH");
        assert_eq!(normalize_method("BREW"), "_OTHER");
        assert_eq!(normalize_method(""), "_OTHER");
    }
}
