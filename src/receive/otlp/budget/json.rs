//! The OTLP-JSON pre-pass: a serde visitor that follows the message shapes without building
//! anything (keys are looked up borrowed or in a small buffer, other values are skipped).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::schema::{Field, Msg};
use super::{Budget, Over, Refusal, Tally};

/// What a value buffered by serde (`flatten`) costs per JSON value: a `Content` and, in maps,
/// its key.
const BUFFERED_VALUE: u64 = 64;

pub(super) fn measure(body: &[u8], root: Msg, budget: &Budget) -> Result<Tally, Refusal> {
    let state = State {
        tally: RefCell::new(Tally::default()),
        over: RefCell::new(None),
        budget,
    };
    // Strings cost at most their bytes in the body, and twice that inside buffered messages.
    state
        .add_bytes(2 * body.len() as u64)
        .map_err(Refusal::from)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = Node {
        state: &state,
        msg: root,
        buffered: false,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(over) = state.over.into_inner() {
        return Err(Refusal::Over(over));
    }
    walked.map_err(|e| Refusal::Malformed(format!("the body is not valid OTLP JSON: {e}")))?;
    Ok(state.tally.into_inner())
}

struct State<'b> {
    tally: RefCell<Tally>,
    /// Set when a budget is exceeded (the serde error then only stops the walk).
    over: RefCell<Option<Over>>,
    budget: &'b Budget,
}

impl State<'_> {
    fn check<E: de::Error>(&self, result: Result<(), Over>) -> Result<(), E> {
        result.map_err(|over| {
            *self.over.borrow_mut() = Some(over);
            E::custom("over budget")
        })
    }

    fn add_bytes(&self, n: u64) -> Result<(), Over> {
        self.tally.borrow_mut().bytes(n, self.budget)
    }

    fn message<E: de::Error>(&self, msg: Msg, buffered: bool) -> Result<(), E> {
        let copies = if buffered { 2 } else { 1 };
        let result = self.tally.borrow_mut().message(msg, copies, self.budget);
        self.check(result)
    }
}

/// One message: a JSON object whose fields are looked up in the schema.
struct Node<'s, 'b> {
    state: &'s State<'b>,
    msg: Msg,
    /// Inside a message that serde buffers whole (see [`Msg::buffered_in_json`]).
    buffered: bool,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OTLP JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key_seed(Key(self.msg))? {
            let buffered = self.buffered;
            if buffered {
                self.state.check(self.state.add_bytes(BUFFERED_VALUE))?;
            }
            match field {
                Field::Msg(child) => map.next_value_seed(Children {
                    state: self.state,
                    msg: child,
                    buffered: buffered || child.buffered_in_json(),
                })?,
                Field::PackedFixed | Field::PackedVarint => map.next_value_seed(Numbers {
                    state: self.state,
                    each: 8 + if buffered { BUFFERED_VALUE } else { 0 },
                })?,
                Field::Strings => map.next_value_seed(Numbers {
                    state: self.state,
                    each: 24 + if buffered { BUFFERED_VALUE } else { 0 },
                })?,
                Field::Other if buffered => map.next_value_seed(Any(self.state))?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    // Anything else where an object belongs is the decoder's to refuse.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| ())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A field key, looked up in the schema of the message it belongs to.
struct Key(Msg);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
        Ok(self.0.json_field(name))
    }
}

/// A message field's value: one message, an array of them, or null.
struct Children<'s, 'b> {
    state: &'s State<'b>,
    msg: Msg,
    buffered: bool,
}

impl Children<'_, '_> {
    fn node(&self) -> Node<'_, '_> {
        Node {
            state: self.state,
            msg: self.msg,
            buffered: self.buffered,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Children<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Children<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OTLP JSON object or array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.state.message(self.msg, self.buffered)?;
        self.node().visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut len = 0u64;
        while seq
            .next_element_seed(Element { children: &self })?
            .is_some()
        {
            len += 1;
        }
        let result = self
            .state
            .tally
            .borrow_mut()
            .growth(len, self.msg.size(), self.state.budget);
        self.state.check(result)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One element of an array of messages.
struct Element<'c, 's, 'b> {
    children: &'c Children<'s, 'b>,
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let c = self.children;
        d.deserialize_any(Children {
            state: c.state,
            msg: c.msg,
            buffered: c.buffered,
        })
    }
}

/// An array of numbers or strings (or anything else): `each` bytes per element.
struct Numbers<'s, 'b> {
    state: &'s State<'b>,
    each: u64,
}

impl<'de> DeserializeSeed<'de> for Numbers<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Numbers<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut len = 0u64;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
            self.state.check(self.state.add_bytes(self.each))?;
        }
        // Vectors grow by doubling.
        let spare = len.checked_next_power_of_two().unwrap_or(len) - len;
        self.state.check(self.state.add_bytes(spare * self.each))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        IgnoredAny.visit_map(map).map(|_| ())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Any value inside a buffered message: every JSON value in it is held by serde.
struct Any<'s, 'b>(&'s State<'b>);

impl<'de> DeserializeSeed<'de> for Any<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Any<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Any(self.0))?.is_some() {
            self.0.check(self.0.add_bytes(BUFFERED_VALUE))?;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Any(self.0))?;
            self.0.check(self.0.add_bytes(BUFFERED_VALUE))?;
        }
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}
