//! The disk buffer's reader task: hands the records to the exporter's workers strictly in
//! order, taking the writer's in-memory copy when it has one and reading back from disk (and
//! stepping over damage, counted) what it does not.

use std::io;
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};

use super::record;
use super::segment::{self, Found, SegmentReader};
use super::{Committed, Hold, Hot, Shared, HOUSEKEEPING, MAX_READ_BYTES, MAX_READ_RECORDS};
use crate::export::queue::{wait_for_abort, Phase, Queued};
use crate::handoff::Payload;

/// Where the reader is: the next sequence number it expects and the position it reads at.
pub(super) struct Cursor {
    pub(super) seq: u64,
    pub(super) segment: u64,
    pub(super) offset: u64,
    /// The segment file, once opened.
    pub(super) file: Option<SegmentReader>,
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
    pub(super) shared: Arc<Shared>,
    pub(super) hot: mpsc::Receiver<Hot>,
    /// A copy received but not yet due (records before it are still to be read from disk).
    pub(super) pending: Option<Hot>,
    pub(super) committed: watch::Receiver<Committed>,
    pub(super) writer_done: bool,
    pub(super) cursor: Cursor,
    pub(super) shards: Vec<mpsc::Sender<Queued>>,
    pub(super) next_shard: usize,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) depth_gauge: Gauge,
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
