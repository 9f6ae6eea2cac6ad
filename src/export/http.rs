//! OTLP/HTTP transport: POST of protobuf or JSON export requests with `reqwest`.
//!
//! HTTP/protobuf is the protocol vendors recommend (New Relic, Datadog's direct intake) and the
//! OpenTelemetry default; HTTP/JSON suits endpoints that only take JSON. URLs follow the exporter
//! spec (`docs/otlp-mapping.md#exporter-environment-variables`): `<endpoint>/v1/<signal>` from the base endpoint, per-signal endpoints
//! used as given. Bodies are encoded (and gzipped) once per batch and reused across retries.

use std::time::SystemTime;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use reqwest::Url;

use super::batch::BatchData;
use super::retry::{classify_http_status, parse_retry_after, HttpClass, SendError};
use super::{Ack, ExportError, Transport};
use crate::config::redact::{mask_url, mask_urls_in};
use crate::config::{Compression, ExporterConfig, Protocol};
use crate::handoff::Signal;

/// Default OTLP/HTTP endpoint (`docs/otlp-mapping.md#exporter-environment-variables`).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// Responses are read up to this size (OTLP's default client limit); the rest is ignored.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How much of an error response body goes into the log message.
const MAX_ERROR_DETAIL_CHARS: usize = 256;

const USER_AGENT: &str = concat!("rum-bridge/", env!("CARGO_PKG_VERSION"));

/// zstd's default level: most of the gain for little CPU.
const ZSTD_LEVEL: i32 = 3;

/// Sends batches to an OTLP/HTTP receiver.
pub struct HttpTransport {
    client: reqwest::Client,
    /// Headers of metrics requests only (a preset's, e.g. Honeycomb's dataset).
    metrics_headers: HeaderMap,
    /// Full URL per signal, indexed by [`Signal::index`].
    urls: [Url; 3],
    json: bool,
    compression: Compression,
}

/// An encoded (and possibly compressed) request body.
pub struct HttpRequest {
    signal: Signal,
    body: Bytes,
}

impl HttpTransport {
    pub fn new(config: &ExporterConfig) -> Result<Self, ExportError> {
        let urls = [
            signal_url(config, Signal::Traces, config.traces_endpoint.as_deref())?,
            signal_url(config, Signal::Logs, config.logs_endpoint.as_deref())?,
            signal_url(config, Signal::Metrics, config.metrics_endpoint.as_deref())?,
        ];
        let mut tls =
            super::tls::client_config(&config.tls).map_err(|source| ExportError::Tls {
                exporter: config.name.clone(),
                source,
            })?;
        tls.alpn_protocols = super::tls::HTTP_ALPN.map(<[u8]>::to_vec).to_vec();
        let (headers, metrics_headers) = header_maps(config)?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|source| ExportError::HttpClient {
                exporter: config.name.clone(),
                source,
            })?;
        Ok(Self {
            client,
            metrics_headers,
            urls,
            json: config.protocol == Protocol::HttpJson,
            compression: config.compression,
        })
    }

    fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "application/x-protobuf"
        }
    }
}

impl Transport for HttpTransport {
    type Prepared = HttpRequest;

    fn prepare(&self, batch: BatchData) -> Result<HttpRequest, SendError> {
        let (signal, body) = match batch {
            BatchData::Traces(resource_spans) => (
                Signal::Traces,
                encode(self.json, &ExportTraceServiceRequest { resource_spans })?,
            ),
            BatchData::Logs(resource_logs) => (
                Signal::Logs,
                encode(self.json, &ExportLogsServiceRequest { resource_logs })?,
            ),
            BatchData::Metrics(resource_metrics) => (
                Signal::Metrics,
                encode(self.json, &ExportMetricsServiceRequest { resource_metrics })?,
            ),
        };
        let body = match self.compression {
            Compression::None => body,
            Compression::Gzip => gzip(&body)?,
            Compression::Zstd => zstd::bulk::compress(&body, ZSTD_LEVEL)
                .map_err(|e| SendError::permanent(format!("cannot zstd-compress request: {e}")))?,
        };
        Ok(HttpRequest {
            signal,
            body: Bytes::from(body),
        })
    }

    async fn send(&mut self, request: &HttpRequest) -> Result<Ack, SendError> {
        let url = &self.urls[request.signal.index()];
        let mut builder = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, self.content_type())
            .body(request.body.clone());
        if request.signal == Signal::Metrics {
            builder = builder.headers(self.metrics_headers.clone());
        }
        match self.compression {
            Compression::None => {}
            Compression::Gzip => builder = builder.header(CONTENT_ENCODING, "gzip"),
            Compression::Zstd => builder = builder.header(CONTENT_ENCODING, "zstd"),
        }
        let mut response = builder.send().await.map_err(|error| {
            let message = format!("POST {url}: {}", error_chain(&error));
            if error.is_builder() {
                SendError::permanent(message)
            } else {
                // Connection refused, reset, timeout: no answer, so try again later.
                SendError::retryable(message, None)
            }
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let protobuf_body = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/x-protobuf"));
        let body = read_capped(&mut response).await;
        match classify_http_status(status.as_u16()) {
            HttpClass::Success => Ok(partial_success(request.signal, self.json, &body)),
            class => {
                let message = format!(
                    "POST {url}: HTTP {status}{}",
                    error_detail(protobuf_body, &body)
                );
                Err(match class {
                    HttpClass::Retryable => SendError::retryable(message, retry_after),
                    _ => SendError::permanent(message),
                })
            }
        }
    }
}

/// `<endpoint>/v1/<signal>` with a trailing slash ensured first, or the per-signal endpoint as is.
fn signal_url(
    config: &ExporterConfig,
    signal: Signal,
    per_signal: Option<&str>,
) -> Result<Url, ExportError> {
    let text = match per_signal {
        Some(url) => url.to_owned(),
        None => {
            let mut base = config
                .endpoint
                .as_deref()
                .unwrap_or(DEFAULT_ENDPOINT)
                .to_owned();
            if !base.ends_with('/') {
                base.push('/');
            }
            base.push_str("v1/");
            base.push_str(signal.as_str());
            base
        }
    };
    let invalid = |reason: String| ExportError::InvalidEndpoint {
        exporter: config.name.clone(),
        endpoint: mask_url(&text).into_owned(),
        reason,
    };
    let url = Url::parse(&text).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(invalid(format!("unsupported scheme {other:?}"))),
    }
}

/// The headers of every request (configured, then the preset's unless configured), and those
/// of metrics requests only. Values are marked sensitive (kept out of debug output).
fn header_maps(config: &ExporterConfig) -> Result<(HeaderMap, HeaderMap), ExportError> {
    let preset = super::preset_headers(config)?;
    let mut all = HeaderMap::with_capacity(config.headers.len() + preset.all.len());
    let mut metrics = HeaderMap::with_capacity(preset.metrics.len());
    let configured = config.headers.iter().map(|(n, v)| (n.as_str(), v));
    let from_preset = preset.all.iter().map(|(n, v)| (*n, v));
    for (target, entries) in [
        (&mut all, configured.chain(from_preset).collect::<Vec<_>>()),
        (
            &mut metrics,
            preset.metrics.iter().map(|(n, v)| (*n, v)).collect(),
        ),
    ] {
        for (name, value) in entries {
            let invalid = || ExportError::InvalidHeader {
                exporter: config.name.clone(),
                name: name.to_owned(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let mut value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            value.set_sensitive(true);
            // Configured headers come first and win.
            target.entry(name).or_insert(value);
        }
    }
    Ok((all, metrics))
}

fn encode<M: Message + serde::Serialize>(json: bool, request: &M) -> Result<Vec<u8>, SendError> {
    if json {
        serde_json::to_vec(request)
            .map_err(|e| SendError::permanent(format!("cannot encode OTLP/JSON: {e}")))
    } else {
        Ok(request.encode_to_vec())
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, SendError> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map_err(|e| SendError::permanent(format!("cannot gzip request: {e}")))
}

/// Reads the response body up to [`MAX_RESPONSE_BYTES`]; a broken body reads as what arrived.
async fn read_capped(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_RESPONSE_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_RESPONSE_BYTES {
            break;
        }
    }
    body
}

/// The `partial_success` of a 2xx response; empty or undecodable bodies mean full success.
fn partial_success(signal: Signal, json: bool, body: &[u8]) -> Ack {
    if body.is_empty() {
        return Ack::default();
    }
    let ack = if json {
        json_partial_success(signal, body)
    } else {
        match signal {
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(Ack::from),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(Ack::from),
            Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(Ack::from),
        }
    };
    ack.unwrap_or_default()
}

/// Reads `partialSuccess` from an OTLP/JSON response, accepting the rejected count as a number
/// or as a decimal string (OTLP/JSON writes 64-bit integers as strings).
fn json_partial_success(signal: Signal, body: &[u8]) -> Option<Ack> {
    let response: serde_json::Value = serde_json::from_slice(body).ok()?;
    let partial = response.get("partialSuccess")?;
    let key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Logs => "rejectedLogRecords",
        Signal::Metrics => "rejectedDataPoints",
    };
    let rejected = match partial.get(key) {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let message = partial.get("errorMessage").and_then(|m| m.as_str());
    Some(Ack {
        rejected: rejected.unwrap_or(0),
        message: message.unwrap_or_default().to_owned(),
    })
}

/// A short description of an error body: the `google.rpc.Status` message of a protobuf body,
/// or the text.
fn error_detail(protobuf: bool, body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let status_message = protobuf
        .then(|| tonic_types::Status::decode(body).ok())
        .flatten()
        .map(|status| status.message)
        .filter(|message| !message.is_empty());
    let text = status_message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text: String = text.trim().chars().take(MAX_ERROR_DETAIL_CHARS).collect();
    format!(": {text}")
}

/// `reqwest` errors hide the useful part (connection refused…) in their source chain; they
/// also quote the URL, whose credentials are masked.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    mask_urls_in(&text).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::export::batch::tests::spans_payload;
    use crate::export::retry::Disposition;
    use crate::export::test_support::exporter_config;
    use axum::body::Bytes as AxumBytes;
    use axum::extract::State;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A scripted response: status and headers.
    pub(crate) type Reply = (StatusCode, Vec<(&'static str, &'static str)>);

    /// What the test server saw and what it answers next.
    #[derive(Default)]
    pub(crate) struct Server {
        pub requests: Mutex<Vec<(AxumHeaders, AxumBytes)>>,
        /// Responses to give, in order; then 200.
        script: Mutex<Vec<Reply>>,
    }

    async fn handle(
        State(server): State<Arc<Server>>,
        headers: AxumHeaders,
        body: AxumBytes,
    ) -> axum::response::Response {
        server.requests.lock().unwrap().push((headers, body));
        let next = {
            let mut script = server.script.lock().unwrap();
            (!script.is_empty()).then(|| script.remove(0))
        };
        match next {
            Some((status, headers)) => {
                let mut response = (status, "try later").into_response();
                for (name, value) in headers {
                    response
                        .headers_mut()
                        .insert(name, HeaderValue::from_static(value));
                }
                response
            }
            None => (StatusCode::OK, Vec::new()).into_response(),
        }
    }

    pub(crate) async fn start_server(script: Vec<Reply>) -> (String, Arc<Server>) {
        let server = Arc::new(Server {
            script: Mutex::new(script),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/otlp/v1/traces", post(handle))
            .route("/custom/spans", post(handle))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/otlp"), server)
    }

    fn http_config(endpoint: &str) -> ExporterConfig {
        let mut config = exporter_config("collector", Protocol::HttpProtobuf);
        config.endpoint = Some(endpoint.to_owned());
        config.retry.initial_backoff = Duration::from_millis(1);
        config.retry.max_backoff = Duration::from_millis(5);
        config.timeout = Duration::from_secs(5);
        config
    }

    fn traces_batch(ids: std::ops::Range<u8>) -> BatchData {
        BatchData::Traces(spans_payload("shop", ids).spans)
    }

    #[test]
    fn endpoint_joining() {
        let mut config = exporter_config("c", Protocol::HttpProtobuf);
        config.endpoint = Some("http://c:4318/mycollector".into());
        let url = signal_url(&config, Signal::Traces, None).unwrap();
        assert_eq!(url.as_str(), "http://c:4318/mycollector/v1/traces");
        config.endpoint = Some("http://c:4318/mycollector/".into());
        let url = signal_url(&config, Signal::Logs, None).unwrap();
        assert_eq!(url.as_str(), "http://c:4318/mycollector/v1/logs");
        config.endpoint = None;
        let url = signal_url(&config, Signal::Metrics, None).unwrap();
        assert_eq!(url.as_str(), "http://localhost:4318/v1/metrics");
        let url = signal_url(&config, Signal::Traces, Some("http://c:4318")).unwrap();
        assert_eq!(
            url.as_str(),
            "http://c:4318/",
            "per-signal used as is, empty path is /"
        );
        let url = signal_url(&config, Signal::Traces, Some("http://c/api/spans")).unwrap();
        assert_eq!(url.as_str(), "http://c/api/spans");
    }

    #[test]
    fn bad_config_is_rejected() {
        let mut config = exporter_config("c", Protocol::HttpProtobuf);
        config.endpoint = Some("not a url".into());
        assert!(matches!(
            HttpTransport::new(&config),
            Err(ExportError::InvalidEndpoint { .. })
        ));
        config.endpoint = Some("ftp://otlp.nr-data.net".into());
        assert!(matches!(
            HttpTransport::new(&config),
            Err(ExportError::InvalidEndpoint { .. })
        ));
        config.endpoint = Some("https://otlp.nr-data.net".into());
        assert!(HttpTransport::new(&config).is_ok(), "TLS is built in");
        config.endpoint = None;
        config
            .headers
            .insert("api-key".into(), "line\nbreak".into());
        let error = HttpTransport::new(&config).err().expect("bad header value");
        assert!(matches!(error, ExportError::InvalidHeader { .. }));
        assert!(
            !error.to_string().contains("break"),
            "header values are never shown"
        );
    }

    #[tokio::test]
    async fn retries_503_with_retry_after_then_succeeds() {
        let (endpoint, server) = start_server(vec![(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![("retry-after", "0")],
        )])
        .await;
        let mut config = http_config(&endpoint);
        config.headers.insert("api-key".into(), "secret".into());
        let mut transport = HttpTransport::new(&config).unwrap();
        let request = transport.prepare(traces_batch(0..3)).unwrap();

        let first = transport.send(&request).await.expect_err("503 first");
        assert_eq!(
            first.disposition,
            Disposition::Retryable {
                after: Some(Duration::ZERO)
            }
        );
        let ack = transport.send(&request).await.expect("then 200");
        assert_eq!(ack, Ack::default());

        let requests = server.requests.lock().unwrap();
        assert_eq!(requests.len(), 2);
        let (headers, body) = &requests[1];
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(headers["api-key"], "secret");
        let decoded = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
        assert_eq!(decoded.resource_spans, spans_payload("shop", 0..3).spans);
    }

    #[tokio::test]
    async fn status_400_is_permanent() {
        let (endpoint, _server) = start_server(vec![(StatusCode::BAD_REQUEST, vec![])]).await;
        let mut transport = HttpTransport::new(&http_config(&endpoint)).unwrap();
        let request = transport.prepare(traces_batch(0..1)).unwrap();
        let error = transport.send(&request).await.expect_err("400");
        assert_eq!(error.disposition, Disposition::Permanent);
        assert!(error.message.contains("400"), "{}", error.message);
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut transport = HttpTransport::new(&http_config(&format!("http://{addr}"))).unwrap();
        let request = transport.prepare(traces_batch(0..1)).unwrap();
        let error = transport.send(&request).await.expect_err("nobody listens");
        assert!(
            matches!(error.disposition, Disposition::Retryable { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn gzip_and_json_bodies() {
        let (endpoint, server) = start_server(vec![]).await;
        let mut config = http_config(&endpoint);
        config.compression = Compression::Gzip;
        config.protocol = Protocol::HttpJson;
        let mut transport = HttpTransport::new(&config).unwrap();
        let request = transport.prepare(traces_batch(0..2)).unwrap();
        transport.send(&request).await.unwrap();

        let requests = server.requests.lock().unwrap();
        let (headers, body) = &requests[0];
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body.as_ref()), &mut json)
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let span = &value["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["spanId"], "0101010101010101");
    }

    #[tokio::test]
    async fn per_signal_endpoint_and_partial_success() {
        let (endpoint, server) = start_server(vec![]).await;
        let mut config = http_config("http://127.0.0.1:1");
        config.traces_endpoint = Some(endpoint.replace("/otlp", "/custom/spans"));
        let mut transport = HttpTransport::new(&config).unwrap();
        let request = transport.prepare(traces_batch(0..1)).unwrap();
        transport.send(&request).await.unwrap();
        assert_eq!(server.requests.lock().unwrap().len(), 1);

        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let ack = partial_success(Signal::Traces, false, &body);
        assert_eq!(
            ack,
            Ack {
                rejected: 2,
                message: "too old".into()
            }
        );
        assert_eq!(
            partial_success(Signal::Traces, false, b"\xff\xff"),
            Ack::default()
        );
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"bad"}}"#;
        assert_eq!(
            partial_success(Signal::Logs, true, json),
            Ack {
                rejected: 3,
                message: "bad".into()
            }
        );
        assert_eq!(partial_success(Signal::Logs, true, b"{}"), Ack::default());
    }

    #[test]
    fn error_details_prefer_the_status_message() {
        let status = tonic_types::Status {
            code: 3,
            message: "span 7 has no name".into(),
            details: vec![],
        };
        assert_eq!(
            error_detail(true, &status.encode_to_vec()),
            ": span 7 has no name"
        );
        assert_eq!(
            error_detail(false, b" quota exceeded\n"),
            ": quota exceeded"
        );
        assert_eq!(error_detail(false, b""), "");
        let long = "x".repeat(1000);
        assert_eq!(
            error_detail(false, long.as_bytes()).len(),
            2 + MAX_ERROR_DETAIL_CHARS
        );
    }
}
