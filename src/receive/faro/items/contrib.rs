//! Faro items as collector-contrib's faro receiver keeps them (`[faro] compat =
//! "faro-contrib"`, see `model::faro_contrib`): the item's own fields as sent, taken before the
//! model mapping consumes them; `event` is the index of the model event the item becomes.

use super::{
    Action, EventItem, ExceptionItem, Frame, Lax, LogItem, MeasurementItem, TraceIds,
    EVENT_NAVIGATION, EVENT_RESOURCE,
};
use crate::model::faro_contrib::{self, sorted_unique, Kind, Record};

pub(super) fn contrib_log(item: &LogItem, time: f64, event: usize) -> Record {
    let mut r = Record::new(
        Kind::Log,
        time,
        item.trace.0.as_ref().and_then(TraceIds::span),
        Some(event),
    );
    let level = item.level.clone().filter(|l| !l.is_empty());
    r.text = vec![
        ("level", level.unwrap_or_else(|| "info".to_owned())),
        ("message", item.message.clone().unwrap_or_default()),
    ];
    r.context = sorted_unique(item.context.clone());
    r.action = contrib_action(&item.action);
    r
}

pub(super) fn contrib_exception(item: &ExceptionItem, time: f64, event: usize) -> Record {
    let span = item.trace.0.as_ref().and_then(TraceIds::span);
    let mut r = Record::new(Kind::Exception, time, span, Some(event));
    r.text = vec![
        ("type", item.kind.clone().unwrap_or_default()),
        ("value", item.value.clone().unwrap_or_default()),
    ];
    if let Some(stacktrace) = &item.stacktrace.0 {
        r.frames = stacktrace.frames.0.iter().map(contrib_frame).collect();
    }
    r.context = sorted_unique(item.context.clone());
    r.action = contrib_action(&item.action);
    r
}

/// A frame as contrib prints it. Line breaks become spaces: the exporter splits the stack into
/// frames at `\n  at ` and cannot parse a part that is not a whole frame.
fn contrib_frame(frame: &Frame) -> faro_contrib::Frame {
    let one_line = |s: &Option<String>| s.as_deref().unwrap_or_default().replace(['\n', '\r'], " ");
    let number = |n: Option<f64>| {
        n.filter(|n| n.is_finite() && *n > 0.0)
            .map_or(0, |n| n as u32)
    };
    faro_contrib::Frame {
        function: one_line(&frame.function),
        module: one_line(&frame.module),
        filename: one_line(&frame.filename),
        lineno: number(frame.lineno),
        colno: number(frame.colno),
    }
}

pub(super) fn contrib_measurement(item: &MeasurementItem, time: f64, event: usize) -> Record {
    let span = item.trace.0.as_ref().and_then(TraceIds::span);
    let mut r = Record::new(Kind::Measurement, time, span, Some(event));
    r.text = vec![("type", item.kind.clone().unwrap_or_default())];
    r.context = sorted_unique(item.context.clone());
    let finite = item.values.iter().filter(|(_, v)| v.is_finite()).cloned();
    r.values = sorted_unique(finite.collect());
    r.action = contrib_action(&item.action);
    r
}

pub(super) fn contrib_event(
    item: &EventItem,
    name: &str,
    time: f64,
    event: Option<usize>,
) -> Record {
    let span = item.trace.0.as_ref().and_then(TraceIds::span);
    let mut r = Record::new(Kind::Event, time, span, event);
    r.text = vec![
        ("event_name", name.to_owned()),
        ("event_domain", item.domain.clone().unwrap_or_default()),
    ];
    r.context = sorted_unique(item.attributes.clone());
    // Performance entries name their URL in `name`, which the model scrubs as a URL.
    r.url_key = matches!(name, EVENT_NAVIGATION | EVENT_RESOURCE).then_some("name");
    r.action = contrib_action(&item.action);
    r
}

fn contrib_action(action: &Lax<Action>) -> Vec<(&'static str, String)> {
    let Some(action) = &action.0 else {
        return Vec::new();
    };
    [
        ("action_id", &action.id),
        ("action_name", &action.name),
        ("action_parent_id", &action.parent_id),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key, value.clone().filter(|v| !v.is_empty())?)))
    .collect()
}
