//! Containers read leniently: maps of scalars, capped lists, and sub-objects that are read only
//! when they are objects. What does not fit is skipped (drained with `IgnoredAny`), never an
//! error: a wrong entry costs that entry, a wrong container reads as empty or absent.

use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess};

use super::scalar::{Num, ScalarText, Text};
use super::visit::{read, Any, Expect, Lenient};

/// Most entries kept from one Faro `context` / `attributes` / `values` map; the rest are ignored.
pub(crate) const MAX_MAP_ENTRIES: usize = 64;
/// Longest map key kept (bytes); longer keys are dropped with their value.
pub(crate) const MAX_KEY_LEN: usize = 128;

/// An object as `(key, value)` pairs, each value read as `E`: values of the wrong type, empty or
/// overlong keys (over [`MAX_KEY_LEN`]) and entries beyond the first `max` kept are skipped.
#[derive(Clone, Copy)]
pub(crate) struct Pairs<E> {
    pub(crate) value: E,
    pub(crate) max: usize,
}

impl<'de, E: Expect<'de> + Copy> Expect<'de> for Pairs<E> {
    type Out = Vec<(String, E::Out)>;
    const EXPECTED: &'static str = "an object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key_seed(Any(Text))? {
            match key {
                Lenient::Value(key)
                    if out.len() < self.max && !key.is_empty() && key.len() <= MAX_KEY_LEN =>
                {
                    if let Lenient::Value(v) = map.next_value_seed(Any(self.value))? {
                        out.push((key.into_owned(), v));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(out))
    }
}

/// An array of `E` values: the first `max` good ones are kept, wrong items are skipped, the rest
/// of the array is drained.
#[derive(Clone, Copy)]
pub(crate) struct List<E> {
    pub(crate) item: E,
    pub(crate) max: usize,
}

impl<'de, E: Expect<'de> + Copy> Expect<'de> for List<E> {
    type Out = Vec<E::Out>;
    const EXPECTED: &'static str = "an array";

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut out = Vec::new();
        while out.len() < self.max {
            match seq.next_element_seed(Any(self.item))? {
                Some(Lenient::Value(v)) => out.push(v),
                Some(_) => {}
                None => return Ok(Lenient::Value(out)),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient::Value(out))
    }
}

/// An object read as the serde-derived `T`; any other type is wrong.
///
/// `T` should read all its fields leniently; then only a duplicate key inside the object can
/// fail it (and with it the item).
pub(crate) struct Obj<T>(PhantomData<fn() -> T>);

impl<T> Obj<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Clone for Obj<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Obj<T> {}

impl<'de, T: Deserialize<'de>> Expect<'de> for Obj<T> {
    type Out = T;
    const EXPECTED: &'static str = "an object";

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Lenient<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Lenient::Value)
    }
}

/// A sub-object field of a derived struct: read as `T` when it is an object, and as absent when
/// it is any other type ([`Obj`]).
#[derive(Debug)]
pub(crate) struct Lax<T>(pub(crate) Option<T>);

impl<T> Default for Lax<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lax<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, Obj::new()).map(Lax)
    }
}

/// An array field of sub-objects: elements that are objects are read as `T` (at most `CAP`),
/// other elements and anything that is not an array are skipped ([`List`] of [`Obj`]).
#[derive(Debug)]
pub(crate) struct LaxList<T, const CAP: usize>(pub(crate) Vec<T>);

impl<T, const CAP: usize> Default for LaxList<T, CAP> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const CAP: usize> Deserialize<'de> for LaxList<T, CAP> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = List {
            item: Obj::new(),
            max: CAP,
        };
        Ok(LaxList(read(d, list)?.unwrap_or_default()))
    }
}

/// `deserialize_with`: an object of scalar values as `(key, text)` pairs (Faro's `context` and
/// `attributes`, typed `{string: string}`, read through [`ScalarText`]); values of other types
/// are skipped, at most [`MAX_MAP_ENTRIES`] kept; any other type reads as an empty map.
pub(crate) fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    let pairs = Pairs {
        value: ScalarText,
        max: MAX_MAP_ENTRIES,
    };
    Ok(read(d, pairs)?
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_owned()))
        .collect())
}

/// `deserialize_with`: an object of numbers as `(key, number)` pairs (a measurement's `values`),
/// read through [`Num`]; other values skipped, at most [`MAX_MAP_ENTRIES`] kept.
pub(crate) fn number_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    let pairs = Pairs {
        value: Num,
        max: MAX_MAP_ENTRIES,
    };
    Ok(read(d, pairs)?.unwrap_or_default())
}
