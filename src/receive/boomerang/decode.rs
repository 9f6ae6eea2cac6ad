//! A Boomerang beacon's parameters → the model (docs/boomerang-mapping.md).
//!
//! The beacon is a flat list of `name=value` pairs (form body or query string). What it reports
//! depends on `http.initiator` and `rt.quit`:
//!
//! - no initiator (or `spa_hard`): the page load: `nt_*` → the navigation entry, `restiming` →
//!   resources (its navigation entry's Server-Timing `traceparent` → the server span), `pt.*` →
//!   LCP and FCP, `nt_res_st − nt_nav_st` → TTFB;
//! - `rt.quit`: the unload beacon; it repeats the page load's `rt.*` timers, which are not
//!   reported again; its `et.inp` is the page's final INP; `early=1` (a beacon sent before
//!   onload) does not report the page load either;
//! - `xhr`: one fetch/XHR (`u`, `http.method`, `rt.tstart`…`rt.end`, its `restiming` entry);
//! - `spa`: a soft navigation (an interaction span); `click`/`interaction`: an interaction;
//! - `error`: errors only; any other initiator: a custom event.
//!
//! On any beacon, `err` (JSURL) → errors and `c.cls` > 0 → a CLS report (Boomerang resets
//! `c.cls` on each beacon, so it is the layout shift since the previous beacon). A part that
//! cannot be read is dropped and counted; the rest of the beacon is kept.

use crate::config::LimitsConfig;
use crate::model::{
    AttrValue, CustomEvent, ErrorEvent, HttpCall, Interaction, NavigationTiming, PageLoad, Reason,
    Rejected, ResourceTimingPhases, RumBatch, RumEvent, VitalName, WebVital,
};

use super::jsurl;
use super::restiming;

/// A decoded beacon, ready for the pipeline.
#[derive(Debug, Default)]
pub struct BoomerangBatch {
    pub batch: RumBatch,
    /// The beacon reports the page load.
    pub has_navigation: bool,
    /// The latest absolute time in the beacon (Unix epoch ms), for skew correction.
    pub newest_ms: Option<f64>,
}

/// The beacon's parameters, first value of each name wins.
pub struct Params<'a>(pub &'a [(String, String)]);

impl Params<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn num(&self, name: &str) -> Option<f64> {
        self.get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite())
    }
}

/// Whether the parameters look like a Boomerang beacon at all.
pub fn is_beacon(p: &Params) -> bool {
    [
        "v",
        "rt.si",
        "pid",
        "u",
        "rt.start",
        "rt.tstart",
        "nt_nav_st",
    ]
    .iter()
    .any(|k| p.get(k).is_some())
}

/// Decodes the parameters of one beacon.
pub fn decode(p: &Params, limits: &LimitsConfig) -> BoomerangBatch {
    let mut out = BoomerangBatch::default();
    let initiator = p.get("http.initiator").unwrap_or_default();
    let quit = p.get("rt.quit").is_some();
    // An early beacon (Early plugin, `early=1`) is sent before onload; the page load follows.
    let early = p.get("early").is_some();
    let page_load = !quit && !early && matches!(initiator, "" | "spa_hard");
    let origin = p
        .num("nt_nav_st")
        .or_else(|| p.num("rt.nstart"))
        .or_else(|| {
            (quit || p.get("rt.start").is_some_and(|s| s != "manual"))
                .then(|| p.num("rt.tstart"))
                .flatten()
        })
        .unwrap_or(0.0);
    context(p, origin, &mut out.batch);
    let lookup = match p.get("servertiming").map(restiming::server_timing_lookup) {
        Some(Ok(lookup)) => lookup,
        Some(Err(e)) => {
            reject(
                &mut out.batch,
                Reason::InvalidField,
                format!("`servertiming`: {e}"),
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    let entries = resources(p, &lookup, limits, &mut out.batch);
    let mut newest = [p.num("rt.end"), p.num("rt.tstart"), p.num("nt_load_end")]
        .into_iter()
        .flatten()
        .reduce(f64::max);

    if page_load && p.num("nt_nav_st").is_some() {
        out.has_navigation = true;
        page_load_events(p, origin, entries, &mut out.batch);
    } else {
        match initiator {
            "xhr" => http_call(p, origin, &entries, &mut out.batch),
            "spa" | "click" | "interaction" => interaction(p, origin, initiator, &mut out.batch),
            "" | "error" | "spa_hard" => {}
            other => custom(p, origin, other, &mut out.batch),
        }
    }
    if let Some(err) = p.get("err") {
        let latest = errors(err, origin, p, &mut out.batch);
        newest = newest.into_iter().chain(latest).reduce(f64::max);
    }
    if let Some(cls) = p.num("c.cls").filter(|v| *v > 0.0) {
        let target = p.text("c.cls.topid");
        vital(&mut out.batch, p, VitalName::Cls, cls, None, target);
    }
    if quit {
        if let Some(inp) = p.num("et.inp") {
            let time = p.num("et.inp.t");
            vital(
                &mut out.batch,
                p,
                VitalName::Inp,
                inp,
                time,
                p.text("et.inp.e"),
            );
        }
    }
    out.newest_ms = newest;
    out
}

fn reject(batch: &mut RumBatch, reason: Reason, detail: String) {
    batch.rejected.push(Rejected { reason, detail });
}

fn context(p: &Params, origin: f64, batch: &mut RumBatch) {
    let ctx = &mut batch.context;
    ctx.time_origin_ms = origin;
    ctx.session_id = p.text("rt.si");
    ctx.page_view_id = p.text("pid");
    // On XHR and SPA beacons `u` is the request's URL and `pgu` the page's.
    ctx.page_url = p.text("pgu").or_else(|| p.text("u"));
    ctx.referrer = p.text("r");
    ctx.sdk_name = Some("boomerangjs".to_owned());
    ctx.sdk_version = p.text("v");
    ctx.browser.platform = p.text("ua.plt");
    for (param, attr) in [
        ("ua.vnd", "browser.vendor"),
        ("scr.xy", "browser.screen.size"),
    ] {
        if let Some(v) = p.text(param) {
            ctx.attributes.push((attr.to_owned(), AttrValue::Str(v)));
        }
    }
}

/// `restiming` entries (relative to the time origin), the navigation entry included.
fn resources(
    p: &Params,
    lookup: &restiming::ServerTimingLookup,
    limits: &LimitsConfig,
    batch: &mut RumBatch,
) -> Vec<restiming::Entry> {
    let Some(json) = p.get("restiming") else {
        return Vec::new();
    };
    match restiming::decode(json, lookup, limits.max_resources_per_page_load + 1) {
        Ok(d) => {
            if d.bad > 0 {
                let detail = format!("`restiming`: {} entries could not be read", d.bad);
                reject(batch, Reason::InvalidItem, detail);
            }
            if d.over_cap > 0 {
                let detail = format!(
                    "`restiming`: {} entries beyond limits.max_resources_per_page_load",
                    d.over_cap
                );
                reject(batch, Reason::TooManyResources, detail);
            }
            d.entries
        }
        Err(e) => {
            reject(batch, Reason::InvalidJson, format!("`restiming`: {e}"));
            Vec::new()
        }
    }
}

fn page_load_events(p: &Params, origin: f64, entries: Vec<restiming::Entry>, batch: &mut RumBatch) {
    // NavigationTiming's `nt_*` are Unix epoch ms; the model wants them relative to the origin.
    let at = |name: &str| {
        p.num(name)
            .filter(|v| *v > 0.0)
            .map_or(0.0, |v| (v - origin).max(0.0))
    };
    let mut navigation_entry = None;
    let mut resources = Vec::with_capacity(entries.len());
    for e in entries {
        if e.is_navigation && navigation_entry.is_none() {
            navigation_entry = Some(e.resource);
        } else {
            resources.push(e.resource);
        }
    }
    let server = navigation_entry
        .as_ref()
        .and_then(|n| n.timing.server_trace);
    batch.context.server_trace = server;
    let load_end = at("nt_load_end");
    let timing = ResourceTimingPhases {
        start_time: 0.0,
        duration: if load_end > 0.0 {
            load_end
        } else {
            p.num("t_done").unwrap_or(0.0)
        },
        redirect_start: at("nt_red_st"),
        redirect_end: at("nt_red_end"),
        worker_start: at("nt_worker_start"),
        fetch_start: at("nt_fet_st"),
        domain_lookup_start: at("nt_dns_st"),
        domain_lookup_end: at("nt_dns_end"),
        connect_start: at("nt_con_st"),
        secure_connection_start: at("nt_ssl_st"),
        connect_end: at("nt_con_end"),
        request_start: at("nt_req_st"),
        response_start: at("nt_res_st"),
        response_end: at("nt_res_end"),
        transfer_size: p.num("nt_trn_size").map(|v| v as u64),
        encoded_body_size: p.num("nt_enc_size").map(|v| v as u64),
        decoded_body_size: p.num("nt_dec_size").map(|v| v as u64),
        next_hop_protocol: p.text("nt_protocol"),
        response_status: None,
        server_trace: server,
    };
    let navigation = NavigationTiming {
        navigation_type: p.get("nt_nav_type").map(|t| {
            match t {
                "0" => "navigate",
                "1" => "reload",
                "2" => "back_forward",
                _ => "other",
            }
            .to_owned()
        }),
        url: p.text("u"),
        unload_event_start: at("nt_unload_st"),
        unload_event_end: at("nt_unload_end"),
        dom_interactive: at("nt_domint"),
        dom_content_loaded_event_start: at("nt_domcontloaded_st"),
        dom_content_loaded_event_end: at("nt_domcontloaded_end"),
        dom_complete: at("nt_domcomp"),
        load_event_start: at("nt_load_st"),
        load_event_end: load_end,
        redirect_count: p.num("nt_red_cnt").map_or(0, |v| v as u32),
        first_paint: p.num("pt.fp"),
        first_contentful_paint: p.num("pt.fcp"),
        timing,
    };
    let ttfb = (navigation.timing.response_start > 0.0).then_some(navigation.timing.response_start);
    batch.events.push(RumEvent::PageLoad(PageLoad {
        navigation,
        resources,
    }));
    if let Some(lcp) = p.num("pt.lcp") {
        vital(batch, p, VitalName::Lcp, lcp, Some(lcp), p.text("pt.lcp.e"));
    }
    if let Some(fcp) = p.num("pt.fcp") {
        vital(batch, p, VitalName::Fcp, fcp, Some(fcp), None);
    }
    if let Some(ttfb) = ttfb {
        vital(batch, p, VitalName::Ttfb, ttfb, Some(ttfb), None);
    }
}

fn vital(
    batch: &mut RumBatch,
    p: &Params,
    name: VitalName,
    value: f64,
    time: Option<f64>,
    target: Option<String>,
) {
    if value < 0.0 {
        let detail = format!("`{}` is negative", name.as_str());
        reject(batch, Reason::InvalidNumber, detail);
        return;
    }
    let pid = p.get("pid").unwrap_or_default();
    batch.events.push(RumEvent::Vital(WebVital {
        name,
        value,
        delta: value,
        id: format!("boomerang-{pid}-{}", name.as_str()),
        rating: name.rate(value),
        navigation_type: None,
        time,
        target,
        attribution: Vec::new(),
        dropped_attributes: 0,
    }));
}

/// `http.errno` codes of AutoXHR that are no HTTP status.
fn xhr_error(errno: f64) -> Option<&'static str> {
    match errno as i64 {
        -999 => Some("abort"),
        -1001 => Some("timeout"),
        -998 => Some("network_error"),
        -997 => Some("open_exception"),
        _ => None,
    }
}

fn http_call(p: &Params, origin: f64, entries: &[restiming::Entry], batch: &mut RumBatch) {
    let Some(url) = p.text("u") else {
        reject(
            batch,
            Reason::MissingField,
            "xhr beacon without `u`".to_owned(),
        );
        return;
    };
    let (Some(start), Some(end)) = (p.num("rt.tstart"), p.num("rt.end")) else {
        reject(
            batch,
            Reason::MissingField,
            "xhr beacon without `rt.tstart`/`rt.end`".to_owned(),
        );
        return;
    };
    let entry = entries.iter().find(|e| e.resource.url == url);
    let errno = p.num("http.errno");
    batch.events.push(RumEvent::HttpCall(HttpCall {
        method: p.text("http.method").unwrap_or_else(|| "GET".to_owned()),
        url,
        status: errno
            .filter(|e| *e >= 100.0 && *e < 600.0)
            .map(|e| e as u16),
        start: start - origin,
        duration: (end - start).max(0.0),
        server_trace: entry.and_then(|e| e.resource.timing.server_trace),
        initiator: Some(
            match p.get("http.type") {
                Some("f") => "fetch",
                _ => "xmlhttprequest",
            }
            .to_owned(),
        ),
        error_type: errno.and_then(xhr_error).map(str::to_owned),
        timing: entry.map(|e| e.resource.timing.clone()),
        ..Default::default()
    }));
}

fn interaction(p: &Params, origin: f64, initiator: &str, batch: &mut RumBatch) {
    let start = p.num("rt.tstart").map_or(0.0, |s| s - origin);
    let end = p.num("rt.end").map_or(start, |e| e - origin);
    let kind = if initiator == "spa" {
        "spa_navigation"
    } else {
        "click"
    };
    let mut attributes = Vec::new();
    if let Some(u) = p.text("u") {
        attributes.push(("url.full".to_owned(), AttrValue::Str(u)));
    }
    batch.events.push(RumEvent::Interaction(Interaction {
        kind: kind.to_owned(),
        start,
        duration: (end - start).max(0.0),
        attributes,
        ..Default::default()
    }));
}

fn custom(p: &Params, origin: f64, initiator: &str, batch: &mut RumBatch) {
    let name: String = initiator.chars().take(64).collect();
    batch.events.push(RumEvent::Custom(CustomEvent {
        time: p.num("rt.tstart").map_or(0.0, |s| s - origin),
        name: format!("boomerang.{name}"),
        ..Default::default()
    }));
}

/// The Errors plugin's `via` codes.
fn via(code: f64) -> &'static str {
    match code as i64 {
        1 => "app",
        2 => "global_error_handler",
        3 => "network",
        4 => "console",
        5 => "event_handler",
        6 => "timeout",
        7 => "unhandled_rejection",
        8 => "reporting_api",
        _ => "unknown",
    }
}

/// `err`: a JSURL array of compressed errors. Returns the latest error time (epoch ms).
fn errors(value: &str, origin: f64, p: &Params, batch: &mut RumBatch) -> Option<f64> {
    let parsed = match jsurl::parse(value) {
        Ok(v) => v,
        Err(e) => {
            reject(batch, Reason::InvalidField, format!("`err`: {e}"));
            return None;
        }
    };
    let Some(items) = parsed.as_array() else {
        reject(
            batch,
            Reason::WrongShape,
            "`err` is not an array".to_owned(),
        );
        return None;
    };
    // Frames under the page's origin come without it (`wo`).
    let page_origin = batch
        .context
        .page_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let fallback = p.num("rt.tstart").unwrap_or(0.0);
    let mut latest = None;
    for (index, item) in items.iter().enumerate() {
        if !matches!(item, jsurl::Value::Obj(_)) {
            reject(
                batch,
                Reason::InvalidItem,
                format!("`err` item {index} is not an object"),
            );
            continue;
        }
        let epoch = item
            .get("d")
            .and_then(jsurl::Value::as_str)
            .and_then(|d| u64::from_str_radix(d, 36).ok())
            .filter(|d| *d < 1 << 50)
            .map_or(fallback, |d| d as f64);
        latest = latest.into_iter().chain([epoch]).reduce(f64::max);
        let error_type = item
            .get("t")
            .and_then(jsurl::Value::as_str)
            .unwrap_or("Error")
            .to_owned();
        let message = item
            .get("m")
            .and_then(jsurl::Value::as_str)
            .map(str::to_owned);
        let via_code = item.get("v").and_then(jsurl::Value::as_f64).unwrap_or(0.0);
        let mut stack = format!("{error_type}: {}", message.as_deref().unwrap_or_default());
        for frame in item
            .get("f")
            .and_then(jsurl::Value::as_array)
            .unwrap_or_default()
        {
            let file = match (frame.get("wo"), frame.get("w")) {
                (Some(wo), _) => format!("{page_origin}{}", wo.as_str().unwrap_or_default()),
                (None, Some(w)) => w.as_str().unwrap_or_default().to_owned(),
                _ => "<anonymous>".to_owned(),
            };
            let num = |k: &str| frame.get(k).and_then(jsurl::Value::as_f64).unwrap_or(0.0) as u64;
            let location = format!("{file}:{}:{}", num("l"), num("c"));
            match frame.get("f").and_then(jsurl::Value::as_str) {
                Some(f) => stack.push_str(&format!("\n    at {f} ({location})")),
                None => stack.push_str(&format!("\n    at {location}")),
            }
        }
        let mut attributes = vec![(
            "boomerang.error.via".to_owned(),
            AttrValue::Str(via(via_code).to_owned()),
        )];
        if let Some(n) = item.get("n").and_then(jsurl::Value::as_f64) {
            attributes.push(("boomerang.error.count".to_owned(), AttrValue::Int(n as i64)));
        }
        if let Some(code) = item.get("c").and_then(jsurl::Value::as_f64) {
            attributes.push((
                "boomerang.error.code".to_owned(),
                AttrValue::Int(code as i64),
            ));
        }
        batch.events.push(RumEvent::Error(ErrorEvent {
            time: epoch - origin,
            error_type: Some(error_type),
            message,
            stack: Some(stack),
            // Reported by the page itself (`BOOMR.plugins.Errors.send`, `console.error`).
            handled: matches!(via_code as i64, 1 | 4),
            active_span: None,
            attributes,
            dropped_attributes: 0,
        }));
    }
    latest
}
