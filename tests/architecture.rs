//! The part rules of docs/architecture.md, checked on the import graph of `src/`.
//!
//! A beacon's way through the code reads top to bottom: router → decoder → pipeline → process
//! → convert → handoff → export. A part may use the parts below it, never one above: every
//! `crate::<part>` path in a part's files (imports, paths in code, doc links excluded) is
//! checked against the rules below.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (part, parts it must never use).
const RULES: &[(&str, &[&str])] = &[
    ("receive", &["export", "convert"]),
    ("pipeline", &["receive"]),
    ("process", &["receive", "export", "convert"]),
    ("convert", &["receive", "export"]),
    ("export", &["receive", "process", "convert", "pipeline"]),
    (
        "model",
        &[
            "receive", "pipeline", "process", "convert", "export", "handoff",
        ],
    ),
    (
        "handoff",
        &["receive", "pipeline", "process", "convert", "export"],
    ),
    (
        "config",
        &["process", "receive", "pipeline", "convert", "export"],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The part a file belongs to: `src/<part>/…` or `src/<part>.rs`.
fn part_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Every part named as `crate::<part>` in code (comments are skipped: doc links are not
/// dependencies).
fn used_parts(text: &str) -> BTreeSet<(String, usize)> {
    let mut used = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert((name, n + 1));
            }
            rest = after;
        }
    }
    used
}

#[test]
fn parts_never_import_upstream() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "the source tree was found");
    let mut violations = Vec::new();
    let mut checked = BTreeSet::new();
    for file in &files {
        let part = part_of(&src, file);
        let Some((_, forbidden)) = RULES.iter().find(|(p, _)| *p == part) else {
            continue;
        };
        checked.insert(part.clone());
        let text = std::fs::read_to_string(file).unwrap();
        for (used, line) in used_parts(&text) {
            if forbidden.contains(&used.as_str()) {
                violations.push(format!(
                    "{}:{line}: `{part}` uses `crate::{used}`",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    let expected: BTreeSet<String> = RULES.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(checked, expected, "every part with a rule has files");
    assert!(
        violations.is_empty(),
        "part rules broken (docs/architecture.md#part-rules):\n{}",
        violations.join("\n")
    );
}

/// Inside `export`, the queue primitives, the batcher and the acknowledgements sit below the
/// disk buffer: the buffer feeds the queue, never the other way round.
#[test]
fn export_queue_and_batcher_never_import_the_disk_buffer() {
    let export = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/export");
    for file in ["queue.rs", "batch.rs", "acks.rs"] {
        let text = std::fs::read_to_string(export.join(file)).unwrap();
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !code.contains("super::buffer") && !code.contains("export::buffer"),
            "src/export/{file} imports the disk buffer"
        );
    }
}

#[test]
fn the_checker_sees_imports_and_paths_but_not_comments() {
    let used = used_parts(
        "use crate::export::Payload;\n// crate::receive in a comment\nlet x = crate::convert::f();",
    );
    let names: Vec<&str> = used.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["convert", "export"]);
}

/// Lines of `text` before its inline test module (`#[cfg(test)]` then `mod tests {`).
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|w| w[0].starts_with("#[cfg(test)]") && w[1].contains("mod tests {"))
        .unwrap_or(lines.len())
}

#[test]
fn no_source_file_is_too_long_to_read() {
    const MAX_LINES: usize = 600;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("tests.rs"))
        .filter_map(|f| {
            let n = code_lines(&std::fs::read_to_string(f).unwrap());
            (n > MAX_LINES).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by what the code does (tests excluded, at most {MAX_LINES} lines):\n{}",
        long.join("\n")
    );
}

#[test]
fn code_lines_stop_at_the_test_module() {
    assert_eq!(code_lines("a\nb\n#[cfg(test)]\nmod tests {\n}\n"), 2);
    assert_eq!(
        code_lines("a\n#[cfg(test)]\nmod tests;\n"),
        3,
        "a test file is not inline"
    );
}
