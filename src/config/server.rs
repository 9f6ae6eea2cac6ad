//! `[server]`: the two listeners and what the public one puts up with.
//!
//! The ingest port faces the internet, so every connection is bounded: the time to send the
//! first request's headers, the time to send a body, how long a connection may sit idle, how
//! many may be open at once, and how many HTTP/2 streams and header bytes one may use. Each
//! bound has a safe default; `docs/architecture.md#connections` tells what a client that goes
//! past one gets.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[server]`: listeners and edge behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public ingest listener (faced by browsers).
    pub listen: SocketAddr,
    /// Admin listener: health, readiness, Prometheus metrics. Never expose publicly.
    pub admin_listen: SocketAddr,
    /// `Access-Control-Max-Age` for CORS preflights, seconds.
    pub cors_max_age_secs: u64,
    /// The one shutdown deadline, from SIGTERM: connections get `shutdown_grace` of it, the
    /// exporters the rest to deliver or persist what is queued.
    #[serde(with = "duration::secs")]
    pub shutdown_timeout: Duration,
    /// How long open connections may take, after SIGTERM, to finish the request they are in;
    /// then they are closed. `shutdown_timeout` when that is shorter ([`Self::grace`]).
    #[serde(with = "duration::secs")]
    pub shutdown_grace: Duration,
    /// `Retry-After` seconds sent with 503 when the queue is full.
    pub retry_after_secs: u64,
    /// Proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` headers name the
    /// client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// A new connection must have sent its first request's headers within this, or it is
    /// closed.
    #[serde(with = "duration::secs")]
    pub header_read_timeout: Duration,
    /// A request body must have arrived whole within this, from the end of its headers, or
    /// the request gets `408`.
    #[serde(with = "duration::secs")]
    pub body_read_timeout: Duration,
    /// A connection with no request in progress (idle keep-alive, or waiting for the next
    /// request's headers) is closed after this.
    #[serde(with = "duration::secs")]
    pub idle_timeout: Duration,
    /// Most connections open at once on the ingest port; more are closed as soon as they are
    /// accepted. Lowered at start-up to stay below the open-file limit with a reserve.
    pub max_connections: usize,
    /// Most HTTP/2 streams (requests) one connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list (decoded header bytes) one request may send.
    pub http2_max_header_list_size: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4380)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 4381)),
            cors_max_age_secs: 7200,
            shutdown_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            retry_after_secs: 5,
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(20),
            max_connections: 10_000,
            http2_max_concurrent_streams: 100,
            http2_max_header_list_size: 16 * 1024,
        }
    }
}

/// Smallest `http2_max_header_list_size` that still lets a browser's ordinary headers through.
const MIN_HEADER_LIST_SIZE: u32 = 4096;

impl ServerConfig {
    /// The part of the shutdown deadline that open connections get.
    pub fn grace(&self) -> Duration {
        self.shutdown_grace.min(self.shutdown_timeout)
    }

    /// Problems with the connection bounds, each starting with the key it concerns (see
    /// `validate`).
    pub(super) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                out.push(format!("server.{key}: must be greater than 0"));
            }
        }
        if self.max_connections == 0 {
            out.push("server.max_connections: must be greater than 0".to_owned());
        }
        if self.http2_max_concurrent_streams == 0 {
            out.push("server.http2_max_concurrent_streams: must be greater than 0".to_owned());
        }
        if self.http2_max_header_list_size < MIN_HEADER_LIST_SIZE {
            out.push(format!(
                "server.http2_max_header_list_size: must be at least {MIN_HEADER_LIST_SIZE}"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::time::Duration;

    #[test]
    fn connection_bounds_parse_like_other_durations_and_name_their_keys() {
        let c = Config::from_toml(
            "[server]\nheader_read_timeout = \"1500ms\"\nbody_read_timeout = 3\n\
             idle_timeout = \"1m\"\nmax_connections = 64\nshutdown_grace = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(c.server.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(3));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.server.max_connections, 64);
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(2));
        c.validate().unwrap();

        let err = Config::from_toml("[server]\nidle_timeout = \"5 min\"\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("unit must be"),
            "{err}"
        );
        let err = Config::from_toml("[server]\nheader_timeout = \"5s\"\n").unwrap_err();
        assert!(err.contains("header_timeout"), "{err}");

        let c = Config::from_toml("[server]\nshutdown_timeout = \"1s\"\n").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.server.grace(),
            Duration::from_secs(1),
            "within the deadline"
        );

        let text = "[server]\nheader_read_timeout = 0\nmax_connections = 0\n\
                    http2_max_concurrent_streams = 0\nhttp2_max_header_list_size = 100\n";
        let err = Config::from_toml(text).unwrap().validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config:\n  server.header_read_timeout: must be greater than 0\n  \
             server.max_connections: must be greater than 0\n  \
             server.http2_max_concurrent_streams: must be greater than 0\n  \
             server.http2_max_header_list_size: must be at least 4096"
        );
    }
}
