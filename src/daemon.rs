//! Wiring: builds the exporters, the metrics aggregator, the processing rules and the
//! pipeline from the config, serves the ingest and admin listeners, and shuts
//! down in stages (stop accepting → flush metrics → drain exporters under a deadline).

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState, Metrics, Readiness};
use crate::config::{Config, Protocol};
use crate::convert::metrics::{bridge_resource, MetricsAggregator};
use crate::export::Exporters;
use crate::model::Reason;
use crate::pipeline::Ingest;
use crate::process::Processor;
use crate::receive::{self, EdgeState};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start exporters: {0}")]
    Export(#[from] crate::export::ExportError),
    #[error("cannot compile processing rules: {0}")]
    Process(#[from] crate::process::ProcessError),
    #[error("cannot start symbolication: {0}")]
    Sourcemaps(#[from] crate::process::symbolicate::SymbolicateError),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

struct ExportersReadiness(Exporters);

impl Readiness for ExportersReadiness {
    fn ready(&self) -> Result<(), String> {
        if self.0.is_full() {
            Err("export queue full".into())
        } else {
            Ok(())
        }
    }
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), RunError> {
    run_until(config, shutdown_signal()).await
}

/// Runs the daemon until `stop` completes (tests pass their own future).
pub async fn run_until(
    config: Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let processor = Processor::new(&config, &metrics)?;
    let exporters = Exporters::start(&config.exporters, metrics.clone())?;
    for e in &config.exporters {
        match e.protocol {
            Protocol::File => tracing::info!(
                exporter = %e.name,
                path = %e.path.as_deref().unwrap_or(std::path::Path::new("?")).display(),
                "writing OTLP-JSON lines (embedded default); set OTEL_EXPORTER_OTLP_ENDPOINT or [[exporters]] to export to a collector"
            ),
            p => tracing::info!(
                exporter = %e.name,
                endpoint = e.endpoint.as_deref().unwrap_or("(per-signal)"),
                protocol = ?p,
                "exporting over OTLP"
            ),
        }
    }
    let (flush_tx, flush_rx) = watch::channel(false);
    let aggregator = config.metrics.enabled.then(|| {
        let instance_id = config
            .metrics
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        Arc::new(MetricsAggregator::new(
            &config.metrics,
            bridge_resource(
                &instance_id,
                config
                    .resource_attributes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        ))
    });
    let flusher = aggregator.as_ref().map(|agg| {
        let exporters = exporters.clone();
        let metrics = metrics.clone();
        agg.clone().spawn_flusher(
            config.metrics.interval,
            move |payload| match exporters.submit(payload) {
                Ok(receipt) => {
                    // A disk buffer may still refuse it (full): counted like a full queue.
                    let metrics = metrics.clone();
                    tokio::spawn(async move {
                        if receipt.durable().await.is_err() {
                            metrics.reject(Reason::MetricsQueueFull);
                            tracing::warn!("disk buffer full: dropped one metrics flush");
                        }
                    });
                }
                Err(_) => {
                    metrics.reject(Reason::MetricsQueueFull);
                    tracing::warn!("export queue full: dropped one metrics flush");
                }
            },
            flush_rx,
        )
    });

    let shutting_down = Arc::new(AtomicBool::new(false));
    let ingest = Ingest::new(
        &config,
        processor,
        exporters.clone(),
        aggregator,
        metrics.clone(),
    )
    .with_symbolicator(Arc::new(crate::process::symbolicate::Symbolicator::new(
        &config.sourcemaps,
        metrics.clone(),
    )?));
    let edge = Arc::new(EdgeState::new(
        config.clone(),
        ingest,
        metrics.clone(),
        shutting_down.clone(),
    )?);
    let admin_state = AdminState {
        metrics: metrics.clone(),
        shutting_down: shutting_down.clone(),
        readiness: Arc::new(ExportersReadiness(exporters.clone())),
    };

    let listen = config.server.listen;
    let admin_listen = config.server.admin_listen;
    let ingest = TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: listen,
            what: "ingest",
            source,
        })?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: admin_listen,
            what: "admin",
            source,
        })?;
    tracing::info!(ingest = %ingest.local_addr()?, admin = %admin.local_addr()?, "rum-bridge listening");

    // Stage 1 trigger: the stop future flips `shutting_down` and stops both servers.
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let shutting_down = shutting_down.clone();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutdown requested: refusing new beacons, draining");
            shutting_down.store(true, Ordering::SeqCst);
            let _ = stop_tx.send(true);
        });
    }
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let admin_task = tokio::spawn(
        axum::serve(admin, admin::router(admin_state))
            .with_graceful_shutdown(wait(stop_rx.clone()))
            .into_future(),
    );
    axum::serve(
        ingest,
        receive::router(edge).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(wait(stop_rx))
    .await?;

    // Stage 2: a last metrics flush, then stage 3: drain the exporters under the deadline.
    let _ = flush_tx.send(true);
    if let Some(f) = flusher {
        let _ = f.await;
    }
    exporters.shutdown(config.server.shutdown_timeout).await;
    let _ = admin_task.await;
    tracing::info!("rum-bridge stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
