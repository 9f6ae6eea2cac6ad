//! OTLP/gRPC transport: unary `Export` calls over a tonic channel.
//!
//! A batch is encoded to protobuf once, when it is prepared; every attempt (retries included)
//! sends those bytes through a pass-through codec, so a retry costs a copy of the bytes, never
//! a clone and re-encoding of the message tree. Responses decode as the OTLP response types.
//! Channels connect lazily, so the daemon starts (and buffers, and answers browsers) while the
//! collector is still down; connection failures surface as `UNAVAILABLE` and are retried.
//! Headers become request metadata; gzip is negotiated per call when configured.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
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
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use hyper_util::client::legacy::connect::HttpConnector;

use super::batch::BatchData;
use super::retry::{classify_grpc_status, SendError};
use super::{tls, Ack, ExportError, Transport};
use crate::config::redact::mask_url;
use crate::config::{Compression, ExporterConfig};

/// Default OTLP/gRPC endpoint (`docs/otlp-mapping.md#exporter-environment-variables`).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4317";

const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Sends batches to an OTLP/gRPC receiver.
pub struct GrpcTransport {
    traces: tonic::client::Grpc<Channel>,
    logs: tonic::client::Grpc<Channel>,
    metrics: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    /// `metadata` plus what only metrics calls carry (a preset's, e.g. Honeycomb's dataset).
    metrics_metadata: MetadataMap,
}

/// A batch as the encoded export request of its signal.
pub struct GrpcRequest {
    signal: GrpcSignal,
    /// The protobuf encoding of the `Export*ServiceRequest`.
    body: Bytes,
}

#[derive(Clone, Copy)]
enum GrpcSignal {
    Traces,
    Logs,
    Metrics,
}

impl GrpcTransport {
    /// Must run inside a tokio runtime (the lazy channel spawns its worker).
    pub fn new(config: &ExporterConfig) -> Result<Self, ExportError> {
        let base = config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let tls = tls::client_config(&config.tls).map_err(|source| ExportError::Tls {
            exporter: config.name.clone(),
            source,
        })?;
        let base_channel = channel(config, base, &tls)?;
        // Per-signal endpoints get their own channel; the rest share the base one.
        let channel_for = |per_signal: &Option<String>| match per_signal.as_deref() {
            Some(endpoint) if endpoint != base => channel(config, endpoint, &tls),
            _ => Ok(base_channel.clone()),
        };
        let encoding = match config.compression {
            Compression::None => None,
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
        };
        let client = |channel: Channel| {
            let client = tonic::client::Grpc::new(channel);
            match encoding {
                Some(encoding) => client.send_compressed(encoding).accept_compressed(encoding),
                None => client,
            }
        };
        let (metadata, metrics_metadata) = metadata(config)?;
        Ok(Self {
            traces: client(channel_for(&config.traces_endpoint)?),
            logs: client(channel_for(&config.logs_endpoint)?),
            metrics: client(channel_for(&config.metrics_endpoint)?),
            metadata,
            metrics_metadata,
        })
    }
}

impl Transport for GrpcTransport {
    type Prepared = GrpcRequest;

    fn prepare(&self, batch: BatchData) -> Result<GrpcRequest, SendError> {
        let (signal, body) = match batch {
            BatchData::Traces(resource_spans) => (
                GrpcSignal::Traces,
                ExportTraceServiceRequest { resource_spans }.encode_to_vec(),
            ),
            BatchData::Logs(resource_logs) => (
                GrpcSignal::Logs,
                ExportLogsServiceRequest { resource_logs }.encode_to_vec(),
            ),
            BatchData::Metrics(resource_metrics) => (
                GrpcSignal::Metrics,
                ExportMetricsServiceRequest { resource_metrics }.encode_to_vec(),
            ),
        };
        Ok(GrpcRequest {
            signal,
            body: Bytes::from(body),
        })
    }

    async fn send(&mut self, request: &GrpcRequest) -> Result<Ack, SendError> {
        let partial = match request.signal {
            GrpcSignal::Traces => {
                let message = call(&self.metadata, request);
                export::<ExportTraceServiceResponse>(&mut self.traces, message, TRACES_PATH)
                    .await
                    .map(|r| r.partial_success.map(Ack::from))
            }
            GrpcSignal::Logs => {
                let message = call(&self.metadata, request);
                export::<ExportLogsServiceResponse>(&mut self.logs, message, LOGS_PATH)
                    .await
                    .map(|r| r.partial_success.map(Ack::from))
            }
            GrpcSignal::Metrics => {
                let message = call(&self.metrics_metadata, request);
                export::<ExportMetricsServiceResponse>(&mut self.metrics, message, METRICS_PATH)
                    .await
                    .map(|r| r.partial_success.map(Ack::from))
            }
        };
        match partial {
            Ok(ack) => Ok(ack.unwrap_or_default()),
            Err(status) => Err(SendError {
                disposition: classify_grpc_status(&status),
                message: format!("gRPC {:?}: {}", status.code(), status.message()),
            }),
        }
    }
}

/// One attempt's request: the encoded bytes (a reference-counted handle) and the metadata.
fn call(metadata: &MetadataMap, request: &GrpcRequest) -> tonic::Request<Bytes> {
    let mut call = tonic::Request::new(request.body.clone());
    *call.metadata_mut() = metadata.clone();
    call
}

/// One unary `Export` call at `path` with the pre-encoded request.
async fn export<R: Message + Default + Send + 'static>(
    client: &mut tonic::client::Grpc<Channel>,
    request: tonic::Request<Bytes>,
    path: &'static str,
) -> Result<R, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
    let path = http::uri::PathAndQuery::from_static(path);
    client
        .unary(request, path, PreEncoded::<R>(PhantomData))
        .await
        .map(tonic::Response::into_inner)
}

/// A codec that writes already-encoded protobuf bytes and decodes the response as `R`.
struct PreEncoded<R>(PhantomData<fn() -> R>);

impl<R: Message + Default + Send + 'static> Codec for PreEncoded<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = BytesEncoder;
    type Decoder = ProtoDecoder<R>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> ProtoDecoder<R> {
        ProtoDecoder(PhantomData)
    }
}

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

struct ProtoDecoder<R>(PhantomData<fn() -> R>);

impl<R: Message + Default> Decoder for ProtoDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        R::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("cannot decode the export response: {e}")))
    }
}

/// A lazily connecting channel to `endpoint`, with the exporter's per-call timeout; `https`
/// endpoints go through rustls with `tls`.
fn channel(
    config: &ExporterConfig,
    endpoint: &str,
    tls: &rustls::ClientConfig,
) -> Result<Channel, ExportError> {
    let invalid = |reason: String| ExportError::InvalidEndpoint {
        exporter: config.name.clone(),
        endpoint: mask_url(endpoint).into_owned(),
        reason,
    };
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    let https = match uri.scheme_str() {
        _ if uri.host().is_none() => return Err(invalid("expected http(s)://host:port".into())),
        Some("http") => false,
        Some("https") => true,
        _ => return Err(invalid("expected http(s)://host:port".into())),
    };
    let endpoint = Endpoint::from(uri)
        .timeout(config.timeout)
        .connect_timeout(config.timeout);
    if !https {
        return Ok(endpoint.connect_lazy());
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_only()
        .enable_http2()
        .wrap_connector(tcp);
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// The metadata of every call (configured headers, then the preset's unless configured), and
/// that of metrics calls.
fn metadata(config: &ExporterConfig) -> Result<(MetadataMap, MetadataMap), ExportError> {
    let preset = super::preset_headers(config)?;
    let configured = config.headers.iter().map(|(n, v)| (n.as_str(), v));
    let from_preset = preset.all.iter().map(|(n, v)| (*n, v));
    let mut all = MetadataMap::with_capacity(config.headers.len() + preset.all.len());
    insert_metadata(config, &mut all, configured.chain(from_preset))?;
    let mut metrics = all.clone();
    insert_metadata(
        config,
        &mut metrics,
        preset.metrics.iter().map(|(n, v)| (*n, v)),
    )?;
    Ok((all, metrics))
}

fn insert_metadata<'a>(
    config: &ExporterConfig,
    metadata: &mut MetadataMap,
    entries: impl Iterator<Item = (&'a str, &'a String)>,
) -> Result<(), ExportError> {
    for (name, value) in entries {
        let invalid = || ExportError::InvalidHeader {
            exporter: config.name.clone(),
            name: name.to_owned(),
        };
        // gRPC metadata keys are lowercase; HTTP-style names are accepted as written.
        let key =
            MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| invalid())?;
        let value = MetadataValue::try_from(value.as_str()).map_err(|_| invalid())?;
        // Configured headers come first and win.
        if !metadata.contains_key(&key) {
            metadata.insert(key, value);
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Protocol;
    use crate::export::batch::tests::spans_payload;
    use crate::export::retry::Disposition;
    use crate::export::test_support::exporter_config;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A TraceService that records requests and fails the first `failures` calls.
    #[derive(Default)]
    pub(crate) struct Collector {
        pub requests: Mutex<Vec<(MetadataMap, ExportTraceServiceRequest)>>,
        pub failures: Mutex<Vec<tonic::Status>>,
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let (metadata, _, message) = request.into_parts();
            self.requests.lock().unwrap().push((metadata, message));
            let failure = {
                let mut failures = self.failures.lock().unwrap();
                (!failures.is_empty()).then(|| failures.remove(0))
            };
            match failure {
                Some(status) => Err(status),
                None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            }
        }
    }

    /// Serves `collector` on 127.0.0.1:0; returns the endpoint.
    pub(crate) async fn start_collector(collector: Arc<Collector>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service =
            TraceServiceServer::from_arc(collector).accept_compressed(CompressionEncoding::Gzip);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{addr}")
    }

    pub(crate) fn grpc_config(endpoint: &str) -> ExporterConfig {
        let mut config = exporter_config("collector", Protocol::Grpc);
        config.endpoint = Some(endpoint.to_owned());
        config.timeout = Duration::from_secs(5);
        config
    }

    #[tokio::test]
    async fn exports_spans_with_metadata_and_gzip() {
        let collector = Arc::new(Collector::default());
        let endpoint = start_collector(collector.clone()).await;
        let mut config = grpc_config(&endpoint);
        config.compression = Compression::Gzip;
        config
            .headers
            .insert("Authorization".into(), "Bearer t0k3n".into());
        let mut transport = GrpcTransport::new(&config).unwrap();
        let batch = BatchData::Traces(spans_payload("shop", 0..3).spans);
        let request = transport.prepare(batch).unwrap();
        assert_eq!(transport.send(&request).await.unwrap(), Ack::default());

        let requests = collector.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        let (metadata, message) = &requests[0];
        assert_eq!(message.resource_spans, spans_payload("shop", 0..3).spans);
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer t0k3n");
        assert_eq!(metadata.get("grpc-encoding").unwrap(), "gzip");
    }

    #[tokio::test]
    async fn unavailable_is_retryable_then_ok() {
        let collector = Arc::new(Collector::default());
        collector
            .failures
            .lock()
            .unwrap()
            .push(tonic::Status::unavailable("warming up"));
        let endpoint = start_collector(collector.clone()).await;
        let mut transport = GrpcTransport::new(&grpc_config(&endpoint)).unwrap();
        let request = transport
            .prepare(BatchData::Traces(spans_payload("shop", 0..1).spans))
            .unwrap();
        let error = transport
            .send(&request)
            .await
            .expect_err("UNAVAILABLE first");
        assert_eq!(error.disposition, Disposition::Retryable { after: None });
        transport.send(&request).await.expect("then OK");
        assert_eq!(collector.requests.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn starts_while_collector_is_down() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut transport = GrpcTransport::new(&grpc_config(&format!("http://{addr}")))
            .expect("lazy channel: no connection at start");
        let request = transport
            .prepare(BatchData::Traces(spans_payload("shop", 0..1).spans))
            .unwrap();
        let error = transport.send(&request).await.expect_err("nobody listens");
        assert!(
            matches!(error.disposition, Disposition::Retryable { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_connection_broken_mid_call_is_retryable() {
        // Accepts, reads the start of the call, then drops the connection: no answer at all.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                drop(socket);
            }
        });
        let mut transport = GrpcTransport::new(&grpc_config(&format!("http://{addr}"))).unwrap();
        let request = transport
            .prepare(BatchData::Traces(spans_payload("shop", 0..1).spans))
            .unwrap();
        let error = transport.send(&request).await.expect_err("no answer");
        assert!(
            matches!(error.disposition, Disposition::Retryable { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn bad_endpoints_are_rejected() {
        for endpoint in ["localhost:4317", "ftp://collector:4317", "http://"] {
            let config = grpc_config(endpoint);
            assert!(
                matches!(
                    GrpcTransport::new(&config),
                    Err(ExportError::InvalidEndpoint { .. })
                ),
                "{endpoint}"
            );
        }
    }
}
