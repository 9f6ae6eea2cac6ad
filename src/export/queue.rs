//! One exporter's bounded queue and the task that drains it.
//!
//! The edge side ([`QueueHandle`]) only ever `try_send`s, so a slow or dead destination turns into
//! backpressure at the edge instead of unbounded memory. The task side ([`Worker`]) batches what
//! it receives, delivers each batch with retries, and accounts for every item: exported, or failed
//! with a reason (`permanent_error`, `retries_exhausted`, `rejected`, `shutdown`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, watch};

use super::batch::{Batch, Batcher};
use super::buffer::Hold;
use super::retry::{Backoff, Disposition, SendError};
use super::{Ack, Transport};
use crate::admin::{Exporter, ExporterSignal, ExporterSignalReason, Metrics};
use crate::config::{ExporterConfig, RetryConfig};
use crate::handoff::{Payload, Signal};

/// Lifecycle of the pipeline, broadcast to every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Stop accepting; drain the queue, flush every batch, keep retrying.
    Draining,
    /// The shutdown deadline passed: stop now and count what is left as failed.
    Abort,
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

    pub fn is_exhausted(&self) -> bool {
        self.used.load(Ordering::Relaxed) >= self.max
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

    /// Whether the byte budget is used up or every shard is at capacity.
    pub fn is_full(&self) -> bool {
        self.budget.is_exhausted() || self.shards.iter().all(|s| s.capacity() == 0)
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

/// Why items were given up on; the `reason` label of `export_failed_items`.
#[derive(Debug, Clone, Copy)]
enum FailReason {
    PermanentError,
    RetriesExhausted,
    /// Counted by the destination in an OTLP partial success.
    Rejected,
    Shutdown,
}

impl FailReason {
    const ALL: [FailReason; 4] = [
        FailReason::PermanentError,
        FailReason::RetriesExhausted,
        FailReason::Rejected,
        FailReason::Shutdown,
    ];

    fn as_str(self) -> &'static str {
        match self {
            FailReason::PermanentError => "permanent_error",
            FailReason::RetriesExhausted => "retries_exhausted",
            FailReason::Rejected => "rejected",
            FailReason::Shutdown => "shutdown",
        }
    }
}

/// Metric handles of one (exporter, signal), looked up once so the hot path does not allocate.
struct SignalStats {
    exported: Counter,
    retries: Counter,
    latency: Histogram,
    failed: [Counter; FailReason::ALL.len()],
}

impl SignalStats {
    fn new(metrics: &Metrics, exporter: &str, signal: Signal) -> Self {
        let labels = ExporterSignal {
            exporter: exporter.to_owned(),
            signal: signal.as_str(),
        };
        Self {
            exported: metrics.exported_items.get_or_create(&labels).clone(),
            retries: metrics.export_retries.get_or_create(&labels).clone(),
            latency: metrics.export_latency.get_or_create(&labels).clone(),
            failed: FailReason::ALL.map(|reason| {
                metrics
                    .failed_items
                    .get_or_create(&ExporterSignalReason {
                        exporter: exporter.to_owned(),
                        signal: signal.as_str(),
                        reason: reason.as_str(),
                    })
                    .clone()
            }),
        }
    }

    fn fail(&self, reason: FailReason, items: usize) {
        self.failed[reason as usize].inc_by(items as u64);
    }
}

/// The shutdown deadline passed while a batch was in flight or waiting to be retried.
#[derive(Debug)]
struct Aborted;

/// The task that drains one exporter's queue.
pub(crate) struct Worker<T> {
    name: String,
    transport: T,
    receiver: mpsc::Receiver<Queued>,
    phase: watch::Receiver<Phase>,
    batcher: Batcher,
    retry: RetryConfig,
    stats: [SignalStats; 3],
    depth_gauge: Gauge,
    /// Fed by a disk buffer's reader: what is not delivered stays on disk, so retries go on
    /// past `retry.max_elapsed` and nothing is lost at the shutdown deadline.
    buffered: bool,
    /// The destination's attribute value limit (characters), applied on the way out.
    max_attribute_value_len: Option<usize>,
    /// Items given up (or left in the disk buffer) at shutdown, per signal, for one summary
    /// log line.
    abandoned: [usize; 3],
}

impl<T: Transport> Worker<T> {
    pub fn new(
        config: &ExporterConfig,
        transport: T,
        receiver: mpsc::Receiver<Queued>,
        phase: watch::Receiver<Phase>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            name: config.name.clone(),
            transport,
            receiver,
            phase,
            batcher: Batcher::new(&config.batch),
            retry: config.retry.clone(),
            stats: Signal::ALL.map(|signal| SignalStats::new(metrics, &config.name, signal)),
            depth_gauge: metrics
                .queue_depth
                .get_or_create(&Exporter {
                    exporter: config.name.clone(),
                })
                .clone(),
            buffered: config.buffer_dir.is_some(),
            max_attribute_value_len: config.max_attribute_value_len,
            abandoned: [0; 3],
        }
    }

    pub async fn run(mut self) {
        let mut ready: Vec<Batch> = Vec::new();
        let mut draining = false;
        loop {
            let deadline = self.batcher.next_deadline();
            let timer = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
            tokio::select! {
                changed = self.phase.changed(), if !draining => {
                    // An error means the pipeline is gone; its senders are gone too, so the
                    // queue ends after what is buffered. Either way: stop accepting, drain. A
                    // disk buffer's reader ends the queue itself once it has sent everything.
                    if changed.is_err() || *self.phase.borrow_and_update() != Phase::Running {
                        draining = true;
                        if !self.buffered {
                            self.receiver.close();
                        }
                    }
                }
                received = self.receiver.recv() => match received {
                    Some(queued) => {
                        self.depth_gauge.dec();
                        let (payload, hold) = queued.into_parts();
                        self.batcher.push(payload, hold.as_ref(), Instant::now(), &mut ready);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(timer), if deadline.is_some() => {
                    self.batcher.flush_expired(Instant::now(), &mut ready);
                }
            }
            if self.deliver_all(&mut ready).await.is_err() {
                return self.abandon();
            }
        }
        self.batcher.flush_all(&mut ready);
        if self.deliver_all(&mut ready).await.is_err() {
            return self.abandon();
        }
        tracing::debug!(exporter = %self.name, "exporter drained");
    }

    /// Delivers the batches in order; on abort counts the undelivered ones as `shutdown`.
    async fn deliver_all(&mut self, ready: &mut Vec<Batch>) -> Result<(), Aborted> {
        let mut batches = ready.drain(..);
        while let Some(batch) = batches.next() {
            if let Err(aborted) = self.deliver(batch).await {
                for batch in batches {
                    self.abandon_items(batch.signal(), batch.items);
                }
                return Err(aborted);
            }
        }
        Ok(())
    }

    /// After an abort: counts everything still batched or queued as failed (`shutdown`) and
    /// logs the totals.
    fn abandon(mut self) {
        let mut rest = Vec::new();
        self.batcher.flush_all(&mut rest);
        for batch in rest {
            self.abandon_items(batch.signal(), batch.items);
        }
        self.receiver.close();
        while let Ok(payload) = self.receiver.try_recv() {
            self.depth_gauge.dec();
            let counts = payload.payload().counts();
            self.abandon_items(Signal::Traces, counts.spans);
            self.abandon_items(Signal::Logs, counts.logs);
            self.abandon_items(Signal::Metrics, counts.metric_points);
        }
        for signal in Signal::ALL {
            let items = self.abandoned[signal.index()];
            if items == 0 {
                continue;
            }
            if self.buffered {
                tracing::info!(
                    exporter = %self.name,
                    signal = signal.as_str(),
                    items,
                    "telemetry not delivered before the shutdown deadline; kept in the disk \
                     buffer for the next start"
                );
            } else {
                tracing::warn!(
                    exporter = %self.name,
                    signal = signal.as_str(),
                    items,
                    "telemetry not delivered before the shutdown deadline; dropped"
                );
            }
        }
    }

    /// Counts items abandoned at the deadline: failed, unless a disk buffer still has them.
    fn abandon_items(&mut self, signal: Signal, items: usize) {
        if !self.buffered {
            self.stats[signal.index()].fail(FailReason::Shutdown, items);
        }
        self.abandoned[signal.index()] += items;
    }

    /// Sends one batch, retrying transient failures with backoff until `retry.max_elapsed`.
    async fn deliver(&mut self, batch: Batch) -> Result<(), Aborted> {
        let signal = batch.signal();
        let items = batch.items;
        // The records this batch came from stay in the disk buffer until it is finished with.
        let _holds = batch.holds;
        let mut data = batch.data;
        if let Some(max_len) = self.max_attribute_value_len {
            data.truncate_attribute_values(max_len);
        }
        let prepared = match self.transport.prepare(data) {
            Ok(prepared) => prepared,
            Err(error) => {
                self.give_up(signal, items, FailReason::PermanentError, &error);
                return Ok(());
            }
        };
        let started = Instant::now();
        let mut backoff = Backoff::new(self.retry.initial_backoff, self.retry.max_backoff);
        loop {
            let attempt = Instant::now();
            let sent = tokio::select! {
                result = self.transport.send(&prepared) => Some(result),
                () = wait_for_abort(&mut self.phase) => None,
            };
            let Some(result) = sent else {
                self.abandon_items(signal, items);
                return Err(Aborted);
            };
            let stats = &self.stats[signal.index()];
            stats.latency.observe(attempt.elapsed().as_secs_f64());
            let error = match result {
                Ok(ack) => {
                    self.acknowledge(signal, items, ack);
                    return Ok(());
                }
                Err(error) => error,
            };
            let after = match error.disposition {
                Disposition::Permanent => {
                    self.give_up(signal, items, FailReason::PermanentError, &error);
                    return Ok(());
                }
                Disposition::Retryable { after } => after,
            };
            let ours = backoff.next_delay();
            let delay = after.unwrap_or(ours);
            let out_of_time = !self.buffered && started.elapsed() + delay > self.retry.max_elapsed;
            if !self.retry.enabled || out_of_time {
                self.give_up(signal, items, FailReason::RetriesExhausted, &error);
                return Ok(());
            }
            stats.retries.inc();
            tracing::debug!(
                exporter = %self.name,
                signal = signal.as_str(),
                items,
                ?delay,
                error = %error,
                "export failed; retrying"
            );
            let slept = tokio::select! {
                () = tokio::time::sleep(delay) => true,
                () = wait_for_abort(&mut self.phase) => false,
            };
            if !slept {
                self.abandon_items(signal, items);
                return Err(Aborted);
            }
        }
    }

    fn acknowledge(&self, signal: Signal, items: usize, ack: Ack) {
        let stats = &self.stats[signal.index()];
        let rejected = usize::try_from(ack.rejected).unwrap_or(0).min(items);
        stats.exported.inc_by((items - rejected) as u64);
        if rejected > 0 {
            stats.fail(FailReason::Rejected, rejected);
            tracing::warn!(
                exporter = %self.name,
                signal = signal.as_str(),
                rejected,
                message = %ack.message,
                "destination rejected part of an export"
            );
        } else if !ack.message.is_empty() {
            tracing::warn!(
                exporter = %self.name,
                signal = signal.as_str(),
                message = %ack.message,
                "destination accepted an export with a warning"
            );
        }
    }

    fn give_up(&self, signal: Signal, items: usize, reason: FailReason, error: &SendError) {
        self.stats[signal.index()].fail(reason, items);
        tracing::warn!(
            exporter = %self.name,
            signal = signal.as_str(),
            items,
            reason = reason.as_str(),
            error = %error,
            "export failed; telemetry dropped"
        );
    }
}

/// Resolves when the pipeline enters [`Phase::Abort`]; never if the pipeline is gone.
pub(crate) async fn wait_for_abort(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p == Phase::Abort).await.is_err() {
        std::future::pending::<()>().await;
    }
}
