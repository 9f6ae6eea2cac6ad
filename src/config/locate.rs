//! Where a bad setting came from: the file and line, or the environment variable.
//!
//! Validation ([`super::validate`]) works on the typed config and names the offending key
//! (`exporters[0].endpoint`). An operator with a long file also wants the line, as the parse
//! errors give it; so when the config came from a file, each problem's key path is looked up in
//! the file's TOML document, whose spans `toml` keeps (`toml::de::DeTable`), and the line of
//! the value (or, when the key is not written, of the nearest enclosing table) is added. A
//! value that the file does not hold but an environment variable set names that variable.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One validation problem: the key, what is wrong with it, and where the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path as written in the file (`apps[1].key`).
    pub key: String,
    pub message: String,
    pub source: Option<Source>,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A line of the config file (1-based).
    File { path: PathBuf, line: usize },
    /// An environment variable.
    Env { var: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(Source::File { path, line }) => write!(f, "{}:{line}: ", path.display())?,
            Some(Source::Env { var }) => write!(f, "{var}: ")?,
            None => {}
        }
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Which environment variable can set a key the file leaves out ([`super::env`]).
const ENV_SOURCES: [(&str, &str); 5] = [
    ("telemetry.service_name", "OTEL_SERVICE_NAME"),
    ("privacy.user_id_key", super::privacy::USER_ID_KEY_VAR),
    ("metrics.instance_id", "RUM_BRIDGE_INSTANCE_ID"),
    ("resource_attributes", "OTEL_RESOURCE_ATTRIBUTES"),
    ("exporters[", "OTEL_EXPORTER_OTLP_*"),
];

/// What [`locate`] needs to know about where the config came from. `Debug` leaves the file's
/// text out (it may hold secrets).
#[derive(Clone, Default)]
pub struct Origin {
    /// The config file and its text.
    pub file: Option<(PathBuf, String)>,
    /// The [`ENV_SOURCES`] variables that were set (`OTEL_EXPORTER_OTLP_*` when any exporter
    /// variable built the exporter).
    pub env_vars: Vec<(&'static str, &'static str)>,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("file", &self.file.as_ref().map(|(path, _)| path))
            .field("env_vars", &self.env_vars)
            .finish()
    }
}

impl Origin {
    /// Records which of the variables that can set a config key are set.
    /// `file_has_exporters`: the file lists `[[exporters]]`, so the exporter variables are
    /// ignored.
    pub fn new(
        file: Option<(PathBuf, String)>,
        file_has_exporters: bool,
        env: super::EnvLookup<'_>,
    ) -> Self {
        let env_vars = ENV_SOURCES
            .into_iter()
            .filter(|(_, var)| match var.strip_suffix('*') {
                Some(_) if file_has_exporters => false,
                Some(_) => {
                    env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                        || ["TRACES", "LOGS", "METRICS"]
                            .iter()
                            .any(|s| env(&format!("OTEL_EXPORTER_OTLP_{s}_ENDPOINT")).is_some())
                }
                None => env(var).is_some(),
            })
            .collect();
        Self { file, env_vars }
    }
}

/// Splits `key: message` problems and says where each key's value came from.
pub fn locate(problems: Vec<String>, origin: &Origin) -> Vec<Problem> {
    let document = origin
        .file
        .as_ref()
        .and_then(|(path, text)| Some((path, text, DeTable::parse(text).ok()?)));
    problems
        .into_iter()
        .map(|problem| {
            let (key, message) = match problem.split_once(": ") {
                Some((k, m)) => (k.to_owned(), m.to_owned()),
                None => (String::new(), problem),
            };
            let in_file = document.as_ref().and_then(|(path, text, doc)| {
                let (offset, exact) = find(doc, &key)?;
                Some((exact, path, line_of(text, offset)))
            });
            let from_env = || {
                origin
                    .env_vars
                    .iter()
                    .find(|(prefix, _)| key.starts_with(prefix))
                    .map(|(_, var)| Source::Env {
                        var: (*var).to_owned(),
                    })
            };
            let source = match in_file {
                Some((true, path, line)) => Some(file_source(path, line)),
                Some((false, path, line)) => from_env().or(Some(file_source(path, line))),
                None => from_env(),
            };
            Problem {
                key,
                message,
                source,
            }
        })
        .collect()
}

fn file_source(path: &Path, line: usize) -> Source {
    Source::File {
        path: path.to_owned(),
        line,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// One step of a key path: `name` or `[index]`.
enum Step<'a> {
    Name(&'a str),
    Index(usize),
}

fn steps(key: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Step::Name(name));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Step::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// The offset of `key`'s value in the document; `false` when only an enclosing table was found
/// (the offset is then that table's).
fn find(doc: &Spanned<DeTable<'_>>, key: &str) -> Option<(usize, bool)> {
    let mut current: Option<&DeValue<'_>> = None;
    let mut offset = None;
    for step in steps(key) {
        let next = match (step, current) {
            (Step::Name(name), None) => lookup(doc.get_ref(), name),
            (Step::Name(name), Some(DeValue::Table(t))) => lookup(t, name),
            (Step::Index(i), Some(DeValue::Array(a))) => a.get(i),
            _ => None,
        };
        let Some(next) = next else {
            return offset.map(|o| (o, false));
        };
        offset = Some(next.span().start);
        current = Some(next.get_ref());
    }
    offset.map(|o| (o, true))
}

fn lookup<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[[apps]]\nname = \"a\"\nkey = \"k\"\n\n\
                        [[apps]]\nname = \"b\"\nkey = \"k\"\n\n[[exporters]]\nname = \"f\"\n\
                        protocol = \"file\"\n";

    fn origin() -> Origin {
        Origin {
            file: Some(("rb.toml".into(), TEXT.to_owned())),
            env_vars: vec![("telemetry.service_name", "OTEL_SERVICE_NAME")],
        }
    }

    fn at(line: usize) -> Option<Source> {
        Some(Source::File {
            path: "rb.toml".into(),
            line,
        })
    }

    #[test]
    fn keys_are_found_on_their_line() {
        let problems = locate(
            vec![
                "apps[1].key: duplicate key \"k\"".into(),
                "server.listen: bad".into(),
                // Not written: the enclosing table's line.
                "exporters[0].path: required for protocol \"file\"".into(),
                "telemetry.service_name: must not be empty".into(),
                "geo.database: not a file".into(),
            ],
            &origin(),
        );
        let sources: Vec<_> = problems.iter().map(|p| p.source.clone()).collect();
        assert_eq!(
            sources,
            [
                at(10),
                at(2),
                at(12),
                Some(Source::Env {
                    var: "OTEL_SERVICE_NAME".into()
                }),
                None,
            ]
        );
        assert_eq!(
            problems[0].to_string(),
            "rb.toml:10: apps[1].key: duplicate key \"k\""
        );
        assert_eq!(problems[0].key, "apps[1].key");
        assert_eq!(problems[0].message, "duplicate key \"k\"");
    }

    #[test]
    fn without_a_file_only_the_key_is_named() {
        let problems = locate(vec!["apps[0].key: bad".into()], &Origin::default());
        assert_eq!(problems[0].source, None);
        assert_eq!(problems[0].to_string(), "apps[0].key: bad");
    }
}
