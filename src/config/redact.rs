//! Credentials in URLs, masked wherever a URL is printed.
//!
//! Operators put secrets in exporter URLs: a Basic-auth password (`https://user:PW@host`) or an
//! API key in the query (`?api_key=…`). Start-up logs, `check-config`, error messages and `Debug`
//! output all show endpoints, so each of them goes through [`mask_url`] (one URL) or
//! [`mask_urls_in`] (free text such as a transport error that quotes the URL): the password
//! becomes `***`, as do the values of query parameters whose names say they are secrets. The
//! user name, host, port and path stay, so the output still says where data goes.

use std::borrow::Cow;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Query parameter names (compared case-insensitively, `-` and `_` ignored) whose values are
/// masked.
const SECRET_PARAMS: [&str; 11] = [
    "apikey",
    "key",
    "token",
    "accesstoken",
    "authtoken",
    "auth",
    "password",
    "pass",
    "secret",
    "signature",
    "sig",
];

/// `url` with its password and secret query values replaced by `***`; unchanged (borrowed)
/// when it holds none. In text that is not a URL with a host (a typo such as `http:/u:PW@h`),
/// whatever looks like `user:password@` is masked after its first `:`.
pub fn mask_url(url: &str) -> Cow<'_, str> {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => match mask_parsed(parsed) {
            Some(masked) => Cow::Owned(masked),
            None => Cow::Borrowed(url),
        },
        Ok(parsed) => match mask_parsed(parsed) {
            Some(masked) => Cow::Owned(mask_unparsed(&masked).into_owned()),
            None => mask_unparsed(url),
        },
        Err(_) => mask_unparsed(url),
    }
}

/// `text` with every URL in it (a `scheme://…` run up to white space, a quote or a bracket)
/// masked by [`mask_url`].
pub fn mask_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let is_end = |c: char| c.is_whitespace() || "\"'<>()[]{}`,".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let start = rest[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        let end = rest[sep..].find(is_end).map_or(rest.len(), |i| sep + i);
        let url = &rest[start..end];
        let masked = mask_url(url);
        changed |= matches!(masked, Cow::Owned(_));
        out.push_str(&rest[..start]);
        out.push_str(&masked);
        rest = &rest[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn mask_parsed(mut url: url::Url) -> Option<String> {
    let mut changed = false;
    if url.password().is_some() {
        // Cannot fail: a URL with a password has a host.
        changed |= url.set_password(Some(MASK)).is_ok();
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        if pairs.iter().any(|(k, v)| is_secret_param(k) && v != MASK) {
            changed = true;
            let mut query = url.query_pairs_mut();
            query.clear();
            for (k, v) in &pairs {
                query.append_pair(k, if is_secret_param(k) { MASK } else { v });
            }
        }
    }
    changed.then(|| url.to_string())
}

fn is_secret_param(name: &str) -> bool {
    let name: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_PARAMS.contains(&name.as_str())
}

/// Text that is not a URL with a host: masks `PASSWORD` in every `user:PASSWORD@` (the run
/// before an `@` back to the previous `/`, masked after its first `:`).
fn mask_unparsed(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut done = 0;
    for (at, _) in text.match_indices('@') {
        let segment_start = text[..at].rfind('/').map_or(0, |i| i + 1).max(done);
        let Some(colon) = text[segment_start..at].find(':') else {
            continue;
        };
        let password_start = segment_start + colon + 1;
        out.push_str(&text[done..password_start]);
        out.push_str(MASK);
        done = at;
    }
    if done == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_masked_user_and_host_kept() {
        assert_eq!(
            mask_url("http://user:s3cr%40t@collector:4318/otlp"),
            "http://user:***@collector:4318/otlp"
        );
    }

    #[test]
    fn urls_without_secrets_are_untouched() {
        for url in [
            "http://collector:4318",
            "https://otlp.example.com/v1/traces?tenant=a",
            "http://user@collector:4318",
            "not a url",
        ] {
            assert!(
                matches!(mask_url(url), Cow::Borrowed(u) if u == url),
                "{url}"
            );
        }
    }

    #[test]
    fn secret_query_values_are_masked() {
        assert_eq!(
            mask_url("https://h/v1/logs?tenant=a&api_key=K1&Access-Token=K2"),
            "https://h/v1/logs?tenant=a&api_key=***&Access-Token=***"
        );
    }

    #[test]
    fn unparsable_urls_still_lose_the_password() {
        assert_eq!(
            mask_url("http://user:PW@[bad-host/x"),
            "http://user:***@[bad-host/x"
        );
        assert_eq!(
            mask_url("htp:/user:PW@h:9?key=K"),
            "htp:/user:***@h:9?key=***"
        );
        assert_eq!(mask_url("user:PW@h"), "user:***@h");
    }

    #[test]
    fn debug_of_the_config_masks_urls_and_headers() {
        let mut config = crate::config::Config::default();
        let mut exporter = crate::config::ExporterConfig::embedded_default();
        exporter.endpoint = Some("http://u:EndpointPW@c:4318".into());
        exporter.logs_endpoint = Some("http://c:4318/v1/logs?token=LogsToken".into());
        exporter
            .headers
            .insert("authorization".into(), "Basic HeaderPW".into());
        config.exporters.push(exporter);
        config.telemetry.self_traces_endpoint = Some("http://u:SelfPW@c:4317".into());
        let shown = format!("{config:?}");
        for secret in ["EndpointPW", "LogsToken", "HeaderPW", "SelfPW"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("http://u:***@c:4318/"), "{shown}");
        let toml = config.to_redacted_toml().unwrap();
        for secret in ["EndpointPW", "LogsToken", "HeaderPW", "SelfPW"] {
            assert!(!toml.contains(secret), "{secret} in {toml}");
        }
    }

    #[test]
    fn urls_in_text_are_masked() {
        let text = "error sending request for url (http://u:PW@c:4318/v1/traces): refused";
        assert_eq!(
            mask_urls_in(text),
            "error sending request for url (http://u:***@c:4318/v1/traces): refused"
        );
        assert_eq!(
            mask_urls_in("invalid URL \"grpc+x://u:PW@h\" and https://h/?token=T"),
            "invalid URL \"grpc+x://u:***@h\" and https://h/?token=***"
        );
        let plain = "nothing to see at http://h:1/x";
        assert!(matches!(mask_urls_in(plain), Cow::Borrowed(_)));
    }
}
