//! JSURL (<https://github.com/Sage/jsurl>, 0.1.x), the URL-safe JSON Boomerang uses for its
//! compressed beacon values (`err`, `servertiming`, `c.cls.d`, `et.e`, …).
//!
//! `~` starts every value: `~'text` a string (`*XX` and `**XXXX` escape code units, `!` is `$`),
//! `~(key~value~key~value)` an object, `~(~value~value)` an array (`~(~)` empty), `~12.5` a
//! number, `~true`, `~false`, `~null`. No crate implements it, so it is written here, iteratively
//! bounded: nesting deeper than [`MAX_DEPTH`] is refused, and the work is linear in the input.

use thiserror::Error;

/// Deepest nesting accepted (Boomerang's deepest value, `err`, nests 4 levels).
pub const MAX_DEPTH: usize = 16;

/// A parsed JSURL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A number, or a string holding one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|n: &f64| n.is_finite())
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Arr(items) => Some(items),
            _ => None,
        }
    }
}

/// Why a JSURL value could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JsUrlError {
    #[error("expected `{expected}` at offset {at}")]
    Expected { expected: char, at: usize },
    #[error("unknown literal at offset {at}")]
    Literal { at: usize },
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("trailing characters at offset {at}")]
    Trailing { at: usize },
}

/// Parses one JSURL value (the whole input).
pub fn parse(input: &str) -> Result<Value, JsUrlError> {
    // jsurl's own parser accepts a quote that was percent-encoded once more.
    let text = input.replace("%27", "'");
    let mut p = Parser {
        s: text.as_bytes(),
        text: &text,
        i: 0,
    };
    let v = p.value(0)?;
    if p.i != p.s.len() {
        return Err(JsUrlError::Trailing { at: p.i });
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, expected: u8) -> Result<(), JsUrlError> {
        if self.peek() == Some(expected) {
            self.i += 1;
            Ok(())
        } else {
            Err(JsUrlError::Expected {
                expected: expected as char,
                at: self.i,
            })
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsUrlError> {
        if depth > MAX_DEPTH {
            return Err(JsUrlError::TooDeep);
        }
        self.eat(b'~')?;
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let v = if self.peek() == Some(b'~') {
                    let mut items = Vec::new();
                    if self.s.get(self.i + 1) == Some(&b')') {
                        self.i += 1;
                    } else {
                        while self.peek() == Some(b'~') {
                            items.push(self.value(depth + 1)?);
                        }
                    }
                    Value::Arr(items)
                } else {
                    let mut members = Vec::new();
                    if self.peek() != Some(b')') {
                        loop {
                            let key = self.string();
                            members.push((key, self.value(depth + 1)?));
                            if self.peek() == Some(b'~') {
                                self.i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    Value::Obj(members)
                };
                self.eat(b')')?;
                Ok(v)
            }
            Some(b'\'') => {
                self.i += 1;
                Ok(Value::Str(self.string()))
            }
            _ => {
                let start = self.i;
                while self.peek().is_some_and(|c| c != b')' && c != b'~') {
                    self.i += 1;
                }
                let word = &self.text[start..self.i];
                match word {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    w if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => w
                        .parse::<f64>()
                        .map(Value::Num)
                        .map_err(|_| JsUrlError::Literal { at: start }),
                    _ => Err(JsUrlError::Literal { at: start }),
                }
            }
        }
    }

    /// An encoded string, up to the next `~` or `)`. Escapes are UTF-16 code units, so a
    /// surrogate pair comes out as one character; a lone surrogate or bad hex as U+FFFD.
    fn string(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(|c| c != b')' && c != b'~') {
            self.i += 1;
        }
        let raw = &self.text[start..self.i];
        if !raw.contains(['*', '!']) {
            return raw.to_owned();
        }
        let mut units: Vec<u16> = Vec::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(c) = rest.chars().next() {
            match c {
                '!' => {
                    units.push(u16::from(b'$'));
                    rest = &rest[1..];
                }
                '*' => {
                    let (width, skip) = if rest[1..].starts_with('*') {
                        (4, 2)
                    } else {
                        (2, 1)
                    };
                    let hex = rest.get(skip..skip + width);
                    match hex.and_then(|h| u16::from_str_radix(h, 16).ok()) {
                        Some(u) => {
                            units.push(u);
                            rest = &rest[skip + width..];
                        }
                        None => {
                            units.push(0xFFFD);
                            rest = &rest[skip..];
                        }
                    }
                }
                c => {
                    let mut buf = [0u16; 2];
                    units.extend_from_slice(c.encode_utf16(&mut buf));
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        String::from_utf16_lossy(&units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_boomerang_servertiming_and_errors() {
        let st =
            parse("~(~(~'traceparent~'00-4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c-a1b2c3d4e5f60718-01))")
                .unwrap();
        let entry = &st.as_array().unwrap()[0];
        assert_eq!(entry.as_array().unwrap()[0].as_str(), Some("traceparent"));
        let err =
            parse("~(~(d~'mx7yavpn~f~(~(c~54~f~'load~l~4~wo~'*2fp*2fapp.js))~m~'a*20*22b*22~v~7))")
                .unwrap();
        let e = &err.as_array().unwrap()[0];
        assert_eq!(e.get("d").and_then(Value::as_str), Some("mx7yavpn"));
        assert_eq!(e.get("m").and_then(Value::as_str), Some("a \"b\""));
        assert_eq!(e.get("v").and_then(Value::as_f64), Some(7.0));
        let frame = &e.get("f").unwrap().as_array().unwrap()[0];
        assert_eq!(frame.get("wo").and_then(Value::as_str), Some("/p/app.js"));
        assert_eq!(frame.get("l").and_then(Value::as_f64), Some(4.0));
    }

    #[test]
    fn literals_escapes_and_empty_containers() {
        assert_eq!(parse("~(~)").unwrap(), Value::Arr(vec![]));
        assert_eq!(parse("~()").unwrap(), Value::Obj(vec![]));
        assert_eq!(parse("~-1.5").unwrap(), Value::Num(-1.5));
        assert_eq!(parse("~null").unwrap(), Value::Null);
        assert_eq!(parse("~'**d83d**de00!").unwrap(), Value::Str("😀$".into()));
        assert_eq!(parse("~'*zz").unwrap(), Value::Str("\u{FFFD}zz".into()));
    }

    #[test]
    fn refuses_malformed_and_deep_input() {
        assert!(parse("~(a~1").is_err());
        assert!(parse("~bogus").is_err());
        assert!(parse("'x").is_err());
        assert!(parse("~1)").is_err());
        let deep = "~(".repeat(MAX_DEPTH + 2) + &")".repeat(MAX_DEPTH + 2);
        assert!(parse(&("~(".repeat(MAX_DEPTH) + "~1" + &")".repeat(MAX_DEPTH))).is_ok());
        assert_eq!(parse(&deep), Err(JsUrlError::TooDeep));
    }
}
