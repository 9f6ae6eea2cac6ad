//! One exporter's bounded queue: the pipeline's side of it.
//!
//! [`QueueHandle`] only ever `try_send`s, so a slow or dead destination turns into backpressure
//! at the edge instead of unbounded memory; a byte [`Budget`] bounds memory whatever the
//! payload sizes. The task that drains the queue is [`super::worker::Worker`]; the lifecycle
//! both sides follow is [`Phase`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};

use super::acks::Hold;
use crate::admin::{Exporter, Metrics};
use crate::handoff::Payload;

/// Lifecycle of the pipeline, broadcast to every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Stop accepting; drain the queue, flush every batch, keep retrying.
    Draining,
    /// The shutdown deadline passed: stop now and count what is left as failed.
    Abort,
}

/// The share of a queue's limits (bytes and slots) kept for requests already admitted at the
/// edge: 1/8.
pub(crate) const HEADROOM: usize = 8;

fn headroom(limit: usize) -> usize {
    limit / HEADROOM
}

/// A byte budget shared by the entries of one queue: bounds memory whatever the payload sizes.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl Budget {
    pub fn new(max: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Takes `bytes` of the budget. An entry larger than the whole budget is still taken when
    /// nothing else holds any, so it cannot wedge the queue.
    pub fn try_take(&self, bytes: usize) -> Option<Budgeted> {
        let max = self.max;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used == 0 || used + bytes <= max).then_some(used + bytes)
            })
            .ok()?;
        Some(Budgeted {
            bytes,
            used: Arc::clone(&self.used),
        })
    }

    /// Whether the budget is within [`HEADROOM`] of its end: see [`QueueHandle::is_full`].
    pub fn is_nearly_exhausted(&self) -> bool {
        self.used.load(Ordering::Relaxed) >= self.max - headroom(self.max)
    }
}

/// Bytes of a [`Budget`] held by one entry; given back when dropped.
#[derive(Debug)]
pub(crate) struct Budgeted {
    bytes: usize,
    used: Arc<AtomicUsize>,
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A payload on its way to a worker.
pub(crate) struct Queued {
    payload: Arc<Payload>,
    /// Its share of the queue's byte budget, until the worker takes it (the batcher bounds what
    /// follows). `None` when it comes from a disk buffer, whose reader bounds it.
    _budget: Option<Budgeted>,
    /// For a payload read from a disk buffer: the record it came from.
    hold: Option<Hold>,
}

impl Queued {
    pub fn new(payload: Arc<Payload>, budget: Option<Budgeted>, hold: Option<Hold>) -> Self {
        Self {
            payload,
            _budget: budget,
            hold,
        }
    }

    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Takes the payload out (the budget is given back) with its record's hold.
    pub fn into_parts(self) -> (Payload, Option<Hold>) {
        (Arc::unwrap_or_clone(self.payload), self.hold)
    }
}

/// A slot and bytes reserved in one queue; dropped unsent, both are given back.
pub(crate) struct Reserved<'a, T> {
    permit: mpsc::Permit<'a, T>,
    budget: Budgeted,
}

impl<T> Reserved<'_, T> {
    /// Sends the entry `make` builds around the reserved budget.
    pub fn send(self, make: impl FnOnce(Budgeted) -> T) {
        self.permit.send(make(self.budget));
    }
}

/// The edge's end of one exporter queue: one bounded channel per worker (shard), an entry going
/// to the next shard with room, round robin; and a budget of estimated bytes across the shards,
/// so memory stays bounded whatever the payload sizes.
pub(crate) struct QueueHandle<T> {
    pub name: String,
    shards: Vec<mpsc::Sender<T>>,
    next: AtomicUsize,
    budget: Budget,
    depth_gauge: Gauge,
}

impl<T> QueueHandle<T> {
    pub fn new(
        name: String,
        shards: Vec<mpsc::Sender<T>>,
        max_bytes: usize,
        metrics: &Metrics,
    ) -> Self {
        let depth_gauge = metrics
            .queue_depth
            .get_or_create(&Exporter {
                exporter: name.clone(),
            })
            .clone();
        Self {
            name,
            shards,
            next: AtomicUsize::new(0),
            budget: Budget::new(max_bytes),
            depth_gauge,
        }
    }

    /// Reserves `bytes` of the budget and a slot on the next shard with room.
    pub fn try_reserve(
        &self,
        bytes: usize,
    ) -> Result<Reserved<'_, T>, mpsc::error::TrySendError<()>> {
        let budget = self
            .budget
            .try_take(bytes)
            .ok_or(mpsc::error::TrySendError::Full(()))?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.shards.len();
        let mut last = mpsc::error::TrySendError::Full(());
        for i in 0..n {
            match self.shards[(start + i) % n].try_reserve() {
                Ok(permit) => return Ok(Reserved { permit, budget }),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether new requests should be refused: the byte budget or every shard is within
    /// [`HEADROOM`] of its limit. The edge asks before it reads a body, and requests past that
    /// check are still being decoded and converted; the headroom is room for them, so that under
    /// overload refusals stay cheap (nothing read) instead of throwing away finished work when
    /// the queue fills between the check and the enqueue.
    pub fn is_full(&self) -> bool {
        self.budget.is_nearly_exhausted()
            || self
                .shards
                .iter()
                .all(|s| s.capacity() <= headroom(s.max_capacity()))
    }

    /// Entries waiting in the queue.
    pub fn depth(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.max_capacity() - s.capacity())
            .sum()
    }

    /// Counts one entry into the queue; the worker that receives it counts it out, so the
    /// gauge is the exporter's total depth across shards.
    pub fn count_queued(&self) {
        self.depth_gauge.inc();
    }
}

/// Resolves when the pipeline enters [`Phase::Abort`]; never if the pipeline is gone.
pub(crate) async fn wait_for_abort(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p == Phase::Abort).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(slots: usize, max_bytes: usize) -> (QueueHandle<u32>, mpsc::Receiver<u32>) {
        let (tx, rx) = mpsc::channel(slots);
        let metrics = Metrics::new();
        (
            QueueHandle::new("q".into(), vec![tx], max_bytes, &metrics),
            rx,
        )
    }

    #[test]
    fn the_edge_is_refused_while_admitted_requests_still_fit() {
        let (queue, _rx) = handle(64, 8_000);
        let mut held = Vec::new();
        while !queue.is_full() {
            let r = queue.try_reserve(100).expect("room while not full");
            held.push(r.budget);
        }
        // Full for the edge at 7/8 of the bytes, yet requests past the check still enqueue.
        assert_eq!(held.len(), 70);
        assert!(queue.try_reserve(900).is_ok());
        assert!(queue.try_reserve(1_001).is_err());
    }

    #[test]
    fn slots_keep_the_same_headroom() {
        let (queue, _rx) = handle(16, usize::MAX / 2);
        for n in 0..14 {
            assert!(!queue.is_full(), "{n} of 16 slots taken");
            queue.try_reserve(1).unwrap().send(|_| n);
        }
        assert!(queue.is_full(), "14 of 16 taken: within 1/8 of the end");
        queue
            .try_reserve(1)
            .expect("the headroom is usable")
            .send(|_| 14);
    }
}
