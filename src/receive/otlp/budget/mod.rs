//! Decoding within budgets: an OTLP body is measured before it is decoded.
//!
//! A few kilobytes of gzip can hold millions of empty messages (an empty span is two bytes of
//! protobuf or three of JSON, and a few hundred bytes once decoded), so counting the items after
//! decoding is too late: the memory is already spent. Before `prost` or `serde` build anything,
//! a pre-pass walks the body (the protobuf wire format by tags and lengths, the JSON by a
//! non-allocating serde visitor), both guided by the same table of the OTLP message shapes
//! ([`schema`]). It counts resources, scopes and items (spans, log records, metrics) and
//! estimates the memory of the decoded request from the Rust size of every message it meets,
//! the spare capacity of growing vectors and the body's own bytes (strings cost at most that).
//! It stops at the first entry over a budget:
//!
//! - more than `limits.max_events_per_batch` entries, counting every resource and scope (empty
//!   ones too) along with the items: `413` `too_many_items`;
//! - an estimated decoded size over [`DECODED_BYTES_PER_DECOMPRESSED_BYTE`] times
//!   `limits.max_decompressed_bytes`: `413` `too_large_decoded`.
//!
//! So one request never costs more than a small multiple of `max_decompressed_bytes`. Span
//! events and links are capped per span later, with the other item caps
//! ([`crate::process::limits`]); the decoded-size budget is what bounds them here.

mod json;
mod proto;
pub mod schema;

use crate::config::LimitsConfig;
use crate::receive::body::BodyFormat;
use crate::receive::error::{EdgeError, Reason};
pub use schema::Msg;

/// How many bytes of decoded request one byte of decompressed body may cost. Real OTLP bodies
/// take two to four times their size once decoded; empty messages take a hundred times.
pub const DECODED_BYTES_PER_DECOMPRESSED_BYTE: u64 = 8;

/// The limits of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most resources, scopes and items together (`limits.max_events_per_batch`).
    pub max_entries: u64,
    /// Most estimated bytes of decoded request.
    pub max_decoded_bytes: u64,
}

impl Budget {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            max_entries: limits.max_events_per_batch as u64,
            max_decoded_bytes: (limits.max_decompressed_bytes as u64)
                .saturating_mul(DECODED_BYTES_PER_DECOMPRESSED_BYTE),
        }
    }
}

/// What the pre-pass counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub resources: u64,
    pub scopes: u64,
    /// Spans, log records or metrics.
    pub items: u64,
    /// Span events and links, data points, exemplars and quantiles.
    pub nested: u64,
    /// Estimated memory of the decoded request.
    pub decoded_bytes: u64,
}

/// Which budget a body went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Entries,
    DecodedBytes,
}

impl Tally {
    pub fn entries(&self) -> u64 {
        self.resources + self.scopes + self.items
    }

    /// Counts one message of type `msg`, held `copies` times while decoding.
    fn message(&mut self, msg: Msg, copies: u64, budget: &Budget) -> Result<(), Over> {
        match msg.role() {
            schema::Role::Resource => self.resources += 1,
            schema::Role::Scope => self.scopes += 1,
            schema::Role::Item => self.items += 1,
            schema::Role::Nested => self.nested += 1,
            schema::Role::Part => {}
        }
        self.bytes(msg.size() * copies, budget)?;
        if self.entries() > budget.max_entries {
            return Err(Over::Entries);
        }
        Ok(())
    }

    /// Adds `n` estimated bytes.
    fn bytes(&mut self, n: u64, budget: &Budget) -> Result<(), Over> {
        self.decoded_bytes = self.decoded_bytes.saturating_add(n);
        if self.decoded_bytes > budget.max_decoded_bytes {
            return Err(Over::DecodedBytes);
        }
        Ok(())
    }

    /// The spare capacity of a vector grown to `len` elements one push at a time.
    fn growth(&mut self, len: u64, element: u64, budget: &Budget) -> Result<(), Over> {
        if len == 0 {
            return Ok(());
        }
        let capacity = len.checked_next_power_of_two().unwrap_or(len).max(4);
        self.bytes((capacity - len.min(capacity)) * element, budget)
    }
}

/// Whether a body is too small to go over the decoded-size budget whatever it holds, so that
/// decoding it first is bounded and the pre-pass can be skipped ([`check_entries`] then counts
/// after decoding). Every message takes at least two body bytes (`{}` in JSON, a tag and a zero
/// length in protobuf) and at most [`Msg::largest`] bytes once decoded, twice that while JSON
/// buffers it, twice again for a growing vector's spare room; a string or id never takes more
/// than its own body bytes. With the default limits, bodies up to ~32 KiB — nearly every
/// browser's request — skip the walk, which cost a third of the JSON decode.
pub fn small_enough(body_len: usize, budget: &Budget) -> bool {
    (body_len as u64).saturating_mul(worst_decoded_per_body_byte()) <= budget.max_decoded_bytes
}

/// The most decoded bytes one body byte can cost (see [`small_enough`]): per two bytes, the
/// largest message, held twice, in a vector at most half full.
fn worst_decoded_per_body_byte() -> u64 {
    2 * Msg::largest() + 1
}

/// The entries budget, checked on a request decoded without the pre-pass ([`small_enough`]):
/// the same refusal as [`measure`] gives.
pub fn check_entries(entries: u64, kind: &str, budget: &Budget) -> Result<(), EdgeError> {
    if entries > budget.max_entries {
        return Err(too_many_entries(kind, budget));
    }
    Ok(())
}

fn too_many_entries(kind: &str, budget: &Budget) -> EdgeError {
    EdgeError::refused_body(
        Reason::TooManyItems,
        format!(
            "more than {} entries in one request (every resource, scope and {kind} counts), \
             over limits.max_events_per_batch; export smaller batches",
            budget.max_entries
        ),
    )
}

/// Measures an OTLP request body of root type `root` (`kind`: its items' name, for the answer)
/// against `budget` without decoding it.
pub fn measure(
    body: &[u8],
    format: BodyFormat,
    root: Msg,
    kind: &str,
    budget: &Budget,
) -> Result<Tally, EdgeError> {
    let result = match format {
        BodyFormat::Protobuf => proto::measure(body, root, budget),
        BodyFormat::Json => json::measure(body, root, budget),
    };
    result.map_err(|e| match e {
        Refusal::Over(Over::Entries) => too_many_entries(kind, budget),
        Refusal::Over(Over::DecodedBytes) => EdgeError::refused_body(
            Reason::TooLargeDecoded,
            format!(
                "decoding this body would take more than {} bytes of memory \
                 ({DECODED_BYTES_PER_DECOMPRESSED_BYTE} × limits.max_decompressed_bytes): \
                 too many (empty) messages for its size",
                budget.max_decoded_bytes
            ),
        ),
        Refusal::Malformed(detail) => EdgeError::refused_body(
            match format {
                BodyFormat::Protobuf => Reason::InvalidProtobuf,
                BodyFormat::Json => Reason::InvalidJson,
            },
            detail,
        ),
    })
}

/// Why a walk stopped.
#[derive(Debug)]
enum Refusal {
    Over(Over),
    /// The body is not valid in its format (the decoder would refuse it too).
    Malformed(String),
}

impl From<Over> for Refusal {
    fn from(over: Over) -> Self {
        Refusal::Over(over)
    }
}

#[cfg(test)]
mod tests;
