//! Boomerang's compressed Resource Timing (`restiming`, plugins/restiming.js) and its
//! Server-Timing lookup (`servertiming`).
//!
//! `restiming` is a JSON trie: keys concatenated along a path spell a URL, a `|` key marks a URL
//! that is also a prefix of others. A leaf holds one or more entries separated by `|`, each
//! `[initiatorType][startTime],[responseEnd],[responseStart],[requestStart],[connectEnd],
//! [secureConnectionStart],[connectStart],[domainLookupEnd],[domainLookupStart],[redirectEnd],
//! [redirectStart]` in base 36 (every mark but `startTime` as an offset from it, empty = 0),
//! followed by `*`-prefixed extras: `*1` sizes, `*3` Server-Timing entries, `*7` next-hop
//! protocol (`*0` dimensions, `*2` script, `*4` link, `*5` namespaced and `*6` worker data are
//! skipped). `fetchStart` is not sent: it is taken as `startTime`, or `redirectEnd` after a
//! redirect. Work is bounded: at most `max_entries` entries are decoded, the rest are counted.

use crate::model::{ResourceTiming, ResourceTimingPhases, TraceContext};

use super::jsurl;

/// Longest URL spelled by the trie (Boomerang trims URLs to 500 characters by default); a longer
/// path is dropped and counted, so a hostile trie cannot make the prefixes grow without end.
const MAX_URL_LEN: usize = 2048;

/// One entry of the trie, decoded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub resource: ResourceTiming,
    /// Initiator code 6: the page's own navigation entry.
    pub is_navigation: bool,
}

/// What a `restiming` value held.
#[derive(Debug, Default)]
pub struct Decoded {
    pub entries: Vec<Entry>,
    /// Entries left out beyond the cap.
    pub over_cap: usize,
    /// Entries that could not be read.
    pub bad: usize,
}

/// Boomerang's initiator codes (`INITIATOR_TYPES`).
fn initiator(code: char) -> &'static str {
    match code {
        '1' => "img",
        '2' => "link",
        '3' => "script",
        '4' => "css",
        '5' => "xmlhttprequest",
        '6' => "navigation",
        '7' => "image",
        '8' => "beacon",
        '9' => "fetch",
        'a' => "iframe",
        'b' => "body",
        'c' => "input",
        'd' => "object",
        'e' => "video",
        'f' => "audio",
        'g' => "source",
        'h' => "track",
        'i' => "embed",
        'j' => "eventsource",
        'k' => "early-hints",
        'l' => "ping",
        'm' => "font",
        _ => "other",
    }
}

/// The Server-Timing lookup (`servertiming`): `(name, descriptions)` per index.
pub type ServerTimingLookup = Vec<(String, Vec<String>)>;

/// Reads `servertiming`: a JSURL array whose items are a name, or `[name, description…]`.
pub fn server_timing_lookup(value: &str) -> Result<ServerTimingLookup, jsurl::JsUrlError> {
    let parsed = jsurl::parse(value)?;
    let items = parsed.as_array().unwrap_or_default();
    Ok(items
        .iter()
        .map(|item| match item {
            jsurl::Value::Str(name) => (name.clone(), vec![String::new()]),
            jsurl::Value::Arr(parts) => {
                let mut parts = parts
                    .iter()
                    .map(|p| p.as_str().unwrap_or_default().to_owned());
                let name = parts.next().unwrap_or_default();
                (name, parts.collect())
            }
            _ => (String::new(), Vec::new()),
        })
        .collect())
}

/// Decodes the `restiming` trie (JSON), with `lookup` resolving Server-Timing references.
pub fn decode(
    json: &str,
    lookup: &ServerTimingLookup,
    max_entries: usize,
) -> Result<Decoded, serde_json::Error> {
    let trie: serde_json::Value = serde_json::from_str(json)?;
    let mut out = Decoded::default();
    // Depth-first over (prefix, node); serde_json already bounds the nesting (128).
    let mut stack = vec![(String::new(), &trie)];
    while let Some((prefix, node)) = stack.pop() {
        match node {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    if key != "|" && prefix.len() + key.len() > MAX_URL_LEN {
                        out.bad += 1;
                        continue;
                    }
                    let url = if key == "|" {
                        prefix.clone()
                    } else {
                        format!("{prefix}{key}")
                    };
                    stack.push((url, child));
                }
            }
            serde_json::Value::String(data) => {
                for part in data.split('|') {
                    if part.starts_with('*') || part.is_empty() {
                        continue; // dimension data of the next entry
                    }
                    if out.entries.len() >= max_entries {
                        out.over_cap += 1;
                        continue;
                    }
                    match entry(&prefix, part, lookup) {
                        Some(e) => out.entries.push(e),
                        None => out.bad += 1,
                    }
                }
            }
            _ => out.bad += 1,
        }
    }
    Ok(out)
}

fn base36(s: &str) -> Option<f64> {
    if s.is_empty() {
        return Some(0.0);
    }
    u64::from_str_radix(s, 36)
        .ok()
        .filter(|n| *n < 1 << 40)
        .map(|n| n as f64)
}

/// One compressed entry of `url`.
fn entry(url: &str, data: &str, lookup: &ServerTimingLookup) -> Option<Entry> {
    // The trie breaks words like `src` with a newline so that filters do not see them.
    let url = url.replace('\n', "");
    let mut chars = data.chars();
    let code = chars.next()?;
    let mut sections = chars.as_str().split('*');
    let marks: Vec<f64> = sections
        .next()
        .unwrap_or_default()
        .split(',')
        .map(base36)
        .collect::<Option<_>>()?;
    if marks.len() > 11 {
        return None;
    }
    let at = |i: usize| marks.get(i).copied().unwrap_or(0.0);
    let start = at(0);
    // Offsets from startTime; 0 stays 0 ("not reached").
    let mark = |i: usize| if at(i) > 0.0 { start + at(i) } else { 0.0 };
    let redirect_end = mark(9);
    let mut t = ResourceTimingPhases {
        start_time: start,
        response_end: mark(1),
        response_start: mark(2),
        request_start: mark(3),
        connect_end: mark(4),
        secure_connection_start: mark(5),
        connect_start: mark(6),
        domain_lookup_end: mark(7),
        domain_lookup_start: mark(8),
        redirect_end,
        redirect_start: mark(10),
        fetch_start: if redirect_end > 0.0 {
            redirect_end
        } else {
            start
        },
        ..Default::default()
    };
    t.duration = (t.response_end - start).max(0.0);
    for section in sections {
        let Some(kind) = section.chars().next() else {
            continue;
        };
        let rest = &section[kind.len_utf8()..];
        match kind {
            '1' => sizes(rest, &mut t),
            '3' => t.server_trace = server_trace(rest, lookup),
            '7' => {
                t.next_hop_protocol = Some(match rest.strip_prefix('h') {
                    Some(v) if v.starts_with('1') || v.starts_with('0') => format!("http/{v}"),
                    _ => rest.to_owned(),
                })
            }
            _ => {}
        }
    }
    Some(Entry {
        is_navigation: code == '6',
        resource: ResourceTiming {
            url,
            initiator_type: Some(initiator(code).to_owned()),
            render_blocking_status: None,
            timing: t,
        },
    })
}

/// `*1`: `[encodedBodySize],[transferSize − encoded or _],[decodedBodySize − encoded]`.
fn sizes(rest: &str, t: &mut ResourceTimingPhases) {
    let mut parts = rest.split(',');
    let size = |s: Option<&str>| s.and_then(base36).map(|n| n as u64);
    let Some(encoded) = size(parts.next()) else {
        return;
    };
    t.encoded_body_size = Some(encoded);
    t.transfer_size = match parts.next() {
        Some("_") => Some(0),
        other => size(other).map(|extra| encoded + extra),
    };
    t.decoded_body_size = Some(encoded + size(parts.next()).unwrap_or(0));
}

/// `*3`: `duration[:index[.description]]` entries; the first `traceparent` one is the trace.
fn server_trace(rest: &str, lookup: &ServerTimingLookup) -> Option<TraceContext> {
    rest.split(',').find_map(|item| {
        let reference = item.split_once(':').map_or("", |(_, r)| r);
        let (index, desc) = reference.split_once('.').unwrap_or((reference, ""));
        let index: usize = if index.is_empty() {
            0
        } else {
            index.parse().ok()?
        };
        let desc: usize = if desc.is_empty() {
            0
        } else {
            desc.parse().ok()?
        };
        let (name, descriptions) = lookup.get(index)?;
        if !name.eq_ignore_ascii_case("traceparent") {
            return None;
        }
        TraceContext::parse_traceparent(descriptions.get(desc)?).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = r#"{"http://127.0.0.1:18787/p/boomerang/":{"|":"6,34,33,g,6,,6,6,6*14sh,8c*30*7h1.1","a":{"gent.js":"34e,17,13,t*1f1ib,8c*20*7h1.1","pp.js":"34s,1c,18,f,f,,f,f,f*1ud,8c*24*7h1.1"},"hero.png":"*0go,xc,38,8|14s,5h,5f,f,f,,e,e,e*145az,8c*7h1.1"}}"#;
    const LOOKUP: &str =
        "~(~(~'traceparent~'00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01))";

    #[test]
    fn decodes_the_captured_trie() {
        let lookup = server_timing_lookup(LOOKUP).unwrap();
        let d = decode(CAPTURED, &lookup, 100).unwrap();
        assert_eq!((d.entries.len(), d.bad, d.over_cap), (4, 0, 0));
        let mut urls: Vec<&str> = d.entries.iter().map(|e| e.resource.url.as_str()).collect();
        urls.sort_unstable();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:18787/p/boomerang/",
                "http://127.0.0.1:18787/p/boomerang/agent.js",
                "http://127.0.0.1:18787/p/boomerang/app.js",
                "http://127.0.0.1:18787/p/boomerang/hero.png",
            ]
        );
        let nav = d.entries.iter().find(|e| e.is_navigation).unwrap();
        assert_eq!(nav.resource.url, urls[0]);
        let t = &nav.resource.timing;
        assert_eq!(
            (t.start_time, t.response_end, t.response_start),
            (0.0, 112.0, 111.0)
        );
        assert_eq!(t.request_start, 16.0);
        assert_eq!(t.secure_connection_start, 0.0);
        assert_eq!(t.encoded_body_size, Some(6209));
        assert_eq!(t.transfer_size, Some(6509));
        assert_eq!(t.next_hop_protocol.as_deref(), Some("http/1.1"));
        let server = t.server_trace.unwrap();
        assert_eq!(
            crate::model::trace_context::hex(&server.span_id),
            "a1b2c3d4e5f60718"
        );
        let hero = &d
            .entries
            .iter()
            .find(|e| e.resource.url.ends_with(".png"))
            .unwrap()
            .resource;
        assert_eq!(hero.initiator_type.as_deref(), Some("img"));
        // `1` img, `4s` = 172 ms start, `5h` = 197 ms later.
        assert_eq!(
            (hero.timing.start_time, hero.timing.response_end),
            (172.0, 369.0)
        );
        assert_eq!(hero.timing.fetch_start, 172.0);
        assert!(hero.timing.server_trace.is_none());
    }

    #[test]
    fn caps_entries_and_counts_bad_ones() {
        let d = decode(
            r#"{"http://a/":{"x":"3a,1|3b,2|3c,3*é*1é*3é*7é","y":"3!!","z":7}}"#,
            &Vec::new(),
            2,
        )
        .unwrap();
        assert_eq!((d.entries.len(), d.over_cap, d.bad), (2, 1, 2));
        assert!(decode("not json", &Vec::new(), 2).is_err());
        let long = format!(
            r#"{{"{}":{{"{}":"3a"}}}}"#,
            "a".repeat(1500),
            "b".repeat(1500)
        );
        let d = decode(&long, &Vec::new(), 2).unwrap();
        assert_eq!((d.entries.len(), d.bad), (0, 1));
    }
}
