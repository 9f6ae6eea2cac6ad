//! The values of the page and HTTP attributes of a point, read from the page context and the
//! event: the call's host and its normalised method (by the rules spans use too), the client's country and the device class.
//! Kept apart so the aggregator's hot path reads as "encode these values"; none of them parses
//! a user agent (the device class and browser name are the page context's, set by `process`).

use super::descriptors::COUNTRY;
use crate::model::{http, AttrValue, DeviceClass, PageContext};

/// `server.address` of a call, lowercased: its URL's host, resolved against the page's URL
/// when relative (the same rule as the call's span, [`crate::model::http`]).
pub(super) fn call_host(url: &str, page_url: Option<&str>) -> Option<String> {
    let (u, _) = http::resolve_url(url, page_url)?;
    http::server_address(&u).map(|h| h.to_ascii_lowercase())
}

/// `http.request.method`: the known methods in canonical case, anything else `_OTHER`.
pub(super) fn normalize_method(method: &str) -> &'static str {
    http::normalize_method(method).0
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
        let page = Some("https://shop.example.com/cart");
        assert_eq!(
            call_host("https://a:b@Example.com:8080/x", None).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            call_host("http://[2001:db8::1]:8080/x", None).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            call_host("//cdn.example.com", page).as_deref(),
            Some("cdn.example.com")
        );
        assert_eq!(
            call_host("/relative/path", page).as_deref(),
            Some("shop.example.com"),
            "a relative call goes to the page's host"
        );
        assert_eq!(call_host("/relative/path", None), None);
    }

    #[test]
    fn methods_are_normalized() {
        assert_eq!(normalize_method("get"), "GET");
        assert_eq!(normalize_method("PATCH"), "PATCH");
        assert_eq!(normalize_method("BREW"), "_OTHER");
        assert_eq!(normalize_method(""), "_OTHER");
    }
}
