//! Record framing of the disk buffer: how one accepted payload is laid out in a segment file,
//! and how a damaged record is recognised.
//!
//! A record is a 32-byte header and a body:
//!
//! ```text
//! magic "RBR2" | crc32  | body len | sequence | spans  | log records | metric points | body
//!   4 bytes     u32 LE    u32 LE     u64 LE    u32 LE     u32 LE         u32 LE       len bytes
//! ```
//!
//! The body is the payload as OTLP export requests, one section per signal present:
//! `kind (1 traces, 2 logs, 3 metrics) u8 | length u32 LE | Export<Signal>ServiceRequest`
//! (protobuf), so a record can be replayed into any OTLP receiver. The CRC-32 covers everything
//! after itself, so a flipped bit or a record cut short by a crash is detected; the magic lets a
//! reader find the next intact record after a damaged one; the item counts let the buffer account
//! for records it drops without decoding them.
//!
//! The body is encoded once per accepted request and shared by every buffered exporter; only the
//! header (sequence number, CRC) is per exporter. The CRC of the body is computed once too and
//! combined with each header's.

use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::handoff::{ItemCounts, Payload};

pub(super) const MAGIC: [u8; 4] = *b"RBR2";
pub(super) const HEADER_LEN: usize = 32;
/// Bodies longer than this are not records (a damaged length field), whatever the CRC says.
pub(super) const MAX_BODY_LEN: u32 = 1 << 30;

const TRACES: u8 = 1;
const LOGS: u8 = 2;
const METRICS: u8 = 3;

/// The encoded body of one payload, with what each exporter needs to frame it.
#[derive(Debug, Clone)]
pub(crate) struct RecordBody {
    pub bytes: Bytes,
    crc: crc32fast::Hasher,
    pub items: [u32; 3],
}

impl RecordBody {
    /// Encodes `payload` as export-request sections.
    pub fn encode(payload: &Payload) -> RecordBody {
        let mut bytes = Vec::with_capacity(payload.encoded_len() + 3 * 5 + 3 * 6);
        section(&mut bytes, TRACES, &payload.spans);
        section(&mut bytes, LOGS, &payload.logs);
        section(&mut bytes, METRICS, &payload.metrics);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes);
        let ItemCounts {
            spans,
            logs,
            metric_points,
        } = payload.counts();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        RecordBody {
            bytes: Bytes::from(bytes),
            crc,
            items: [count(spans), count(logs), count(metric_points)],
        }
    }

    /// Bytes of the whole record, header included.
    pub fn record_len(&self) -> u64 {
        (HEADER_LEN + self.bytes.len()) as u64
    }

    /// The header that makes this body record number `seq`.
    pub fn header(&self, seq: u64) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        // Bodies are bounded by the edge's request limits, far below 4 GiB.
        let len = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        header[8..12].copy_from_slice(&len.to_le_bytes());
        header[12..20].copy_from_slice(&seq.to_le_bytes());
        for (i, items) in self.items.iter().enumerate() {
            header[20 + 4 * i..24 + 4 * i].copy_from_slice(&items.to_le_bytes());
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[8..]);
        crc.combine(&self.crc);
        header[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        header
    }
}

/// Appends one export-request section: `kind | len | repeated field 1`.
fn section<M: Message>(out: &mut Vec<u8>, kind: u8, entries: &[M]) {
    if entries.is_empty() {
        return;
    }
    // `Export*ServiceRequest` is exactly field 1 repeated: encode the entries as that message
    // without building it (which would need owned copies).
    let len: usize = entries
        .iter()
        .map(|e| prost::encoding::message::encoded_len(1, e))
        .sum();
    out.put_u8(kind);
    out.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
    for entry in entries {
        prost::encoding::message::encode(1, entry, out);
    }
}

/// A record header whose magic and length are plausible; the CRC is checked with the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    crc: u32,
    pub len: u32,
    pub seq: u64,
    /// Spans, log records and metric data points in the body.
    pub items: [u32; 3],
}

impl Header {
    /// Parses a header; `None` when it cannot be one (wrong magic, absurd length).
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
        if bytes[..4] != MAGIC {
            return None;
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[12..20]);
        let header = Header {
            crc: word(4),
            len: word(8),
            seq: u64::from_le_bytes(seq),
            items: [word(20), word(24), word(28)],
        };
        (header.len <= MAX_BODY_LEN).then_some(header)
    }

    /// Bytes of the whole record, header included.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    /// Whether `body` is the one this header (raw bytes `raw`) was written with.
    pub fn verifies(&self, raw: &[u8; HEADER_LEN], body: &[u8]) -> bool {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&raw[8..]);
        crc.update(body);
        body.len() == self.len as usize && crc.finalize() == self.crc
    }
}

/// Why a verified body could not be turned back into a payload (a bug or a foreign file, since
/// the CRC matched).
#[derive(Debug, thiserror::Error)]
#[error("undecodable disk buffer record: {0}")]
pub(super) struct BadBody(String);

/// Decodes a record body back into the payload it was encoded from.
pub(super) fn decode_body(mut body: &[u8]) -> Result<Payload, BadBody> {
    let mut payload = Payload::default();
    while !body.is_empty() {
        if body.len() < 5 {
            return Err(BadBody("truncated section header".into()));
        }
        let kind = body[0];
        let len = u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let section = body
            .get(5..5 + len)
            .ok_or_else(|| BadBody("section longer than the record".into()))?;
        let bad = |e: prost::DecodeError| BadBody(e.to_string());
        match kind {
            TRACES => payload.spans.extend(
                ExportTraceServiceRequest::decode(section)
                    .map_err(bad)?
                    .resource_spans,
            ),
            LOGS => payload.logs.extend(
                ExportLogsServiceRequest::decode(section)
                    .map_err(bad)?
                    .resource_logs,
            ),
            METRICS => payload.metrics.extend(
                ExportMetricsServiceRequest::decode(section)
                    .map_err(bad)?
                    .resource_metrics,
            ),
            other => return Err(BadBody(format!("unknown section kind {other}"))),
        }
        body = &body[5 + len..];
    }
    Ok(payload)
}

/// Splits `bytes` into its header and body if it starts with one complete, intact record.
#[cfg(test)]
pub(super) fn parse(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let raw: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    let header = Header::parse(raw)?;
    let body = bytes.get(HEADER_LEN..HEADER_LEN + header.len as usize)?;
    header.verifies(raw, body).then_some((header, body))
}

#[cfg(test)]
pub(super) fn encode(seq: u64, payload: &Payload) -> Vec<u8> {
    let body = RecordBody::encode(payload);
    let mut record = body.header(seq).to_vec();
    record.extend_from_slice(&body.bytes);
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::batch::tests::{resource, spans_payload};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    fn mixed_payload() -> Payload {
        let mut payload = spans_payload("shop", 0..3);
        payload.logs.push(ResourceLogs {
            resource: resource("shop"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(), LogRecord::default()],
                ..Default::default()
            }],
            ..Default::default()
        });
        payload
    }

    #[test]
    fn round_trip_with_sequence_and_counts() {
        let payload = mixed_payload();
        let record = encode(42, &payload);
        let (header, body) = parse(&record).expect("intact");
        assert_eq!(header.seq, 42);
        assert_eq!(header.items, [3, 2, 0]);
        assert_eq!(header.record_len(), record.len() as u64);
        assert_eq!(decode_body(body).unwrap(), payload);
        assert_eq!(&record[..4], b"RBR2");
    }

    #[test]
    fn sections_are_export_requests() {
        let payload = spans_payload("shop", 0..2);
        let body = RecordBody::encode(&payload);
        assert_eq!(body.bytes[0], TRACES);
        let request = ExportTraceServiceRequest::decode(&body.bytes[5..]).unwrap();
        assert_eq!(request.resource_spans, payload.spans);
    }

    #[test]
    fn one_body_framed_under_several_sequence_numbers() {
        let payload = mixed_payload();
        let body = RecordBody::encode(&payload);
        for seq in [0, 7, u64::MAX] {
            let mut record = body.header(seq).to_vec();
            record.extend_from_slice(&body.bytes);
            let (header, decoded) = parse(&record).expect("combined CRC verifies");
            assert_eq!(header.seq, seq);
            assert_eq!(decode_body(decoded).unwrap(), payload);
        }
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let record = encode(1, &spans_payload("shop", 0..2));
        for at in 0..record.len() {
            let mut damaged = record.clone();
            damaged[at] ^= 0x20;
            assert!(parse(&damaged).is_none(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn truncated_record_is_not_parsed() {
        let record = encode(1, &spans_payload("shop", 0..2));
        for len in [0, 3, HEADER_LEN - 1, HEADER_LEN, record.len() - 1] {
            assert!(parse(&record[..len]).is_none(), "{len}");
        }
    }

    #[test]
    fn absurd_lengths_and_foreign_bodies_are_refused() {
        let mut raw = [0u8; HEADER_LEN];
        raw[..4].copy_from_slice(&MAGIC);
        raw[8..12].copy_from_slice(&(MAX_BODY_LEN + 1).to_le_bytes());
        assert_eq!(Header::parse(&raw), None);
        assert!(decode_body(&[9, 0, 0, 0, 0]).is_err(), "unknown kind");
        assert!(decode_body(&[1, 5, 0, 0, 0]).is_err(), "section too long");
        assert!(decode_body(&[1, 0]).is_err(), "truncated");
        assert_eq!(decode_body(&[]).unwrap(), Payload::default());
    }
}
