//! Wiring: builds the exporters, the metrics aggregator, the processing rules and the
//! pipeline from the config, serves the ingest and admin listeners with bounded connections
//! ([`serve`]), and shuts down in stages under one deadline, `server.shutdown_timeout` from
//! the signal: close the ingest listener and its connections (within `server.shutdown_grace`)
//! → flush metrics → drain the exporters in the time left → close the admin listener.

mod fd_limit;
mod serve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::{self, AdminState, Metrics, Readiness};
use crate::config::redact::mask_url;
use crate::config::{Config, Protocol};
use crate::convert::metrics::{bridge_resource, MetricsAggregator};
use crate::export::Exporters;
use crate::handoff::Signal;
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
                endpoint = %e
                    .endpoint
                    .as_deref()
                    .map_or("(per-signal)".into(), mask_url),
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
    let rum_exposition = Arc::new(crate::admin::rum::RumExposition::default());
    let flusher = aggregator.as_ref().map(|agg| {
        let exporters = exporters.clone();
        let metrics = metrics.clone();
        let rum_exposition = rum_exposition.clone();
        agg.clone().spawn_flusher(
            config.metrics.interval,
            move |payload| {
                // The admin port's /metrics/rum sees every flush, exported or not.
                rum_exposition.observe(&payload.metrics);
                match exporters.submit(payload) {
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
        rum: rum_exposition,
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
    let max_connections = fd_limit::ingest_cap(config.server.max_connections);
    tracing::info!(ingest = %ingest.local_addr()?, admin = %admin.local_addr()?, "rum-bridge listening");
    let ingest = serve::Served::start(
        ingest,
        receive::router(edge),
        serve::Bounds::ingest(&config.server, max_connections),
        Some(metrics.clone()),
    );
    let admin = serve::Served::start(
        admin,
        admin::router(admin_state),
        serve::Bounds::admin(&config.server),
        None,
    );

    stop.await;
    // One deadline for the whole shutdown, from the signal.
    let deadline = Instant::now() + config.server.shutdown_timeout;
    tracing::info!("shutdown requested: refusing new beacons, draining");
    shutting_down.store(true, Ordering::SeqCst);
    let before = ExportTotals::read(&metrics, &config);

    // Stage 1: no new connections; open ones finish their request within the grace period.
    ingest.shutdown(config.server.grace()).await;
    // Stage 2: a last metrics flush, then stage 3: drain the exporters in the time left.
    let _ = flush_tx.send(true);
    if let Some(f) = flusher {
        let _ = f.await;
    }
    let drained = exporters
        .shutdown(deadline.saturating_duration_since(Instant::now()))
        .await;
    // The admin listener answered (`/readyz`: shutting down) until now.
    admin.shutdown(std::time::Duration::ZERO).await;

    let after = ExportTotals::read(&metrics, &config);
    let delivered = after.exported - before.exported;
    let dropped = after.dropped_at_shutdown - before.dropped_at_shutdown;
    if drained {
        tracing::info!(
            delivered,
            "rum-bridge stopped: every exporter delivered all it held"
        );
    } else {
        tracing::warn!(
            delivered,
            dropped,
            "rum-bridge stopped at the shutdown deadline: what was not delivered is kept in the \
             disk buffers or dropped, per exporter as logged above"
        );
    }
    Ok(())
}

/// Items the exporters delivered, and dropped at a shutdown deadline, so far (all exporters
/// and signals), from the daemon's counters.
struct ExportTotals {
    exported: u64,
    dropped_at_shutdown: u64,
}

impl ExportTotals {
    fn read(metrics: &Metrics, config: &Config) -> Self {
        let mut totals = Self {
            exported: 0,
            dropped_at_shutdown: 0,
        };
        for exporter in &config.exporters {
            for signal in Signal::ALL {
                let labels = admin::ExporterSignal {
                    exporter: exporter.name.clone(),
                    signal: signal.as_str(),
                };
                totals.exported += metrics.exported_items.get_or_create(&labels).get();
                totals.dropped_at_shutdown += metrics
                    .failed_items
                    .get_or_create(&admin::ExporterSignalReason {
                        exporter: exporter.name.clone(),
                        signal: signal.as_str(),
                        reason: "shutdown",
                    })
                    .get();
            }
        }
        totals
    }
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
