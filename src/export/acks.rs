//! Which disk buffer records are finished with, and the floor below which all of them are.
//!
//! Records are sent by several workers at once and acknowledged out of order, and a record's
//! items may be spread over several export requests (batches of different signals). Each batch
//! holding part of a record keeps a [`Hold`] on it; when the last one lets go, the record is
//! finished: acknowledged by the destination, or given up on and counted (a permanent error).
//! The *floor* is the lowest unfinished sequence number: every record below it may be deleted,
//! and it is what a restart replays from. It is persisted in the `ack` file (written to a
//! temporary file, then renamed over the old one, so a crash leaves the old or the new floor).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

const ACK_FILE: &str = "ack";
const ACK_TMP: &str = "ack.tmp";
const ACK_MAGIC: [u8; 4] = *b"RBA1";
const ACK_LEN: usize = 16;

/// Finished records: everything below `floor`, plus ranges above it.
#[derive(Debug)]
pub(crate) struct Acks {
    state: Mutex<AckState>,
}

#[derive(Debug)]
struct AckState {
    floor: u64,
    /// Finished ranges above the floor: start → end (exclusive). Ranges do not overlap.
    above: BTreeMap<u64, u64>,
    /// Set at the shutdown deadline: what is abandoned then is not finished.
    frozen: bool,
}

impl Acks {
    pub fn new(floor: u64) -> Self {
        Self {
            state: Mutex::new(AckState {
                floor,
                above: BTreeMap::new(),
                frozen: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lowest unfinished sequence number.
    pub fn floor(&self) -> u64 {
        self.state().floor
    }

    /// Marks records `start..end` finished.
    pub fn finish(&self, start: u64, end: u64) {
        let mut state = self.state();
        if state.frozen || end <= state.floor || start >= end {
            return;
        }
        if start <= state.floor {
            state.floor = end;
        } else {
            let slot = state.above.entry(start).or_insert(end);
            *slot = (*slot).max(end);
        }
        // Advance the floor over every range it now reaches.
        while let Some((&start, &end)) = state.above.first_key_value() {
            if start > state.floor {
                break;
            }
            state.above.pop_first();
            state.floor = state.floor.max(end);
        }
    }

    /// From now on nothing is marked finished: called when the shutdown deadline abandons the
    /// batches in flight, so that their records stay in the buffer for the next start.
    pub fn freeze(&self) {
        self.state().frozen = true;
    }
}

/// A claim on one record: the record is finished when every clone has been dropped. Batches
/// drop theirs once the destination acknowledged them (or they were given up on and counted).
#[derive(Debug, Clone)]
pub(crate) struct Hold(Arc<HoldInner>);

#[derive(Debug)]
struct HoldInner {
    seq: u64,
    acks: Arc<Acks>,
}

impl Hold {
    pub fn new(seq: u64, acks: Arc<Acks>) -> Self {
        Self(Arc::new(HoldInner { seq, acks }))
    }

    /// Whether `self` and `other` hold the same record.
    pub fn same(&self, other: &Hold) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Drop for HoldInner {
    fn drop(&mut self) {
        self.acks.finish(self.seq, self.seq + 1);
    }
}

/// The persisted floor in `dir`, if there is a valid one.
pub(super) fn read_floor(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join(ACK_FILE)).ok()?;
    let bytes: &[u8; ACK_LEN] = bytes.as_slice().try_into().ok()?;
    if bytes[..4] != ACK_MAGIC {
        return None;
    }
    let mut floor = [0u8; 8];
    floor.copy_from_slice(&bytes[4..12]);
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    (crc32fast::hash(&bytes[..12]) == crc).then(|| u64::from_le_bytes(floor))
}

/// Persists `floor` atomically (write a temporary file, rename it over the old one). Not
/// synced: losing the newest floor only means replaying records that were already delivered.
pub(super) fn write_floor(dir: &Path, floor: u64) -> io::Result<()> {
    let mut bytes = [0u8; ACK_LEN];
    bytes[..4].copy_from_slice(&ACK_MAGIC);
    bytes[4..12].copy_from_slice(&floor.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..12]);
    bytes[12..].copy_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(ACK_TMP);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, dir.join(ACK_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_advances_over_contiguous_finished_records() {
        let acks = Arc::new(Acks::new(10));
        let holds: Vec<Hold> = (10..15).map(|seq| Hold::new(seq, acks.clone())).collect();
        let [h10, h11, h12, h13, h14]: [Hold; 5] = holds.try_into().unwrap();
        let h12_again = h12.clone();
        drop(h12);
        drop(h11);
        assert_eq!(acks.floor(), 10, "10 still held");
        drop(h12_again);
        drop(h10);
        assert_eq!(acks.floor(), 13, "10, 11, 12 finished");
        acks.finish(20, 25);
        drop(h14);
        assert_eq!(acks.floor(), 13);
        acks.finish(15, 20);
        drop(h13);
        assert_eq!(acks.floor(), 25);
        acks.finish(0, 5);
        acks.finish(7, 7);
        assert_eq!(
            acks.floor(),
            25,
            "below the floor or empty: nothing changes"
        );
    }

    #[test]
    fn overlapping_ranges_merge() {
        let acks = Acks::new(0);
        acks.finish(5, 8);
        acks.finish(5, 6);
        acks.finish(3, 6);
        acks.finish(0, 3);
        assert_eq!(acks.floor(), 8);
    }

    #[test]
    fn frozen_acks_keep_their_floor() {
        let acks = Arc::new(Acks::new(0));
        let hold = Hold::new(0, acks.clone());
        acks.freeze();
        drop(hold);
        assert_eq!(
            acks.floor(),
            0,
            "abandoned at the deadline: replayed next time"
        );
    }

    #[test]
    fn floor_file_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_floor(dir.path()), None);
        write_floor(dir.path(), 1234).unwrap();
        assert_eq!(read_floor(dir.path()), Some(1234));
        write_floor(dir.path(), 99).unwrap();
        assert_eq!(read_floor(dir.path()), Some(99));
        let path = dir.path().join(ACK_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_floor(dir.path()), None, "a damaged file is ignored");
        std::fs::write(&path, b"short").unwrap();
        assert_eq!(read_floor(dir.path()), None);
    }
}
