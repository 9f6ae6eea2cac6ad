//! Attribute keys the bridge writes or reads, in one place.
//!
//! Most are OpenTelemetry semantic-convention names; the bridge's own (`rum.*`,
//! `browser.page_view.id`) are marked as such. A key used by more than one part is defined here
//! and nowhere else. See `docs/otlp-mapping.md` for where each one appears.

/// `session.id` (semconv).
pub const SESSION_ID: &str = "session.id";
/// The page-view id (bridge-defined; semconv has no page-view attribute yet).
pub const PAGE_VIEW_ID: &str = "browser.page_view.id";
/// The URL of the page (semconv `browser.document` entity).
pub const DOCUMENT_URL: &str = "browser.document.url.full";
/// `user.id` (semconv).
pub const USER_ID: &str = "user.id";
/// `enduser.id` (deprecated semconv, still sent by older SDKs).
pub const ENDUSER_ID: &str = "enduser.id";
/// Clock-skew correction applied to the browser's times, in ms (bridge-defined).
pub const CLOCK_SKEW_MS: &str = "rum.clock_skew_ms";
/// The client's (truncated) address.
pub const CLIENT_ADDRESS: &str = "client.address";
/// Device class derived from the user agent: desktop, mobile, tablet or bot (bridge-defined).
pub const DEVICE_CLASS: &str = "rum.device.class";

pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_VERSION: &str = "service.version";
pub const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";
pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";

pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
pub const USER_AGENT_NAME: &str = "user_agent.name";
pub const USER_AGENT_VERSION: &str = "user_agent.version";

pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub const URL_FULL: &str = "url.full";
pub const URL_TEMPLATE: &str = "url.template";
pub const URL_QUERY: &str = "url.query";
pub const URL_FRAGMENT: &str = "url.fragment";
pub const URL_SCHEME: &str = "url.scheme";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const ERROR_TYPE: &str = "error.type";
pub const EXCEPTION_TYPE: &str = "exception.type";
/// The bridge's error-grouping key (no semantic convention has one): a hash of the exception
/// type and its top in-app frames after symbolication (docs/symbolication.md).
pub const EXCEPTION_FINGERPRINT: &str = "rum.exception.fingerprint";
