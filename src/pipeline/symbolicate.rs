//! The symbolication step of the pipeline: when an exception names a script whose map is not
//! in memory, the payload waits for it off the request path.
//!
//! Loading a map (disk or network, then parsing) can take up to `fetch_timeout`; a beacon's
//! answer must not. So when [`Symbolicator::missing`] names maps to load, the payload is
//! handed to a task that loads them (for at most `sourcemaps.max_wait`), symbolicates with
//! what it got, applies the item caps and enqueues; the request is answered at once. At most
//! `sourcemaps.max_pending` payloads wait; beyond that a payload goes out unresolved at once.
//!
//! What `202` means for a waiting payload: it was accepted into memory, not yet into the
//! export queue or disk buffer. If the bridge stops during the wait, or the queue is full when
//! the wait ends, that payload is lost and counted (`items_dropped{reason="sourcemap_wait"}`).
//! Payloads without exceptions, or whose maps are cached (or known missing), keep the usual
//! guarantee: `202` after every disk buffer holds them.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::outlet::Outlet;
use crate::handoff::Payload;
use crate::process::symbolicate::Symbolicator;

/// A payload ready now, or one that waits for maps.
pub(super) enum Ready {
    Now(Payload),
    Later(Waiting),
}

/// A payload and the maps it waits for.
pub(super) struct Waiting {
    payload: Payload,
    urls: Vec<String>,
    symbolicator: Arc<Symbolicator>,
    _permit: OwnedSemaphorePermit,
}

/// Symbolicates now when every map needed is cached, else hands the payload to a wait.
pub(super) fn prepare(symbolicator: &Arc<Symbolicator>, mut payload: Payload) -> Ready {
    let urls = symbolicator.missing(&payload);
    if !urls.is_empty() {
        if let Some(permit) = symbolicator.try_wait() {
            return Ready::Later(Waiting {
                payload,
                urls,
                symbolicator: Arc::clone(symbolicator),
                _permit: permit,
            });
        }
    }
    symbolicator.apply(&mut payload);
    Ready::Now(payload)
}

impl Waiting {
    /// Loads the maps (bounded), symbolicates, caps and enqueues, in its own task.
    pub(super) fn spawn(self, outlet: Outlet) {
        tokio::spawn(async move {
            let Waiting {
                mut payload,
                urls,
                symbolicator,
                _permit,
            } = self;
            let wait = symbolicator.max_wait();
            if tokio::time::timeout(wait, symbolicator.load_all(urls))
                .await
                .is_err()
            {
                symbolicator.unresolved_payload("timeout");
            }
            symbolicator.apply(&mut payload);
            let counts = payload.counts();
            let items = (counts.spans + counts.logs) as u64;
            if outlet.submit(payload).await.is_err() {
                outlet.metrics.drop_items("sourcemap_wait", items);
                tracing::warn!("export queue full after waiting for source maps: payload dropped");
            }
        });
    }
}
