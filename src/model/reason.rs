//! The typed reasons a request or an item is refused or withheld: one list every format and
//! every stage shares, so a counter label is a name the compiler checks.

/// Why a request or an item was refused: the label of `rum_bridge_items_rejected_total`.
///
/// One enum for every format, so a reason is a name the compiler checks, and the edge picks a
/// status by variant (`TooManyItems` is `413`, a malformed body `400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // Whole requests, at the edge.
    TooLarge,
    TooLargeDecompressed,
    UnsupportedMediaType,
    UnsupportedEncoding,
    BodyReadError,
    /// The body did not arrive whole within `server.body_read_timeout` (`408`).
    BodyTimeout,
    InvalidGzip,
    UnknownApp,
    /// More than one different app key in one request (`?key=a&key=b`, repeated `x-api-key`).
    AmbiguousAppKey,
    /// No app key, and the request's `Origin` is listed by more than one app.
    AmbiguousOrigin,
    OriginNotAllowed,
    RateLimitedIp,
    RateLimitedApp,
    QueueFull,
    ShuttingDown,
    /// A Faro retry of a batch already accepted (answered `202`, not exported again).
    DuplicateBatch,
    /// A metrics flush that an export queue or disk buffer refused.
    MetricsQueueFull,
    // Whole bodies, by a decoder.
    InvalidJson,
    InvalidProtobuf,
    TooDeep,
    WrongShape,
    UnsupportedVersion,
    InvalidTimeOrigin,
    /// More items than `limits.max_events_per_batch` (the request, or the items beyond it).
    TooManyItems,
    /// An OTLP body whose decoded form would exceed the memory budget of one request.
    TooLargeDecoded,
    // Single items.
    NotAnObject,
    MissingField,
    UnknownType,
    UnsupportedVital,
    InvalidNumber,
    InvalidField,
    InvalidMeta,
    InvalidSection,
    InvalidItem,
    TooManyResources,
    InvalidTraces,
    InvalidSpan,
    /// A number outside its plausible range, or not finite ([`bounds`]).
    ImplausibleValue,
}

impl Reason {
    /// The counter label (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::TooLargeDecompressed => "too_large_decompressed",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::UnsupportedEncoding => "unsupported_encoding",
            Reason::BodyReadError => "body_read_error",
            Reason::BodyTimeout => "body_timeout",
            Reason::InvalidGzip => "invalid_gzip",
            Reason::UnknownApp => "unknown_app",
            Reason::AmbiguousAppKey => "ambiguous_app_key",
            Reason::AmbiguousOrigin => "ambiguous_origin",
            Reason::OriginNotAllowed => "origin_not_allowed",
            Reason::RateLimitedIp => "rate_limited_ip",
            Reason::RateLimitedApp => "rate_limited_app",
            Reason::QueueFull => "queue_full",
            Reason::ShuttingDown => "shutting_down",
            Reason::DuplicateBatch => "duplicate_batch",
            Reason::MetricsQueueFull => "metrics_queue_full",
            Reason::InvalidJson => "invalid_json",
            Reason::InvalidProtobuf => "invalid_protobuf",
            Reason::TooDeep => "too_deep",
            Reason::WrongShape => "wrong_shape",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::InvalidTimeOrigin => "invalid_time_origin",
            Reason::TooManyItems => "too_many_items",
            Reason::TooLargeDecoded => "too_large_decoded",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingField => "missing_field",
            Reason::UnknownType => "unknown_type",
            Reason::UnsupportedVital => "unsupported_vital",
            Reason::InvalidNumber => "invalid_number",
            Reason::InvalidField => "invalid_field",
            Reason::InvalidMeta => "invalid_meta",
            Reason::InvalidSection => "invalid_section",
            Reason::InvalidItem => "invalid_item",
            Reason::TooManyResources => "too_many_resources",
            Reason::InvalidTraces => "invalid_traces",
            Reason::InvalidSpan => "invalid_span",
            Reason::ImplausibleValue => "implausible_value",
        }
    }
}

/// A reason equals its counter label (tests and logs compare by label).
impl PartialEq<&str> for Reason {
    fn eq(&self, label: &&str) -> bool {
        self.as_str() == *label
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
