//! The lenient-JSON toolkit shared by the decoders (native beacons and Faro payloads).
//!
//! Bodies come from browsers and SDKs we do not control, and field types drift across SDK
//! versions and hand-written senders: viewport sizes arrive as strings, ids as numbers,
//! `brands` as a string or an array. serde's derived structs (like Alloy's Go structs) fail the
//! whole document on the first wrong type; here a wrong field costs one item, never the batch.
//! Every value is read through one visitor framework that accepts any JSON type, coerces what
//! has an obvious meaning and reports the rest as wrong after consuming it, so the parser stays
//! in step. Each coercion rule (a number sent as a string, a non-finite number, a string where a
//! number belongs, …) is written once, in [`scalar`], for both decoders.
//!
//! Reading stays single-pass and borrowing: no intermediate `serde_json::Value` (about twice as
//! slow on the native hot path), strings borrowed from the body when they have no escapes.
//!
//! - [`visit`]: the framework: [`Expect`] (one expected shape), [`Any`] (reads any value into
//!   it), [`Lenient`], [`Found`] and [`Problem`] (what was wrong, for rejection details),
//!   [`take`] for hand-written readers and [`read`] for serde-derived ones;
//! - [`scalar`]: [`Num`], [`UInt`], [`Text`], [`ScalarText`](scalar::ScalarText), [`Flag`],
//!   [`bounded`], and the `deserialize_with` adapters [`string`], [`number`], [`boolean`];
//! - [`containers`]: maps of scalars ([`Pairs`], [`string_map`], [`number_map`]), capped lists
//!   ([`List`]), sub-objects ([`Obj`](containers::Obj), [`Lax`], [`LaxList`]);
//! - [`items`]: top-level item arrays split into raw items, each parsed on its own.
//!
//! Format-specific readers stay with their decoder (the native beacon's event and context
//! shapes, Faro's RFC 3339 `timestamp`), built on these.

pub(crate) mod containers;
pub(crate) mod items;
pub(crate) mod scalar;
pub(crate) mod visit;

pub(crate) use containers::{number_map, string_map, Lax, LaxList, List};
pub(crate) use items::{items, json_type, object};
pub(crate) use scalar::{boolean, bounded, number, string, Flag, Num, Text, UInt};
pub(crate) use visit::{read, take, Any, Expect, Found, Lenient, Problem};
