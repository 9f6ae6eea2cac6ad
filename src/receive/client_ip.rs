//! The `ClientIp` extractor: the client's address for a handler, resolved once per request.
//!
//! The TCP peer comes from axum's `ConnectInfo` (the server is built with
//! `into_make_service_with_connect_info`); the rules for trusted proxies live in
//! [`crate::process::client_ip`]. Without connection info (in-process tests) it is `None`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::EdgeState;

/// The client's address, when the connection is known.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<Arc<EdgeState>> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<EdgeState>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(peer.map(|peer| {
            state.client_ips.resolve(peer, &parts.headers)
        })))
    }
}
