//! OTLP-JSON file transport: the embedded default destination.
//!
//! With no exporter configured the daemon still keeps what it receives (docs/architecture.md#embedded-default): each batch
//! becomes one `Export{Trace,Logs,Metrics}ServiceRequest` JSON object per line in
//! `<path>/traces.jsonl`, `logs.jsonl`, `metrics.jsonl` — the OpenTelemetry collector's file
//! exporter format, so the files can be read, or replayed into any collector later.

use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::io::AsyncWriteExt;

use super::batch::BatchData;
use super::retry::SendError;
use super::{Ack, ExportError, Transport};
use crate::config::ExporterConfig;
use crate::handoff::Signal;

/// Appends OTLP-JSON lines to one file per signal.
pub struct FileTransport {
    /// Open for appending, indexed by [`Signal::index`].
    files: [tokio::fs::File; 3],
}

/// One JSON line, newline included.
pub struct JsonLine {
    signal: Signal,
    line: Vec<u8>,
}

impl FileTransport {
    /// Creates the directory and opens (creating) the three files, so that a bad path is a
    /// start-up error rather than a stream of failed exports.
    pub fn new(config: &ExporterConfig) -> Result<Self, ExportError> {
        let dir = config
            .path
            .as_deref()
            .ok_or_else(|| ExportError::MissingPath {
                exporter: config.name.clone(),
            })?;
        let io_error = |path: &Path, source| ExportError::Io {
            exporter: config.name.clone(),
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let open = |signal: Signal| {
            let path = dir.join(format!("{}.jsonl", signal.as_str()));
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map(tokio::fs::File::from_std)
                .map_err(|e| io_error(&path, e))
        };
        Ok(Self {
            files: [
                open(Signal::Traces)?,
                open(Signal::Logs)?,
                open(Signal::Metrics)?,
            ],
        })
    }
}

impl Transport for FileTransport {
    type Prepared = JsonLine;

    fn prepare(&self, batch: BatchData) -> Result<JsonLine, SendError> {
        let (signal, json) = match batch {
            BatchData::Traces(resource_spans) => (
                Signal::Traces,
                serde_json::to_vec(&ExportTraceServiceRequest { resource_spans }),
            ),
            BatchData::Logs(resource_logs) => (
                Signal::Logs,
                serde_json::to_vec(&ExportLogsServiceRequest { resource_logs }),
            ),
            BatchData::Metrics(resource_metrics) => (
                Signal::Metrics,
                serde_json::to_vec(&ExportMetricsServiceRequest { resource_metrics }),
            ),
        };
        let mut line =
            json.map_err(|e| SendError::permanent(format!("cannot encode OTLP/JSON: {e}")))?;
        line.push(b'\n');
        Ok(JsonLine { signal, line })
    }

    async fn send(&mut self, line: &JsonLine) -> Result<Ack, SendError> {
        let file = &mut self.files[line.signal.index()];
        // A full disk may clear up: retry like a network error.
        let retryable = |e: std::io::Error| {
            SendError::retryable(
                format!("cannot write {}.jsonl: {e}", line.signal.as_str()),
                None,
            )
        };
        file.write_all(&line.line).await.map_err(retryable)?;
        file.flush().await.map_err(retryable)?;
        Ok(Ack::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::batch::tests::spans_payload;

    #[tokio::test]
    async fn writes_one_json_request_per_line_with_hex_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ExporterConfig::embedded_default();
        config.path = Some(dir.path().join("nested/out"));
        let mut transport = FileTransport::new(&config).unwrap();
        for ids in [0..2, 2..3] {
            let line = transport
                .prepare(BatchData::Traces(spans_payload("shop", ids).spans))
                .unwrap();
            transport.send(&line).await.unwrap();
        }

        let text = std::fs::read_to_string(dir.path().join("nested/out/traces.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        let spans = &first["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans[0]["traceId"], "abababababababababababababababab");
        assert_eq!(spans[1]["spanId"], "0101010101010101");
        assert_eq!(spans[0]["startTimeUnixNano"], "1700000000000000000");
        // The line reads back as the request it came from.
        let back: ExportTraceServiceRequest = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(back.resource_spans, spans_payload("shop", 2..3).spans);
        for signal in ["logs", "metrics"] {
            assert!(dir
                .path()
                .join(format!("nested/out/{signal}.jsonl"))
                .exists());
        }
    }

    #[test]
    fn missing_path_is_a_config_error() {
        let mut config = ExporterConfig::embedded_default();
        config.path = None;
        assert!(matches!(
            FileTransport::new(&config),
            Err(ExportError::MissingPath { .. })
        ));
    }
}
