//! Per-session sampling (`[sampling]`, an app's `sample_rate`).
//!
//! A session's place in `[0, 1)` is the xxh3 hash of its id; the session is kept when that is
//! below the rate. Every beacon of the session, on every replica, gets the same answer, so kept
//! sessions are whole and a higher rate keeps a superset of the sessions a lower one keeps.
//! Of a session that is not kept, errors and poor web vitals can still be exported
//! (`keep_errors`, `keep_poor_vitals`): they are the data nobody wants sampled away.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use xxhash_rust::xxh3::xxh3_64;

use crate::config::SamplingConfig;
use crate::model::{Rating, RumEvent};

/// Compiled sampling rules.
#[derive(Debug, Clone)]
pub struct Sampling {
    default_rate: f64,
    keep_errors: bool,
    keep_poor_vitals: bool,
}

/// Where a session falls in `[0, 1)`: the top 53 bits of its xxh3 hash.
pub fn session_position(session_id: &str) -> f64 {
    (xxh3_64(session_id.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64
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
            Some(id) => session_position(id) < rate,
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
        let n = 20_000;
        let kept = (0..n)
            .filter(|i| Sampling::keeps_session(Some(&format!("session-{i}")), 0.25))
            .count();
        let share = kept as f64 / n as f64;
        assert!((0.23..0.27).contains(&share), "{share}");
        assert_eq!(session_position("abc"), session_position("abc"));
        assert!((0.0..1.0).contains(&session_position("")));
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
