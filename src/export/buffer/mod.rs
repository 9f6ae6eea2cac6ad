//! The durable disk buffer of one exporter (`buffer_dir`): what the edge accepted survives an
//! outage of the destination, a restart, and the bridge being killed.
//!
//! ```text
//! edge ──submit──▶ write queue ──▶ Writer ──append (+ fdatasync)──▶ segment files
//!   ▲                                │                                   │
//!   └──── reply: durable, 202 ◀──────┤                                   │ read back what the
//!                                    └── hot copy ──▶ Reader ◀───────────┘ hot path missed
//!                                                       │
//!                                    worker shards ◀────┘  (batch, send, retry; acks free records)
//! ```
//!
//! - **Writer** (one task): appends each accepted payload as one checksummed record
//!   ([`record`]) to the active segment file, many payloads per write (group commit), syncs
//!   (`fdatasync`) before replying when `buffer_sync = "always"` or on a timer otherwise, then
//!   answers the edge, which only now answers the browser `202`. It rotates segments, makes room
//!   when the buffer is full (`buffer_full`: refuse, or drop the oldest segment not being read),
//!   persists the acknowledgement floor and deletes finished segments.
//! - **Reader** (one task): hands the records to the exporter's workers strictly in order. While
//!   the destination keeps up, it takes the writer's in-memory copy (no read, no decode); what the
//!   copy channel could not hold (an outage), and everything after a restart, is read back from
//!   disk, stepping over damaged records (counted).
//! - **Acks** ([`acks`]): the batches made from a record hold it; when the destination has
//!   acknowledged them all the record is finished. The floor below which all records are
//!   finished is persisted, so a restart replays from there (at-least-once).

mod acks;
mod record;
mod segment;
#[cfg(test)]
mod tests;

pub(crate) use acks::Hold;
pub(crate) use record::RecordBody;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot, watch};

use super::queue::{wait_for_abort, Budget, Budgeted, Phase, QueueHandle, Queued};
use super::{ExportError, Payload, Signal};
use crate::admin::{Exporter, ExporterReason, ExporterSignalReason, Metrics};
use crate::config::{BufferFull, BufferSync, ExporterConfig};
use acks::Acks;
use segment::{Found, SegmentReader};

/// How often finished segments are deleted and the floor persisted.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// Most payloads appended by one write (group commit).
const MAX_GROUP: usize = 256;
/// Most records, and bytes of record bodies, read back from disk at once.
const MAX_READ_RECORDS: usize = 64;
const MAX_READ_BYTES: usize = 4 * 1024 * 1024;
/// Segment files are this share of `buffer_max_bytes` (so dropping one frees 1/16), within
/// bounds that keep files few but deletions prompt.
const SEGMENTS_PER_BUFFER: u64 = 16;
const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// An accepted payload on its way to the writer.
pub(crate) struct WriteRequest {
    pub payload: Arc<Payload>,
    /// Encoded once for every buffered exporter.
    pub body: Arc<RecordBody>,
    /// Its share of the write queue's byte budget.
    pub budget: Budgeted,
    /// Told once the payload is durable (or why not).
    pub reply: oneshot::Sender<Result<(), Refusal>>,
}

/// Why a disk buffer did not keep a payload; the edge answers `503` with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the disk buffer is full")]
    Full,
    #[error("the disk buffer could not be written")]
    WriteFailed,
}

/// The edge's side of a disk buffer.
pub(crate) struct SpoolHandle {
    pub queue: QueueHandle<WriteRequest>,
    name: Arc<str>,
    shared: Arc<Shared>,
}

impl SpoolHandle {
    /// The exporter's name, cheap to clone into receipts.
    pub fn name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// Whether new payloads would be refused: the write queue is full, or the buffer is full
    /// (and could not make room last time it tried).
    pub fn is_full(&self) -> bool {
        self.queue.is_full() || self.shared.refusing.load(Ordering::Relaxed)
    }

    /// From now on nothing is acknowledged: the shutdown deadline abandons what is in flight,
    /// which must stay in the buffer for the next start.
    pub fn freeze(&self) {
        self.shared.acks.freeze();
    }

    /// After the exporter's tasks have ended: persists the floor, deletes finished segments.
    pub async fn finish(&self) {
        let shared = Arc::clone(&self.shared);
        let result = tokio::task::spawn_blocking(move || {
            let floor = shared.acks.floor();
            let doomed = shared.take_finished(floor);
            shared.persist(floor, &doomed)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(exporter = %self.shared.name, %error, "cannot persist the disk buffer state")
            }
            Err(error) => tracing::error!(%error, "disk buffer task failed"),
        }
    }
}

/// A buffer opened at start-up: the edge's handle and the two tasks to spawn.
pub(crate) struct Opened {
    pub handle: SpoolHandle,
    pub writer: Writer,
    pub reader: Reader,
}

/// Opens (creating it if needed) the disk buffer of `config` and prepares its tasks. The
/// reader feeds `shards`, the exporter's worker queues.
pub(crate) fn open(
    config: &ExporterConfig,
    dir: &Path,
    shards: Vec<mpsc::Sender<Queued>>,
    phase: &watch::Receiver<Phase>,
    metrics: &Metrics,
) -> Result<Opened, ExportError> {
    let io_error = |path: &Path, source| ExportError::Io {
        exporter: config.name.clone(),
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let stats = Stats::new(metrics, &config.name);
    let recovered = recover(dir, &stats).map_err(|e| io_error(dir, e))?;

    let max_bytes = config.buffer_max_bytes;
    let segment_bytes =
        (max_bytes / SEGMENTS_PER_BUFFER).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
    let acks = Arc::new(Acks::new(recovered.floor));
    let bytes = recovered.segments.iter().map(|s| s.bytes).sum();
    stats.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    let reader_segment = recovered
        .segments
        .iter()
        .rev()
        .find(|s| s.first_seq <= recovered.floor)
        .or(recovered.segments.first())
        .map_or(recovered.next_seq, |s| s.first_seq);
    let shared = Arc::new(Shared {
        name: config.name.clone(),
        dir: dir.to_owned(),
        max_bytes,
        segment_bytes,
        policy: config.buffer_full,
        acks,
        refusing: AtomicBool::new(false),
        state: Mutex::new(State {
            segments: recovered.segments.into(),
            bytes,
            reader_segment,
            active: None,
            next_seq: recovered.next_seq,
        }),
        stats,
    });
    if bytes > 0 {
        tracing::info!(
            exporter = %config.name,
            bytes,
            from = recovered.floor,
            "disk buffer holds undelivered telemetry; replaying it"
        );
    }

    let (write_tx, write_rx) = mpsc::channel(config.queue.capacity.max(1));
    let (hot_tx, hot_rx) = mpsc::channel(config.queue.capacity.max(1));
    let committed = Committed {
        next_seq: recovered.next_seq,
        segment: recovered.next_seq,
        offset: 0,
    };
    let (committed_tx, committed_rx) = watch::channel(committed);
    let depth_gauge = metrics
        .queue_depth
        .get_or_create(&Exporter {
            exporter: config.name.clone(),
        })
        .clone();
    let writer = Writer {
        shared: Arc::clone(&shared),
        requests: write_rx,
        hot: hot_tx,
        hot_budget: Budget::new(config.queue.max_bytes),
        committed: committed_tx,
        active: None,
        sync: config.buffer_sync,
        dirty: false,
        persisted_floor: recovered.floor,
        phase: phase.clone(),
        depth_gauge: depth_gauge.clone(),
    };
    let reader = Reader {
        shared: Arc::clone(&shared),
        hot: hot_rx,
        pending: None,
        committed: committed_rx,
        writer_done: false,
        cursor: Cursor {
            seq: recovered.floor,
            segment: reader_segment,
            offset: 0,
            file: None,
        },
        shards,
        next_shard: 0,
        phase: phase.clone(),
        depth_gauge,
    };
    let handle = SpoolHandle {
        queue: QueueHandle::new(
            config.name.clone(),
            vec![write_tx],
            config.queue.max_bytes,
            metrics,
        ),
        name: Arc::from(config.name.as_str()),
        shared,
    };
    Ok(Opened {
        handle,
        writer,
        reader,
    })
}

/// Metric handles of one buffer.
struct Stats {
    bytes: Gauge,
    corrupt: Counter,
    replayed: Counter,
    refused: Counter,
    dropped_oldest: Counter,
    write_errors: Counter,
    /// Items dropped to make room, per signal.
    dropped_items: [Counter; 3],
}

impl Stats {
    fn new(metrics: &Metrics, name: &str) -> Self {
        let exporter = Exporter {
            exporter: name.to_owned(),
        };
        let dropped = |reason| {
            metrics
                .buffer_dropped_records
                .get_or_create(&ExporterReason {
                    exporter: name.to_owned(),
                    reason,
                })
                .clone()
        };
        Self {
            bytes: metrics.buffer_bytes.get_or_create(&exporter).clone(),
            corrupt: metrics
                .buffer_corrupt_records
                .get_or_create(&exporter)
                .clone(),
            replayed: metrics
                .buffer_replayed_records
                .get_or_create(&exporter)
                .clone(),
            refused: dropped("refused"),
            dropped_oldest: dropped("dropped_oldest"),
            write_errors: dropped("write_error"),
            dropped_items: Signal::ALL.map(|signal| {
                metrics
                    .failed_items
                    .get_or_create(&ExporterSignalReason {
                        exporter: name.to_owned(),
                        signal: signal.as_str(),
                        reason: "buffer_full",
                    })
                    .clone()
            }),
        }
    }
}

/// A segment file on disk.
#[derive(Debug, Clone, Copy)]
struct Segment {
    first_seq: u64,
    bytes: u64,
}

/// What a buffer directory held at start-up.
struct Recovered {
    segments: Vec<Segment>,
    floor: u64,
    next_seq: u64,
}

/// Reads the directory: the floor, the segments, the next sequence number. A torn last record
/// (the bridge was killed mid-write; never acknowledged to anyone) is cut off and counted.
/// Segments wholly below the floor, and an empty last segment, are deleted.
fn recover(dir: &Path, stats: &Stats) -> io::Result<Recovered> {
    let listed = segment::list(dir)?;
    let floor = acks::read_floor(dir)
        .or(listed.first().map(|s| s.0))
        .unwrap_or(0);
    let mut segments: Vec<Segment> = listed
        .iter()
        .map(|&(first_seq, bytes)| Segment { first_seq, bytes })
        .collect();
    let mut next_seq = floor;
    if let Some(last) = segments.last_mut() {
        let path = segment::path(dir, last.first_seq);
        let scan = segment::scan(&path)?;
        if scan.valid_len < last.bytes {
            tracing::warn!(
                segment = %path.display(),
                bytes = last.bytes - scan.valid_len,
                "disk buffer segment ends with a torn record; cutting it off"
            );
            stats.corrupt.inc();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(scan.valid_len)?;
            last.bytes = scan.valid_len;
        }
        next_seq = next_seq.max(scan.end_seq.unwrap_or(last.first_seq));
    }
    // Everything below the floor is finished; so is a segment without records.
    let mut kept = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        let end = segments.get(i + 1).map_or(next_seq, |n| n.first_seq);
        if end <= floor || s.bytes == 0 {
            remove_segment(dir, s.first_seq)?;
        } else {
            kept.push(*s);
        }
    }
    Ok(Recovered {
        segments: kept,
        floor,
        next_seq,
    })
}

fn remove_segment(dir: &Path, first_seq: u64) -> io::Result<()> {
    match std::fs::remove_file(segment::path(dir, first_seq)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// State shared by the writer, the reader and the edge.
struct Shared {
    name: String,
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    policy: BufferFull,
    acks: Arc<Acks>,
    /// The last payload was refused for lack of room; cleared when room is made.
    refusing: AtomicBool,
    state: Mutex<State>,
    stats: Stats,
}

struct State {
    /// Segment files, oldest first.
    segments: VecDeque<Segment>,
    /// Their total size.
    bytes: u64,
    /// First sequence number of the segment the reader is in: neither it nor an older one is
    /// dropped to make room (their records may be on their way to the destination).
    reader_segment: u64,
    /// The segment being appended to, if one is open (it is the last one).
    active: Option<u64>,
    /// The sequence number the next record gets.
    next_seq: u64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_bytes(&self, state: &State) {
        self.stats
            .bytes
            .set(i64::try_from(state.bytes).unwrap_or(i64::MAX));
    }

    /// Takes the segments whose records are all below `floor` (never the active one) out of
    /// the state; returns them for deletion.
    fn take_finished(&self, floor: u64) -> Vec<u64> {
        let mut state = self.state();
        let mut doomed = Vec::new();
        while let Some(first) = state.segments.front().copied() {
            if state.active == Some(first.first_seq) {
                break;
            }
            let end = state
                .segments
                .get(1)
                .map_or(state.next_seq, |next| next.first_seq);
            if end > floor {
                break;
            }
            state.segments.pop_front();
            state.bytes -= first.bytes;
            doomed.push(first.first_seq);
        }
        if !doomed.is_empty() {
            self.publish_bytes(&state);
        }
        doomed
    }

    /// Writes the floor and deletes the given segments (blocking).
    fn persist(&self, floor: u64, doomed: &[u64]) -> io::Result<()> {
        acks::write_floor(&self.dir, floor)?;
        for &first_seq in doomed {
            remove_segment(&self.dir, first_seq)?;
        }
        Ok(())
    }

    /// Moves the reader into `segment` if it still exists.
    fn enter(&self, segment: u64) -> bool {
        let mut state = self.state();
        let exists = state.segments.iter().any(|s| s.first_seq == segment);
        if exists {
            state.reader_segment = segment;
        }
        exists
    }

    /// Moves the reader to the segment after `current`; `upcoming` is where the writer is
    /// about to write (it may not exist yet).
    fn enter_next(&self, current: u64, upcoming: u64) -> Option<u64> {
        let mut state = self.state();
        let next = state
            .segments
            .iter()
            .map(|s| s.first_seq)
            .find(|&s| s > current)
            .or((upcoming > current).then_some(upcoming))?;
        state.reader_segment = next;
        Some(next)
    }

    /// The oldest segment that may be dropped to make room: not the active one, and after the
    /// reader's. Taken out of the state; returns it with the first sequence number after it.
    fn take_droppable(&self) -> Option<(Segment, u64)> {
        let mut state = self.state();
        let at = state.segments.iter().position(|s| {
            s.first_seq > state.reader_segment && state.active != Some(s.first_seq)
        })?;
        let end = state
            .segments
            .get(at + 1)
            .map_or(state.next_seq, |n| n.first_seq);
        let dropped = state.segments.remove(at)?;
        state.bytes -= dropped.bytes;
        self.publish_bytes(&state);
        Some((dropped, end))
    }
}

/// How far the writer has written: the reader reads nothing beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Committed {
    next_seq: u64,
    /// The segment being written and the length written to it.
    segment: u64,
    offset: u64,
}

/// The writer's in-memory copy of a record it wrote, so the reader need not read it back.
struct Hot {
    seq: u64,
    segment: u64,
    offset: u64,
    len: u64,
    payload: Arc<Payload>,
    _budget: Budgeted,
}

/// The open segment file.
struct Active {
    first_seq: u64,
    file: File,
    len: u64,
}

/// A record appended by the current write, to be answered once the write is done.
struct Appended {
    request: WriteRequest,
    seq: u64,
    offset: u64,
    len: u64,
}

/// The task that appends accepted payloads (see the module docs).
pub(crate) struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<WriteRequest>,
    hot: mpsc::Sender<Hot>,
    hot_budget: Budget,
    committed: watch::Sender<Committed>,
    active: Option<Active>,
    sync: BufferSync,
    /// Written since the last sync.
    dirty: bool,
    persisted_floor: u64,
    phase: watch::Receiver<Phase>,
    depth_gauge: Gauge,
}

impl Writer {
    pub async fn run(mut self) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let sync_every = match self.sync {
            BufferSync::Always => Duration::from_secs(3600),
            BufferSync::Interval(every) => every,
        };
        let mut sync = tokio::time::interval(sync_every);
        for timer in [&mut housekeeping, &mut sync] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut draining = false;
        loop {
            tokio::select! {
                changed = self.phase.changed(), if !draining => {
                    if changed.is_err() || *self.phase.borrow_and_update() != Phase::Running {
                        // Refuse new payloads; write those already queued, then stop.
                        draining = true;
                        self.requests.close();
                    }
                }
                request = self.requests.recv() => match request {
                    Some(first) => self.write_group(first).await,
                    None => break,
                },
                _ = housekeeping.tick() => {
                    self.housekeeping().await;
                }
                _ = sync.tick(), if self.dirty => self.sync().await,
            }
        }
        if self.dirty {
            self.sync().await;
        }
        self.housekeeping().await;
    }

    /// Appends `first` and whatever else is already queued, in one write (group commit), and
    /// answers them all.
    async fn write_group(&mut self, first: WriteRequest) {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match self.requests.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let mut buf = Vec::new();
        let mut appended = Vec::with_capacity(group.len());
        for request in group {
            self.depth_gauge.dec();
            let len = request.body.record_len();
            if !self.make_room(len).await {
                let _ = request.reply.send(Err(Refusal::Full));
                continue;
            }
            let rotate = self.active.as_ref().is_some_and(|a| {
                a.len + buf.len() as u64 + len > self.shared.segment_bytes
                    && a.len + buf.len() as u64 > 0
            });
            if rotate {
                self.flush(std::mem::take(&mut buf), std::mem::take(&mut appended))
                    .await;
                self.seal().await;
            }
            if self.active.is_none() && !self.open_segment().await {
                let _ = request.reply.send(Err(Refusal::WriteFailed));
                self.shared.stats.write_errors.inc();
                continue;
            }
            let active = self.active.as_ref().expect("opened above");
            let seq = {
                let mut state = self.shared.state();
                let seq = state.next_seq;
                state.next_seq += 1;
                state.bytes += len;
                if let Some(last) = state.segments.back_mut() {
                    last.bytes += len;
                }
                seq
            };
            buf.extend_from_slice(&request.body.header(seq));
            buf.extend_from_slice(&request.body.bytes);
            appended.push(Appended {
                request,
                seq,
                offset: active.len + buf.len() as u64 - len,
                len,
            });
        }
        self.flush(buf, appended).await;
        self.shared.publish_bytes(&self.shared.state());
    }

    /// Writes `buf` to the active segment (syncing if `buffer_sync = "always"`), then publishes
    /// it to the reader and answers the requests.
    async fn flush(&mut self, buf: Vec<u8>, appended: Vec<Appended>) {
        if appended.is_empty() {
            return;
        }
        let Some(mut active) = self.active.take() else {
            return;
        };
        let sync = self.sync == BufferSync::Always;
        let written = buf.len() as u64;
        let written_back = blocking(move || {
            let result = active.file.write_all(&buf).and_then(|()| {
                if sync {
                    active.file.sync_data()
                } else {
                    Ok(())
                }
            });
            (active, result)
        })
        .await;
        let Some((mut active, result)) = written_back else {
            self.shared.state().active = None;
            let error = io::Error::other("the write task failed");
            return self.write_failed(appended, error).await;
        };
        if let Err(error) = result {
            // The file may hold part of the write: never append to it again (a reader steps
            // over the damage).
            self.active = Some(active);
            self.seal().await;
            return self.write_failed(appended, error).await;
        }
        active.len += written;
        self.dirty |= !sync;
        let committed = Committed {
            next_seq: appended.last().map_or(0, |a| a.seq + 1),
            segment: active.first_seq,
            offset: active.len,
        };
        let segment = active.first_seq;
        self.active = Some(active);
        // Copies first: once the reader sees the new committed length, they are waiting.
        let mut replies = Vec::with_capacity(appended.len());
        for Appended {
            request,
            seq,
            offset,
            len,
        } in appended
        {
            let WriteRequest {
                payload,
                body,
                budget,
                reply,
            } = request;
            drop(budget);
            if let Some(budget) = self.hot_budget.try_take(body.bytes.len()) {
                // A full channel just means the reader reads this one back from disk.
                let _ = self.hot.try_send(Hot {
                    seq,
                    segment,
                    offset,
                    len,
                    payload,
                    _budget: budget,
                });
            }
            replies.push(reply);
        }
        self.committed.send_replace(committed);
        for reply in replies {
            let _ = reply.send(Ok(()));
        }
    }

    async fn write_failed(&mut self, appended: Vec<Appended>, error: io::Error) {
        tracing::error!(
            exporter = %self.shared.name,
            %error,
            payloads = appended.len(),
            "cannot write the disk buffer; refusing the payloads"
        );
        self.shared.stats.write_errors.inc_by(appended.len() as u64);
        for a in appended {
            let _ = a.request.reply.send(Err(Refusal::WriteFailed));
        }
        self.resync_bytes().await;
    }

    /// After a failed write the sizes in the state are guesses: read them from the files.
    async fn resync_bytes(&mut self) {
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            let mut state = shared.state();
            for s in state.segments.iter_mut() {
                if let Ok(meta) = std::fs::metadata(segment::path(&shared.dir, s.first_seq)) {
                    s.bytes = meta.len();
                }
            }
            state.bytes = state.segments.iter().map(|s| s.bytes).sum();
            shared.publish_bytes(&state);
        })
        .await;
    }

    /// Opens a new segment named by the next sequence number.
    async fn open_segment(&mut self) -> bool {
        let first_seq = self.shared.state().next_seq;
        let path = segment::path(&self.shared.dir, first_seq);
        // Never an existing file: that would be another process writing the same directory.
        let opened = blocking(move || {
            std::fs::OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
        })
        .await;
        match opened {
            Some(Ok(file)) => {
                let mut state = self.shared.state();
                state.segments.push_back(Segment {
                    first_seq,
                    bytes: 0,
                });
                state.active = Some(first_seq);
                self.active = Some(Active {
                    first_seq,
                    file,
                    len: 0,
                });
                true
            }
            Some(Err(error)) => {
                tracing::error!(exporter = %self.shared.name, %error, "cannot create a disk buffer segment");
                false
            }
            None => false,
        }
    }

    /// Closes the active segment (synced first, so what it holds is durable however the
    /// sync interval falls).
    async fn seal(&mut self) {
        if self.dirty {
            self.sync().await;
        }
        if self.active.take().is_some() {
            self.shared.state().active = None;
        }
    }

    async fn sync(&mut self) {
        let Some(active) = self.active.take() else {
            self.dirty = false;
            return;
        };
        let synced = blocking(move || {
            let result = active.file.sync_data();
            (active, result)
        })
        .await;
        self.dirty = false;
        let Some((active, result)) = synced else {
            self.shared.state().active = None;
            return;
        };
        self.active = Some(active);
        if let Err(error) = result {
            tracing::error!(exporter = %self.shared.name, %error, "cannot sync the disk buffer");
        }
    }

    /// Makes room for a record of `len` bytes: deletes finished segments, then applies the
    /// `buffer_full` policy. `false` when the record cannot be kept.
    async fn make_room(&mut self, len: u64) -> bool {
        if len > self.shared.max_bytes {
            // Could never fit; refusing it says nothing about the buffer's state.
            self.shared.stats.refused.inc();
            return false;
        }
        loop {
            if self.shared.state().bytes + len <= self.shared.max_bytes {
                return true;
            }
            if self.housekeeping().await {
                continue;
            }
            if self.shared.policy == BufferFull::DropOldest && self.drop_oldest().await {
                continue;
            }
            if !self.shared.refusing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    exporter = %self.shared.name,
                    max_bytes = self.shared.max_bytes,
                    "disk buffer full; refusing new telemetry until the destination catches up"
                );
            }
            self.shared.stats.refused.inc();
            return false;
        }
    }

    /// Drops the oldest segment that is not being read; `false` if there is none.
    async fn drop_oldest(&mut self) -> bool {
        let Some((dropped, end)) = self.shared.take_droppable() else {
            return false;
        };
        let shared = Arc::clone(&self.shared);
        let scan = blocking(move || {
            let path = segment::path(&shared.dir, dropped.first_seq);
            let scan = segment::scan(&path);
            remove_segment(&shared.dir, dropped.first_seq)?;
            scan
        })
        .await;
        self.shared.acks.finish(dropped.first_seq, end);
        let stats = &self.shared.stats;
        match scan {
            Some(Ok(scan)) => {
                stats.dropped_oldest.inc_by(scan.records);
                for (counter, items) in stats.dropped_items.iter().zip(scan.items) {
                    counter.inc_by(items);
                }
                tracing::warn!(
                    exporter = %self.shared.name,
                    records = scan.records,
                    spans = scan.items[0],
                    log_records = scan.items[1],
                    metric_points = scan.items[2],
                    "disk buffer full; dropped its oldest segment"
                );
            }
            Some(Err(error)) => {
                tracing::error!(exporter = %self.shared.name, %error, "cannot drop a disk buffer segment")
            }
            None => {}
        }
        true
    }

    /// Persists the floor if it moved and deletes finished segments. `true` if any was deleted.
    async fn housekeeping(&mut self) -> bool {
        let floor = self.shared.acks.floor();
        let doomed = self.shared.take_finished(floor);
        let has_room = {
            let state = self.shared.state();
            state.bytes + self.shared.segment_bytes <= self.shared.max_bytes
        };
        if has_room {
            self.shared.refusing.store(false, Ordering::Relaxed);
        }
        if doomed.is_empty() && floor == self.persisted_floor {
            return false;
        }
        let shared = Arc::clone(&self.shared);
        let freed = !doomed.is_empty();
        match blocking(move || shared.persist(floor, &doomed)).await {
            Some(Ok(())) => self.persisted_floor = floor,
            Some(Err(error)) => {
                tracing::error!(exporter = %self.shared.name, %error, "cannot persist the disk buffer state")
            }
            None => {}
        }
        freed
    }
}

/// Runs blocking file work off the async threads; `None` if it panicked.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::error!(%error, "disk buffer task failed");
            None
        }
    }
}

/// Where the reader is: the next sequence number it expects and the position it reads at.
struct Cursor {
    seq: u64,
    segment: u64,
    offset: u64,
    /// The segment file, once opened.
    file: Option<SegmentReader>,
}

/// Records read back from disk at once.
#[derive(Default)]
struct Chunk {
    records: Vec<(u64, Payload)>,
    /// Sequence ranges with nothing to send (damaged, dropped, or failed writes).
    gaps: Vec<(u64, u64)>,
    damaged: u64,
}

impl Cursor {
    /// Reads the next records from disk, no further than `committed` (blocking).
    fn read_chunk(&mut self, shared: &Shared, committed: Committed) -> io::Result<Chunk> {
        let mut chunk = Chunk::default();
        let mut body_bytes = 0;
        while chunk.records.len() < MAX_READ_RECORDS && body_bytes < MAX_READ_BYTES {
            let sealed = self.segment != committed.segment;
            if self.file.is_none() {
                match SegmentReader::open(&segment::path(&shared.dir, self.segment)) {
                    Ok(file) => self.file = Some(file),
                    // Not created yet, or dropped to make room.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if !sealed || !self.advance(shared, committed, &mut chunk) {
                            break;
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let file = self.file.as_mut().expect("opened above");
            let end = if sealed {
                file.len()?
            } else {
                committed.offset
            };
            match file.read(self.offset, end)? {
                Found::Record { header, body, next } => {
                    self.offset = next;
                    if header.seq < self.seq {
                        continue; // finished before the last restart
                    }
                    if header.seq > self.seq {
                        chunk.gaps.push((self.seq, header.seq));
                    }
                    self.seq = header.seq + 1;
                    match record::decode_body(&body) {
                        Ok(payload) => {
                            body_bytes += body.len();
                            chunk.records.push((header.seq, payload));
                        }
                        Err(error) => {
                            tracing::warn!(exporter = %shared.name, %error, "skipping a disk buffer record");
                            chunk.damaged += 1;
                            chunk.gaps.push((header.seq, header.seq + 1));
                        }
                    }
                }
                Found::Damaged { next } => {
                    self.offset = next;
                    chunk.damaged += 1;
                }
                Found::End => {
                    if !sealed || !self.advance(shared, committed, &mut chunk) {
                        break;
                    }
                }
            }
        }
        Ok(chunk)
    }

    /// Moves to the start of the next segment; records between are a gap.
    fn advance(&mut self, shared: &Shared, committed: Committed, chunk: &mut Chunk) -> bool {
        let Some(next) = shared.enter_next(self.segment, committed.segment) else {
            return false;
        };
        if self.seq < next {
            chunk.gaps.push((self.seq, next));
            self.seq = next;
        }
        self.segment = next;
        self.offset = 0;
        self.file = None;
        true
    }
}

/// The task that hands the buffer's records to the workers, in order (see the module docs).
pub(crate) struct Reader {
    shared: Arc<Shared>,
    hot: mpsc::Receiver<Hot>,
    /// A copy received but not yet due (records before it are still to be read from disk).
    pending: Option<Hot>,
    committed: watch::Receiver<Committed>,
    writer_done: bool,
    cursor: Cursor,
    shards: Vec<mpsc::Sender<Queued>>,
    next_shard: usize,
    phase: watch::Receiver<Phase>,
    depth_gauge: Gauge,
}

/// The shutdown deadline passed (or the workers are gone): the reader stops.
struct Stop;

impl Reader {
    pub async fn run(mut self) {
        loop {
            let records = match self.next_records().await {
                Ok(Some(records)) => records,
                Ok(None) => break,
                Err(Stop) => return,
            };
            for (seq, payload) in records {
                let hold = Hold::new(seq, Arc::clone(&self.shared.acks));
                if payload.is_empty() {
                    continue; // nothing to send: finished as the hold drops
                }
                if self
                    .dispatch(Queued::new(payload, None, Some(hold)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        tracing::debug!(exporter = %self.shared.name, "disk buffer drained to the workers");
    }

    /// The next records in order; `None` once the writer has stopped and all is read.
    async fn next_records(&mut self) -> Result<Option<Vec<(u64, Arc<Payload>)>>, Stop> {
        loop {
            if self.pending.is_none() {
                self.pending = self.hot.try_recv().ok();
            }
            // The writer's copy, when it is the next record.
            if let Some(hot) = self.pending.take() {
                if hot.seq < self.cursor.seq {
                    continue; // read back from disk meanwhile
                }
                let at_cursor =
                    (hot.segment, hot.offset) == (self.cursor.segment, self.cursor.offset);
                if hot.seq == self.cursor.seq || at_cursor {
                    if let Some(record) = self.take_hot(hot) {
                        return Ok(Some(record));
                    }
                    continue;
                }
                self.pending = Some(hot);
            }
            // What is on disk and not read yet.
            let committed = *self.committed.borrow();
            let position = (self.cursor.segment, self.cursor.offset);
            if position != (committed.segment, committed.offset) {
                let chunk = self.read_disk(committed).await?;
                if !chunk.is_empty() {
                    return Ok(Some(chunk));
                }
                if (self.cursor.segment, self.cursor.offset) != position {
                    continue; // stepped over gaps or damage; keep reading
                }
            }
            if self.writer_done {
                match self.pending.take() {
                    // Nothing else can come: what was before it is lost (failed writes).
                    Some(hot) => match self.take_hot(hot) {
                        Some(record) => return Ok(Some(record)),
                        None => continue,
                    },
                    None if self.hot.is_empty() => return Ok(None),
                    None => continue,
                }
            }
            tokio::select! {
                hot = self.hot.recv(), if self.pending.is_none() => self.pending = hot,
                changed = self.committed.changed(), if !self.writer_done => {
                    self.writer_done = changed.is_err();
                }
                () = wait_for_abort(&mut self.phase) => return Err(Stop),
            }
        }
    }

    /// Takes the writer's copy as the next record, unless its segment was dropped to make room
    /// (the disk path then steps over it).
    fn take_hot(&mut self, hot: Hot) -> Option<Vec<(u64, Arc<Payload>)>> {
        if !self.shared.enter(hot.segment) {
            return None;
        }
        if hot.seq > self.cursor.seq {
            self.shared.acks.finish(self.cursor.seq, hot.seq);
        }
        if hot.segment != self.cursor.segment {
            self.cursor.file = None;
        }
        self.cursor.seq = hot.seq + 1;
        self.cursor.segment = hot.segment;
        self.cursor.offset = hot.offset + hot.len;
        Some(vec![(hot.seq, hot.payload)])
    }

    /// Reads records back from disk; applies gaps and damage.
    async fn read_disk(&mut self, committed: Committed) -> Result<Vec<(u64, Arc<Payload>)>, Stop> {
        let shared = Arc::clone(&self.shared);
        let mut cursor = std::mem::replace(
            &mut self.cursor,
            Cursor {
                seq: 0,
                segment: 0,
                offset: 0,
                file: None,
            },
        );
        let read = tokio::select! {
            read = tokio::task::spawn_blocking(move || {
                let chunk = cursor.read_chunk(&shared, committed);
                (cursor, chunk)
            }) => read,
            () = wait_for_abort(&mut self.phase) => return Err(Stop),
        };
        let Ok((cursor, chunk)) = read else {
            tracing::error!(exporter = %self.shared.name, "disk buffer reader failed");
            return Err(Stop);
        };
        self.cursor = cursor;
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                // Retried on the next wake-up; the writer keeps writing meanwhile.
                tracing::error!(exporter = %self.shared.name, %error, "cannot read the disk buffer");
                tokio::select! {
                    () = tokio::time::sleep(HOUSEKEEPING) => {}
                    () = wait_for_abort(&mut self.phase) => return Err(Stop),
                }
                return Ok(Vec::new());
            }
        };
        let stats = &self.shared.stats;
        if chunk.damaged > 0 {
            tracing::warn!(
                exporter = %self.shared.name,
                damaged = chunk.damaged,
                "skipped damaged disk buffer records"
            );
            stats.corrupt.inc_by(chunk.damaged);
        }
        for (start, end) in chunk.gaps {
            self.shared.acks.finish(start, end);
        }
        stats.replayed.inc_by(chunk.records.len() as u64);
        Ok(chunk
            .records
            .into_iter()
            .map(|(seq, payload)| (seq, Arc::new(payload)))
            .collect())
    }

    /// Hands one payload to the next worker with room, waiting for one if all are busy.
    async fn dispatch(&mut self, queued: Queued) -> Result<(), Stop> {
        let n = self.shards.len();
        let mut queued = Some(queued);
        for i in 0..n {
            let shard = &self.shards[(self.next_shard + i) % n];
            if let Ok(permit) = shard.try_reserve() {
                permit.send(queued.take().expect("sent once"));
                self.next_shard = (self.next_shard + i + 1) % n;
                self.depth_gauge.inc();
                return Ok(());
            }
        }
        let shard = &self.shards[self.next_shard];
        self.next_shard = (self.next_shard + 1) % n;
        let permit = tokio::select! {
            permit = shard.reserve() => permit.map_err(|_| Stop)?,
            () = wait_for_abort(&mut self.phase) => return Err(Stop),
        };
        permit.send(queued.take().expect("sent once"));
        self.depth_gauge.inc();
        Ok(())
    }
}
