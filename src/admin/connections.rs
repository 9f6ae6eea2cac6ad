//! Counters of the ingest listener's connections: how many are open, how many were refused at
//! the cap, and how many the server closed because a client was too slow or sat idle.
//!
//! They are what an operator looks at when the public port is under a slow-connection attack
//! (docs/architecture.md#connections): refusals mean the cap is reached, time-outs by phase say
//! which kind of slowness it is.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Where in a request a client was too slow (the `phase` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// A new connection did not complete its first request's headers in time.
    Headers,
    /// A request body did not arrive whole in time (`408`).
    Body,
    /// No request in progress for too long (idle keep-alive).
    Idle,
}

impl TimeoutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Headers => "headers",
            TimeoutPhase::Body => "body",
            TimeoutPhase::Idle => "idle",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Phase {
    phase: &'static str,
}

/// The ingest listener's connection metrics.
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    accepted: Counter,
    refused: Counter,
    timed_out: Family<Phase, Counter>,
    open: Gauge,
}

impl ConnectionMetrics {
    /// Creates the metrics and registers them (`rum_bridge_connections_*`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "connections_accepted",
            "Connections accepted on the ingest listener (refused ones included)",
            metrics.accepted.clone(),
        );
        registry.register(
            "connections_refused",
            "Ingest connections closed as soon as accepted because server.max_connections were open",
            metrics.refused.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Ingest connections or requests the server closed because the client was too slow or idle, by phase",
            metrics.timed_out.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open on the ingest listener",
            metrics.open.clone(),
        );
        for phase in [
            TimeoutPhase::Headers,
            TimeoutPhase::Body,
            TimeoutPhase::Idle,
        ] {
            // Present at 0 from the start, so a dashboard's rate() has a series to work on.
            let _ = metrics.timed_out.get_or_create(&Phase {
                phase: phase.as_str(),
            });
        }
        metrics
    }

    pub fn accepted(&self) {
        self.accepted.inc();
    }

    pub fn refused(&self) {
        self.refused.inc();
    }

    pub fn timed_out(&self, phase: TimeoutPhase) {
        self.timed_out
            .get_or_create(&Phase {
                phase: phase.as_str(),
            })
            .inc();
    }

    /// Counts a connection open until the returned guard is dropped.
    pub fn open(&self) -> OpenConnection {
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

/// One open connection in the `connections_open` gauge.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
