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
//! - **Acks** ([`super::acks`]): the batches made from a record hold it; when the destination has
//!   acknowledged them all the record is finished. The floor below which all records are
//!   finished is persisted, so a restart replays from there (at-least-once).

mod reader;
mod record;
mod segment;
#[cfg(test)]
mod tests;
mod writer;

pub(crate) use reader::Reader;
pub(crate) use record::RecordBody;
pub(crate) use writer::Writer;

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot, watch};

use super::acks::{self, Acks, Hold};
use super::queue::{Budget, Budgeted, Phase, QueueHandle, Queued};
use super::ExportError;
use crate::admin::{Exporter, ExporterReason, ExporterSignalReason, Metrics};
use crate::config::{BufferFull, ExporterConfig};
use crate::handoff::{Payload, Refusal, Signal};

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
        cursor: reader::Cursor {
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
