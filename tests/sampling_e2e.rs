//! One sampling decision from browser to backend (docs/sampling.md), in Chromium: the loader,
//! served for an app with `sample_rate = 0.5`, flags each propagated call `-01` or `-00` as
//! the bridge decides the session, the bridge exports the CLIENT span of every `-01` call and
//! of no `-00` one, an unsampled session's error still arrives (marked), and `baggage` carries
//! `session.id` only when the page opts in and only to the origins that get `traceparent`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use common::browser::{serve, Browser};
use common::*;
use rum_bridge::process::sampling::in_sample;

/// A call as a backend saw it: path and query, `traceparent`, `baggage`.
#[derive(Clone, Debug)]
struct Call {
    uri: String,
    traceparent: Option<String>,
    baggage: Option<String>,
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// A backend on its own origin that records what reaches it and allows the trace headers.
async fn backend(calls: Calls) -> String {
    async fn handle(
        State(calls): State<Calls>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
    ) -> impl IntoResponse {
        let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        if method != Method::OPTIONS {
            calls.lock().unwrap().push(Call {
                uri: uri.to_string(),
                traceparent: header("traceparent"),
                baggage: header("baggage"),
            });
        }
        (
            [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-headers", "traceparent, baggage"),
            ],
            "ok",
        )
    }
    let router = axum::Router::new().fallback(handle).with_state(calls);
    format!("http://{}", serve(router).await)
}

/// Session ids chosen up front (the page stores one before the loader reads it), so the test
/// sees both decisions whatever the hash gives.
fn session_ids(n: usize) -> Vec<String> {
    (0..n as u128)
        .map(|i| {
            format!(
                "{:032x}",
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_backend_sees_the_sessions_decision() {
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", site.local_addr().unwrap());
    let api_calls = Calls::default();
    let other_calls = Calls::default();
    let api = backend(api_calls.clone()).await;
    let other = backend(other_calls.clone()).await;

    let sink = Sink::start().await;
    let rotel = Rotel::start(&sink).await;
    let config = format!(
        "[[apps]]\nname = \"shop\"\nkey = \"pk_s\"\nallowed_origins = [\"{origin}\"]\nsample_rate = 0.5\n\n{}",
        grpc_exporter_toml(rotel.grpc)
    );
    let bridge = Bridge::start(&config).await;

    // `?sid=…&bg=0|1`: a page that starts that session, calls the API (a data-propagate origin)
    // and another origin, then throws.
    let loader = bridge.url("/rum.js?key=pk_s");
    let page = move |Query(q): Query<HashMap<String, String>>| {
        let (sid, bg) = (q["sid"].clone(), q["bg"] == "1");
        let baggage = if bg { " data-baggage=\"session\"" } else { "" };
        let (api, other) = (api.clone(), other.clone());
        async move {
            Html(format!(
                "<!doctype html><html><head>\
                 <script>localStorage.rb_s = '{sid}.' + Date.now() + '.' + Date.now();</script>\
                 <script src=\"{loader}\" data-app=\"pk_s\" data-propagate=\"{api}/\"{baggage}></script>\
                 <script>addEventListener('load', () => setTimeout(async () => {{\
                   await fetch('{api}/call?sid={sid}');\
                   await fetch('{other}/other?sid={sid}');\
                   setTimeout(() => {{ window.done = 1; throw new Error('boom-{sid}'); }});\
                 }}));</script>\
                 </head><body><h1>Sampling</h1></body></html>"
            ))
        }
    };
    let router = axum::Router::new().route("/", get(page));
    tokio::spawn(async move { axum::serve(site, router).await.unwrap() });

    let ids = session_ids(12);
    let sampled: Vec<bool> = ids.iter().map(|id| in_sample(id, 0.5)).collect();
    assert!(
        sampled.contains(&true) && sampled.contains(&false),
        "{sampled:?}"
    );

    let browser = Browser::start().await;
    for (i, sid) in ids.iter().enumerate() {
        let bg = u8::from(i % 2 == 0);
        browser.goto(&format!("{origin}/?sid={sid}&bg={bg}")).await;
        browser
            .wait_for("the calls and the error", "window.done")
            .await;
        // Hidden, the page sends what the loader holds.
        browser.leave_page().await;
    }

    // Every session's error arrives, an unsampled one's marked as such.
    let errors = poll("every session's error at the collector", WAIT, || {
        let logs = sink.logs();
        let found: Vec<_> = ids
            .iter()
            .filter_map(|sid| {
                let needle = format!("boom-{sid}");
                logs.iter()
                    .find(|l| format!("{:?}", l.record).contains(&needle))
                    .cloned()
            })
            .collect();
        (found.len() == ids.len()).then_some(found)
    })
    .await;
    for ((error, sid), kept) in errors.iter().zip(&ids).zip(&sampled) {
        let mark = attr(&error.resource.attributes, "rum.session.sampled");
        let expected = if *kept {
            None
        } else {
            Some("false".to_owned())
        };
        assert_eq!(mark, expected, "{sid}");
    }

    let api_calls = api_calls.lock().unwrap().clone();
    let other_calls = other_calls.lock().unwrap().clone();
    assert_eq!(api_calls.len(), ids.len(), "{api_calls:?}");
    assert_eq!(other_calls.len(), ids.len(), "{other_calls:?}");
    // The sampled calls' CLIENT spans arrive...
    let mut client_spans = Vec::new();
    for (i, (sid, kept)) in ids.iter().zip(&sampled).enumerate() {
        let call = api_calls
            .iter()
            .find(|c| c.uri.ends_with(&format!("sid={sid}")))
            .unwrap_or_else(|| panic!("no API call of {sid}: {api_calls:?}"));
        let tp = call
            .traceparent
            .as_deref()
            .unwrap_or_else(|| panic!("no traceparent to the API: {api_calls:?}"));
        let flag = if *kept { "-01" } else { "-00" };
        assert!(tp.ends_with(flag), "{sid}: {tp}");
        let span_id = tp.split('-').nth(2).unwrap().to_owned();
        // Baggage only where opted in, with the session id.
        let baggage = (i % 2 == 0).then(|| format!("session.id={sid}"));
        assert_eq!(call.baggage, baggage, "{sid}");
        client_spans.push((span_id, *kept));
    }
    for span_id in client_spans
        .iter()
        .filter(|(_, kept)| *kept)
        .map(|(s, _)| s)
    {
        poll("each -01 call's CLIENT span at the collector", WAIT, || {
            sink.spans()
                .iter()
                .any(|s| hex(&s.span.span_id) == *span_id)
                .then_some(())
        })
        .await;
    }
    // ...and, with every session's last beacon in (the errors), no -00 call's span did.
    let spans = sink.spans();
    for span_id in client_spans
        .iter()
        .filter(|(_, kept)| !kept)
        .map(|(s, _)| s)
    {
        assert!(
            !spans.iter().any(|s| hex(&s.span.span_id) == *span_id),
            "the span of unsampled call {span_id} was exported"
        );
    }
    // Not a data-propagate origin: neither header.
    for call in &other_calls {
        assert_eq!(
            (&call.traceparent, &call.baggage),
            (&None, &None),
            "{call:?}"
        );
    }
    browser.close().await;
}
