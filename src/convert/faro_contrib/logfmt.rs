//! The logfmt writer of faro-contrib bodies: keys and values written, quoted and escaped as
//! `go-logfmt`'s `MarshalKeyvals` writes them
//! (docs/faro-mapping.md#faro-contrib-compat-mode).

use std::fmt::Write as _;

/// A logfmt line written as `go-logfmt`'s `MarshalKeyvals` writes it.
pub(super) struct Logfmt {
    pub(super) out: String,
}

impl Logfmt {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
        }
    }

    /// `key=value`, whatever the value (contrib's `kv.Set`). A key left empty once its invalid
    /// characters are removed is skipped, as go-logfmt skips it.
    pub(super) fn pair(&mut self, key: &str, value: &str) {
        if !key.chars().any(valid_key_char) {
            return;
        }
        self.separate();
        self.key(key);
        self.value(value);
    }

    /// `key=value` when `value` is not empty (contrib's `keyValAdd`).
    pub(super) fn field(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.pair(key, value);
        }
    }

    pub(super) fn opt(&mut self, key: &str, value: Option<&str>) {
        self.field(key, value.unwrap_or_default());
    }

    /// `<prefix><key>=value` (contrib's `mergeKeyValWithPrefix`).
    pub(super) fn prefixed(&mut self, prefix: &str, key: &str, value: &str) {
        self.separate();
        self.out.push_str(prefix);
        self.key(key);
        self.value(value);
    }

    /// The non-empty entries of a sorted map, each key prefixed.
    pub(super) fn map(&mut self, prefix: &str, pairs: &[(String, String)]) {
        for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            self.prefixed(prefix, key, value);
        }
    }

    fn separate(&mut self) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
    }

    fn key(&mut self, key: &str) {
        self.out.extend(key.chars().filter(|c| valid_key_char(*c)));
    }

    fn value(&mut self, value: &str) {
        self.out.push('=');
        if value == "null" || value.chars().any(needs_quotes) {
            quote_into(&mut self.out, value);
        } else {
            self.out.push_str(value);
        }
    }
}

/// go-logfmt's `needsQuotedValueRune`; keys drop these characters.
fn needs_quotes(c: char) -> bool {
    c <= ' ' || c == '=' || c == '"' || c == '\u{7f}' || c == char::REPLACEMENT_CHARACTER
}

fn valid_key_char(c: char) -> bool {
    !needs_quotes(c)
}

/// go-logfmt's `writeQuotedString`: JSON-style escapes for `"`, `\`, `\n`, `\r`, `\t`, other
/// control characters as `\u00XX`, U+FFFD as `\ufffd`; everything else as is.
fn quote_into(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            char::REPLACEMENT_CHARACTER => out.push_str("\\ufffd"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The length of `value` once quoted and escaped (quotes not counted).
pub(super) fn quoted_len(value: &str) -> usize {
    value
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' => 2,
            c if c < ' ' => 6,
            char::REPLACEMENT_CHARACTER => 6,
            c => c.len_utf8(),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_escaped_like_go_logfmt() {
        let cases = [
            ("plain", "plain"),
            ("with space", "\"with space\""),
            ("a=b", "\"a=b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "back\\slash"),
            ("two\nlines\ttab\r", "\"two\\nlines\\ttab\\r\""),
            ("bell\u{7}", "\"bell\\u0007\""),
            ("del\u{7f}", "\"del\u{7f}\""),
            ("bad\u{fffd}", "\"bad\\ufffd\""),
            ("null", "\"null\""),
            ("ünïcödé", "ünïcödé"),
        ];
        for (value, rendered) in cases {
            let mut w = Logfmt::with_capacity(16);
            w.pair("k", value);
            assert_eq!(w.out, format!("k={rendered}"), "{value:?}");
        }
        let mut w = Logfmt::with_capacity(16);
        w.pair("a key=\"x\"", "v");
        w.pair(" =\"", "skipped");
        w.field("empty", "");
        w.prefixed("context_", "my key", "v");
        assert_eq!(w.out, "akeyx=v context_mykey=v");
    }
}
