//! Serving a listener with bounded connections, and closing them on a deadline.
//!
//! `axum::serve` has no connection timeouts and no cap, and its graceful shutdown waits for
//! every client to leave, so a half-sent request held the process alive and a thousand of them
//! used up the open-file limit. Here each listener has an accept loop with a connection cap
//! (a semaphore: past it, a new connection is closed at once and counted), and each connection
//! a watchdog over hyper's HTTP/1 and HTTP/2 server that closes it when the client is too slow
//! or idle:
//!
//! - until its first request's headers are complete: `header_read_timeout` (this covers a
//!   client that sends nothing, dribbles its headers, or opens HTTP/2 without a request);
//! - whenever no request is in progress: `idle_timeout` (keep-alive, or the next request's
//!   headers not complete yet);
//! - while a request is in progress its handler bounds itself (the body read deadline,
//!   `server.body_read_timeout`, answers `408`).
//!
//! On shutdown the listener closes, every connection is told to finish (HTTP/1 closes after the
//! request in progress, HTTP/2 sends GOAWAY), a connection with no request in progress is
//! closed at once (a half-sent request is not one: its headers are not complete), and whatever
//! is still open at the end of the grace period is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{Metrics, TimeoutPhase};
use crate::config::ServerConfig;

/// Connections the admin listener keeps open at once (probes and scrapes need few); part of
/// the descriptors [`super::fd_limit::RESERVE`] keeps out of the ingest cap.
pub(super) const ADMIN_MAX_CONNECTIONS: usize = 64;

/// How long the accept loop pauses after an accept error such as "too many open files", so it
/// does not spin while descriptors are short.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// At shutdown, how long a connection whose request just finished may take to write its answer
/// before it is closed (within the grace period).
const SHUTDOWN_LINGER: Duration = Duration::from_secs(1);

/// The bounds of one listener's connections.
#[derive(Debug, Clone)]
pub(super) struct Bounds {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
    pub http2_max_header_list_size: u32,
}

impl Bounds {
    /// The ingest listener's bounds, with the cap `max_connections` decided at start-up.
    pub fn ingest(server: &ServerConfig, max_connections: usize) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_connections,
            http2_max_concurrent_streams: server.http2_max_concurrent_streams,
            http2_max_header_list_size: server.http2_max_header_list_size,
        }
    }

    /// The admin listener's bounds: the same timeouts, its own small cap.
    pub fn admin(server: &ServerConfig) -> Self {
        Self {
            max_connections: ADMIN_MAX_CONNECTIONS,
            ..Self::ingest(server, ADMIN_MAX_CONNECTIONS)
        }
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The watchdog bounds the wait for headers (hyper's own timer would also cut idle
        // keep-alive connections at the header timeout).
        builder.http1().header_read_timeout(None);
        builder
            .http2()
            .max_concurrent_streams(self.http2_max_concurrent_streams)
            .max_header_list_size(self.http2_max_header_list_size);
        builder
    }
}

/// A listener being served. [`Served::shutdown`] stops it.
pub(super) struct Served {
    task: JoinHandle<()>,
    /// `Some(end of the grace period)` once shutting down.
    stop: watch::Sender<Option<Instant>>,
}

impl Served {
    /// Serves `router` on `listener` within `bounds`; `metrics` counts the connections (the
    /// ingest listener's).
    pub fn start(
        listener: TcpListener,
        router: Router,
        bounds: Bounds,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let (stop, stopped) = watch::channel(None);
        let task = tokio::spawn(accept_loop(listener, router, bounds, metrics, stopped));
        Self { task, stop }
    }

    /// Closes the listener, tells every connection to finish, and returns once all have ended:
    /// within `grace`, after which those still open are closed.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(Some(Instant::now() + grace));
        if let Err(error) = self.task.await {
            tracing::error!(%error, "listener task failed");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    metrics: Option<Arc<Metrics>>,
    mut stop: watch::Receiver<Option<Instant>>,
) {
    // Connections hold a permit each until they end; `acquire_many` takes a u32.
    let max = bounds.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    let builder = Arc::new(bounds.builder());
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(Option::is_some) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors (or a connection reset before it was accepted): pause
                // rather than spin; the listener stays open.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if let Some(m) = &metrics {
            m.connections.accepted();
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // At the cap: closed at once, without an answer, so the descriptor is free again.
            if let Some(m) = &metrics {
                m.connections.refused();
            }
            tracing::debug!(%peer, max, "connection refused: server.max_connections open");
            drop(stream);
            continue;
        };
        let connection = Connection {
            peer,
            bounds: bounds.clone(),
            metrics: metrics.clone(),
            stop: stop.clone(),
            _permit: permit,
        };
        tokio::spawn(connection.serve(stream, router.clone(), Arc::clone(&builder)));
    }
    drop(listener);
    // Every connection ends by its grace deadline; once all permits are back, all have.
    let _ = permits.acquire_many(max as u32).await;
}

/// What the watchdog knows of a connection's requests.
#[derive(Debug, Clone, Copy)]
struct Activity {
    /// Requests whose handler is running.
    busy: usize,
    /// Whether any request's headers arrived.
    served: bool,
    /// When the last request's handler finished.
    since: Instant,
}

/// Marks a request in progress on its connection, until dropped.
struct Busy(Arc<watch::Sender<Activity>>);

impl Busy {
    fn start(activity: &Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|a| {
            a.busy += 1;
            a.served = true;
        });
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|a| {
            a.busy -= 1;
            a.since = Instant::now();
        });
    }
}

/// One accepted connection and its watchdog.
struct Connection {
    peer: SocketAddr,
    bounds: Bounds,
    metrics: Option<Arc<Metrics>>,
    stop: watch::Receiver<Option<Instant>>,
    /// Its place under the listener's cap, given back when the connection ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(
        mut self,
        stream: TcpStream,
        router: Router,
        builder: Arc<auto::Builder<TokioExecutor>>,
    ) {
        let _open = self.metrics.as_ref().map(|m| m.connections.open());
        let _ = stream.set_nodelay(true);
        let started = Instant::now();
        let (activity, mut watched) = watch::channel(Activity {
            busy: 0,
            served: false,
            since: started,
        });
        let activity = Arc::new(activity);
        let peer = self.peer;
        let handler = TowerToHyperService::new(router);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::start(&activity);
            let response = hyper::service::Service::call(&handler, request);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);

        // Once shutting down: (when it began, end of the grace period).
        let mut stopping: Option<(Instant, Instant)> = None;
        loop {
            let a = *watched.borrow_and_update();
            let timeout = if a.busy > 0 {
                None
            } else if a.served {
                Some((a.since + self.bounds.idle_timeout, TimeoutPhase::Idle))
            } else {
                let end = started + self.bounds.header_read_timeout;
                Some((end, TimeoutPhase::Headers))
            };
            // Shutting down, a connection with no request in progress has nothing to finish:
            // one that never completed a request is closed at once, one that did gets a moment
            // to write its last answer. A request in progress gets the grace period.
            let close_at = stopping.map(|(began, grace_end)| match (a.busy, a.served) {
                (0, false) => began,
                (0, true) => grace_end.min(a.since.max(began) + SHUTDOWN_LINGER),
                _ => grace_end,
            });
            let wake = match (timeout.map(|(at, _)| at), close_at) {
                (Some(t), Some(c)) => Some(t.min(c)),
                (t, c) => t.or(c),
            };
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                // The sender lives in the service, which lives as long as the connection.
                Ok(()) = watched.changed() => {}
                stop = self.stop.wait_for(Option::is_some), if stopping.is_none() => {
                    // A dropped sender means the daemon is gone: no grace.
                    let now = Instant::now();
                    let grace_end = stop.ok().and_then(|s| *s).unwrap_or(now);
                    stopping = Some((now, grace_end));
                    connection.as_mut().graceful_shutdown();
                }
                () = sleep_until(wake), if wake.is_some() => {
                    if close_at.is_some_and(|c| Instant::now() >= c) {
                        tracing::debug!(%peer, "connection closed for shutdown");
                    } else if let Some((_, phase)) = timeout {
                        if let Some(m) = &self.metrics {
                            m.connections.timed_out(phase);
                        }
                        tracing::debug!(%peer, phase = phase.as_str(), "slow or idle connection closed");
                    }
                    return;
                }
            }
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
