//! Per-session sampling (`[sampling]`, an app's `sample_rate`).
//!
//! A session's place is the FNV-1a 32 hash of its id's UTF-16 code units ([`session_position`]);
//! the session is kept when that is below `rate * 2^32`. The browser loader computes exactly
//! this (`inSample` in loader/rum.js, docs/sampling.md), so the `traceparent` flag it sends
//! with a call and the bridge's choice to export the call's span agree; both are checked
//! against tests/fixtures/sampling_vectors.json. Every beacon of the session, on every
//! replica, gets the same answer, so kept sessions are whole and a higher rate keeps a
//! superset of the sessions a lower one keeps.
//! Of a session that is not kept, errors and poor web vitals can still be exported
//! (`keep_errors`, `keep_poor_vitals`): they are the data nobody wants sampled away.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::config::SamplingConfig;
use crate::model::{Rating, RumEvent};

/// Compiled sampling rules.
#[derive(Debug, Clone)]
pub struct Sampling {
    default_rate: f64,
    keep_errors: bool,
    keep_poor_vitals: bool,
}

/// Where a session falls in `[0, 2^32)`: FNV-1a 32 over the UTF-16 code units of its id (for
/// ASCII ids, as the loader's hex ids are, that is FNV-1a 32 of the bytes). JavaScript computes
/// the same with `Math.imul` over `charCodeAt` (loader/rum.js).
pub fn session_position(session_id: &str) -> u32 {
    session_id.encode_utf16().fold(0x811c_9dc5, |h: u32, unit| {
        (h ^ u32::from(unit)).wrapping_mul(0x0100_0193)
    })
}

/// The decision itself: kept when the position is below `rate * 2^32` (compared as f64, as
/// JavaScript compares). `rate` 1 keeps every session, 0 (or NaN) none.
pub fn in_sample(session_id: &str, rate: f64) -> bool {
    f64::from(session_position(session_id)) < rate * 4_294_967_296.0
}

impl Sampling {
    pub fn new(config: &SamplingConfig) -> Self {
        Self {
            default_rate: config.default_rate,
            keep_errors: config.keep_errors,
            keep_poor_vitals: config.keep_poor_vitals,
        }
    }

    /// The rate that applies: the app's own, else `default_rate`.
    pub fn rate(&self, app_rate: Option<f64>) -> f64 {
        app_rate.unwrap_or(self.default_rate)
    }

    /// Whether a session is kept at `rate`. Data without a session id cannot be sampled
    /// consistently and is kept.
    pub fn keeps_session(session_id: Option<&str>, rate: f64) -> bool {
        match session_id {
            _ if rate >= 1.0 => true,
            Some(id) => in_sample(id, rate),
            None => true,
        }
    }

    /// Whether an event of a session that was not kept is exported anyway.
    pub fn keeps_event_anyway(&self, event: &RumEvent) -> bool {
        match event {
            RumEvent::Error(_) => self.keep_errors,
            RumEvent::Vital(vital) => self.keep_poor_vitals && vital.rating == Rating::Poor,
            _ => false,
        }
    }

    /// Whether an OTLP span of a session that was not kept is exported anyway: an error
    /// status or an `exception` event.
    pub fn keeps_span_anyway(&self, span: &Span) -> bool {
        self.keep_errors
            && (span
                .status
                .as_ref()
                .is_some_and(|s| s.code == StatusCode::Error as i32)
                || span.events.iter().any(|e| e.name == "exception"))
    }

    /// Whether an OTLP log record of a session that was not kept is exported anyway: ERROR
    /// or worse, an `exception` event, or a `poor` web vital.
    pub fn keeps_log_anyway(&self, record: &LogRecord) -> bool {
        let error = record.severity_number >= 17 || record.event_name == "exception";
        let poor_vital = record.event_name == "browser.web_vital"
            && string_attribute(&record.attributes, "browser.web_vital.rating") == Some("poor");
        (self.keep_errors && error) || (self.keep_poor_vitals && poor_vital)
    }
}

/// The string value of `key` in `attributes`.
pub(crate) fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find_map(|kv| match &kv.value {
        Some(v) if kv.key == key => match &v.value {
            Some(Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ErrorEvent, LogEvent, VitalName, WebVital};
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::Status;

    #[test]
    fn positions_are_uniform_and_stable() {
        // Ids as the loader makes them: 16 random bytes as hex (a fixed LCG stands in).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut hex_id = || {
            (0..4)
                .map(|_| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    format!("{:08x}", (x >> 32) as u32)
                })
                .collect::<String>()
        };
        let n = 20_000;
        for rate in [0.01, 0.25, 0.5] {
            let kept = (0..n)
                .filter(|_| Sampling::keeps_session(Some(&hex_id()), rate))
                .count();
            let share = kept as f64 / n as f64;
            assert!((share - rate).abs() < 0.02, "{share} at {rate}");
        }
        // Other ids (Faro's, OTLP's) hash well enough too.
        let kept = (0..n)
            .filter(|i| Sampling::keeps_session(Some(&format!("session-{i}")), 0.25))
            .count();
        let share = kept as f64 / n as f64;
        assert!((0.22..0.28).contains(&share), "{share}");
        assert_eq!(session_position("abc"), session_position("abc"));
        assert_eq!(session_position(""), 0x811c_9dc5);
    }

    /// The shared table the loader's test checks too: the decision is the same in both.
    #[test]
    fn matches_the_loader_on_the_shared_vectors() {
        let text = include_str!("../../tests/fixtures/sampling_vectors.json");
        let table: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors = table["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 200);
        for v in vectors {
            let id = v[0].as_str().unwrap();
            let h = v[1].as_u64().unwrap();
            assert_eq!(u64::from(session_position(id)), h, "{id}");
            assert!(in_sample(id, (h + 1) as f64 / 4_294_967_296.0), "{id}");
            assert!(!in_sample(id, h as f64 / 4_294_967_296.0), "{id}");
        }
    }

    /// The loader itself (loader/rum.js, run with node) against this module on 1000 ids,
    /// hex and otherwise. Skipped with a message where node is not installed.
    #[test]
    fn matches_the_loader_run_with_node() {
        let ids: Vec<String> = (0..1000)
            .map(|i| match i % 4 {
                0 => format!(
                    "{:032x}",
                    (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
                ),
                1 => format!("session-{i}"),
                2 => format!("Färo{i}🙂"),
                _ => format!("{i:x}"),
            })
            .collect();
        let script = format!(
            "const src = require('fs').readFileSync({:?}, 'utf8');\n\
             let rb; globalThis.RB_TEST = (x) => (rb = x); eval(src);\n\
             const ids = {};\n\
             console.log(JSON.stringify(ids.map((id) => [0.1, 0.5, 0.9].map((r) => rb.inSample(id, r)))));",
            concat!(env!("CARGO_MANIFEST_DIR"), "/loader/rum.js"),
            serde_json::to_string(&ids).unwrap(),
        );
        let out = match std::process::Command::new("node")
            .arg("-e")
            .arg(&script)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("node not available ({e}); the shared vectors still check the decision");
                return;
            }
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let decisions: Vec<Vec<bool>> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(decisions.len(), ids.len());
        for (id, js) in ids.iter().zip(decisions) {
            let rust: Vec<bool> = [0.1, 0.5, 0.9].iter().map(|&r| in_sample(id, r)).collect();
            assert_eq!(rust, js, "{id}");
        }
    }

    #[test]
    fn a_higher_rate_keeps_a_superset() {
        for i in 0..2_000 {
            let id = format!("s{i}");
            if Sampling::keeps_session(Some(&id), 0.1) {
                assert!(Sampling::keeps_session(Some(&id), 0.5), "{id}");
            }
        }
    }

    #[test]
    fn edge_rates_and_missing_ids() {
        assert!(Sampling::keeps_session(Some("x"), 1.0));
        assert!(!Sampling::keeps_session(Some("x"), 0.0));
        assert!(Sampling::keeps_session(None, 0.0));
        let s = Sampling::new(&SamplingConfig {
            default_rate: 0.3,
            ..Default::default()
        });
        assert_eq!(s.rate(None), 0.3);
        assert_eq!(s.rate(Some(0.9)), 0.9);
    }

    fn vital(rating: Rating) -> RumEvent {
        RumEvent::Vital(WebVital {
            dropped_attributes: 0,
            name: VitalName::Lcp,
            value: 5000.0,
            delta: 5000.0,
            id: "v".into(),
            rating,
            navigation_type: None,
            time: None,
            target: None,
            attribution: vec![],
        })
    }

    #[test]
    fn errors_and_poor_vitals_can_be_kept_anyway() {
        let on = Sampling::new(&SamplingConfig::default());
        let off = Sampling::new(&SamplingConfig {
            keep_errors: false,
            keep_poor_vitals: false,
            ..Default::default()
        });
        let error = RumEvent::Error(ErrorEvent::default());
        assert!(on.keeps_event_anyway(&error));
        assert!(on.keeps_event_anyway(&vital(Rating::Poor)));
        assert!(!on.keeps_event_anyway(&vital(Rating::NeedsImprovement)));
        assert!(!on.keeps_event_anyway(&RumEvent::Log(LogEvent::default())));
        assert!(!off.keeps_event_anyway(&error));
        assert!(!off.keeps_event_anyway(&vital(Rating::Poor)));

        let failed = Span {
            status: Some(Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let threw = Span {
            events: vec![Event {
                name: "exception".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(on.keeps_span_anyway(&failed) && on.keeps_span_anyway(&threw));
        assert!(!on.keeps_span_anyway(&Span::default()));
        assert!(!off.keeps_span_anyway(&failed));

        let error_log = LogRecord {
            severity_number: 17,
            ..Default::default()
        };
        let poor = LogRecord {
            event_name: "browser.web_vital".into(),
            attributes: vec![KeyValue {
                key: "browser.web_vital.rating".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue("poor".into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(on.keeps_log_anyway(&error_log) && on.keeps_log_anyway(&poor));
        assert!(!on.keeps_log_anyway(&LogRecord::default()));
        assert!(!off.keeps_log_anyway(&error_log) && !off.keeps_log_anyway(&poor));
    }
}
