//! Segment files: naming, listing, and reading records back with damage detection.
//!
//! A buffer directory holds append-only segment files named by the sequence number of their
//! first record (`00000000000000000042.seg`), so their order is their name order and a whole
//! segment can be deleted once every record in it is finished. Reading steps over damage: a
//! record whose header is implausible or whose CRC fails is reported once, and reading resumes at
//! the next intact record (found by its magic and verified by its CRC), or at the segment's end.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{Header, HEADER_LEN, MAGIC};

const EXTENSION: &str = "seg";

/// Window of bytes searched at a time for the next record after damage.
const RESYNC_WINDOW: usize = 64 * 1024;

/// Path of the segment whose first record is `first_seq`.
pub(super) fn path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.{EXTENSION}"))
}

/// The segments in `dir` as (first sequence number, size in bytes), oldest first. Other files
/// are ignored.
pub(super) fn list(dir: &Path) -> io::Result<Vec<(u64, u64)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first_seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .filter(|stem| stem.len() == 20)
            .and_then(|stem| stem.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((first_seq, entry.metadata()?.len()));
    }
    segments.sort_unstable();
    Ok(segments)
}

/// What reading at a position found.
#[derive(Debug)]
pub(super) enum Found {
    /// An intact record; the next one starts at `next`.
    Record {
        header: Header,
        body: Vec<u8>,
        next: u64,
    },
    /// Damaged or truncated bytes; the next intact record (or the end) is at `next`.
    Damaged { next: u64 },
    /// Nothing left before the end.
    End,
}

/// Reads the records of one segment file.
#[derive(Debug)]
pub(super) struct SegmentReader {
    file: File,
}

impl SegmentReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
        })
    }

    /// Current size of the file.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Reads the record at `at`, looking no further than `end`.
    pub fn read(&mut self, at: u64, end: u64) -> io::Result<Found> {
        if at >= end {
            return Ok(Found::End);
        }
        if let Some((header, body)) = self.intact_at(at, end)? {
            let next = at + header.record_len();
            return Ok(Found::Record { header, body, next });
        }
        let next = self.resync(at + 1, end)?;
        Ok(Found::Damaged { next })
    }

    /// The intact record at `at` that ends before `end`, if there is one.
    fn intact_at(&mut self, at: u64, end: u64) -> io::Result<Option<(Header, Vec<u8>)>> {
        if end - at < HEADER_LEN as u64 {
            return Ok(None);
        }
        let mut raw = [0u8; HEADER_LEN];
        self.read_exact_at(at, &mut raw)?;
        let Some(header) = Header::parse(&raw) else {
            return Ok(None);
        };
        if end - at < header.record_len() {
            return Ok(None);
        }
        let mut body = vec![0u8; header.len as usize];
        self.read_exact_at(at + HEADER_LEN as u64, &mut body)?;
        Ok(header.verifies(&raw, &body).then_some((header, body)))
    }

    /// Offset of the first intact record at or after `from`, or `end`.
    fn resync(&mut self, from: u64, end: u64) -> io::Result<u64> {
        let mut window = Vec::with_capacity(RESYNC_WINDOW);
        let mut pos = from;
        while end.saturating_sub(pos) >= HEADER_LEN as u64 {
            let len = (end - pos).min(RESYNC_WINDOW as u64) as usize;
            window.resize(len, 0);
            self.read_exact_at(pos, &mut window)?;
            let candidates: Vec<u64> = window
                .windows(MAGIC.len())
                .enumerate()
                .filter(|(_, w)| *w == MAGIC)
                .map(|(i, _)| pos + i as u64)
                .collect();
            for candidate in candidates {
                if self.intact_at(candidate, end)?.is_some() {
                    return Ok(candidate);
                }
            }
            // Overlap by the magic's length so a magic across the boundary is not missed.
            pos += (len - (MAGIC.len() - 1)) as u64;
        }
        Ok(end)
    }

    fn read_exact_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(at))?;
        self.file.read_exact(buf)
    }
}

/// What a walk over a whole segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Where the last intact record ends.
    pub valid_len: u64,
    /// One past the highest sequence number seen.
    pub end_seq: Option<u64>,
    /// Intact records.
    pub records: u64,
    /// Spans, log records and metric points in the intact records.
    pub items: [u64; 3],
    /// Damaged regions stepped over (a torn tail counts as one).
    pub damaged: u64,
}

/// Walks every record of the segment at `path`.
pub(super) fn scan(path: &Path) -> io::Result<Scan> {
    let mut reader = SegmentReader::open(path)?;
    let end = reader.len()?;
    let mut scan = Scan::default();
    let mut at = 0;
    loop {
        match reader.read(at, end)? {
            Found::Record { header, next, .. } => {
                scan.valid_len = next;
                scan.records += 1;
                scan.end_seq = Some(scan.end_seq.unwrap_or(0).max(header.seq + 1));
                for (total, items) in scan.items.iter_mut().zip(header.items) {
                    *total += u64::from(items);
                }
                at = next;
            }
            Found::Damaged { next } => {
                scan.damaged += 1;
                at = next;
            }
            Found::End => return Ok(scan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::encode;
    use super::*;
    use crate::export::batch::tests::spans_payload;

    fn write_records(path: &Path, seqs: std::ops::Range<u64>) -> Vec<u64> {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for seq in seqs {
            offsets.push(bytes.len() as u64);
            bytes.extend(encode(seq, &spans_payload("shop", [seq as u8])));
        }
        std::fs::write(path, bytes).unwrap();
        offsets
    }

    fn read_all(path: &Path) -> (Vec<u64>, u64) {
        let mut reader = SegmentReader::open(path).unwrap();
        let end = reader.len().unwrap();
        let (mut seqs, mut damaged, mut at) = (Vec::new(), 0, 0);
        loop {
            match reader.read(at, end).unwrap() {
                Found::Record { header, next, .. } => {
                    seqs.push(header.seq);
                    at = next;
                }
                Found::Damaged { next } => {
                    damaged += 1;
                    at = next;
                }
                Found::End => return (seqs, damaged),
            }
        }
    }

    #[test]
    fn names_sort_by_sequence_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [10, 2, 300] {
            std::fs::write(path(dir.path(), seq), b"x").unwrap();
        }
        std::fs::write(dir.path().join("ack"), b"x").unwrap();
        std::fs::write(dir.path().join("12.seg"), b"x").unwrap();
        let found: Vec<u64> = list(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(found, [2, 10, 300]);
    }

    #[test]
    fn damage_in_the_middle_is_stepped_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.seg");
        let offsets = write_records(&file, 0..5);
        let mut bytes = std::fs::read(&file).unwrap();
        // Garble records 1 and 2 (one damaged region), keep 0, 3, 4.
        for b in &mut bytes[offsets[1] as usize + 10..offsets[3] as usize - 5] {
            *b = 0x5a;
        }
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(read_all(&file), (vec![0, 3, 4], 1));
        let scan = scan(&file).unwrap();
        assert_eq!(scan.end_seq, Some(5));
        assert_eq!(scan.items, [3, 0, 0]);
        assert_eq!(scan.damaged, 1);
        assert_eq!(scan.valid_len, bytes.len() as u64);
    }

    #[test]
    fn torn_tail_is_one_damaged_region() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.seg");
        let offsets = write_records(&file, 7..10);
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(read_all(&file), (vec![7, 8], 1));
        let scan = scan(&file).unwrap();
        assert_eq!(scan.valid_len, offsets[2]);
        assert_eq!(scan.end_seq, Some(9));
    }

    #[test]
    fn reading_stops_at_the_given_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.seg");
        let offsets = write_records(&file, 0..3);
        let mut reader = SegmentReader::open(&file).unwrap();
        let Found::Record { next, .. } = reader.read(0, offsets[1]).unwrap() else {
            panic!("record 0")
        };
        assert_eq!(next, offsets[1]);
        assert!(matches!(reader.read(next, offsets[1]).unwrap(), Found::End));
    }

    #[test]
    fn garbage_file_is_all_damage() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.seg");
        let mut garbage = vec![0x11u8; 200_000];
        garbage[1000..1004].copy_from_slice(&MAGIC);
        std::fs::write(&file, &garbage).unwrap();
        assert_eq!(read_all(&file), (vec![], 1));
        assert_eq!(scan(&file).unwrap().end_seq, None);
    }
}
