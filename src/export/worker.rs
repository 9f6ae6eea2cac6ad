//! The task that drains one exporter's queue: it batches what it receives, delivers each batch
//! with retries, and accounts for every item: exported, or failed with a reason
//! (`permanent_error`, `retries_exhausted`, `rejected`, `shutdown`).

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, watch};

use super::batch::{Batch, Batcher};
use super::queue::{wait_for_abort, Phase, Queued};
use super::retry::{Backoff, Disposition, SendError};
use super::{Ack, Transport};
use crate::admin::{Exporter, ExporterSignal, ExporterSignalReason, Metrics};
use crate::config::{ExporterConfig, RetryConfig};
use crate::handoff::Signal;

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
            // The phase is read, not only awaited: `deliver` waits for an abort on the same
            // receiver, which marks a change to `Draining` made meanwhile as seen, so
            // `changed()` below would not fire for it (and the worker would wait for the
            // deadline with an empty, still open queue).
            if !draining && *self.phase.borrow_and_update() != Phase::Running {
                draining = true;
                if !self.buffered {
                    self.receiver.close();
                }
            }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::Protocol;
    use crate::export::batch::tests::spans_payload;
    use crate::export::batch::BatchData;
    use crate::export::test_support::{exporter_config, wait_until};

    /// A destination that takes a while to answer and counts what it was sent.
    struct Slow {
        started: Arc<AtomicUsize>,
        delivered: Arc<AtomicUsize>,
    }

    impl Transport for Slow {
        type Prepared = usize;

        fn prepare(&self, batch: BatchData) -> Result<usize, SendError> {
            Ok(match batch {
                BatchData::Traces(spans) => spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .map(|ss| ss.spans.len())
                    .sum(),
                _ => 0,
            })
        }

        async fn send(&mut self, items: &usize) -> Result<Ack, SendError> {
            self.started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.delivered.fetch_add(*items, Ordering::SeqCst);
            Ok(Ack::default())
        }
    }

    /// Shutdown that begins while a batch is in flight ends as soon as the queue is empty, not
    /// at the abort: the in-flight wait for an abort must not swallow the change to draining.
    #[tokio::test]
    async fn draining_that_starts_during_a_send_ends_when_the_queue_is_empty() {
        let mut config = exporter_config("slow", Protocol::HttpProtobuf);
        config.batch.timeout = Duration::from_millis(1);
        config.batch.max_items = 1;
        let metrics = Metrics::new();
        let (tx, rx) = mpsc::channel(16);
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let started = Arc::new(AtomicUsize::new(0));
        let delivered = Arc::new(AtomicUsize::new(0));
        let transport = Slow {
            started: Arc::clone(&started),
            delivered: Arc::clone(&delivered),
        };
        let worker = tokio::spawn(Worker::new(&config, transport, rx, phase_rx, &metrics).run());
        for n in 0..3 {
            let payload = Arc::new(spans_payload("shop", [n]));
            tx.send(Queued::new(payload, None, None)).await.unwrap();
        }
        wait_until(|| started.load(Ordering::SeqCst) == 1).await;
        phase.send_replace(Phase::Draining);
        // `tx` stays alive, as the pipeline's senders do: only the worker can end the queue.
        let ended = tokio::time::timeout(Duration::from_secs(5), worker).await;
        assert!(ended.is_ok(), "the worker waited for the abort");
        assert_eq!(delivered.load(Ordering::SeqCst), 3);
        drop(tx);
    }
}
