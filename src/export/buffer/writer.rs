//! The disk buffer's writer task: appends accepted payloads to the active segment (group
//! commit), syncs them as `buffer_sync` says, answers the edge, hands the reader an in-memory
//! copy, rotates segments, makes room when the buffer is full, persists the acknowledgement
//! floor and deletes finished segments.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};

use super::{
    remove_segment, segment, Committed, Hot, Segment, Shared, WriteRequest, HOUSEKEEPING, MAX_GROUP,
};
use crate::config::{BufferFull, BufferSync};
use crate::export::queue::{Budget, Phase};
use crate::handoff::Refusal;

/// The open segment file.
pub(super) struct Active {
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
    pub(super) shared: Arc<Shared>,
    pub(super) requests: mpsc::Receiver<WriteRequest>,
    pub(super) hot: mpsc::Sender<Hot>,
    pub(super) hot_budget: Budget,
    pub(super) committed: watch::Sender<Committed>,
    pub(super) active: Option<Active>,
    pub(super) sync: BufferSync,
    /// Written since the last sync.
    pub(super) dirty: bool,
    pub(super) persisted_floor: u64,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) depth_gauge: Gauge,
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
