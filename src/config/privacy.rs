//! `[privacy]`: the data-protection rules applied to every batch (design §7).
//!
//! The rules are plain data here; `process` compiles them once at start-up. Defaults are the
//! safe choice: URLs scrubbed, PII patterns redacted, user ids hashed.

use serde::{Deserialize, Serialize};

/// `[privacy]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    pub url: UrlPrivacyConfig,
}

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
