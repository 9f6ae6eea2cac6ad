//! W3C trace context: `traceparent` values and `Server-Timing` trace entries.
//!
//! Correlation is the product's core promise, so these parsers follow the W3C rules strictly
//! (lowercase hex, non-zero ids, version handling) and never panic on hostile input.

use std::fmt;

/// A validated W3C span context: the ids and trace flags of one span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

/// Why a `traceparent` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceContextError {
    #[error("traceparent has the wrong length or delimiters")]
    Shape,
    #[error("traceparent version `ff` is invalid")]
    InvalidVersion,
    #[error("traceparent contains characters that are not lowercase hex")]
    NotHex,
    #[error("traceparent trace id is all zeros")]
    ZeroTraceId,
    #[error("traceparent parent id is all zeros")]
    ZeroSpanId,
}

impl TraceContext {
    /// Sampled flag (bit 0 of the W3C trace flags).
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// Parses a W3C `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`).
    ///
    /// Versions above `00` are accepted when the first four fields sit at their fixed positions
    /// and any extra data follows a `-`, as the spec requires for forward compatibility.
    pub fn parse_traceparent(value: &str) -> Result<Self, TraceContextError> {
        let v = value.trim().as_bytes();
        if v.len() < 55 {
            return Err(TraceContextError::Shape);
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(TraceContextError::Shape);
        }
        let version = hex_byte(&v[0..2]).ok_or(TraceContextError::NotHex)?;
        if version == 0xff {
            return Err(TraceContextError::InvalidVersion);
        }
        if version == 0 && v.len() != 55 {
            return Err(TraceContextError::Shape);
        }
        if version != 0 && v.len() > 55 && v[55] != b'-' {
            return Err(TraceContextError::Shape);
        }
        let mut trace_id = [0u8; 16];
        decode_hex_into(&v[3..35], &mut trace_id).ok_or(TraceContextError::NotHex)?;
        let mut span_id = [0u8; 8];
        decode_hex_into(&v[36..52], &mut span_id).ok_or(TraceContextError::NotHex)?;
        let flags = hex_byte(&v[53..55]).ok_or(TraceContextError::NotHex)?;
        if trace_id == [0; 16] {
            return Err(TraceContextError::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(TraceContextError::ZeroSpanId);
        }
        Ok(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// Formats as a version-00 `traceparent` value.
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

/// Finds the trace context in a `Server-Timing` header value or a list of its entries.
///
/// Accepts the de-facto `traceparent;desc="00-…"` entry and the W3C `trace;desc=00-…` entry
/// (names case-insensitive, `desc` quoted or not). The first valid entry wins.
pub fn parse_server_timing(header: &str) -> Option<TraceContext> {
    split_outside_quotes(header, b',').find_map(|metric| {
        let mut parts = split_outside_quotes(metric, b';');
        let name = parts.next()?.trim();
        if !(name.eq_ignore_ascii_case("traceparent") || name.eq_ignore_ascii_case("trace")) {
            return None;
        }
        // Only the first occurrence of a parameter counts.
        let desc = parts.find_map(|param| {
            let (k, v) = param.split_once('=')?;
            k.trim().eq_ignore_ascii_case("desc").then(|| v.trim())
        })?;
        let desc = desc
            .strip_prefix('"')
            .and_then(|d| d.strip_suffix('"'))
            .or_else(|| desc.strip_prefix('\'').and_then(|d| d.strip_suffix('\'')))
            .unwrap_or(desc);
        TraceContext::parse_traceparent(desc).ok()
    })
}

/// Splits on `sep` bytes that are not inside a double-quoted string.
fn split_outside_quotes(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    let mut in_quotes = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while pos < bytes.len() {
            let b = bytes[pos];
            pos += 1;
            if b == b'"' {
                in_quotes = !in_quotes;
            } else if b == b'\\' && in_quotes {
                pos += 1;
            } else if b == sep && !in_quotes {
                let part = &s[start..pos - 1];
                start = pos;
                return Some(part);
            }
        }
        done = true;
        Some(&s[start.min(s.len())..])
    })
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    Some(hex_val(two[0])? << 4 | hex_val(two[1])?)
}

/// Decodes lowercase hex into `out`; `src` must be exactly twice as long as `out`.
pub fn decode_hex_into(src: &[u8], out: &mut [u8]) -> Option<()> {
    if src.len() != out.len() * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = hex_byte(&src[2 * i..2 * i + 2])?;
    }
    Some(())
}

/// Like [`decode_hex_into`], also accepting uppercase digits (no allocation).
fn decode_hex_any_case(src: &[u8], out: &mut [u8]) -> Option<()> {
    if src.len() != out.len() * 2 {
        return None;
    }
    let val = |c: u8| hex_val(c.to_ascii_lowercase());
    for (i, o) in out.iter_mut().enumerate() {
        *o = val(src[2 * i])? << 4 | val(src[2 * i + 1])?;
    }
    Some(())
}

/// Parses a trace id (32 hex chars, non-zero). Accepts uppercase, since JSON producers vary.
pub fn parse_trace_id(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    decode_hex_any_case(s.as_bytes(), &mut out)?;
    (out != [0; 16]).then_some(out)
}

/// Parses a span id (16 hex chars, non-zero). Accepts uppercase, since JSON producers vary.
pub fn parse_span_id(s: &str) -> Option<[u8; 8]> {
    let mut out = [0u8; 8];
    decode_hex_any_case(s.as_bytes(), &mut out)?;
    (out != [0; 8]).then_some(out)
}

/// Lowercase hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TP: &str = "00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01";

    #[test]
    fn parses_valid_traceparent() {
        let tc = TraceContext::parse_traceparent(TP).unwrap();
        assert_eq!(hex(&tc.trace_id), "4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c");
        assert_eq!(hex(&tc.span_id), "a1b2c3d4e5f60718");
        assert!(tc.sampled());
        assert_eq!(tc.to_traceparent(), TP);
    }

    #[test]
    fn rejects_invalid_traceparents() {
        use TraceContextError::*;
        let cases = [
            ("", Shape),
            (
                "00-4D1C7E5A9B0F4E2A8C3D6B7A1F2E3D4C-a1b2c3d4e5f60718-01",
                NotHex,
            ),
            (
                "00-00000000000000000000000000000000-a1b2c3d4e5f60718-01",
                ZeroTraceId,
            ),
            (
                "00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-0000000000000000-01",
                ZeroSpanId,
            ),
            (
                "ff-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01",
                InvalidVersion,
            ),
            (
                "00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01-x",
                Shape,
            ),
            (
                "00_4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01",
                Shape,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(TraceContext::parse_traceparent(input), Err(want), "{input}");
        }
    }

    #[test]
    fn ids_parse_in_any_case_and_reject_zero_or_bad() {
        assert_eq!(
            parse_trace_id("4D1C7E5A9B0F4E2A8C3D6B7A1F2E3D4C").map(|t| hex(&t)),
            Some("4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c".into())
        );
        assert_eq!(
            parse_span_id("A1b2c3d4e5f60718").map(|s| hex(&s)),
            Some("a1b2c3d4e5f60718".into())
        );
        assert_eq!(parse_span_id("0000000000000000"), None);
        assert_eq!(parse_span_id("a1b2c3d4e5f6071"), None);
        assert_eq!(parse_trace_id("g".repeat(32).as_str()), None);
    }

    #[test]
    fn future_versions_parse_first_fields() {
        let tc = TraceContext::parse_traceparent(
            "01-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01-extra",
        )
        .unwrap();
        assert_eq!(hex(&tc.span_id), "a1b2c3d4e5f60718");
    }

    #[test]
    fn server_timing_variants() {
        let want = TraceContext::parse_traceparent(TP).unwrap();
        for h in [
            format!("traceparent;desc=\"{TP}\""),
            format!("trace;desc={TP}"),
            format!("TRACE;dur=0;desc='{TP}'"),
            format!("db;dur=53, app;dur=47.2;desc=\"a,b;c\", traceparent;desc=\"{TP}\""),
            format!("cache;desc=\"hit\";dur=1, trace;desc=\"{TP}\";desc=\"ignored\""),
        ] {
            assert_eq!(parse_server_timing(&h), Some(want), "{h}");
        }
        assert_eq!(parse_server_timing("db;dur=53"), None);
        assert_eq!(parse_server_timing("traceparent;desc=\"garbage\""), None);
        assert_eq!(parse_server_timing(""), None);
    }

    proptest! {
        #[test]
        fn traceparent_never_panics(s in "\\PC*") {
            let _ = TraceContext::parse_traceparent(&s);
        }

        #[test]
        fn server_timing_never_panics(s in "\\PC*") {
            let _ = parse_server_timing(&s);
        }

        #[test]
        fn traceparent_roundtrips(t in any::<[u8; 16]>(), s in any::<[u8; 8]>(), f in any::<u8>()) {
            prop_assume!(t != [0; 16] && s != [0; 8]);
            let tc = TraceContext { trace_id: t, span_id: s, flags: f };
            prop_assert_eq!(TraceContext::parse_traceparent(&tc.to_traceparent()), Ok(tc));
        }

        #[test]
        fn server_timing_finds_entry_among_noise(
            t in any::<[u8; 16]>(), s in any::<[u8; 8]>(), noise in "[a-z]{1,8}(;dur=[0-9]{1,3})?"
        ) {
            prop_assume!(t != [0; 16] && s != [0; 8]);
            let tc = TraceContext { trace_id: t, span_id: s, flags: 1 };
            let h = format!("{noise}, traceparent;desc=\"{}\"", tc.to_traceparent());
            prop_assert_eq!(parse_server_timing(&h), Some(tc));
        }
    }
}
