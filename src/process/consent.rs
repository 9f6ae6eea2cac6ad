//! Consent and sampling: what of a request may leave as spans or logs
//! (docs/architecture.md#consent, docs/architecture.md#sampling). What is held back still feeds
//! the aggregate metrics and is counted in `items_dropped{reason}`.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::sampling::{string_attribute, Sampling};
use super::{Processor, RequestInfo};
use crate::model::semconv::SESSION_ID as ATTR_SESSION_ID;
use crate::model::{AttrValue, PageContext, RumBatch, RumEvent};

/// Set (`false`) on the errors and poor vitals exported of a session outside the sample.
pub const ATTR_SESSION_SAMPLED: &str = "rum.session.sampled";

/// Reasons data is held back from span/log export (`items_dropped{reason}`).
pub mod dropped {
    /// The session is outside the sample.
    pub const SAMPLED_OUT: &str = "sampled_out";
    /// The page reported its consent without the analytics category.
    pub const NO_CONSENT: &str = "no_consent";
    /// `Sec-GPC: 1` with `privacy.honor_gpc`.
    pub const GPC: &str = "gpc";
}

/// Events of a batch held back from span/log export: they may still feed aggregate metrics.
#[derive(Debug)]
pub struct Withheld {
    /// One of the [`dropped`] reasons.
    pub reason: &'static str,
    pub events: Vec<RumEvent>,
}

/// What of a batch may leave as spans or logs ([`Processor::export_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportPolicy {
    Everything,
    /// Nothing, for one of the [`dropped`] reasons.
    Nothing(&'static str),
    /// The session is outside the sample: only errors and poor vitals, when configured.
    KeptAnyway,
}

/// OTLP items removed from a passthrough request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// One of the [`dropped`] reasons.
    pub reason: &'static str,
    pub count: usize,
}

impl Processor {
    /// Why nothing of this request may leave as spans or logs, if so: consent reported
    /// without the configured category, or an honoured `Sec-GPC: 1`.
    fn restriction(
        &self,
        consent: Option<&[String]>,
        request: &RequestInfo,
    ) -> Option<&'static str> {
        if consent.is_some_and(|granted| !granted.contains(&self.consent_category)) {
            Some(dropped::NO_CONSENT)
        } else if self.honor_gpc && request.gpc {
            Some(dropped::GPC)
        } else {
            None
        }
    }

    /// What of a batch may leave as spans or logs: nothing under a consent restriction, else
    /// everything of a session in the sample, else only what is kept anyway (errors and poor
    /// vitals, when configured). A client that reports its own decision (the loader's `smp`)
    /// is taken at its word: the `traceparent` flags of its calls already told the backend, and
    /// a sampled call whose CLIENT span the bridge dropped would leave backend spans without
    /// their parent (docs/sampling.md). Others get the same decision computed here.
    pub fn export_policy(&self, ctx: &PageContext, request: &RequestInfo) -> ExportPolicy {
        if let Some(reason) = self.restriction(ctx.consent.as_deref(), request) {
            return ExportPolicy::Nothing(reason);
        }
        let rate = self.sampling.rate(request.sample_rate);
        let kept = ctx
            .sampled
            .unwrap_or_else(|| Sampling::keeps_session(ctx.session_id.as_deref(), rate));
        if kept {
            ExportPolicy::Everything
        } else {
            ExportPolicy::KeptAnyway
        }
    }

    /// Whether `policy` lets an item leave; `event` is the model event it was made into, if any.
    pub fn exports(&self, policy: ExportPolicy, event: Option<&RumEvent>) -> bool {
        match policy {
            ExportPolicy::Everything => true,
            ExportPolicy::Nothing(_) => false,
            ExportPolicy::KeptAnyway => event.is_some_and(|e| self.sampling.keeps_event_anyway(e)),
        }
    }

    /// Takes out of `batch.events` what must not leave as spans or logs
    /// ([`export_policy`](Self::export_policy)). The caller still feeds them to the aggregate
    /// metrics and counts them.
    pub fn withhold(&self, batch: &mut RumBatch, request: &RequestInfo) -> Option<Withheld> {
        if batch.events.is_empty() {
            return None;
        }
        let reason = match self.export_policy(&batch.context, request) {
            ExportPolicy::Everything => return None,
            ExportPolicy::Nothing(reason) => {
                return Some(Withheld {
                    reason,
                    events: std::mem::take(&mut batch.events),
                })
            }
            ExportPolicy::KeptAnyway => dropped::SAMPLED_OUT,
        };
        let (kept, withheld): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.events)
            .into_iter()
            .partition(|e| self.exports(ExportPolicy::KeptAnyway, Some(e)));
        if !kept.is_empty() {
            // What leaves of an unsampled session says so.
            let attrs = &mut batch.context.attributes;
            attrs.retain(|(k, _)| k != ATTR_SESSION_SAMPLED);
            attrs.push((ATTR_SESSION_SAMPLED.to_owned(), AttrValue::Bool(false)));
        }
        batch.events = kept;
        (!withheld.is_empty()).then_some(Withheld {
            reason,
            events: withheld,
        })
    }

    /// Removes held-back OTLP items: all of them under a GPC restriction, else the items
    /// whose session (`session.id` on the item, else on the resource) is outside the sample
    /// and that are not kept anyway. Resources left empty are removed.
    pub(super) fn withhold_otlp<R>(
        &self,
        resources: &mut Vec<R>,
        request: &RequestInfo,
        count: impl Fn(&R) -> usize,
        retain: impl Fn(&mut R, &dyn Fn(&[KeyValue], bool) -> bool),
        resource: impl Fn(&R) -> Option<&Resource>,
    ) -> Option<Dropped> {
        let before: usize = resources.iter().map(&count).sum();
        if before == 0 {
            return None;
        }
        if let Some(reason) = self.restriction(None, request) {
            resources.clear();
            return Some(Dropped {
                reason,
                count: before,
            });
        }
        let rate = self.sampling.rate(request.sample_rate);
        if rate >= 1.0 {
            return None;
        }
        for r in resources.iter_mut() {
            let resource_session = resource(r)
                .and_then(|res| string_attribute(&res.attributes, ATTR_SESSION_ID))
                .map(str::to_owned);
            retain(r, &|attributes, keep_anyway| {
                let session =
                    string_attribute(attributes, ATTR_SESSION_ID).or(resource_session.as_deref());
                keep_anyway || Sampling::keeps_session(session, rate)
            });
        }
        resources.retain(|r| count(r) > 0);
        let after: usize = resources.iter().map(&count).sum();
        (after < before).then_some(Dropped {
            reason: dropped::SAMPLED_OUT,
            count: before - after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::process::tests::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    /// Session ids inside and outside a 50 % sample.
    fn sessions() -> (String, String) {
        let find = |kept: bool| {
            (0..)
                .map(|i| format!("session-{i}"))
                .find(|id| Sampling::keeps_session(Some(id), 0.5) == kept)
                .unwrap()
        };
        (find(true), find(false))
    }

    fn kinds(events: &[RumEvent]) -> Vec<&'static str> {
        events.iter().map(RumEvent::kind).collect()
    }

    #[test]
    fn consent_without_analytics_withholds_everything() {
        let p = processor();
        let all = kinds(&batch().events);
        let mut b = batch();
        b.context.consent = Some(vec!["functional".into()]);
        let w = p.withhold(&mut b, &RequestInfo::default()).unwrap();
        assert_eq!(w.reason, dropped::NO_CONSENT);
        assert_eq!(kinds(&w.events), all);
        assert!(b.events.is_empty());

        for consent in [None, Some(vec!["functional".into(), "analytics".into()])] {
            let mut b = batch();
            b.context.consent = consent;
            assert!(p.withhold(&mut b, &RequestInfo::default()).is_none());
            assert_eq!(kinds(&b.events), all);
        }
    }

    #[test]
    fn gpc_is_honoured_only_when_configured() {
        let gpc = RequestInfo {
            gpc: true,
            ..Default::default()
        };
        let mut b = batch();
        assert!(processor().withhold(&mut b, &gpc).is_none());
        let mut config = Config::default();
        config.privacy.honor_gpc = true;
        let (p, _) = processor_with(&config);
        let w = p.withhold(&mut b, &gpc).unwrap();
        assert_eq!((w.reason, w.events.len()), (dropped::GPC, 7));
        let mut spans = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(), Span::default()],
                ..Default::default()
            }],
            ..Default::default()
        }];
        assert_eq!(
            p.process_otlp_spans(&mut spans, &gpc),
            Some(Dropped {
                reason: dropped::GPC,
                count: 2
            })
        );
        assert!(spans.is_empty());
    }

    #[test]
    fn sessions_outside_the_sample_keep_only_errors_and_poor_vitals() {
        let (inside, outside) = sessions();
        let half = RequestInfo {
            sample_rate: Some(0.5),
            ..Default::default()
        };
        let p = processor();
        let mut b = batch();
        b.context.session_id = Some(inside);
        assert!(p.withhold(&mut b, &half).is_none());
        assert_eq!(b.events.len(), 7);

        let mut b = batch();
        b.context.session_id = Some(outside.clone());
        let w = p.withhold(&mut b, &half).unwrap();
        assert_eq!(w.reason, dropped::SAMPLED_OUT);
        assert_eq!(kinds(&b.events), ["error"]);
        assert_eq!(w.events.len(), 6);
        assert!(b
            .context
            .attributes
            .contains(&(ATTR_SESSION_SAMPLED.to_owned(), AttrValue::Bool(false))));
        // The app's rate wins over the default; without one the default (1.0) keeps all.
        let mut b = batch();
        b.context.session_id = Some(outside.clone());
        assert!(p.withhold(&mut b, &RequestInfo::default()).is_none());

        let mut config = Config::default();
        config.sampling.default_rate = 0.5;
        config.sampling.keep_errors = false;
        let (p, _) = processor_with(&config);
        let mut b = batch();
        b.context.session_id = Some(outside);
        let w = p.withhold(&mut b, &RequestInfo::default()).unwrap();
        assert_eq!((b.events.len(), w.events.len()), (0, 7));
    }

    #[test]
    fn the_clients_own_decision_wins() {
        let (inside, outside) = sessions();
        let half = RequestInfo {
            sample_rate: Some(0.5),
            ..Default::default()
        };
        let p = processor();
        // The loader said "sampled" (its calls carried -01): everything stays, whatever the
        // bridge's own computation says.
        let mut b = batch();
        b.context.session_id = Some(outside);
        b.context.sampled = Some(true);
        assert!(p.withhold(&mut b, &half).is_none());
        assert_eq!(b.events.len(), 7);
        // The loader said "not sampled": only what is kept anyway, marked.
        let mut b = batch();
        b.context.session_id = Some(inside);
        b.context.sampled = Some(false);
        let w = p.withhold(&mut b, &RequestInfo::default()).unwrap();
        assert_eq!(w.reason, dropped::SAMPLED_OUT);
        assert_eq!(kinds(&b.events), ["error"]);
        assert!(b
            .context
            .attributes
            .contains(&(ATTR_SESSION_SAMPLED.to_owned(), AttrValue::Bool(false))));
    }

    fn span(session: Option<&str>, error: bool) -> Span {
        Span {
            attributes: session
                .map(|s| vec![kv(ATTR_SESSION_ID, sv(s))])
                .unwrap_or_default(),
            events: if error {
                vec![Event {
                    name: "exception".into(),
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            ..Default::default()
        }
    }

    #[test]
    fn otlp_data_is_sampled_by_session() {
        let (inside, outside) = sessions();
        let half = RequestInfo {
            sample_rate: Some(0.5),
            ..Default::default()
        };
        let p = processor();
        let mut spans = vec![
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(Some(&inside), false),
                        span(Some(&outside), false),
                        span(Some(&outside), true),
                        span(None, false),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(ATTR_SESSION_ID, sv(&outside))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(None, false)],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ];
        assert_eq!(
            p.process_otlp_spans(&mut spans, &half),
            Some(Dropped {
                reason: dropped::SAMPLED_OUT,
                count: 2
            })
        );
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].scope_spans[0].spans.len(), 3);
        assert!(p
            .process_otlp_spans(&mut spans, &RequestInfo::default())
            .is_none());

        let record = |session: &str, severity: i32| LogRecord {
            severity_number: severity,
            attributes: vec![kv(ATTR_SESSION_ID, sv(session))],
            ..Default::default()
        };
        let mut logs = vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record(&outside, 9),
                    record(&outside, 17),
                    record(&inside, 9),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }];
        assert_eq!(
            p.process_otlp_logs(&mut logs, &half),
            Some(Dropped {
                reason: dropped::SAMPLED_OUT,
                count: 1
            })
        );
        assert_eq!(logs[0].scope_logs[0].log_records.len(), 2);
    }
}
