//! Decoding OTLP export requests as browser OpenTelemetry SDKs send them over HTTP.

use prost::Message;
use serde::de::DeserializeOwned;

use crate::receive::body::BodyFormat;
use crate::receive::error::{EdgeError, Reason};

/// Decodes an OTLP export request in JSON (hex ids, string or number 64-bit fields) or protobuf.
pub fn decode<T: Message + Default + DeserializeOwned>(
    body: &[u8],
    format: BodyFormat,
) -> Result<T, EdgeError> {
    match format {
        BodyFormat::Protobuf => T::decode(body).map_err(|e| EdgeError::Malformed {
            reason: Reason::InvalidProtobuf,
            detail: format!("the body is not a valid OTLP protobuf message: {e}"),
        }),
        BodyFormat::Json => serde_json::from_slice(body).map_err(|e| EdgeError::Malformed {
            reason: Reason::InvalidJson,
            detail: format!("the body is not valid OTLP JSON: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn decodes_captured_otlp_json_with_hex_ids() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/real-clients/otlp-json.jsonl"
        ))
        .unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let body = first["body"].as_str().unwrap();
        let req: ExportTraceServiceRequest = decode(body.as_bytes(), BodyFormat::Json).unwrap();
        let spans: Vec<_> = req.resource_spans[0]
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .collect();
        let doc = spans.iter().find(|s| s.name == "documentLoad").unwrap();
        assert_eq!(doc.trace_id.len(), 16);
        assert_eq!(
            crate::model::trace_context::hex(&doc.parent_span_id),
            "a1b2c3d4e5f60718"
        );
    }
}
