//! Faro items as the OpenTelemetry collector-contrib faro receiver shapes them
//! (`[faro] compat = "faro-contrib"`, docs/faro-mapping.md#faro-contrib-compat-mode).
//!
//! Why it exists: Grafana's Frontend Observability views are fed by contrib's Faro exporter
//! (`pkg/translator/faro/logs_to_faro.go`), which turns OTLP log records back into Faro payloads
//! by parsing their **logfmt body**; a record whose body has no `kind` is refused. The bridge's
//! own output (semantic `exception` / `browser.web_vital` / `browser.console` events, attributes
//! rather than a body) is invisible there. With this option the Faro route emits, for each log,
//! exception, measurement and event of a payload, the record contrib's receiver would
//! (`faro_to_logs.go`, `keyval.go`): these records **replace** the semantic ones (each item is
//! exported once); spans and the aggregate metrics are unchanged.
//!
//! The body, key by key (the layout of contrib's newest golden file, `testdata/general/plogs.yaml`;
//! `action_*` as in `testdata/actions-payload`; empty values are left out, maps sorted by key):
//!
//! | kind | fields before the meta fields |
//! | --- | --- |
//! | `log` | `timestamp kind level message context_* traceID spanID action_*` (`level` defaults to `info`) |
//! | `exception` | `timestamp kind level=error type value stacktrace traceID spanID context_* action_*` |
//! | `measurement` | `timestamp kind level=info type context_* <name>=%f… traceID spanID value_<name>=%v… action_*` |
//! | `event` | `timestamp kind level=info event_name event_domain event_data_* traceID spanID action_*` |
//!
//! then `sdk_name sdk_version sdk_integrations app_name app_namespace app_release app_version
//! app_environment user_id session_id session_attr_* page_id page_url page_attr_* browser_name
//! browser_version browser_os browser_mobile browser_userAgent browser_language
//! browser_viewportWidth browser_viewportHeight browser_brand_<i>_{brand,version} (or
//! browser_brands) k6_isK6Browser view_name geo_continent_iso geo_country_iso
//! geo_subdivision_iso geo_city`.
//!
//! Values are quoted and escaped as `go-logfmt` does, numbers formatted as Go's `%f` and `%v`,
//! `timestamp` as Go's RFC 3339 with milliseconds (`2021-09-30T10:46:17.68Z`), the stack trace as
//! `Type: value` plus `\n  at function (module|file:line:col)` per frame — the shape the exporter
//! parses back (a frame it cannot parse makes it panic, so every frame keeps that shape).
//!
//! Record attributes: `kind`, and for exceptions `hash` = xxh3-64 (seed 0, as `zeebo/xxh3`) in
//! decimal of the exception value after contrib's normalisation (`drainExceptionValue`: property
//! names, URLs, addresses, UUIDs, numeric ids, timestamps and file paths replaced by
//! placeholders, so one error groups under one hash). Resource: the bridge's resource (so
//! `service.name`, `service.version`, `deployment.environment.name`, `service.namespace`), plus
//! the deprecated `deployment.environment` and `app_bundle_id` that contrib sets and its
//! exporter reads.
//!
//! Where the bridge differs on purpose:
//! - privacy: every value went through the same rules as the model before it gets here
//!   (`process`); `user_email`, `user_username` and `user_attr_*` are never written (the
//!   bridge does not keep them), `user_id` is the hashed id, and `geo_*` comes from the
//!   bridge's own lookup (`[geo]`), not from the client;
//! - times are skew-corrected like the rest of the bridge's output, and the record also carries
//!   them as `time_unix_nano`, a severity, and, for items without their own trace context, the
//!   page load's ids (the body keeps `traceID`/`spanID` only for the item's own);
//! - `app_*`, `session_id` and `page_url` are the bridge's resolved values (configured app
//!   name, `x-faro-session-id`, the scrubbed URL);
//! - a measurement value whose bare name would clash with another key keeps only `value_<name>`
//!   (contrib would overwrite the other key);
//! - the body stays within `limits.max_attribute_value_len`: the last stack frames go first,
//!   then the longest values of the item are shortened (limits cut any log body beyond it).
//!
//! Not written, because no contrib golden file shows their keys: `fatal`, `app_installation_id`,
//! `device_*`, `os_*`.

use std::sync::LazyLock;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use regex::Regex;
use xxhash_rust::xxh3::xxh3_64;

use self::logfmt::{quoted_len, Logfmt};
use super::attrs::{any_string, has_key, kv, truncate_str, truncate_values};
use super::ids::PageSpan;
use super::{epoch_ms_to_nanos, resource, scope, ConvertOptions};
use crate::model::faro_contrib::{Brands, FaroRecords, Frame, Kind, Meta, Record};
use crate::model::trace_context::hex;
use crate::model::{AttrValue, PageContext, Severity, SpanRef};
use crate::process::geo;

mod gofmt;
mod logfmt;

pub use self::gofmt::{go_float, rfc3339_millis};

/// The record attribute holding the kind (contrib's `faroKind`).
pub const ATTR_KIND: &str = "kind";
/// The record attribute holding an exception's hash (contrib's `faroExceptionHash`).
pub const ATTR_HASH: &str = "hash";

/// Converts the records of one batch into one `ResourceLogs` (consuming them: long bodies
/// are shortened in place); `None` when there is no record.
pub fn convert(
    records: FaroRecords,
    ctx: &PageContext,
    opts: &ConvertOptions,
) -> Option<ResourceLogs> {
    if records.records.is_empty() {
        return None;
    }
    let budget = opts.max_attribute_value_len;
    let meta = meta_line(&records.meta, ctx, budget);
    let page = PageSpan::resolve(ctx, opts.page_load);
    let observed = epoch_ms_to_nanos(ctx.received_at_ms);
    let log_records = records
        .records
        .into_iter()
        .map(|mut record| {
            let time = ctx.unix_nanos(record.time);
            let severity = match record.kind {
                Kind::Log => Severity::parse(record.text("level")).unwrap_or_default(),
                Kind::Exception => Severity::Error,
                Kind::Measurement | Kind::Event => Severity::Info,
            };
            let mut attributes = vec![kv(ATTR_KIND, str_value(record.kind.as_str()))];
            if record.kind == Kind::Exception {
                let hash = exception_hash(record.text("value"));
                if hash != 0 {
                    attributes.push(kv(ATTR_HASH, str_value(&hash.to_string())));
                }
            }
            let (span, flags) = match record.span {
                Some(span) => (span, super::ids::SAMPLED),
                None => (page.span, page.trace_flags),
            };
            let body = body(&mut record, &rfc3339_millis(time), &meta, budget);
            LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: observed,
                severity_number: severity.number(),
                severity_text: severity.text().to_owned(),
                body: Some(any_string(body)),
                attributes,
                trace_id: span.trace_id.to_vec(),
                span_id: span.span_id.to_vec(),
                flags: u32::from(flags),
                ..Default::default()
            }
        })
        .collect();
    let mut resource = resource::build_resource(ctx);
    let attrs = &mut resource.attributes;
    if let Some(env) = ctx.app.environment.as_deref().filter(|e| !e.is_empty()) {
        if !has_key(attrs, "deployment.environment") {
            attrs.push(kv("deployment.environment", str_value(env)));
        }
    }
    if let Some(bundle) = context_str(ctx, "faro.app.bundle_id") {
        attrs.push(kv("app_bundle_id", str_value(bundle)));
    }
    truncate_values(attrs, budget);
    Some(ResourceLogs {
        resource: Some(resource),
        scope_logs: vec![ScopeLogs {
            scope: Some(scope()),
            log_records,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    })
}

fn str_value(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

/// xxh3-64 of the exception value as contrib's receiver computes it (after draining).
pub fn exception_hash(value: &str) -> u64 {
    xxh3_64(drain_exception_value(value).as_bytes())
}

/// contrib's `drainExceptionValue` patterns and replacements, in its order, with Go's ASCII
/// classes spelled out (`\s` is `[\t\n\x0C\r ]`, `\d` `[0-9]`, `\w` `[0-9A-Za-z_]`, `\b`
/// `(?-u:\b)`; Rust's are Unicode-aware). Its second pattern (`… '<property>' of`) is left out: it can only match
/// what the first one already replaced by the same text.
static DRAIN: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (
            r"Cannot read (property|properties) '([^']+)'",
            "Cannot read $1 '<PROPERTY>'",
        ),
        (r#"https?://[^\t\n\x0C\r <>"{}|\\^`\[\]]+"#, "<URL>"),
        (r"0x[0-9a-fA-F]+", "<ADDRESS>"),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<UUID>",
        ),
        (
            r"(?-u:\b)(id|ID|Id)[\t\n\x0C\r ]*[:\t\n\x0C\r =][\t\n\x0C\r ]*[0-9]+(?-u:\b)",
            "${1} <ID>",
        ),
        (
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}",
            "<TIMESTAMP>",
        ),
        (
            r"(?:[A-Za-z]:)?[/\\][0-9A-Za-z_\-._/\\]+\.(js|ts|jsx|tsx|css|html)(?-u:\b)",
            "<PATH>",
        ),
    ]
    .into_iter()
    .map(|(pattern, replacement)| {
        (
            Regex::new(pattern).expect("the drain patterns are valid"),
            replacement,
        )
    })
    .collect()
});

/// The exception value with instance-specific parts replaced by placeholders (contrib's
/// `drainExceptionValue`), so equal errors hash alike.
pub fn drain_exception_value(value: &str) -> std::borrow::Cow<'_, str> {
    let mut drained = std::borrow::Cow::Borrowed(value);
    for (regex, replacement) in DRAIN.iter() {
        if let std::borrow::Cow::Owned(s) = regex.replace_all(&drained, *replacement) {
            drained = std::borrow::Cow::Owned(s);
        }
    }
    drained
}

/// The body of one record: its fields, then the batch's meta fields. Longer than `budget`
/// (`0`: no limit), the last frames are dropped, then the longest values shortened.
fn body(record: &mut Record, timestamp: &str, meta: &str, budget: usize) -> String {
    loop {
        let line = render(record, timestamp, meta);
        if budget == 0 || line.len() <= budget {
            return line;
        }
        let mut excess = line.len() - budget;
        if !record.frames.is_empty() {
            while excess > 0 {
                let Some(frame) = record.frames.pop() else {
                    break;
                };
                excess = excess.saturating_sub(quoted_len(&frame_text(&frame)));
            }
            continue;
        }
        let Some((value, occurrences)) = record.longest_value() else {
            return line;
        };
        // Escaping only lengthens a value, so cutting `excess` raw bytes frees at least as much.
        let keep = value.len().saturating_sub(excess.div_ceil(occurrences));
        let keep = if keep == 0 {
            0
        } else {
            truncate_str(value, keep).len()
        };
        value.truncate(keep);
    }
}

fn render(r: &Record, timestamp: &str, meta: &str) -> String {
    let mut w = Logfmt::with_capacity(256 + meta.len());
    w.pair("timestamp", timestamp);
    w.pair("kind", r.kind.as_str());
    match r.kind {
        Kind::Log => {}
        Kind::Exception => w.pair("level", "error"),
        Kind::Measurement | Kind::Event => w.pair("level", "info"),
    }
    for (key, value) in &r.text {
        w.field(key, value);
    }
    let context = match r.kind {
        Kind::Event => "event_data_",
        _ => "context_",
    };
    match r.kind {
        Kind::Log | Kind::Event => {
            w.map(context, &r.context);
            trace(&mut w, r.span);
        }
        Kind::Exception => {
            w.pair("stacktrace", &stacktrace(r));
            trace(&mut w, r.span);
            w.map(context, &r.context);
        }
        Kind::Measurement => {
            w.map(context, &r.context);
            for (name, value) in &r.values {
                if bare_name_is_free(name) {
                    w.pair(name, &format!("{value:.6}"));
                }
            }
            trace(&mut w, r.span);
            for (name, value) in &r.values {
                w.prefixed("value_", name, &go_float(*value));
            }
        }
    }
    for (key, value) in &r.action {
        w.field(key, value);
    }
    if !meta.is_empty() {
        w.out.push(' ');
        w.out.push_str(meta);
    }
    w.out
}

fn trace(w: &mut Logfmt, span: Option<SpanRef>) {
    if let Some(span) = span {
        w.pair("traceID", &hex(&span.trace_id));
        w.pair("spanID", &hex(&span.span_id));
    }
}

/// Keys a bare measurement name must not take: the record's own, and every prefix of the
/// other fields and of the meta fields.
const TAKEN_KEYS: [&str; 6] = ["timestamp", "kind", "level", "type", "traceID", "spanID"];
const TAKEN_PREFIXES: [&str; 11] = [
    "context_", "value_", "action_", "sdk_", "app_", "user_", "session_", "page_", "browser_",
    "k6_", "view_",
];

fn bare_name_is_free(name: &str) -> bool {
    !TAKEN_KEYS.contains(&name) && !TAKEN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// `Type: value` and one `\n  at …` line per frame (contrib's `exceptionToString`).
fn stacktrace(r: &Record) -> String {
    let mut out = format!("{}: {}", r.text("type"), r.text("value"));
    for frame in &r.frames {
        out.push_str(&frame_text(frame));
    }
    out
}

fn frame_text(frame: &Frame) -> String {
    let separator = if frame.module.is_empty() { "" } else { "|" };
    format!(
        "\n  at {} ({}{separator}{}:{}:{})",
        frame.function, frame.module, frame.filename, frame.lineno, frame.colno
    )
}

/// The meta fields of a batch, rendered once for all its records.
fn meta_line(meta: &Meta, ctx: &PageContext, budget: usize) -> String {
    let mut w = Logfmt::with_capacity(512);
    let cap = |v: &str| truncate_str(v, budget).to_owned();
    w.opt("sdk_name", ctx.sdk_name.as_deref());
    w.opt("sdk_version", ctx.sdk_version.as_deref());
    if !meta.sdk_integrations.is_empty() {
        let joined: Vec<String> = meta
            .sdk_integrations
            .iter()
            .map(|(name, version)| format!("{name}:{version}"))
            .collect();
        w.field("sdk_integrations", &cap(&joined.join(",")));
    }
    w.field("app_name", &ctx.app.name);
    w.opt("app_namespace", context_str(ctx, "service.namespace"));
    w.opt("app_release", context_str(ctx, "faro.app.release"));
    w.opt("app_version", ctx.app.version.as_deref());
    w.opt("app_environment", ctx.app.environment.as_deref());
    w.opt("user_id", ctx.user_id.as_deref());
    w.opt("session_id", ctx.session_id.as_deref());
    w.map("session_attr_", &meta.session_attributes);
    w.opt("page_id", meta.page_id.as_deref());
    w.field(
        "page_url",
        &cap(ctx.page_url.as_deref().unwrap_or_default()),
    );
    w.map("page_attr_", &meta.page_attributes);
    w.opt("browser_name", meta.browser_name.as_deref());
    w.opt("browser_version", meta.browser_version.as_deref());
    w.opt("browser_os", meta.browser_os.as_deref());
    // Contrib writes the Go zero value when the payload has none.
    let mobile = ctx.browser.mobile.unwrap_or(false);
    w.pair("browser_mobile", if mobile { "true" } else { "false" });
    w.field(
        "browser_userAgent",
        &cap(ctx.user_agent.as_deref().unwrap_or_default()),
    );
    w.opt("browser_language", ctx.browser.language.as_deref());
    w.opt("browser_viewportWidth", meta.viewport_width.as_deref());
    w.opt("browser_viewportHeight", meta.viewport_height.as_deref());
    match &meta.brands {
        Brands::None => {}
        Brands::Text(brands) => w.field("browser_brands", brands),
        Brands::List(list) => {
            // Numbered without gaps: the exporter indexes an array by these numbers.
            for (i, (brand, version)) in list.iter().enumerate() {
                w.field(&format!("browser_brand_{i}_brand"), brand);
                w.field(&format!("browser_brand_{i}_version"), version);
            }
        }
    }
    if meta.k6_browser {
        w.pair("k6_isK6Browser", "true");
    }
    w.opt("view_name", meta.view_name.as_deref());
    // Faro leaves `geo` to the receiver: the bridge's own lookup (`[geo]`), never the client's.
    w.opt("geo_continent_iso", context_str(ctx, geo::CONTINENT));
    w.opt("geo_country_iso", context_str(ctx, geo::COUNTRY));
    w.opt("geo_subdivision_iso", context_str(ctx, geo::REGION));
    w.opt("geo_city", context_str(ctx, geo::LOCALITY));
    w.out
}

/// A string attribute of the page context (where the Faro decoder puts namespace, release and
/// bundle id).
fn context_str<'a>(ctx: &'a PageContext, key: &str) -> Option<&'a str> {
    ctx.attributes.iter().find_map(|(k, v)| match v {
        AttrValue::Str(s) if k == key => Some(s.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::faro_contrib::sorted_unique;
    use crate::model::{AppInfo, BrowserInfo};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";
    /// 2021-09-30T10:46:17.680Z, the time of contrib's golden items.
    const GOLDEN_MS: f64 = 1_632_998_777_680.0;

    fn span() -> Option<SpanRef> {
        Some(SpanRef {
            trace_id: crate::model::trace_context::parse_trace_id(TRACE).unwrap(),
            span_id: crate::model::trace_context::parse_span_id(SPAN).unwrap(),
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The meta of contrib's `testdata/general/payload.json`, as the bridge holds it.
    fn golden_ctx() -> PageContext {
        PageContext {
            app: AppInfo {
                name: "testapp".into(),
                version: Some("abcdefg".into()),
                environment: Some("production".into()),
                ..Default::default()
            },
            sdk_name: Some("grafana-frontend-agent".into()),
            sdk_version: Some("1.3.5".into()),
            user_id: Some("123".into()),
            session_id: Some("abcd".into()),
            page_url: Some("https://example.com/page".into()),
            browser: BrowserInfo {
                mobile: Some(false),
                ..Default::default()
            },
            attributes: vec![
                (
                    "service.namespace".into(),
                    AttrValue::Str("testnamespace".into()),
                ),
                ("faro.app.release".into(), AttrValue::Str("0.8.2".into())),
                (
                    "faro.app.bundle_id".into(),
                    AttrValue::Str("testBundleId".into()),
                ),
            ],
            received_at_ms: GOLDEN_MS + 5_000.0,
            ..Default::default()
        }
    }

    fn golden_meta() -> Meta {
        Meta {
            session_attributes: pairs(&[("time_elapsed", "100s")]),
            browser_name: Some("chrome".into()),
            browser_version: Some("88.12.1".into()),
            browser_os: Some("linux".into()),
            view_name: Some("foobar".into()),
            ..Default::default()
        }
    }

    /// contrib's meta fields of the golden payload, without `user_email`, `user_username` and
    /// `user_attr_foo` (personal data the bridge does not keep).
    const GOLDEN_META: &str = "sdk_name=grafana-frontend-agent sdk_version=1.3.5 app_name=testapp \
        app_namespace=testnamespace app_release=0.8.2 app_version=abcdefg \
        app_environment=production user_id=123 session_id=abcd session_attr_time_elapsed=100s \
        page_url=https://example.com/page browser_name=chrome browser_version=88.12.1 \
        browser_os=linux browser_mobile=false view_name=foobar";

    fn golden_body(record: Record) -> String {
        golden_body_with(record, golden_meta(), 0)
    }

    fn golden_body_with(mut record: Record, meta: Meta, budget: usize) -> String {
        let ctx = golden_ctx();
        let meta = meta_line(&meta, &ctx, budget);
        let ts = rfc3339_millis(ctx.unix_nanos(record.time));
        body(&mut record, &ts, &meta, budget)
    }

    fn log_record() -> Record {
        let mut r = Record::new(Kind::Log, GOLDEN_MS, span(), None);
        r.text = vec![
            ("level", "info".into()),
            ("message", "opened pricing page".into()),
        ];
        r.context = pairs(&[("component", "AppRoot"), ("page", "Pricing")]);
        r
    }

    fn golden_frames() -> Vec<Frame> {
        vec![
            Frame {
                function: "?".into(),
                filename: "http://fe:3002/static/js/vendors~main.chunk.js".into(),
                lineno: 8639,
                colno: 42,
                ..Default::default()
            },
            Frame {
                function: "dispatchAction".into(),
                filename: "http://fe:3002/static/js/vendors~main.chunk.js".into(),
                lineno: 268095,
                colno: 9,
                ..Default::default()
            },
        ]
    }

    fn exception_record() -> Record {
        let mut r = Record::new(Kind::Exception, GOLDEN_MS, span(), Some(0));
        r.text = vec![
            ("type", "Error".into()),
            ("value", "Cannot read property 'find' of undefined".into()),
        ];
        r.frames = golden_frames();
        r.context = pairs(&[
            ("ReactError", "Annoying Error"),
            ("component", "ReactErrorBoundary"),
        ]);
        r
    }

    // Golden case: testdata/general/plogs.yaml, first log record (level after kind).
    #[test]
    fn log_body_matches_the_golden_layout() {
        let expected = format!(
            "timestamp=2021-09-30T10:46:17.68Z kind=log level=info message=\"opened pricing page\" \
             context_component=AppRoot context_page=Pricing traceID={TRACE} spanID={SPAN} \
             {GOLDEN_META}"
        );
        assert_eq!(golden_body(log_record()), expected);
    }

    // Golden case: testdata/general/plogs.yaml, the exception (two of its 26 frames): level,
    // the stack as `Type: value` + `\n  at fn (file:line:col)`, the context after the ids.
    #[test]
    fn exception_body_matches_the_golden_layout() {
        let expected = format!(
            "timestamp=2021-09-30T10:46:17.68Z kind=exception level=error type=Error \
             value=\"Cannot read property 'find' of undefined\" \
             stacktrace=\"Error: Cannot read property 'find' of undefined\\n  at ? \
             (http://fe:3002/static/js/vendors~main.chunk.js:8639:42)\\n  at dispatchAction \
             (http://fe:3002/static/js/vendors~main.chunk.js:268095:9)\" \
             traceID={TRACE} spanID={SPAN} context_ReactError=\"Annoying Error\" \
             context_component=ReactErrorBoundary {GOLDEN_META}"
        );
        assert_eq!(golden_body(exception_record()), expected);
    }

    // Golden case: testdata/general/plogs.yaml, the measurement: each value as `%f`, then the
    // ids, then each value again as `value_<name>` in Go's `%v`.
    #[test]
    fn measurement_body_matches_the_golden_layout() {
        let mut r = Record::new(Kind::Measurement, GOLDEN_MS, span(), None);
        r.text = vec![("type", "page load".into())];
        r.context = pairs(&[("hello", "world")]);
        r.values = vec![
            ("ttfb".into(), 14.0),
            ("ttfcp".into(), 22.12),
            ("ttfp".into(), 20.12),
        ];
        let expected = format!(
            "timestamp=2021-09-30T10:46:17.68Z kind=measurement level=info type=\"page load\" \
             context_hello=world ttfb=14.000000 ttfcp=22.120000 ttfp=20.120000 traceID={TRACE} \
             spanID={SPAN} value_ttfb=14 value_ttfcp=22.12 value_ttfp=20.12 {GOLDEN_META}"
        );
        assert_eq!(golden_body(r), expected);
    }

    // Golden case: testdata/general/plogs.yaml, the event (a few of its attributes); a value
    // like `[]` needs no quotes.
    #[test]
    fn event_body_matches_the_golden_layout() {
        let mut r = Record::new(Kind::Event, 1_700_128_855_995.0, None, None);
        r.text = vec![
            ("event_name", "faro.performanceEntry".into()),
            ("event_domain", "browser".into()),
        ];
        r.context = sorted_unique(pairs(&[
            (
                "name",
                "https://cdn.jsdelivr.net/npm/bootstrap@4.5.3/dist/css/bootstrap.min.css.map",
            ),
            ("serverTiming", "[]"),
            ("connectEnd", "3656"),
        ]));
        let expected = format!(
            "timestamp=2023-11-16T10:00:55.995Z kind=event level=info \
             event_name=faro.performanceEntry event_domain=browser event_data_connectEnd=3656 \
             event_data_name=https://cdn.jsdelivr.net/npm/bootstrap@4.5.3/dist/css/bootstrap.min.css.map \
             event_data_serverTiming=[] {GOLDEN_META}"
        );
        assert_eq!(golden_body(r), expected);
    }

    // Golden case: testdata/actions-payload/plogs.yaml: `action_*` after the ids, in the order
    // id, name, parent_id.
    #[test]
    fn actions_follow_the_item_fields() {
        let mut r = Record::new(Kind::Event, 1_700_128_855_995.0, None, None);
        r.text = vec![
            ("event_name", "user-action-event".into()),
            ("event_domain", "browser".into()),
        ];
        r.context = pairs(&[("userActionDuration", "124")]);
        r.action = vec![
            ("action_id", "123".into()),
            ("action_name", "click-checkout".into()),
        ];
        let body = golden_body_with(r, Meta::default(), 0);
        assert!(
            body.contains(
                "event_data_userActionDuration=124 action_id=123 action_name=click-checkout \
                 sdk_name="
            ),
            "{body}"
        );
        let mut r = log_record();
        r.action = vec![
            ("action_name", "click-checkout".into()),
            ("action_parent_id", "123".into()),
        ];
        let body = golden_body(r);
        assert!(
            body.contains(&format!(
                "spanID={SPAN} action_name=click-checkout action_parent_id=123 sdk_name="
            )),
            "{body}"
        );
    }

    // Golden cases: testdata/browser-brand-slice-payload and browser-brand-string-payload.
    #[test]
    fn browser_fields_and_brands() {
        let ctx = PageContext {
            user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/88.12.1".into()),
            browser: BrowserInfo {
                mobile: Some(false),
                language: Some("en-US".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut meta = Meta {
            browser_name: Some("chrome".into()),
            viewport_width: Some("1920".into()),
            viewport_height: Some("1080".into()),
            brands: Brands::List(vec![("brand1".into(), "1.0.0".into())]),
            ..Default::default()
        };
        assert_eq!(
            meta_line(&meta, &ctx, 0),
            "browser_name=chrome browser_mobile=false \
             browser_userAgent=\"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/88.12.1\" \
             browser_language=en-US browser_viewportWidth=1920 browser_viewportHeight=1080 \
             browser_brand_0_brand=brand1 browser_brand_0_version=1.0.0"
        );
        meta.brands = Brands::Text("Chromium;Google Chrome".into());
        assert!(meta_line(&meta, &ctx, 0).ends_with(" browser_brands=\"Chromium;Google Chrome\""));
        meta.k6_browser = true;
        meta.sdk_integrations = vec![
            ("@grafana/faro-web-tracing".into(), "2.12.1".into()),
            ("webVitals".into(), "2.12.1".into()),
        ];
        let line = meta_line(&meta, &ctx, 0);
        assert!(
            line.starts_with(
                "sdk_integrations=@grafana/faro-web-tracing:2.12.1,webVitals:2.12.1 browser_name"
            ),
            "{line}"
        );
        assert!(line.ends_with(" k6_isK6Browser=true"), "{line}");

        // geo_* from the bridge's lookup, in contrib's order.
        let located = PageContext {
            attributes: vec![
                (geo::LOCALITY.into(), AttrValue::Str("Berlin".into())),
                (geo::COUNTRY.into(), AttrValue::Str("DE".into())),
                (geo::CONTINENT.into(), AttrValue::Str("EU".into())),
                (geo::REGION.into(), AttrValue::Str("DE-BE".into())),
            ],
            ..ctx
        };
        let line = meta_line(&Meta::default(), &located, 0);
        assert!(
            line.ends_with(
                " geo_continent_iso=EU geo_country_iso=DE geo_subdivision_iso=DE-BE geo_city=Berlin"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_clashing_measurement_name_keeps_only_its_value_form() {
        let mut r = Record::new(Kind::Measurement, GOLDEN_MS, None, None);
        r.text = vec![("type", "custom".into())];
        r.values = vec![
            ("app_name".into(), 1.0),
            ("kind".into(), 2.0),
            ("ok".into(), 1e6),
        ];
        let body = golden_body_with(r, Meta::default(), 0);
        assert!(
            body.starts_with(
                "timestamp=2021-09-30T10:46:17.68Z kind=measurement level=info type=custom \
                 ok=1000000.000000 value_app_name=1 value_kind=2 value_ok=1e+06 sdk_name="
            ),
            "{body}"
        );
        assert_eq!(body.matches("app_name=").count(), 2, "{body}");
    }

    #[test]
    fn exception_hash_is_xxh3_of_the_drained_value() {
        // testdata/actions-payload/plogs.yaml: a value draining leaves alone.
        assert_eq!(
            exception_hash("Exception related to user action"),
            17_187_077_909_215_573_004
        );
        // testdata/general/plogs.yaml hashes the raw value (2735541995122471342, the golden
        // predates draining); contrib now hashes the drained one.
        assert_eq!(
            xxh3_64(b"Cannot read property 'find' of undefined"),
            2_735_541_995_122_471_342
        );
        assert_eq!(
            exception_hash("Cannot read property 'find' of undefined"),
            xxh3_64(b"Cannot read property '<PROPERTY>' of undefined")
        );
    }

    #[test]
    fn draining_replaces_instance_specific_parts() {
        let cases = [
            (
                "Cannot read properties of undefined (reading 'id')",
                "Cannot read properties of undefined (reading 'id')",
            ),
            (
                "Cannot read properties 'x' of null",
                "Cannot read properties '<PROPERTY>' of null",
            ),
            (
                "Failed to fetch https://api.example.com/v1/cart?id=7 now",
                "Failed to fetch <URL> now",
            ),
            ("segfault at 0xDEADbeef", "segfault at <ADDRESS>"),
            (
                "order 123e4567-e89b-12d3-a456-426614174000 missing",
                "order <UUID> missing",
            ),
            (
                "no user id: 42 or ID=7, Id 9",
                "no user id <ID> or ID <ID>, Id <ID>",
            ),
            ("valid 42", "valid 42"),
            (
                "at 2024-01-15T10:25:33 and 2024-01-15 10:25:33",
                "at <TIMESTAMP> and <TIMESTAMP>",
            ),
            (
                "in /static/js/main.chunk.js and C:\\app\\x.tsx",
                "in <PATH> and <PATH>",
            ),
        ];
        for (value, drained) in cases {
            assert_eq!(drain_exception_value(value), drained, "{value}");
        }
    }

    #[test]
    fn long_bodies_lose_frames_first_then_value_bytes_and_stay_parseable() {
        let full = golden_body(exception_record());
        let mut long = exception_record();
        long.frames = (0..40)
            .map(|i| Frame {
                function: format!("fn{i}"),
                filename: "https://shop.example.com/assets/index-9c1e.js".into(),
                lineno: i,
                colno: 7,
                ..Default::default()
            })
            .collect();
        let budget = full.len() + 200;
        let body = golden_body_with(long.clone(), golden_meta(), budget);
        assert!(body.len() <= budget, "{} > {budget}", body.len());
        assert!(body.contains("\\n  at fn0 ("), "{body}");
        assert!(!body.contains("fn39"), "{body}");
        assert!(body.ends_with(GOLDEN_META));

        // No frame left to drop: the longest value is cut, and the stack trace still starts
        // with exactly `type: value`, as the exporter requires.
        long.text[1].1 = "x".repeat(3000);
        let body = golden_body_with(long, golden_meta(), 1200);
        assert!(body.len() <= 1200, "{}", body.len());
        let kept = body.split_once(" value=").map_or(0, |(_, rest)| {
            rest.chars().take_while(|c| *c == 'x').count()
        });
        assert!(kept > 0 && kept < 3000, "{body}");
        let value = "x".repeat(kept);
        assert!(
            body.contains(&format!(" value={value} stacktrace=\"Error: {value}\" ")),
            "{body}"
        );
        assert!(body.ends_with(GOLDEN_META));
    }

    #[test]
    fn records_become_one_resource_with_kind_and_hash() {
        let ctx = golden_ctx();
        let mut untraced = log_record();
        untraced.span = None;
        let records = FaroRecords {
            records: vec![exception_record(), untraced],
            meta: golden_meta(),
        };
        let rl = convert(records, &ctx, &ConvertOptions::default()).unwrap();
        let resource = rl.resource.as_ref().unwrap();
        let get = |attrs, key| crate::convert::attrs::find(attrs, key).cloned();
        let s = |v: &str| Some(Value::StringValue(v.into()));
        assert_eq!(get(&resource.attributes, "service.name"), s("testapp"));
        assert_eq!(get(&resource.attributes, "service.version"), s("abcdefg"));
        assert_eq!(
            get(&resource.attributes, "deployment.environment.name"),
            s("production")
        );
        assert_eq!(
            get(&resource.attributes, "deployment.environment"),
            s("production")
        );
        assert_eq!(
            get(&resource.attributes, "service.namespace"),
            s("testnamespace")
        );
        assert_eq!(
            get(&resource.attributes, "app_bundle_id"),
            s("testBundleId")
        );
        let records = &rl.scope_logs[0].log_records;
        let exception = &records[0];
        assert_eq!(get(&exception.attributes, "kind"), s("exception"));
        let hash = exception_hash("Cannot read property 'find' of undefined").to_string();
        assert_eq!(get(&exception.attributes, "hash"), s(&hash));
        assert_eq!(hex(&exception.trace_id), TRACE);
        assert_eq!(hex(&exception.span_id), SPAN);
        assert_eq!(exception.severity_number, 17);
        assert_eq!(exception.time_unix_nano, 1_632_998_777_680_000_000);
        assert_eq!(exception.observed_time_unix_nano, 1_632_998_782_680_000_000);
        let Some(Value::StringValue(body)) = exception.body.as_ref().unwrap().value.clone() else {
            panic!("{exception:?}")
        };
        assert!(body.starts_with("timestamp=2021-09-30T10:46:17.68Z kind=exception "));
        // Without its own trace context, a record is bound to the page load (the body keeps no
        // ids), like the bridge's other log records.
        let log = &records[1];
        assert_eq!(get(&log.attributes, "kind"), s("log"));
        assert_eq!(get(&log.attributes, "hash"), None);
        let page = crate::convert::page_span(&ctx, Default::default());
        assert_eq!(log.span_id, page.span_id.to_vec());
        let Some(Value::StringValue(body)) = log.body.as_ref().unwrap().value.clone() else {
            panic!("{log:?}")
        };
        assert!(!body.contains("traceID"), "{body}");
    }

    #[test]
    fn no_records_no_resource() {
        let records = FaroRecords::default();
        assert!(convert(records, &golden_ctx(), &ConvertOptions::default()).is_none());
    }

    #[test]
    fn maps_are_sorted_and_the_last_duplicate_wins() {
        let sorted = sorted_unique(pairs(&[("b", "1"), ("a", "2"), ("b", "3"), ("B", "4")]));
        assert_eq!(sorted, pairs(&[("B", "4"), ("a", "2"), ("b", "3")]));
    }
}
