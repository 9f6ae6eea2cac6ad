//! User-agent parsing: `user_agent.name`, `.version`, `.os.name`, `.os.version` (semconv) and a
//! device class (`rum.device.class`: `desktop`, `mobile`, `tablet`, `bot`), so backends can
//! group by browser and device without parsing strings themselves.
//!
//! Parsing uses `woothee` (pure Rust, its own maintained dataset). Its names are normalized to
//! the semconv examples (`iOS`, `macOS`, `Windows`); tablets, which woothee counts as
//! smartphones, are told apart by the `iPad` / `Tablet` tokens and by Android without
//! `Mobile` (Google's rule). Crawlers are `bot`, with `user_agent.synthetic.type = bot`.
//! Browsers send few distinct user agents, so results are cached (bounded).
//!
//! This is the only user-agent parser of the bridge: `process` parses once per request and
//! stores the result in the page context (`PageContext::device_class`, `BrowserInfo::name`),
//! where the resource of spans and logs and the labels of metric points both read it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::model::semconv::{USER_AGENT_NAME, USER_AGENT_VERSION};
use crate::model::DeviceClass;

/// Distinct user agents remembered; the cache starts over when full.
const CACHE_CAPACITY: usize = 4096;
/// Longest user agent parsed (longer ones are not browsers worth parsing).
const MAX_PARSED_LEN: usize = 1024;

/// What a user-agent string says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgent {
    pub name: Option<String>,
    pub version: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub device_class: Option<DeviceClass>,
}

impl UserAgent {
    /// The attributes to add where the client sent none, semconv names first.
    /// `rum.device.class` is not among them: it is bridge-defined, and written from
    /// [`device_class`] whatever the client sent.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (USER_AGENT_NAME, self.name.as_deref()),
            (USER_AGENT_VERSION, self.version.as_deref()),
            ("user_agent.os.name", self.os_name.as_deref()),
            ("user_agent.os.version", self.os_version.as_deref()),
            (
                "user_agent.synthetic.type",
                (self.device_class == Some(DeviceClass::Bot)).then_some("bot"),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }
}

/// Parses user agents, with a bounded cache.
#[derive(Debug, Default)]
pub struct UserAgents {
    cache: RwLock<HashMap<Box<str>, Arc<UserAgent>>>,
}

impl UserAgents {
    /// The parsed form of `ua` (cached).
    pub fn parse(&self, ua: &str) -> Arc<UserAgent> {
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ua)
        {
            return hit.clone();
        }
        let parsed = Arc::new(parse(ua));
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(ua.into(), parsed.clone());
        parsed
    }
}

/// Parses one user agent (uncached).
pub fn parse(ua: &str) -> UserAgent {
    if ua.len() > MAX_PARSED_LEN {
        return UserAgent::default();
    }
    let Some(result) = woothee::parser::Parser::new().parse(ua) else {
        return UserAgent::default();
    };
    let known =
        |s: &str| (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_owned());
    let device_class = match result.category {
        "pc" => Some(DeviceClass::Desktop),
        "smartphone" | "mobilephone" if is_tablet(ua) => Some(DeviceClass::Tablet),
        "smartphone" | "mobilephone" => Some(DeviceClass::Mobile),
        "crawler" => Some(DeviceClass::Bot),
        _ => None,
    };
    let (os_name, os_version) = normalize_os(result.os, &result.os_version);
    UserAgent {
        name: known(result.name),
        version: known(result.version),
        os_name,
        os_version: os_version.and_then(|v| known(&v)),
        device_class,
    }
}

/// The device class of a page view: the parsed user agent's, else the UA Client Hint
/// `mobile` (`Sec-CH-UA-Mobile` or `navigator.userAgentData.mobile`), else unknown.
pub fn device_class(parsed: Option<&UserAgent>, mobile_hint: Option<bool>) -> Option<DeviceClass> {
    parsed
        .and_then(|ua| ua.device_class)
        .or(mobile_hint.map(|mobile| {
            if mobile {
                DeviceClass::Mobile
            } else {
                DeviceClass::Desktop
            }
        }))
}

/// The browser name of a page view: the parsed user agent's, else the first UA-CH brand that
/// names a browser (`Chromium` only when no other brand does).
pub fn browser_name(parsed: Option<&UserAgent>, brands: &[String]) -> Option<String> {
    if let Some(name) = parsed.and_then(|ua| ua.name.as_ref()) {
        return Some(name.clone());
    }
    let mut chromium = false;
    for brand in brands {
        match brand_browser(brand) {
            Some("Chromium") => chromium = true,
            Some(name) => return Some(name.to_owned()),
            None => {}
        }
    }
    chromium.then(|| "Chromium".to_owned())
}

/// Maps a UA-CH brand ("Google Chrome 120"; GREASE brands map to nothing).
fn brand_browser(brand: &str) -> Option<&'static str> {
    const BRANDS: [(&str, &str); 6] = [
        ("Google Chrome", "Chrome"),
        ("Microsoft Edge", "Edge"),
        ("Opera", "Opera"),
        ("Samsung Internet", "Samsung Internet"),
        ("Brave", "Brave"),
        ("Chromium", "Chromium"),
    ];
    BRANDS
        .into_iter()
        .find(|(prefix, _)| brand.starts_with(prefix))
        .map(|(_, name)| name)
}

fn is_tablet(ua: &str) -> bool {
    ua.contains("iPad")
        || ua.contains("Tablet")
        || (ua.contains("Android") && !ua.contains("Mobile"))
}

/// woothee's OS names → semconv-style names, and the version to report.
fn normalize_os(os: &str, version: &str) -> (Option<String>, Option<String>) {
    let version = Some(version.to_owned());
    match os {
        "" | woothee::woothee::VALUE_UNKNOWN => (None, None),
        "iPhone" | "iPad" | "iPod" | "iOS" => (Some("iOS".into()), version),
        "Mac OSX" => (Some("macOS".into()), version),
        windows if windows.starts_with("Windows") => (Some("Windows".into()), version),
        other => (Some(other.to_owned()), version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

    fn ua(name: &str, version: &str, os: &str, os_version: &str, class: DeviceClass) -> UserAgent {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        UserAgent {
            name: opt(name),
            version: opt(version),
            os_name: opt(os),
            os_version: opt(os_version),
            device_class: Some(class),
        }
    }

    #[test]
    fn parses_common_browsers() {
        use DeviceClass::*;
        let cases = [
            (CHROME_WINDOWS, ua("Chrome", "120.0.0.0", "Windows", "NT 10.0", Desktop)),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
                ua("Safari", "17.1", "macOS", "10.15.7", Desktop),
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                ua("Firefox", "128.0", "Linux", "", Desktop),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
                ua("Safari", "17.0", "iOS", "17.0", Mobile),
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
                ua("Safari", "16.6", "iOS", "16.6", Tablet),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
                ua("Chrome", "120.0.0.0", "Android", "14", Mobile),
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                ua("Chrome", "120.0.0.0", "Android", "13", Tablet),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
                ua("Edge", "120.0.0.0", "Windows", "NT 10.0", Desktop),
            ),
        ];
        for (agent, expected) in cases {
            assert_eq!(parse(agent), expected, "{agent}");
        }
    }

    #[test]
    fn bots_and_garbage() {
        let bot = parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!(bot.device_class, Some(DeviceClass::Bot));
        assert!(bot
            .attributes()
            .any(|(k, v)| k == "user_agent.synthetic.type" && v == "bot"));
        for garbage in ["", "curl", "\u{1F600}\u{0}", &"Mozilla/5.0 ".repeat(1000)] {
            let parsed = parse(garbage);
            assert_eq!(parsed.name, None, "{garbage}");
        }
    }

    #[test]
    fn attributes_skip_unknowns() {
        let parsed = parse(CHROME_WINDOWS);
        let attrs: Vec<_> = parsed.attributes().collect();
        assert_eq!(
            attrs,
            [
                ("user_agent.name", "Chrome"),
                ("user_agent.version", "120.0.0.0"),
                ("user_agent.os.name", "Windows"),
                ("user_agent.os.version", "NT 10.0"),
            ]
        );
        assert_eq!(UserAgent::default().attributes().count(), 0);
    }

    #[test]
    fn cache_returns_the_same_result() {
        let agents = UserAgents::default();
        let a = agents.parse(CHROME_WINDOWS);
        let b = agents.parse(CHROME_WINDOWS);
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..CACHE_CAPACITY + 10 {
            agents.parse(&format!("agent {i}"));
        }
        assert!(agents.cache.read().unwrap().len() <= CACHE_CAPACITY);
    }
}
