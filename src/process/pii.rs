//! PII redaction in free text, and user-id hashing.
//!
//! Error messages, stack traces, console logs and attributes are written by page code, which
//! happily logs e-mail addresses, card numbers, tokens and IP addresses. [`PiiRules::redact`]
//! replaces them before anything is exported (docs/architecture.md#pii):
//!
//! | rule | finds | becomes |
//! | --- | --- | --- |
//! | `email` | `local@domain.tld`, also `%40`-encoded, Unicode letters allowed | `[email]` |
//! | `card` | 13–19 digits starting 2–6, single spaces or dashes between, passing the Luhn check | `[card]` |
//! | `bearer` | `Bearer <token>` (any case; a token that is not a plain lowercase word) | `Bearer [token]` |
//! | `jwt` | `eyJ….eyJ….…` (JWS/JWE compact form) | `[jwt]` |
//! | `ipv4` | dotted quads that parse as an address and are not part of a longer dotted number; loopback and `0.0.0.0` kept | `[ip]` |
//! | `ipv6` | colon forms (also `::`-compressed and IPv4-mapped) that parse as an address and contain a digit; `::1` and `::` kept | `[ip]` |
//! | custom | `[[privacy.pii.patterns]]` | the pattern's replacement |
//!
//! The built-in rules are one regex (an alternation of named groups), so a text is scanned
//! once however many rules are on; candidates are then checked in code (Luhn, address
//! parsing) so look-alikes such as build numbers or `std::vec` survive. Custom patterns run
//! after, behind a `RegexSet` that tells which of them can match at all. Every redaction
//! increments `rum_bridge_privacy_redactions_total{rule}`. Replacements never match a rule
//! again, so redacting twice changes nothing.
//!
//! User ids are hashed with HMAC-SHA256 under a secret key ([`UserIds`]), so a backend can
//! count and follow one user without learning who it is.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use regex::{Regex, RegexSet};
use sha2::Sha256;

use crate::admin::{Metrics, Rule};
use crate::config::privacy::{PiiConfig, UserIdMode};

/// The built-in rules: (name, regex alternative, replacement).
const BUILTIN: [(&str, &str, &str); 6] = [
    (
        "email",
        r"[\p{L}\p{N}._%+\-]+(?:@|%40)[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*\.\p{L}{2,}",
        "[email]",
    ),
    (
        "card",
        r"(?-u:\b)[2-6][0-9](?:[ \-]?[0-9]){11,17}(?-u:\b)",
        "[card]",
    ),
    (
        "bearer",
        r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]+=*",
        "Bearer [token]",
    ),
    (
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-.]*",
        "[jwt]",
    ),
    (
        "ipv4",
        r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
        "[ip]",
    ),
    (
        "ipv6",
        r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?",
        "[ip]",
    ),
];

/// Compiled redaction rules (from `[privacy.pii]`).
#[derive(Debug)]
pub struct PiiRules {
    /// The enabled built-in rules as one alternation; group `i + 1` is `builtin[i]`.
    combined: Option<Regex>,
    builtin: Vec<Builtin>,
    custom_set: Option<RegexSet>,
    custom: Vec<Custom>,
}

#[derive(Debug)]
struct Builtin {
    kind: Kind,
    replacement: &'static str,
    redactions: Counter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Card,
    Bearer,
    Jwt,
    Ipv4,
    Ipv6,
}

#[derive(Debug)]
struct Custom {
    regex: Regex,
    replacement: String,
    redactions: Counter,
}

impl PiiRules {
    /// Compiles the rules; redactions are counted in `metrics`. Fails only on an invalid
    /// custom pattern (which config validation reports first).
    pub fn new(config: &PiiConfig, metrics: &Metrics) -> Result<Self, regex::Error> {
        let counter = |name: &str| {
            metrics
                .privacy_redactions
                .get_or_create(&Rule {
                    rule: name.to_owned(),
                })
                .clone()
        };
        let enabled = [
            (config.emails, Kind::Email),
            (config.card_numbers, Kind::Card),
            (config.tokens, Kind::Bearer),
            (config.tokens, Kind::Jwt),
            (config.ip_addresses, Kind::Ipv4),
            (config.ip_addresses, Kind::Ipv6),
        ];
        let mut alternatives = Vec::new();
        let mut builtin = Vec::new();
        for ((on, kind), (name, pattern, replacement)) in enabled.into_iter().zip(BUILTIN) {
            if on {
                alternatives.push(format!("({pattern})"));
                builtin.push(Builtin {
                    kind,
                    replacement,
                    redactions: counter(name),
                });
            }
        }
        let combined = if alternatives.is_empty() {
            None
        } else {
            Some(Regex::new(&alternatives.join("|"))?)
        };
        let custom = config
            .patterns
            .iter()
            .map(|p| {
                Ok(Custom {
                    regex: Regex::new(&p.pattern)?,
                    replacement: p.replacement.clone(),
                    redactions: counter(&p.name),
                })
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        let custom_set = if custom.is_empty() {
            None
        } else {
            Some(RegexSet::new(config.patterns.iter().map(|p| &p.pattern))?)
        };
        Ok(Self {
            combined,
            builtin,
            custom_set,
            custom,
        })
    }

    /// `text` with every match of every rule replaced; borrowed when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let text = match self.redact_builtin(text) {
            Some(redacted) => Cow::Owned(redacted),
            None => Cow::Borrowed(text),
        };
        let Some(set) = &self.custom_set else {
            return text;
        };
        let matching = set.matches(&text);
        if !matching.matched_any() {
            return text;
        }
        let mut text = text;
        for i in matching.iter() {
            let rule = &self.custom[i];
            let mut count = 0;
            let replaced = rule.regex.replace_all(&text, |_: &regex::Captures| {
                count += 1;
                rule.replacement.as_str()
            });
            if let Cow::Owned(replaced) = replaced {
                rule.redactions.inc_by(count);
                text = Cow::Owned(replaced);
            }
        }
        text
    }

    /// Redacts `text` in place (no allocation when nothing matches).
    pub fn redact_string(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.redact(text) {
            *text = redacted;
        }
    }

    fn redact_builtin(&self, text: &str) -> Option<String> {
        let combined = self.combined.as_ref()?;
        let mut out: Option<String> = None;
        let mut copied = 0;
        for caps in combined.captures_iter(text) {
            let Some((rule, m)) = self
                .builtin
                .iter()
                .enumerate()
                .find_map(|(i, rule)| Some((rule, caps.get(i + 1)?)))
            else {
                continue;
            };
            if !rule.kind.accepts(text, m.start(), m.as_str()) {
                continue;
            }
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..m.start()]);
            out.push_str(rule.replacement);
            copied = m.end();
            rule.redactions.inc();
        }
        let mut out = out?;
        out.push_str(&text[copied..]);
        Some(out)
    }
}

impl Kind {
    /// Checks a regex candidate found at `start` of `text`.
    fn accepts(self, text: &str, start: usize, found: &str) -> bool {
        let bytes = text.as_bytes();
        let before = start.checked_sub(1).map(|i| bytes[i]);
        let after = &bytes[start + found.len()..];
        match self {
            Kind::Email | Kind::Jwt => true,
            Kind::Card => luhn_valid(found),
            // `Bearer` followed by an ordinary word ("bearer authentication") is prose.
            Kind::Bearer => {
                let token = found
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .trim_end_matches('=');
                !token.bytes().all(|b| b.is_ascii_lowercase())
            }
            // Not a piece of a longer dotted number such as a build number 1.2.3.4.5.
            Kind::Ipv4 => {
                let longer = before == Some(b'.')
                    || (after.first() == Some(&b'.')
                        && after.get(1).is_some_and(u8::is_ascii_digit));
                // Loopback and unspecified addresses name no person (and keep the
                // stack frames of pages served from 127.0.0.1 resolvable).
                !longer
                    && found
                        .parse::<Ipv4Addr>()
                        .is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified())
            }
            Kind::Ipv6 => {
                let inside_word = before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':');
                !inside_word
                    && found.bytes().any(|b| b.is_ascii_digit())
                    && found
                        .parse::<Ipv6Addr>()
                        .is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified())
            }
        }
    }
}

/// Whether the digits of `candidate` (separators ignored) pass the Luhn check.
fn luhn_valid(candidate: &str) -> bool {
    let digits = candidate
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0');
    let (mut sum, mut count) = (0u32, 0usize);
    for (i, d) in digits.rev().enumerate() {
        let d = u32::from(d);
        sum += if i % 2 == 1 {
            let doubled = d * 2;
            if doubled > 9 {
                doubled - 9
            } else {
                doubled
            }
        } else {
            d
        };
        count += 1;
    }
    (13..=19).contains(&count) && sum % 10 == 0
}

/// How user ids leave the bridge (`privacy.user_id`).
#[derive(Clone)]
pub struct UserIds {
    mode: UserIdMode,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for UserIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserIds")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Length of a hashed user id, in hex characters (128 bits).
pub const HASHED_USER_ID_LEN: usize = 32;

impl UserIds {
    /// With `key` (the configured secret), or a random key when `None`.
    pub fn new(mode: UserIdMode, key: Option<&str>) -> Self {
        let mac = match key {
            Some(key) => Hmac::<Sha256>::new_from_slice(key.as_bytes()),
            None => Hmac::<Sha256>::new_from_slice(&rand::random::<[u8; 32]>()),
        }
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Self { mode, mac }
    }

    /// Applies the mode to a user id: hashed, kept, or removed.
    pub fn apply(&self, user_id: &mut Option<String>) {
        match self.mode {
            UserIdMode::Plain => {}
            UserIdMode::Drop => *user_id = None,
            UserIdMode::Hash => {
                if let Some(id) = user_id {
                    *id = self.hash(id);
                }
            }
        }
    }

    /// The keyed hash of `id`: the first 128 bits of HMAC-SHA256, lowercase hex.
    pub fn hash(&self, id: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        crate::model::trace_context::hex(&digest[..HASHED_USER_ID_LEN / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::privacy::PiiPattern;
    use proptest::prelude::*;

    fn rules_with(config: &PiiConfig) -> (PiiRules, Metrics) {
        let metrics = Metrics::new();
        (PiiRules::new(config, &metrics).unwrap(), metrics)
    }

    /// The default rules, compiled once for all tests.
    fn rules() -> &'static PiiRules {
        static RULES: std::sync::LazyLock<PiiRules> =
            std::sync::LazyLock::new(|| rules_with(&PiiConfig::default()).0);
        &RULES
    }

    fn count(metrics: &Metrics, rule: &str) -> u64 {
        metrics
            .privacy_redactions
            .get_or_create(&Rule { rule: rule.into() })
            .get()
    }

    #[test]
    fn redacts_each_builtin_rule() {
        let cases = [
            ("mail alice@example.com now", "mail [email] now"),
            ("q=alice.b+tag%40mail.example.co.uk&x", "q=[email]&x"),
            ("José.Müller@exämple.de schrieb", "[email] schrieb"),
            ("card 4111 1111 1111 1111 declined", "card [card] declined"),
            ("card 4111-1111-1111-1111.", "card [card]."),
            ("pan=5500005555555559;", "pan=[card];"),
            ("amex 378282246310005", "amex [card]"),
            ("Authorization: Bearer abc123.DEF-456_ghi", "Authorization: Bearer [token]"),
            ("authorization: bearer ZXhhbXBsZQ==", "authorization: Bearer [token]"),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
                "token [jwt] end",
            ),
            ("from 203.0.113.42:443", "from [ip]:443"),
            ("client 2001:db8::8a2e:370:7334 said", "client [ip] said"),
            ("peer [fe80::1]", "peer [[ip]]"),
            ("mapped ::ffff:192.0.2.1 ok", "mapped [ip] ok"),
            ("at http://127.0.0.1:8080/app.js:1:2", "at http://127.0.0.1:8080/app.js:1:2"),
            ("bound to 0.0.0.0 and [::1]", "bound to 0.0.0.0 and [::1]"),
        ];
        for (input, output) in cases {
            assert_eq!(rules().redact(input), output, "{input}");
        }
    }

    #[test]
    fn look_alikes_survive() {
        for text in [
            "card 4111 1111 1111 1112 fails Luhn",
            "epoch 1700000000000 ms",
            "order 12345678901234",
            "build 1.2.3.4.5 and v10.0.0.1.2",
            "at 12:30:45 on 2024-01-02",
            "std::vec::Vec and a::b",
            "mac 00:1a:2b:3c:4d:5e",
            "bearer authentication is required",
            "999.1.1.1 is no address",
            "user@localhost has no domain",
            "",
            "plain text ünïcödé 日本語",
        ] {
            assert_eq!(rules().redact(text), text, "{text}");
            assert!(matches!(rules().redact(text), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn redactions_are_counted_by_rule() {
        let config = PiiConfig {
            patterns: vec![PiiPattern {
                name: "ssn".into(),
                pattern: r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b".into(),
                replacement: "[ssn]".into(),
            }],
            ..Default::default()
        };
        let (rules, metrics) = rules_with(&config);
        let out = rules.redact("a@b.io c@d.io 10.0.0.1 ssn 123-45-6789 and 987-65-4321");
        assert_eq!(out, "[email] [email] [ip] ssn [ssn] and [ssn]");
        assert_eq!(count(&metrics, "email"), 2);
        assert_eq!(count(&metrics, "ipv4"), 1);
        assert_eq!(count(&metrics, "ssn"), 2);
        assert_eq!(count(&metrics, "card"), 0);
        assert!(metrics
            .encode()
            .contains("rum_bridge_privacy_redactions_total{rule=\"ssn\"} 2"));
    }

    #[test]
    fn rules_can_be_switched_off() {
        let config = PiiConfig {
            emails: false,
            card_numbers: false,
            tokens: false,
            ip_addresses: false,
            patterns: vec![],
        };
        let (rules, _) = rules_with(&config);
        let text = "a@b.io 4111111111111111 Bearer X1y2Z3w4 10.0.0.1";
        assert_eq!(rules.redact(text), text);
        let only_ips = PiiConfig {
            ip_addresses: true,
            ..config
        };
        let (rules, _) = rules_with(&only_ips);
        assert_eq!(
            rules.redact(text),
            "a@b.io 4111111111111111 Bearer X1y2Z3w4 [ip]"
        );
    }

    #[test]
    fn stack_traces_keep_their_shape() {
        let stack = "TypeError: cannot read alice@example.com\n    at checkout (https://shop.example.com/app.3f2a.js:10:5)\n    at https://10.1.2.3/x.js:1:2";
        assert_eq!(
            rules().redact(stack),
            "TypeError: cannot read [email]\n    at checkout (https://shop.example.com/app.3f2a.js:10:5)\n    at https://[ip]/x.js:1:2"
        );
    }

    #[test]
    fn long_inputs() {
        let long = format!(
            "{} alice@example.com {}",
            "x".repeat(100_000),
            "9".repeat(100_000)
        );
        let out = rules().redact(&long);
        assert!(out.contains(" [email] ") && !out.contains("alice"));
        let many = "a@b.io ".repeat(10_000);
        assert_eq!(rules().redact(&many), "[email] ".repeat(10_000));
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("0"));
        assert!(!luhn_valid("00000000000000000000"));
    }

    #[test]
    fn user_ids_are_hashed_with_the_key() {
        let a = UserIds::new(UserIdMode::Hash, Some("0123456789abcdef"));
        let b = UserIds::new(UserIdMode::Hash, Some("0123456789abcdef"));
        let other = UserIds::new(UserIdMode::Hash, Some("fedcba9876543210"));
        let mut id = Some("user-42".to_owned());
        a.apply(&mut id);
        let hashed = id.unwrap();
        assert_eq!(hashed.len(), HASHED_USER_ID_LEN);
        assert!(hashed.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hashed, b.hash("user-42"));
        assert_ne!(hashed, other.hash("user-42"));
        assert_ne!(hashed, a.hash("user-43"));
        // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe"), first 128 bits.
        assert_eq!(
            UserIds::new(UserIdMode::Hash, Some("Jefe")).hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );

        let mut id = Some("user-42".to_owned());
        UserIds::new(UserIdMode::Plain, None).apply(&mut id);
        assert_eq!(id.as_deref(), Some("user-42"));
        UserIds::new(UserIdMode::Drop, None).apply(&mut id);
        assert_eq!(id, None);
        let random = UserIds::new(UserIdMode::Hash, None);
        assert_ne!(random.hash("x"), a.hash("x"));
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(text in "\\PC{0,300}") {
            let rules = rules();
            let once = rules.redact(&text).into_owned();
            let twice = rules.redact(&once).into_owned();
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn embedded_emails_never_survive(
            prefix in "\\PC{0,40}",
            local in "[a-z0-9._]{1,20}",
            domain in "[a-z]{1,10}\\.(com|org|io)",
            suffix in "\\PC{0,40}",
        ) {
            let email = format!("{local}@{domain}");
            let text = format!("{prefix} {email} {suffix}");
            let out = rules().redact(&text);
            prop_assert!(!out.contains(&email), "{}", out);
        }
    }
}
