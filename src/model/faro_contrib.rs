//! Faro items kept in the shape collector-contrib's faro receiver gives them
//! (`[faro] compat = "faro-contrib"`).
//!
//! The Faro decoder builds these next to the model events, `process` scrubs them by the same
//! privacy rules, and `convert::faro_contrib` renders them as contrib-shaped log records. They
//! live in the model layer so that each of those parts can use them without importing another.

use super::SpanRef;

/// Which Faro array an item came from (contrib's `faroTypes.Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Log,
    Exception,
    Measurement,
    Event,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Log => "log",
            Kind::Exception => "exception",
            Kind::Measurement => "measurement",
            Kind::Event => "event",
        }
    }
}

/// The Faro items of one batch in contrib's shape, with what the model lacks of `meta`.
#[derive(Debug, Clone, Default)]
pub struct FaroRecords {
    pub records: Vec<Record>,
    pub meta: Meta,
}

impl FaroRecords {
    /// Follows the batch's events after some were removed: `new_index[old]` is an event's new
    /// index, `None` when it was removed (its record goes with it).
    pub fn reindex(&mut self, new_index: &[Option<usize>]) {
        self.records.retain_mut(|record| match record.event {
            None => true,
            Some(old) => {
                record.event = new_index.get(old).copied().flatten();
                record.event.is_some()
            }
        });
    }
}

/// One Faro item. Maps are sorted by key without duplicates (the last value wins, as in Go's
/// maps); every string is scrubbed by `process` before conversion.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    /// Item time on the batch's time axis (epoch ms for Faro).
    pub time: f64,
    /// The item's own trace context (`trace`), when both ids are valid.
    pub span: Option<SpanRef>,
    /// Index, in the decoded batch's events, of the model event made from the same item;
    /// sampling keeps or drops the record with it. `None` for items folded into another event.
    pub event: Option<usize>,
    /// The item's own text fields, keyed, in contrib's order: log `level`, `message`;
    /// exception `type`, `value`; measurement `type`; event `event_name`, `event_domain`.
    pub text: Vec<(&'static str, String)>,
    /// Exception stack frames.
    pub frames: Vec<Frame>,
    /// `context` (logs, exceptions, measurements) or event `attributes`.
    pub context: Vec<(String, String)>,
    /// The key of `context` that holds a URL (a performance event's `name`).
    pub url_key: Option<&'static str>,
    /// Measurement values (finite).
    pub values: Vec<(String, f64)>,
    /// `action_id`, `action_name`, `action_parent_id`.
    pub action: Vec<(&'static str, String)>,
}

impl Record {
    /// A record of `kind` with nothing set.
    pub fn new(kind: Kind, time: f64, span: Option<SpanRef>, event: Option<usize>) -> Self {
        Self {
            kind,
            time,
            span,
            event,
            text: Vec::new(),
            frames: Vec::new(),
            context: Vec::new(),
            url_key: None,
            values: Vec::new(),
            action: Vec::new(),
        }
    }

    /// One of the item's own text fields, or `""`.
    pub fn text(&self, key: &str) -> &str {
        self.text
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The longest of the item's own string values, which shortening starts with, and how
    /// often the body holds it (an exception's type and value are repeated in its stack).
    pub fn longest_value(&mut self) -> Option<(&mut String, usize)> {
        let repeated = self.kind == Kind::Exception;
        let text = self
            .text
            .iter_mut()
            .map(|(_, v)| (v, if repeated { 2 } else { 1 }));
        let context = self.context.iter_mut().map(|(_, v)| (v, 1));
        let action = self.action.iter_mut().map(|(_, v)| (v, 1));
        text.chain(context)
            .chain(action)
            .max_by_key(|(v, _)| v.len())
            .filter(|(v, _)| !v.is_empty())
    }
}

/// A stack frame, as contrib prints it: `function (module|filename:lineno:colno)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub function: String,
    pub module: String,
    pub filename: String,
    pub lineno: u32,
    pub colno: u32,
}

/// `meta` fields contrib writes that the model does not keep. The rest comes from the
/// batch's (scrubbed) `PageContext`.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// `sdk.integrations` as `(name, version)`.
    pub sdk_integrations: Vec<(String, String)>,
    pub session_attributes: Vec<(String, String)>,
    pub page_id: Option<String>,
    pub page_attributes: Vec<(String, String)>,
    pub browser_name: Option<String>,
    pub browser_version: Option<String>,
    pub browser_os: Option<String>,
    pub viewport_width: Option<String>,
    pub viewport_height: Option<String>,
    pub brands: Brands,
    pub k6_browser: bool,
    pub view_name: Option<String>,
}

/// `browser.brands`: an array of `(brand, version)` or a plain string.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Brands {
    #[default]
    None,
    List(Vec<(String, String)>),
    Text(String),
}

/// Sorts `pairs` by key and keeps the last value of a repeated key.
pub fn sorted_unique<T>(mut pairs: Vec<(String, T)>) -> Vec<(String, T)> {
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, T)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        match out.last_mut() {
            Some(last) if last.0 == pair.0 => *last = pair,
            _ => out.push(pair),
        }
    }
    out
}
