//! `[privacy]`: the data-protection rules applied to every batch (docs/architecture.md#privacy).
//!
//! The rules are plain data here; `process` compiles them once at start-up. Defaults are the
//! safe choice: URLs scrubbed, PII patterns redacted, user ids hashed.

use serde::{Deserialize, Serialize};

/// `[privacy]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// What happens to the user id the page sets (`user.id`).
    pub user_id: UserIdMode,
    /// Key of the user-id HMAC. Else `RUM_BRIDGE_USER_ID_KEY`; else a random key per process
    /// (hashes then differ between restarts and replicas; the daemon warns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id_key: Option<String>,
    /// Export the client's address as `client.address`, truncated to the prefixes below.
    pub export_client_ip: bool,
    /// Bits of an IPv4 address kept when exported (0–32).
    pub client_ip_v4_prefix: u8,
    /// Bits of an IPv6 address kept when exported (0–128).
    pub client_ip_v6_prefix: u8,
    /// Consent category that allows spans and logs. A beacon that reports its consent
    /// categories without this one only feeds the aggregate metrics.
    pub consent_category: String,
    /// Treat `Sec-GPC: 1` (Global Privacy Control) like a withheld consent.
    pub honor_gpc: bool,
    pub url: UrlPrivacyConfig,
    pub pii: PiiConfig,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            user_id: UserIdMode::Hash,
            user_id_key: None,
            export_client_ip: false,
            client_ip_v4_prefix: 24,
            client_ip_v6_prefix: 48,
            consent_category: "analytics".to_owned(),
            honor_gpc: false,
            url: UrlPrivacyConfig::default(),
            pii: PiiConfig::default(),
        }
    }
}

/// Environment variable holding the user-id HMAC key (when the file sets none).
pub const USER_ID_KEY_VAR: &str = "RUM_BRIDGE_USER_ID_KEY";

/// Shortest accepted `user_id_key`, in bytes.
pub const MIN_USER_ID_KEY_LEN: usize = 16;

/// How user ids are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserIdMode {
    /// HMAC-SHA256 with `user_id_key`, hex (32 characters): stable, not reversible.
    #[default]
    Hash,
    /// As the page sent it.
    Plain,
    /// Not exported.
    Drop,
}

/// `[privacy.pii]`: patterns redacted in messages, stack traces, log bodies and string
/// attributes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// E-mail addresses (also `%40`-encoded) → `[email]`.
    pub emails: bool,
    /// Payment card numbers (13–19 digits starting 2–6, spaces or dashes allowed, Luhn-checked)
    /// → `[card]`.
    pub card_numbers: bool,
    /// `Bearer …` credentials → `Bearer [token]`, JSON Web Tokens → `[jwt]`.
    pub tokens: bool,
    /// IPv4 and IPv6 addresses → `[ip]`.
    pub ip_addresses: bool,
    /// Custom patterns, applied after the built-in ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<PiiPattern>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            emails: true,
            card_numbers: true,
            tokens: true,
            ip_addresses: true,
            patterns: Vec::new(),
        }
    }
}

/// `[[privacy.pii.patterns]]`: text matching `pattern` becomes `replacement`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiPattern {
    /// Rule name, the `rule` label of `rum_bridge_privacy_redactions_total`:
    /// lowercase letters, digits and `_`, unique.
    pub name: String,
    /// Regular expression (Rust `regex` syntax).
    pub pattern: String,
    /// Literal replacement text.
    #[serde(default = "default_pii_replacement")]
    pub replacement: String,
}

fn default_pii_replacement() -> String {
    "[redacted]".to_owned()
}

/// Rule names of the built-in PII patterns (reserved for custom patterns).
pub const BUILTIN_PII_RULES: [&str; 6] = ["email", "card", "bearer", "jwt", "ipv4", "ipv6"];

/// `[privacy.url]`: URL scrubbing and `url.template`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlPrivacyConfig {
    /// Query keys whose values are kept; every other value becomes `REDACTED`. The semconv
    /// sensitive keys (`X-Amz-Signature`, `sig`, …) are redacted even when listed.
    pub allowed_query_keys: Vec<String>,
    /// Custom path-segment rules, tried before the built-in id detection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path_rules: Vec<PathRule>,
}

impl Default for UrlPrivacyConfig {
    fn default() -> Self {
        Self {
            allowed_query_keys: [
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "utm_term",
                "utm_content",
            ]
            .map(str::to_owned)
            .to_vec(),
            path_rules: Vec::new(),
        }
    }
}

/// `[[privacy.url.path_rules]]`: a path segment matching `pattern` becomes `replacement`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// Regular expression (Rust `regex` syntax) tested against each path segment; anchor it
    /// (`^…$`) to match whole segments.
    pub pattern: String,
    /// What the segment becomes in `url.full` and `url.template`, e.g. `{sku}`.
    pub replacement: String,
}

impl PrivacyConfig {
    /// Problems, each starting with the key it concerns (see `validate`).
    pub(super) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(key) = &self.user_id_key {
            if key.len() < MIN_USER_ID_KEY_LEN {
                out.push(format!(
                    "privacy.user_id_key: must be at least {MIN_USER_ID_KEY_LEN} bytes (use a \
                     random secret, e.g. `openssl rand -hex 32`)"
                ));
            }
        }
        if self.client_ip_v4_prefix > 32 {
            out.push(format!(
                "privacy.client_ip_v4_prefix: {} is more than 32",
                self.client_ip_v4_prefix
            ));
        }
        if self.client_ip_v6_prefix > 128 {
            out.push(format!(
                "privacy.client_ip_v6_prefix: {} is more than 128",
                self.client_ip_v6_prefix
            ));
        }
        if self.consent_category.trim().is_empty() {
            out.push("privacy.consent_category: must not be empty".to_owned());
        }
        let mut names = std::collections::HashSet::new();
        for (i, rule) in self.pii.patterns.iter().enumerate() {
            let at = format!("privacy.pii.patterns[{i}]");
            let valid_name = !rule.name.is_empty()
                && rule
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                out.push(format!(
                    "{at}.name: {:?} must be lowercase letters, digits and _",
                    rule.name
                ));
            } else if BUILTIN_PII_RULES.contains(&rule.name.as_str()) {
                out.push(format!(
                    "{at}.name: {:?} is a built-in rule name",
                    rule.name
                ));
            } else if !names.insert(rule.name.as_str()) {
                out.push(format!("{at}.name: duplicate name {:?}", rule.name));
            }
            match regex::Regex::new(&rule.pattern) {
                Err(e) => out.push(format!("{at}.pattern: {}", regex_problem(&e))),
                Ok(re) if re.is_match("") => out.push(format!(
                    "{at}.pattern: matches the empty string, so it would match everywhere"
                )),
                Ok(_) => {}
            }
        }
        for (i, key) in self.url.allowed_query_keys.iter().enumerate() {
            if key.is_empty() {
                out.push(format!(
                    "privacy.url.allowed_query_keys[{i}]: must not be empty"
                ));
            }
        }
        for (i, rule) in self.url.path_rules.iter().enumerate() {
            let at = format!("privacy.url.path_rules[{i}]");
            if let Err(e) = regex::Regex::new(&rule.pattern) {
                out.push(format!("{at}.pattern: {}", regex_problem(&e)));
            }
            if rule.replacement.contains(['/', '?', '#']) {
                out.push(format!(
                    "{at}.replacement: {:?} must not contain / ? or #",
                    rule.replacement
                ));
            }
        }
        out
    }
}

/// A regex compile error on one line (the crate's message spans several, with a caret diagram).
pub(crate) fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    format!(
        "invalid regular expression: {}",
        last.trim().trim_start_matches("error: ")
    )
}
