//! The protobuf pre-pass: walks tags and lengths, never builds a message.

use super::schema::{Field, Msg};
use super::{Budget, Refusal, Tally};

/// Deepest message nesting walked; prost refuses deeper messages (its recursion limit) too.
const MAX_DEPTH: u32 = 100;

/// Allocator bookkeeping counted per non-empty string or bytes field.
const ALLOCATION_OVERHEAD: u64 = 16;

pub(super) fn measure(body: &[u8], root: Msg, budget: &Budget) -> Result<Tally, Refusal> {
    let mut tally = Tally::default();
    // Strings and bytes cost at most their bytes on the wire.
    tally.bytes(body.len() as u64, budget)?;
    tally.message(root, 1, budget)?;
    walk(body, root, 0, &mut tally, budget)?;
    Ok(tally)
}

fn malformed(what: &str) -> Refusal {
    Refusal::Malformed(format!(
        "the body is not a valid OTLP protobuf message: {what}"
    ))
}

/// Reads a varint at `*at`, moving past it.
fn varint(buf: &[u8], at: &mut usize) -> Result<u64, Refusal> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*at) else {
            return Err(malformed("truncated varint"));
        };
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("varint longer than 10 bytes"))
}

/// How many repeated message fields of one message are counted for their vectors' growth.
const TRACKED: usize = 6;

fn walk(
    buf: &[u8],
    msg: Msg,
    depth: u32,
    tally: &mut Tally,
    budget: &Budget,
) -> Result<(), Refusal> {
    if depth >= MAX_DEPTH {
        return Err(malformed("messages nested too deeply"));
    }
    // Occurrences of each repeated message field, for the spare capacity of its vector.
    let mut repeated: [(u32, u64, u64); TRACKED] = [(0, 0, 0); TRACKED];
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("field number too large"))?;
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let field = msg.field(number);
        match key & 7 {
            0 => {
                varint(buf, &mut at)?;
                scalar(field, tally, budget)?;
            }
            1 => {
                at = skip(buf, at, 8)?;
                scalar(field, tally, budget)?;
            }
            5 => {
                at = skip(buf, at, 4)?;
                scalar(field, tally, budget)?;
            }
            2 => {
                let len = varint(buf, &mut at)?;
                let len = usize::try_from(len).map_err(|_| malformed("length too large"))?;
                let end = skip(buf, at, len)?;
                let inner = &buf[at..end];
                at = end;
                match field {
                    Field::Msg(child) => {
                        tally.message(child, 1, budget)?;
                        if let Some(slot) = repeated
                            .iter_mut()
                            .find(|(n, _, _)| *n == number || *n == 0)
                        {
                            *slot = (number, slot.1 + 1, child.size());
                        }
                        walk(inner, child, depth + 1, tally, budget)?;
                    }
                    Field::PackedFixed => tally.bytes(inner.len() as u64, budget)?,
                    Field::PackedVarint => {
                        let values = inner.iter().filter(|b| **b < 0x80).count() as u64;
                        tally.bytes(values * 8, budget)?;
                    }
                    Field::Strings => tally.bytes(24 + ALLOCATION_OVERHEAD, budget)?,
                    Field::Other if len > 0 => tally.bytes(ALLOCATION_OVERHEAD, budget)?,
                    Field::Other => {}
                }
            }
            _ => {
                return Err(malformed(
                    "unsupported wire type (groups are not used by OTLP)",
                ))
            }
        }
    }
    // Singular message fields seen once grow nothing; repeated ones left spare capacity.
    for (number, count, size) in repeated {
        if number != 0 && count > 1 {
            tally.growth(count, size, budget)?;
        }
    }
    Ok(())
}

/// A number outside a packed array: one element of a repeated number field costs 8 bytes.
fn scalar(field: Field, tally: &mut Tally, budget: &Budget) -> Result<(), Refusal> {
    match field {
        Field::PackedFixed | Field::PackedVarint => Ok(tally.bytes(8, budget)?),
        Field::Msg(_) => Err(malformed("a message field with a number's wire type")),
        Field::Strings | Field::Other => Ok(()),
    }
}

/// The position `n` bytes after `at`, if the buffer holds them.
fn skip(buf: &[u8], at: usize, n: usize) -> Result<usize, Refusal> {
    at.checked_add(n)
        .filter(|end| *end <= buf.len())
        .ok_or_else(|| malformed("a field runs past the end of its message"))
}
