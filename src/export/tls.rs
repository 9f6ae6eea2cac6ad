//! TLS for `https://` exporters: one rustls client configuration, built from `[exporters.tls]`,
//! used by both the OTLP/HTTP client (reqwest) and the OTLP/gRPC channel (tonic, through a
//! hyper-rustls connector), so the options mean the same for both.
//!
//! Server certificates are verified against the bundled Mozilla roots (`webpki-roots`: no system
//! store needed, the same everywhere), or against `ca_file` alone when set. `server_name` is the
//! name the certificate must carry instead of the endpoint's host (an endpoint given by IP
//! address, a collector behind a load balancer). `cert_file` and `key_file` present a client
//! certificate (mutual TLS). `insecure_skip_verify` accepts any server certificate: for tests
//! only, and logged loudly. The crypto is `ring`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsConfig;

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("tls.cert_file and tls.key_file must be set together")]
    HalfClientIdentity,
    #[error("invalid tls.server_name {0:?}")]
    ServerName(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("{0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// Makes ring the process's default rustls provider (if none is), for HTTP clients built
/// without a configuration of ours.
pub(crate) fn install_default_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// ALPN for OTLP/HTTP: HTTP/2 when the server offers it, else HTTP/1.1.
pub(crate) const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The client configuration `tls` describes, with no ALPN protocols set.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer { provider }))
    } else {
        let roots = match &tls.ca_file {
            Some(path) => read_roots(path)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()?;
        match &tls.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::ServerName(name.clone()))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NamedServer {
                        inner: webpki,
                        name,
                    }))
            }
            None => builder.with_webpki_verifier(webpki),
        }
    };
    Ok(match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Read {
                path: key.clone(),
                source,
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::HalfClientIdentity),
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(read_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path)? {
        roots.add(certificate)?;
    }
    Ok(roots)
}

/// Verifies the server's certificate for a fixed name (`tls.server_name`) instead of the
/// endpoint's host.
#[derive(Debug)]
struct NamedServer {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _endpoint_host: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `tls.insecure_skip_verify`: any certificate is accepted (the handshake signatures are still
/// checked, so the connection is encrypted, but to whom is unknown).
#[derive(Debug)]
struct AcceptAnyServer {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::server::WebPkiClientVerifier;

    use super::*;
    use crate::config::{ExporterConfig, Protocol};
    use crate::export::batch::tests::spans_payload;
    use crate::export::batch::BatchData;
    use crate::export::grpc::tests::Collector;
    use crate::export::grpc::GrpcTransport;
    use crate::export::http::HttpTransport;
    use crate::export::test_support::exporter_config;
    use crate::export::Transport;

    /// A test CA, a server certificate for `collector.test` and a client certificate, the
    /// client side written as PEM files.
    struct Pki {
        dir: tempfile::TempDir,
        ca: CertificateDer<'static>,
        server_chain: Vec<CertificateDer<'static>>,
        server_key: PrivateKeyDer<'static>,
    }

    impl Pki {
        fn new() -> Self {
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
            let leaf = |name: &str| {
                let key = KeyPair::generate().unwrap();
                let cert = CertificateParams::new(vec![name.to_owned()])
                    .unwrap()
                    .signed_by(&key, &ca)
                    .unwrap();
                (cert, key)
            };
            let (server_cert, server_key) = leaf("collector.test");
            let (client_cert, client_key) = leaf("bridge.test");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
            std::fs::write(dir.path().join("client.pem"), client_cert.pem()).unwrap();
            std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
            Pki {
                dir,
                ca: ca.der().clone(),
                server_chain: vec![server_cert.der().clone()],
                server_key: PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
            }
        }

        fn file(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// The server side; client certificates signed by the CA required when `mutual`.
        fn server_config(&self, mutual: bool) -> rustls::ServerConfig {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = if mutual {
                let mut roots = RootCertStore::empty();
                roots.add(self.ca.clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            } else {
                builder.with_no_client_auth()
            };
            let mut config = builder
                .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
                .unwrap();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            config
        }
    }

    /// Serves `router` over TLS on 127.0.0.1 (HTTP/1.1 and HTTP/2).
    async fn serve_tls(config: rustls::ServerConfig, router: axum::Router) -> SocketAddr {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, router) = (acceptor.clone(), router.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                        .await;
                });
            }
        });
        addr
    }

    /// An OTLP/HTTP traces endpoint over TLS counting the requests it accepted.
    async fn https_collector(config: rustls::ServerConfig) -> (String, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let router = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { axum::http::StatusCode::OK }
            }),
        );
        let addr = serve_tls(config, router).await;
        (format!("https://127.0.0.1:{}", addr.port()), count)
    }

    fn http_config(endpoint: &str, tls: TlsConfig) -> ExporterConfig {
        let mut config = exporter_config("tls", Protocol::HttpProtobuf);
        config.endpoint = Some(endpoint.to_owned());
        config.timeout = std::time::Duration::from_secs(5);
        config.tls = tls;
        config
    }

    async fn http_export(config: &ExporterConfig) -> Result<(), String> {
        let mut transport = HttpTransport::new(config).map_err(|e| e.to_string())?;
        let request = transport
            .prepare(BatchData::Traces(spans_payload("shop", 0..2).spans))
            .unwrap();
        transport
            .send(&request)
            .await
            .map(drop)
            .map_err(|e| e.message)
    }

    #[tokio::test]
    async fn the_server_certificate_is_verified() {
        let pki = Pki::new();
        let (endpoint, accepted) = https_collector(pki.server_config(false)).await;
        let with_ca = TlsConfig {
            ca_file: Some(pki.file("ca.pem")),
            ..TlsConfig::default()
        };

        let error = http_export(&http_config(&endpoint, TlsConfig::default()))
            .await
            .expect_err("the bundled roots do not know the test CA");
        assert!(error.contains("certificate"), "{error}");
        let error = http_export(&http_config(&endpoint, with_ca.clone()))
            .await
            .expect_err("the certificate is for collector.test, not 127.0.0.1");
        assert!(error.contains("certificate"), "{error}");
        let named = TlsConfig {
            server_name: Some("collector.test".into()),
            ..with_ca
        };
        http_export(&http_config(&endpoint, named)).await.unwrap();
        let insecure = TlsConfig {
            insecure_skip_verify: true,
            ..TlsConfig::default()
        };
        http_export(&http_config(&endpoint, insecure))
            .await
            .unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented_for_mutual_tls() {
        let pki = Pki::new();
        let (endpoint, accepted) = https_collector(pki.server_config(true)).await;
        let server_only = TlsConfig {
            ca_file: Some(pki.file("ca.pem")),
            server_name: Some("collector.test".into()),
            ..TlsConfig::default()
        };
        http_export(&http_config(&endpoint, server_only.clone()))
            .await
            .expect_err("the server requires a client certificate");
        let mutual = TlsConfig {
            cert_file: Some(pki.file("client.pem")),
            key_file: Some(pki.file("client.key")),
            ..server_only
        };
        http_export(&http_config(&endpoint, mutual)).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn grpc_export_over_tls() {
        let pki = Pki::new();
        let collector = Arc::new(Collector::default());
        let router = axum::Router::new().route_service(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            TraceServiceServer::from_arc(Arc::clone(&collector)),
        );
        let addr = serve_tls(pki.server_config(true), router).await;
        let mut config = exporter_config("tls", Protocol::Grpc);
        config.endpoint = Some(format!("https://{addr}"));
        config.timeout = std::time::Duration::from_secs(5);
        config.tls = TlsConfig {
            ca_file: Some(pki.file("ca.pem")),
            cert_file: Some(pki.file("client.pem")),
            key_file: Some(pki.file("client.key")),
            server_name: Some("collector.test".into()),
            insecure_skip_verify: false,
        };
        let mut transport = GrpcTransport::new(&config).unwrap();
        let request = transport
            .prepare(BatchData::Traces(spans_payload("shop", 0..3).spans))
            .unwrap();
        transport.send(&request).await.unwrap();
        let requests = collector.requests.lock().unwrap();
        assert_eq!(
            requests[0].1.resource_spans,
            spans_payload("shop", 0..3).spans
        );
    }

    #[test]
    fn bad_files_are_reported() {
        let pki = Pki::new();
        let missing = TlsConfig {
            ca_file: Some(pki.file("missing.pem")),
            ..TlsConfig::default()
        };
        assert!(matches!(
            client_config(&missing),
            Err(TlsError::Read { .. })
        ));
        std::fs::write(pki.file("empty.pem"), "no pem here").unwrap();
        let empty = TlsConfig {
            ca_file: Some(pki.file("empty.pem")),
            ..TlsConfig::default()
        };
        assert!(matches!(
            client_config(&empty),
            Err(TlsError::NoCertificate { .. })
        ));
        let half = TlsConfig {
            cert_file: Some(pki.file("client.pem")),
            ..TlsConfig::default()
        };
        assert!(matches!(
            client_config(&half),
            Err(TlsError::HalfClientIdentity)
        ));
    }
}
