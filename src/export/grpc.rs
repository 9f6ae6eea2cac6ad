//! OTLP/gRPC transport: unary `Export` calls with the tonic clients from `opentelemetry-proto`.
//!
//! Channels connect lazily, so the daemon starts (and buffers, and answers browsers) while the
//! collector is still down; connection failures surface as `UNAVAILABLE` and are retried.
//! Headers become request metadata; gzip is negotiated per call when configured.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use hyper_util::client::legacy::connect::HttpConnector;

use super::batch::BatchData;
use super::retry::{classify_grpc_status, SendError};
use super::{tls, Ack, ExportError, Transport};
use crate::config::redact::mask_url;
use crate::config::{Compression, ExporterConfig};

/// Default OTLP/gRPC endpoint (`docs/otlp-mapping.md#exporter-environment-variables`).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4317";

/// Sends batches to an OTLP/gRPC receiver.
pub struct GrpcTransport {
    traces: TraceServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
    metrics: MetricsServiceClient<Channel>,
    metadata: MetadataMap,
    /// `metadata` plus what only metrics calls carry (a preset's, e.g. Honeycomb's dataset).
    metrics_metadata: MetadataMap,
}

/// A batch as the export request message of its signal.
pub enum GrpcRequest {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
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
        let mut traces = TraceServiceClient::new(channel_for(&config.traces_endpoint)?);
        let mut logs = LogsServiceClient::new(channel_for(&config.logs_endpoint)?);
        let mut metrics = MetricsServiceClient::new(channel_for(&config.metrics_endpoint)?);
        let encoding = match config.compression {
            Compression::None => None,
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
        };
        if let Some(encoding) = encoding {
            traces = traces.send_compressed(encoding).accept_compressed(encoding);
            logs = logs.send_compressed(encoding).accept_compressed(encoding);
            metrics = metrics
                .send_compressed(encoding)
                .accept_compressed(encoding);
        }
        let (metadata, metrics_metadata) = metadata(config)?;
        Ok(Self {
            traces,
            logs,
            metrics,
            metadata,
            metrics_metadata,
        })
    }

    fn request<M>(&self, message: M, metadata: &MetadataMap) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = metadata.clone();
        request
    }
}

impl Transport for GrpcTransport {
    type Prepared = GrpcRequest;

    fn prepare(&self, batch: BatchData) -> Result<GrpcRequest, SendError> {
        Ok(match batch {
            BatchData::Traces(resource_spans) => {
                GrpcRequest::Traces(ExportTraceServiceRequest { resource_spans })
            }
            BatchData::Logs(resource_logs) => {
                GrpcRequest::Logs(ExportLogsServiceRequest { resource_logs })
            }
            BatchData::Metrics(resource_metrics) => {
                GrpcRequest::Metrics(ExportMetricsServiceRequest { resource_metrics })
            }
        })
    }

    async fn send(&mut self, request: &GrpcRequest) -> Result<Ack, SendError> {
        // tonic consumes the message, so each attempt sends a copy.
        let partial = match request {
            GrpcRequest::Traces(message) => {
                let request = self.request(message.clone(), &self.metadata);
                self.traces
                    .export(request)
                    .await
                    .map(|r| r.into_inner().partial_success.map(Ack::from))
            }
            GrpcRequest::Logs(message) => {
                let request = self.request(message.clone(), &self.metadata);
                self.logs
                    .export(request)
                    .await
                    .map(|r| r.into_inner().partial_success.map(Ack::from))
            }
            GrpcRequest::Metrics(message) => {
                let request = self.request(message.clone(), &self.metrics_metadata);
                self.metrics
                    .export(request)
                    .await
                    .map(|r| r.into_inner().partial_success.map(Ack::from))
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
