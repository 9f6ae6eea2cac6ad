//! Stack text as browsers write it, split into frames and written back.
//!
//! Three shapes exist in the wild, one per engine family:
//!
//! - Chrome/V8 (and Edge, Node): `    at fn (https://x/app.js:1:2)`, `    at https://x/app.js:1:2`,
//!   `    at async fn (…)`, `    at new Foo (…)`;
//! - Firefox (Gecko): `fn@https://x/app.js:1:2`, `@https://x/app.js:1:2`;
//! - Safari (JavaScriptCore): `fn@https://x/app.js:1:2`, a bare `https://x/app.js:1:2`,
//!   `global code@…`, `[native code]`.
//!
//! A line that is not a frame (the `Type: message` header, `eval` frames, native code) is kept
//! verbatim. A resolved frame is written back in its own line's style.

/// How a frame line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `    at fn (url:line:col)`; `indent` is the line's leading whitespace length.
    Chrome { indent: usize },
    /// `fn@url:line:col` (Firefox and Safari).
    At,
    /// A bare `url:line:col` (Safari's anonymous frames).
    Bare,
}

/// One frame of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function as written (`t`, `Object.t`, `async t`), if any.
    pub function: Option<String>,
    /// The script URL.
    pub url: String,
    /// 1-based line and column.
    pub line: u32,
    pub column: u32,
    pub style: Style,
    /// Whether `function` is the original name: false for a resolved frame whose function
    /// the map did not name (it keeps its minified name, which changes between releases).
    pub original_name: bool,
}

/// A line of a stack: a frame, or text kept as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Frame(Frame),
    Text(String),
}

/// Splits a stack into lines, each a frame where it parses as one.
pub fn parse(stack: &str) -> Vec<Line> {
    stack
        .lines()
        .map(|line| match parse_frame(line) {
            Some(frame) => Line::Frame(frame),
            None => Line::Text(line.to_owned()),
        })
        .collect()
}

/// Writes lines back, joined by `\n`.
pub fn render(lines: &[Line]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match line {
            Line::Text(text) => out.push_str(text),
            Line::Frame(frame) => out.push_str(&render_frame(frame)),
        }
    }
    out
}

/// One frame in its style.
pub fn render_frame(f: &Frame) -> String {
    let place = format!("{}:{}:{}", f.url, f.line, f.column);
    match (f.style, f.function.as_deref()) {
        (Style::Chrome { indent }, Some(function)) => {
            format!("{:indent$}at {function} ({place})", "")
        }
        (Style::Chrome { indent }, None) => format!("{:indent$}at {place}", ""),
        (Style::At, function) | (Style::Bare, function @ Some(_)) => {
            format!("{}@{place}", function.unwrap_or(""))
        }
        (Style::Bare, None) => place,
    }
}

fn parse_frame(line: &str) -> Option<Frame> {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("at ") {
        let indent = line.len() - trimmed.len();
        return chrome(rest.trim_end(), indent);
    }
    let trimmed = trimmed.trim_end();
    if let Some(at) = trimmed.rfind('@') {
        // `fn@url`; an `@` inside the URL (credentials) would sit after `://`.
        let (function, location) = (&trimmed[..at], &trimmed[at + 1..]);
        if location.contains("://") && !function.contains("://") {
            let (url, line, column) = location_of(location)?;
            return Some(Frame {
                function: (!function.is_empty()).then(|| function.to_owned()),
                url,
                line,
                column,
                style: Style::At,
                original_name: true,
            });
        }
    }
    if trimmed.contains("://") && !trimmed.contains(' ') {
        let (url, line, column) = location_of(trimmed)?;
        return Some(Frame {
            function: None,
            url,
            line,
            column,
            style: Style::Bare,
            original_name: true,
        });
    }
    None
}

/// `fn (url:l:c)` or `url:l:c`, after `at `.
fn chrome(rest: &str, indent: usize) -> Option<Frame> {
    let (function, location) = match rest.strip_suffix(')') {
        Some(inner) => {
            let open = inner.rfind(" (")?;
            (Some(inner[..open].to_owned()), &inner[open + 2..])
        }
        None => (None, rest),
    };
    // `eval at …` frames name a place inside generated code: not resolvable.
    if location.contains([' ', '(', ')']) || location.starts_with("eval") {
        return None;
    }
    let (url, line, column) = location_of(location)?;
    Some(Frame {
        function,
        url,
        line,
        column,
        style: Style::Chrome { indent },
        original_name: true,
    })
}

/// `url:line:col` → its parts; `None` without both numbers.
fn location_of(location: &str) -> Option<(String, u32, u32)> {
    let (rest, column) = location.rsplit_once(':')?;
    let (url, line) = rest.rsplit_once(':')?;
    let line = line.parse().ok()?;
    let column = column.parse().ok()?;
    if url.is_empty() {
        return None;
    }
    Some((url.to_owned(), line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(stack: &str) -> Vec<Frame> {
        parse(stack)
            .into_iter()
            .filter_map(|l| match l {
                Line::Frame(f) => Some(f),
                Line::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn chrome_frames_with_and_without_function_and_round_trip() {
        let stack = "TypeError: Cannot read properties of undefined (reading 'x')\n    \
                     at t (https://shop.example.com/static/app.min.js:1:4821)\n    \
                     at async Object.n [as run] (https://shop.example.com/static/app.min.js:2:17)\n    \
                     at https://cdn.example.net/lib.js?v=3:10:5\n    \
                     at eval (eval at r (https://shop.example.com/a.js:1:2), <anonymous>:1:1)";
        let f = frames(stack);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].function.as_deref(), Some("t"));
        assert_eq!(f[0].url, "https://shop.example.com/static/app.min.js");
        assert_eq!((f[0].line, f[0].column), (1, 4821));
        assert_eq!(f[1].function.as_deref(), Some("async Object.n [as run]"));
        assert_eq!(f[2].function, None);
        assert_eq!(f[2].url, "https://cdn.example.net/lib.js?v=3");
        assert_eq!(f[2].style, Style::Chrome { indent: 4 });
        assert_eq!(render(&parse(stack)), stack);
    }

    #[test]
    fn firefox_frames_and_round_trip() {
        let stack = "t@https://shop.example.com/app.min.js:1:4821\n\
                     n/<@https://shop.example.com/app.min.js:2:17\n\
                     @https://shop.example.com/app.min.js:3:1";
        let f = frames(stack);
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].function.as_deref(), Some("n/<"));
        assert_eq!(f[2].function, None);
        assert_eq!(f[2].style, Style::At);
        assert_eq!(render(&parse(stack)), stack);
    }

    #[test]
    fn safari_frames_native_code_and_bare_urls() {
        let stack = "t@https://shop.example.com/app.min.js:1:4821\n\
                     global code@https://shop.example.com/app.min.js:9:3\n\
                     [native code]\n\
                     https://shop.example.com/app.min.js:4:2";
        let lines = parse(stack);
        assert!(matches!(&lines[2], Line::Text(t) if t == "[native code]"));
        let f = frames(stack);
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].function.as_deref(), Some("global code"));
        assert_eq!(f[2].style, Style::Bare);
        assert_eq!((f[2].line, f[2].column), (4, 2));
        assert_eq!(render(&lines), stack);
    }

    #[test]
    fn lines_without_a_position_are_text() {
        for line in [
            "Error: boom",
            "    at foo (native)",
            "    at <anonymous>",
            "foo@debugger eval code",
            "https://x.example/app.js",
        ] {
            assert!(matches!(&parse(line)[0], Line::Text(_)), "{line}");
        }
    }
}
