//! Reading request bodies safely: size limits while reading, gzip with a limit on the
//! decompressed bytes, and a content-type allow-list per route.
//!
//! Limits are enforced while the bytes arrive (never buffer more than the limit) and again on
//! the decompressed stream, so neither a huge upload nor a gzip bomb can exhaust memory.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::EdgeError;
use crate::model::Reason;

/// The body formats a route understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Protobuf,
}

/// Decides the body format from `Content-Type`, or refuses it.
///
/// `text/plain` is JSON: `navigator.sendBeacon` with a string body sends it, and it avoids a
/// CORS preflight. A missing content type is treated as JSON for the same reason.
pub fn body_format(headers: &HeaderMap, protobuf_allowed: bool) -> Result<BodyFormat, EdgeError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json")
        || mime.eq_ignore_ascii_case("text/plain")
        || mime.is_empty()
    {
        Ok(BodyFormat::Json)
    } else if protobuf_allowed
        && (mime.eq_ignore_ascii_case("application/x-protobuf")
            || mime.eq_ignore_ascii_case("application/protobuf"))
    {
        Ok(BodyFormat::Protobuf)
    } else {
        Err(EdgeError::UnsupportedMediaType {
            got: ct.chars().take(100).collect(),
            allowed: if protobuf_allowed {
                "application/json, text/plain, application/x-protobuf"
            } else {
                "application/json, text/plain"
            },
        })
    }
}

/// Reads the whole body, at most `max_bytes` on the wire and `max_decompressed` after gzip.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max_bytes: usize,
    max_decompressed: usize,
) -> Result<Bytes, EdgeError> {
    let gzip = match headers.get(header::CONTENT_ENCODING) {
        None => false,
        Some(v) => {
            let v = v.to_str().unwrap_or("").trim();
            if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
                true
            } else if v.is_empty() || v.eq_ignore_ascii_case("identity") {
                false
            } else {
                return Err(EdgeError::UnsupportedEncoding {
                    got: v.chars().take(50).collect(),
                });
            }
        }
    };
    // Refuse early when the client announces a body that is too large.
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max_bytes as u64 {
            return Err(EdgeError::TooLarge {
                limit: max_bytes,
                decompressed: false,
            });
        }
    }
    let raw = Limited::new(body, max_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                EdgeError::TooLarge {
                    limit: max_bytes,
                    decompressed: false,
                }
            } else {
                EdgeError::Malformed {
                    reason: Reason::BodyReadError,
                    detail: format!("could not read the request body: {e}"),
                }
            }
        })?
        .to_bytes();
    if gzip {
        gunzip_limited(&raw, max_decompressed).map(Bytes::from)
    } else {
        Ok(raw)
    }
}

/// Decompresses gzip, refusing output larger than `limit`. The output buffer never grows
/// beyond `limit` (no doubling past it), so a bomb costs at most `limit` bytes of memory.
pub fn gunzip_limited(data: &[u8], limit: usize) -> Result<Vec<u8>, EdgeError> {
    let invalid = |e: std::io::Error| EdgeError::Malformed {
        reason: Reason::InvalidGzip,
        detail: format!("the body is not valid gzip: {e}"),
    };
    let mut out = Vec::with_capacity((data.len() * 4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = decoder.read(&mut chunk).map_err(invalid)?;
        if n == 0 {
            return Ok(out);
        }
        let len = out.len() + n;
        if len > limit {
            return Err(EdgeError::TooLarge {
                limit,
                decompressed: true,
            });
        }
        if len > out.capacity() {
            let grown = (out.capacity() * 2).clamp(len, limit);
            out.reserve_exact(grown - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Deepest JSON nesting the native and Faro decoders accept (`too_deep` beyond).
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `body` nests arrays/objects deeper than `max` levels (strings are skipped).
///
/// serde_json skips ignored values iteratively and stops typed values at 128 levels, so depth
/// is no stack risk; the limit exists so absurd bodies are refused clearly and early, the same
/// way for every JSON format.
pub(crate) fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        match b {
            // Most of a body is inside strings: jump from one quote or backslash to the next.
            b'"' => loop {
                let rest = body.get(i..).unwrap_or_default();
                let Some(j) = memchr::memchr2(b'"', b'\\', rest) else {
                    return false;
                };
                i += j + 1;
                if body[i - 1] == b'"' {
                    break;
                }
                i += 1; // the escaped byte
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn content_types() {
        let cases = [
            ("text/plain;charset=UTF-8", true, Some(BodyFormat::Json)),
            ("application/json", false, Some(BodyFormat::Json)),
            ("application/x-protobuf", true, Some(BodyFormat::Protobuf)),
            ("application/x-protobuf", false, None),
            ("multipart/form-data", true, None),
            ("application/xml", true, None),
        ];
        for (ct, proto, want) in cases {
            let got = body_format(&headers(&[("content-type", ct)]), proto).ok();
            assert_eq!(got, want, "{ct}");
        }
        assert_eq!(
            body_format(&HeaderMap::new(), false).ok(),
            Some(BodyFormat::Json)
        );
    }

    #[tokio::test]
    async fn reads_within_limit_and_refuses_over() {
        let h = HeaderMap::new();
        let ok = read_body(&h, Body::from("hello"), 5, 100).await.unwrap();
        assert_eq!(&ok[..], b"hello");
        let err = read_body(&h, Body::from("hello!"), 5, 100)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "too_large");
    }

    #[tokio::test]
    async fn gzip_bomb_is_refused_on_decompressed_size() {
        let bomb = gzip(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 10_000);
        let h = headers(&[("content-encoding", "gzip")]);
        let err = read_body(&h, Body::from(bomb.clone()), 100_000, 64 * 1024)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "too_large_decompressed");
        let ok = read_body(&h, Body::from(bomb), 100_000, 2_000_000)
            .await
            .unwrap();
        assert_eq!(ok.len(), 1_000_000);
    }

    #[tokio::test]
    async fn bad_gzip_and_unknown_encoding() {
        let h = headers(&[("content-encoding", "gzip")]);
        let err = read_body(&h, Body::from("not gzip"), 100, 100)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "invalid_gzip");
        let h = headers(&[("content-encoding", "br")]);
        let err = read_body(&h, Body::from("x"), 100, 100).await.unwrap_err();
        assert_eq!(err.reason(), "unsupported_encoding");
    }

    #[test]
    fn nesting_ignores_brackets_in_strings() {
        assert!(!nesting_exceeds(br#"[[["[[[[[[\"[["]]]"#, 3));
        assert!(nesting_exceeds(b"[[[[]]]]", 3));
        assert!(!nesting_exceeds(b"[[[]]]", 3));
        // Escaped quotes and backslashes inside strings, and a body cut inside a string.
        assert!(nesting_exceeds(br#"["a\\", ["\"]", [[]]]]"#, 3));
        assert!(!nesting_exceeds(br#"["a\\", ["\"]", []]]"#, 3));
        assert!(!nesting_exceeds(br#"["\"#, 1) && nesting_exceeds(br#"["\"#, 0));
        assert!(!nesting_exceeds(b"[\"[[[[", 3));
    }
}
