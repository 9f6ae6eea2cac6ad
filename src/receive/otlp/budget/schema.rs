//! The shape of the OTLP messages, as far as the budget pre-pass needs it: which fields hold
//! nested messages (by protobuf field number and by OTLP-JSON name), which hold arrays of
//! numbers, and what one decoded message costs in memory (`size_of` of its Rust type).
//!
//! Fields that are not listed (strings, bytes, single numbers) cost at most their bytes in the
//! body, which the pre-pass accounts for as a whole.

use std::mem::size_of;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// An OTLP message type the pre-pass walks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    TraceRequest,
    LogsRequest,
    MetricsRequest,
    ResourceSpans,
    ResourceLogs,
    ResourceMetrics,
    Resource,
    ScopeSpans,
    ScopeLogs,
    ScopeMetrics,
    Scope,
    Span,
    Event,
    Link,
    Status,
    LogRecord,
    Metric,
    Gauge,
    Sum,
    Histogram,
    ExpHistogram,
    Summary,
    NumberPoint,
    HistogramPoint,
    ExpHistogramPoint,
    Buckets,
    SummaryPoint,
    Quantile,
    Exemplar,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
    EntityRef,
}

/// What a message counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `ResourceSpans`, `ResourceLogs`, `ResourceMetrics`.
    Resource,
    /// `ScopeSpans`, `ScopeLogs`, `ScopeMetrics`.
    Scope,
    /// A span, log record or metric: what `max_events_per_batch` limits.
    Item,
    /// Span events and links, data points, exemplars, quantiles.
    Nested,
    /// Everything else (attributes, values, resources' and scopes' descriptions).
    Part,
}

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A message (one, or one per occurrence when repeated).
    Msg(Msg),
    /// Repeated 64-bit numbers: packed fixed-width ones.
    PackedFixed,
    /// Repeated 64-bit numbers: packed varints (1 byte on the wire, 8 in memory).
    PackedVarint,
    /// Repeated strings (each one a `String` of its own).
    Strings,
    /// A scalar, string or bytes field, or an unknown one.
    Other,
}

use Field::{Msg as M, PackedFixed, PackedVarint, Strings};

type Fields = &'static [(u32, &'static str, Field)];

impl Msg {
    /// Memory one decoded message of this type takes, heap parts excluded.
    pub fn size(self) -> u64 {
        let size = match self {
            Msg::TraceRequest => size_of::<ExportTraceServiceRequest>(),
            Msg::LogsRequest => size_of::<ExportLogsServiceRequest>(),
            Msg::MetricsRequest => size_of::<ExportMetricsServiceRequest>(),
            Msg::ResourceSpans => size_of::<ResourceSpans>(),
            Msg::ResourceLogs => size_of::<ResourceLogs>(),
            Msg::ResourceMetrics => size_of::<ResourceMetrics>(),
            Msg::Resource => size_of::<Resource>(),
            Msg::ScopeSpans => size_of::<ScopeSpans>(),
            Msg::ScopeLogs => size_of::<ScopeLogs>(),
            Msg::ScopeMetrics => size_of::<ScopeMetrics>(),
            Msg::Scope => size_of::<InstrumentationScope>(),
            Msg::Span => size_of::<Span>(),
            Msg::Event => size_of::<Event>(),
            Msg::Link => size_of::<Link>(),
            Msg::Status => size_of::<Status>(),
            Msg::LogRecord => size_of::<LogRecord>(),
            Msg::Metric => size_of::<Metric>(),
            Msg::Gauge => size_of::<Gauge>(),
            Msg::Sum => size_of::<Sum>(),
            Msg::Histogram => size_of::<Histogram>(),
            Msg::ExpHistogram => size_of::<ExponentialHistogram>(),
            Msg::Summary => size_of::<Summary>(),
            Msg::NumberPoint => size_of::<NumberDataPoint>(),
            Msg::HistogramPoint => size_of::<HistogramDataPoint>(),
            Msg::ExpHistogramPoint => size_of::<ExponentialHistogramDataPoint>(),
            Msg::Buckets => size_of::<Buckets>(),
            Msg::SummaryPoint => size_of::<SummaryDataPoint>(),
            Msg::Quantile => size_of::<ValueAtQuantile>(),
            Msg::Exemplar => size_of::<Exemplar>(),
            Msg::KeyValue => size_of::<KeyValue>(),
            Msg::AnyValue => size_of::<AnyValue>(),
            Msg::ArrayValue => size_of::<ArrayValue>(),
            Msg::KvList => size_of::<KeyValueList>(),
            Msg::EntityRef => size_of::<EntityRef>(),
        };
        size as u64
    }

    /// Every message type (for bounds over all of them: [`Msg::largest`]).
    pub const ALL: [Msg; 34] = [
        Msg::TraceRequest,
        Msg::LogsRequest,
        Msg::MetricsRequest,
        Msg::ResourceSpans,
        Msg::ResourceLogs,
        Msg::ResourceMetrics,
        Msg::Resource,
        Msg::ScopeSpans,
        Msg::ScopeLogs,
        Msg::ScopeMetrics,
        Msg::Scope,
        Msg::Span,
        Msg::Event,
        Msg::Link,
        Msg::Status,
        Msg::LogRecord,
        Msg::Metric,
        Msg::Gauge,
        Msg::Sum,
        Msg::Histogram,
        Msg::ExpHistogram,
        Msg::Summary,
        Msg::NumberPoint,
        Msg::HistogramPoint,
        Msg::ExpHistogramPoint,
        Msg::Buckets,
        Msg::SummaryPoint,
        Msg::Quantile,
        Msg::Exemplar,
        Msg::KeyValue,
        Msg::AnyValue,
        Msg::ArrayValue,
        Msg::KvList,
        Msg::EntityRef,
    ];

    /// The Rust size of the largest message type.
    pub fn largest() -> u64 {
        Msg::ALL.iter().map(|m| m.size()).max().unwrap_or(0)
    }

    pub fn role(self) -> Role {
        match self {
            Msg::ResourceSpans | Msg::ResourceLogs | Msg::ResourceMetrics => Role::Resource,
            Msg::ScopeSpans | Msg::ScopeLogs | Msg::ScopeMetrics => Role::Scope,
            Msg::Span | Msg::LogRecord | Msg::Metric => Role::Item,
            Msg::Event
            | Msg::Link
            | Msg::NumberPoint
            | Msg::HistogramPoint
            | Msg::ExpHistogramPoint
            | Msg::SummaryPoint
            | Msg::Quantile
            | Msg::Exemplar => Role::Nested,
            _ => Role::Part,
        }
    }

    /// Whether OTLP JSON decoding buffers the whole message before building it (serde's
    /// `flatten`, used for oneofs): it is held twice while it is decoded.
    pub fn buffered_in_json(self) -> bool {
        matches!(
            self,
            Msg::Metric | Msg::AnyValue | Msg::NumberPoint | Msg::Exemplar
        )
    }

    /// What field `number` (protobuf) holds.
    pub fn field(self, number: u32) -> Field {
        self.fields()
            .iter()
            .find(|(n, _, _)| *n == number)
            .map_or(Field::Other, |(_, _, f)| *f)
    }

    /// What field `name` (OTLP JSON, lowerCamelCase as the decoder reads it) holds.
    pub fn json_field(self, name: &str) -> Field {
        self.fields()
            .iter()
            .find(|(_, n, _)| *n == name)
            .map_or(Field::Other, |(_, _, f)| *f)
    }

    fn fields(self) -> Fields {
        const ATTRS: (u32, &str, Field) = (0, "attributes", M(Msg::KeyValue));
        match self {
            Msg::TraceRequest => &[(1, "resourceSpans", M(Msg::ResourceSpans))],
            Msg::LogsRequest => &[(1, "resourceLogs", M(Msg::ResourceLogs))],
            Msg::MetricsRequest => &[(1, "resourceMetrics", M(Msg::ResourceMetrics))],
            Msg::ResourceSpans => &[
                (1, "resource", M(Msg::Resource)),
                (2, "scopeSpans", M(Msg::ScopeSpans)),
            ],
            Msg::ResourceLogs => &[
                (1, "resource", M(Msg::Resource)),
                (2, "scopeLogs", M(Msg::ScopeLogs)),
            ],
            Msg::ResourceMetrics => &[
                (1, "resource", M(Msg::Resource)),
                (2, "scopeMetrics", M(Msg::ScopeMetrics)),
            ],
            Msg::Resource => &[(1, ATTRS.1, ATTRS.2), (3, "entityRefs", M(Msg::EntityRef))],
            Msg::ScopeSpans => &[(1, "scope", M(Msg::Scope)), (2, "spans", M(Msg::Span))],
            Msg::ScopeLogs => &[
                (1, "scope", M(Msg::Scope)),
                (2, "logRecords", M(Msg::LogRecord)),
            ],
            Msg::ScopeMetrics => &[(1, "scope", M(Msg::Scope)), (2, "metrics", M(Msg::Metric))],
            Msg::Scope => &[(3, ATTRS.1, ATTRS.2)],
            Msg::Span => &[
                (9, ATTRS.1, ATTRS.2),
                (11, "events", M(Msg::Event)),
                (13, "links", M(Msg::Link)),
                (15, "status", M(Msg::Status)),
            ],
            Msg::Event => &[(3, ATTRS.1, ATTRS.2)],
            Msg::Link => &[(4, ATTRS.1, ATTRS.2)],
            Msg::LogRecord => &[(5, "body", M(Msg::AnyValue)), (6, ATTRS.1, ATTRS.2)],
            Msg::Metric => &[
                (5, "gauge", M(Msg::Gauge)),
                (7, "sum", M(Msg::Sum)),
                (9, "histogram", M(Msg::Histogram)),
                (10, "exponentialHistogram", M(Msg::ExpHistogram)),
                (11, "summary", M(Msg::Summary)),
                (12, "metadata", M(Msg::KeyValue)),
            ],
            Msg::Gauge | Msg::Sum => &[(1, "dataPoints", M(Msg::NumberPoint))],
            Msg::Histogram => &[(1, "dataPoints", M(Msg::HistogramPoint))],
            Msg::ExpHistogram => &[(1, "dataPoints", M(Msg::ExpHistogramPoint))],
            Msg::Summary => &[(1, "dataPoints", M(Msg::SummaryPoint))],
            Msg::NumberPoint => &[(7, ATTRS.1, ATTRS.2), (5, "exemplars", M(Msg::Exemplar))],
            Msg::HistogramPoint => &[
                (9, ATTRS.1, ATTRS.2),
                (6, "bucketCounts", PackedFixed),
                (7, "explicitBounds", PackedFixed),
                (8, "exemplars", M(Msg::Exemplar)),
            ],
            Msg::ExpHistogramPoint => &[
                (1, ATTRS.1, ATTRS.2),
                (8, "positive", M(Msg::Buckets)),
                (9, "negative", M(Msg::Buckets)),
                (11, "exemplars", M(Msg::Exemplar)),
            ],
            Msg::Buckets => &[(2, "bucketCounts", PackedVarint)],
            Msg::SummaryPoint => &[
                (7, ATTRS.1, ATTRS.2),
                (6, "quantileValues", M(Msg::Quantile)),
            ],
            Msg::Exemplar => &[(7, "filteredAttributes", M(Msg::KeyValue))],
            Msg::KeyValue => &[(2, "value", M(Msg::AnyValue))],
            Msg::AnyValue => &[
                (5, "arrayValue", M(Msg::ArrayValue)),
                (6, "kvlistValue", M(Msg::KvList)),
            ],
            Msg::ArrayValue => &[(1, "values", M(Msg::AnyValue))],
            Msg::KvList => &[(1, "values", M(Msg::KeyValue))],
            Msg::EntityRef => &[(3, "idKeys", Strings), (4, "descriptionKeys", Strings)],
            Msg::Status | Msg::Quantile => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_number_and_by_json_name_agree() {
        assert_eq!(Msg::Span.field(11), Field::Msg(Msg::Event));
        assert_eq!(Msg::Span.json_field("events"), Field::Msg(Msg::Event));
        assert_eq!(Msg::Span.field(5), Field::Other, "the name is a string");
        assert_eq!(Msg::Span.json_field("droppedEventsCount"), Field::Other);
        assert_eq!(Msg::Buckets.field(2), Field::PackedVarint);
        assert!(Msg::Span.size() > 100, "a span is a large struct");
    }
}
