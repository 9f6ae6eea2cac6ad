//! The plausible ranges of the numbers clients report, decided once.
//!
//! Browsers (and anyone pretending to be one) send durations and scores that end up in shared,
//! cumulative histograms. One absurd value there is not one bad point: `1.7e308` sent twice makes a
//! histogram sum `+Inf` for every later flush, until restart. So every web vital, duration and
//! timing mark is checked against these bounds before it is converted or aggregated
//! ([`implausible`], applied by the pipeline to every RUM format); an event outside them is
//! dropped whole and counted as `items_rejected{reason="implausible_value"}`. The aggregator
//! checks the same bounds again ([`VitalName::max_value`], [`MAX_DURATION_MS`]) as a last line.
//!
//! Why these numbers:
//!
//! - **Durations: 0 to one hour** ([`MAX_DURATION_MS`]). LCP, FCP, TTFB and INP, navigation and
//!   resource timings, interaction and HTTP call durations are measured within one page view. A
//!   real page does not take an hour to paint, load or answer a click; a tab left open for hours
//!   still reports these measured from the moment they started. A negative duration is a clock
//!   bug or a forgery. Long-lived connections (an event stream over `fetch`) are the one real
//!   case beyond an hour, and they say nothing about latency.
//! - **CLS: 0 to 100** ([`MAX_CLS`]). CLS is a sum of layout-shift scores, each at most 1 (the
//!   whole viewport moving by its whole height), over the worst 5-second session window; real
//!   pages stay well under 10, and even pathological ones under 100.
//! - **Non-finite numbers** (`NaN`, `±Infinity`) are never plausible. JSON cannot spell them, but
//!   numeric strings (`"NaN"`) and protobuf can.
//!
//! These are constants, not settings: they bound what can physically be measured in a browser,
//! not a policy an operator tunes.

use super::{
    Interaction, NavigationTiming, Reason, Rejected, ResourceTimingPhases, RumBatch, RumEvent,
    VitalName, WebVital,
};

/// Longest plausible duration or time span within one entry, in ms: one hour.
pub const MAX_DURATION_MS: f64 = 3_600_000.0;
/// Largest plausible cumulative layout shift score.
pub const MAX_CLS: f64 = 100.0;

impl VitalName {
    /// Largest plausible value: [`MAX_CLS`] for CLS (a score), [`MAX_DURATION_MS`] for the rest.
    pub fn max_value(self) -> f64 {
        match self {
            VitalName::Cls => MAX_CLS,
            _ => MAX_DURATION_MS,
        }
    }

    /// Whether `value` is a plausible measurement of this vital (finite, `0..=max_value`).
    pub fn is_plausible(self, value: f64) -> bool {
        within(value, self.max_value())
    }
}

/// A finite number in `0..=max`.
pub fn within(value: f64, max: f64) -> bool {
    value.is_finite() && (0.0..=max).contains(&value)
}

impl RumBatch {
    /// Moves every event holding an implausible number ([`implausible`]) to `rejected`, as
    /// `implausible_value`. Returns `None` when every event stays, else the new index of each
    /// event by its old one (`None`: rejected), for whatever refers to events by index.
    pub fn reject_implausible(&mut self) -> Option<Vec<Option<usize>>> {
        if !self.events.iter().any(|e| implausible(e).is_some()) {
            return None;
        }
        let mut new_index = Vec::with_capacity(self.events.len());
        let mut kept = Vec::with_capacity(self.events.len());
        for event in std::mem::take(&mut self.events) {
            match implausible(&event) {
                None => {
                    new_index.push(Some(kept.len()));
                    kept.push(event);
                }
                Some(problem) => {
                    new_index.push(None);
                    self.rejected.push(Rejected {
                        reason: Reason::ImplausibleValue,
                        detail: format!("{} event: {problem}", event.kind()),
                    });
                }
            }
        }
        self.events = kept;
        Some(new_index)
    }
}

/// Why `event` holds a number outside its plausible range, or `None` when every number is
/// plausible. The message names the field and its value, for the client's `202` answer.
pub fn implausible(event: &RumEvent) -> Option<String> {
    match event {
        RumEvent::Vital(vital) => vital_problem(vital),
        RumEvent::PageLoad(load) => navigation_problem(&load.navigation).or_else(|| {
            load.resources
                .iter()
                .enumerate()
                .find_map(|(i, r)| phases_problem(&r.timing).map(|p| format!("res[{i}]: {p}")))
        }),
        RumEvent::Interaction(interaction) => interaction_problem(interaction),
        RumEvent::HttpCall(call) => duration("dur", call.duration).or_else(|| {
            call.timing
                .as_ref()
                .and_then(phases_problem)
                .map(|p| format!("timing: {p}"))
        }),
        RumEvent::Error(_) | RumEvent::Log(_) | RumEvent::Custom(_) => None,
    }
}

fn vital_problem(vital: &WebVital) -> Option<String> {
    let (name, max) = (vital.name.as_str(), vital.name.max_value());
    if !vital.name.is_plausible(vital.value) {
        return Some(format!(
            "{name} `value` {} is outside the plausible range 0..={max}",
            Num(vital.value)
        ));
    }
    // A delta is a change of the value, so it may be negative (INP can shrink), never larger.
    if !(vital.delta.is_finite() && vital.delta.abs() <= max) {
        return Some(format!(
            "{name} `delta` {} is outside the plausible range -{max}..={max}",
            Num(vital.delta)
        ));
    }
    None
}

fn interaction_problem(i: &Interaction) -> Option<String> {
    duration("dur", i.duration)
        .or_else(|| i.input_delay.and_then(|d| duration("inputDelay", d)))
        .or_else(|| {
            i.processing_duration
                .and_then(|d| duration("processingDuration", d))
        })
        .or_else(|| {
            i.presentation_delay
                .and_then(|d| duration("presentationDelay", d))
        })
}

fn duration(field: &str, value: f64) -> Option<String> {
    (!within(value, MAX_DURATION_MS)).then(|| {
        let value = Num(value);
        format!("`{field}` {value} ms is outside the plausible range 0..={MAX_DURATION_MS} ms")
    })
}

/// The shared timing marks: none negative, none later than an hour after the entry started
/// (marks are on the page's time axis, so they are compared with the entry's own start), and a
/// duration within an hour. A mark of 0 is "not reached".
fn phases_problem(t: &ResourceTimingPhases) -> Option<String> {
    let marks = [
        ("startTime", t.start_time),
        ("redirectStart", t.redirect_start),
        ("redirectEnd", t.redirect_end),
        ("workerStart", t.worker_start),
    ]
    .into_iter()
    .chain(t.network_phases());
    duration("duration", t.duration).or_else(|| marks_problem(t.start_time, marks))
}

fn navigation_problem(n: &NavigationTiming) -> Option<String> {
    let start = n.timing.start_time;
    let marks = n.milestones();
    phases_problem(&n.timing)
        .or_else(|| marks_problem(start, marks))
        .map(|p| format!("nav: {p}"))
}

fn marks_problem<'a>(
    start: f64,
    marks: impl IntoIterator<Item = (&'a str, f64)>,
) -> Option<String> {
    let latest = start.max(0.0) + MAX_DURATION_MS;
    marks.into_iter().find_map(|(field, mark)| {
        (!(mark.is_finite() && mark >= 0.0 && mark <= latest)).then(|| {
            format!(
                "`{field}` {} ms is outside the plausible range 0..={} ms \
                 (one hour after the entry's start)",
                Num(mark),
                Num(latest)
            )
        })
    })
}

/// A number as a person reads it: `1.7e308`, not 309 digits.
struct Num(f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_finite() && v != 0.0 && !(1e-3..1e15).contains(&v.abs()) {
            write!(f, "{v:e}")
        } else {
            write!(f, "{v}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HttpCall, PageLoad, Rating, ResourceTiming};

    fn vital(name: VitalName, value: f64) -> RumEvent {
        RumEvent::Vital(WebVital {
            dropped_attributes: 0,
            name,
            value,
            delta: value,
            id: String::new(),
            rating: Rating::Good,
            navigation_type: None,
            time: None,
            target: None,
            attribution: Vec::new(),
        })
    }

    #[test]
    fn a_batch_keeps_its_plausible_events_and_says_where_they_moved() {
        let mut batch = RumBatch {
            events: vec![
                vital(VitalName::Ttfb, 1.7e308),
                vital(VitalName::Lcp, 1200.0),
                vital(VitalName::Cls, 1e9),
                vital(VitalName::Fcp, 800.0),
            ],
            ..RumBatch::default()
        };
        let moved = batch.reject_implausible().expect("some rejected");
        assert_eq!(moved, vec![None, Some(0), None, Some(1)]);
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.rejected.len(), 2);
        assert!(batch
            .rejected
            .iter()
            .all(|r| r.reason == "implausible_value"));
        assert!(batch.rejected[0].detail.starts_with("vital event: ttfb"));
        assert!(
            batch.reject_implausible().is_none(),
            "nothing left to reject"
        );
    }

    #[test]
    fn vitals_are_bounded_per_kind() {
        for name in VitalName::ALL {
            assert!(implausible(&vital(name, 0.0)).is_none(), "{name:?} 0");
            assert!(implausible(&vital(name, 0.25)).is_none(), "{name:?} 0.25");
            for bad in [-1.0, -1e308, 1.7e308, f64::NAN, f64::INFINITY] {
                assert!(implausible(&vital(name, bad)).is_some(), "{name:?} {bad}");
            }
        }
        assert!(implausible(&vital(VitalName::Ttfb, MAX_DURATION_MS)).is_none());
        assert!(implausible(&vital(VitalName::Ttfb, MAX_DURATION_MS + 1.0)).is_some());
        assert!(implausible(&vital(VitalName::Cls, 100.0)).is_none());
        assert!(implausible(&vital(VitalName::Cls, 100.5)).is_some());
        assert!(implausible(&vital(VitalName::Lcp, 1000.0)).is_none());
        let msg = implausible(&vital(VitalName::Ttfb, 1.7e308)).unwrap();
        assert_eq!(
            msg,
            "ttfb `value` 1.7e308 is outside the plausible range 0..=3600000"
        );
    }

    #[test]
    fn a_delta_may_shrink_but_not_explode() {
        let RumEvent::Vital(mut v) = vital(VitalName::Inp, 200.0) else {
            unreachable!()
        };
        v.delta = -50.0;
        assert!(implausible(&RumEvent::Vital(v.clone())).is_none());
        v.delta = -1e308;
        assert!(implausible(&RumEvent::Vital(v.clone()))
            .unwrap()
            .contains("delta"));
        v.delta = f64::NAN;
        assert!(implausible(&RumEvent::Vital(v)).is_some());
    }

    #[test]
    fn durations_of_calls_and_interactions_stay_within_an_hour() {
        let call = |duration| {
            RumEvent::HttpCall(HttpCall {
                start: 5_000_000.0,
                duration,
                ..HttpCall::default()
            })
        };
        assert!(implausible(&call(120.0)).is_none());
        assert!(implausible(&call(-1.0)).is_some());
        assert!(implausible(&call(MAX_DURATION_MS * 2.0)).is_some());
        let interaction = |input_delay| {
            RumEvent::Interaction(Interaction {
                duration: 80.0,
                input_delay: Some(input_delay),
                ..Interaction::default()
            })
        };
        assert!(implausible(&interaction(12.0)).is_none());
        assert!(implausible(&interaction(-3.0))
            .unwrap()
            .contains("inputDelay"));
    }

    #[test]
    fn timing_marks_are_checked_against_the_entry_start() {
        let mut load = PageLoad::default();
        load.navigation.load_event_end = 1_200.0;
        load.navigation.timing.response_start = 300.0;
        assert!(implausible(&RumEvent::PageLoad(load.clone())).is_none());

        // Faro's marks are epoch ms on a zero origin: plausible relative to their start.
        let epoch = 1_795_839_354_566.0;
        let mut faro = PageLoad::default();
        faro.navigation.timing.start_time = epoch;
        faro.navigation.timing.duration = 900.0;
        faro.navigation.load_event_end = epoch + 900.0;
        assert!(implausible(&RumEvent::PageLoad(faro)).is_none());

        let mut late = load.clone();
        late.navigation.load_event_end = 1e308;
        assert!(implausible(&RumEvent::PageLoad(late))
            .unwrap()
            .contains("loadEventEnd"));
        let mut negative = load.clone();
        negative.navigation.timing.fetch_start = -1e308;
        assert!(implausible(&RumEvent::PageLoad(negative)).is_some());

        let mut resource = load;
        resource.resources.push(ResourceTiming {
            url: "https://cdn.example.com/app.js".into(),
            timing: ResourceTimingPhases {
                start_time: 10_000_000.0,
                duration: -5.0,
                ..ResourceTimingPhases::default()
            },
            ..ResourceTiming::default()
        });
        assert!(implausible(&RumEvent::PageLoad(resource))
            .unwrap()
            .starts_with("res[0]"));
    }
}
