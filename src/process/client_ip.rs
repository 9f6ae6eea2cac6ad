//! The client's IP address: found once, used for rate limiting (and geo), exported only when
//! configured, and then truncated (docs/architecture.md#privacy).
//!
//! The address is the TCP peer, unless the peer is a configured trusted proxy
//! (`server.trusted_proxies`): then the `Forwarded` header (RFC 7239 `for=`), else
//! `X-Forwarded-For`, is walked from the nearest hop backwards while the hop that reported it is
//! trusted. A client cannot spoof its address by sending these headers itself: the walk stops
//! at the first untrusted address, and an unparsable entry ends it at the proxy that wrote it.
//!
//! With `privacy.export_client_ip = true`, `client.address` carries the network of the
//! address, e.g. `203.0.113.0` for `203.0.113.77` with the default /24 (/48 for IPv6).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use crate::config::{parse_proxy, Config};

/// Compiled client-address rules.
#[derive(Debug, Clone)]
pub struct ClientIps {
    trusted: Vec<IpNet>,
    /// Prefix lengths (IPv4, IPv6) kept in `client.address`; `None`: not exported.
    export_prefixes: Option<(u8, u8)>,
}

impl ClientIps {
    /// From `server.trusted_proxies` and the `privacy.*client_ip*` keys.
    pub fn new(config: &Config) -> Result<Self, String> {
        let trusted = config
            .server
            .trusted_proxies
            .iter()
            .map(|p| parse_proxy(p))
            .collect::<Result<_, _>>()?;
        let privacy = &config.privacy;
        Ok(Self {
            trusted,
            export_prefixes: privacy
                .export_client_ip
                .then_some((privacy.client_ip_v4_prefix, privacy.client_ip_v6_prefix)),
        })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address, given the TCP peer and the request headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let forwarded: Vec<&str> = headers
            .get_all(http::header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for)
            .collect();
        let hops = if forwarded.is_empty() {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .collect()
        } else {
            forwarded
        };
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match parse_hop(hop) {
                Some(ip) => client = ip.to_canonical(),
                None => break,
            }
        }
        client
    }

    /// `client.address` for export: the truncated address, or `None` when not exported.
    pub fn exported(&self, ip: IpAddr) -> Option<String> {
        let (v4, v6) = self.export_prefixes?;
        let prefix = if ip.is_ipv4() { v4 } else { v6 };
        IpNet::new(ip, prefix)
            .ok()
            .map(|net| net.network().to_string())
    }

    /// The key rate limits are kept under: the address, or its /64 for IPv6 (one host
    /// usually owns a whole /64).
    pub fn rate_limit_key(ip: IpAddr) -> IpAddr {
        match IpNet::new(ip, if ip.is_ipv4() { 32 } else { 64 }) {
            Ok(net) => net.network(),
            Err(_) => ip,
        }
    }
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=http;by=…`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(trusted: &[&str], export: bool) -> ClientIps {
        let mut config = Config::default();
        config.server.trusted_proxies = trusted.iter().map(|s| s.to_string()).collect();
        config.privacy.export_client_ip = export;
        ClientIps::new(&config).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let r = ips(&["10.0.0.0/8"], false);
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=1.1.1.1"),
        ]);
        assert_eq!(r.resolve(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        // No proxies configured: always the peer.
        assert_eq!(ips(&[], false).resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_proxies_are_walked_from_the_nearest_hop() {
        let r = ips(&["10.0.0.0/8", "192.168.1.1"], false);
        let cases = [
            (vec![("x-forwarded-for", "203.0.113.7")], "203.0.113.7"),
            (
                // The client forged the first entry; the nearest untrusted hop wins.
                vec![("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")],
                "203.0.113.7",
            ),
            (
                vec![
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "203.0.113.7, 192.168.1.1"),
                ],
                "203.0.113.7",
            ),
            (vec![("x-forwarded-for", "10.2.2.2, 10.3.3.3")], "10.2.2.2"),
            (vec![("x-forwarded-for", "garbage, 10.3.3.3")], "10.3.3.3"),
            (vec![("x-forwarded-for", "203.0.113.7:5555")], "203.0.113.7"),
            (
                vec![("x-forwarded-for", "[2001:db8::7]:443")],
                "2001:db8::7",
            ),
            (
                vec![("x-forwarded-for", "::ffff:203.0.113.7")],
                "203.0.113.7",
            ),
            (
                vec![
                    (
                        "forwarded",
                        "for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.9.9.9",
                    ),
                    ("x-forwarded-for", "6.6.6.6"),
                ],
                "2001:db8:cafe::17",
            ),
            (vec![("forwarded", "for=unknown")], "10.0.0.1"),
            (vec![], "10.0.0.1"),
        ];
        for (h, expected) in cases {
            assert_eq!(
                r.resolve(ip("10.0.0.1"), &headers(&h)),
                ip(expected),
                "{h:?}"
            );
        }
        // A v4-mapped peer is seen as its IPv4 address.
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(r.resolve(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn exported_addresses_are_truncated() {
        assert_eq!(ips(&[], false).exported(ip("203.0.113.77")), None);
        let r = ips(&[], true);
        assert_eq!(
            r.exported(ip("203.0.113.77")).as_deref(),
            Some("203.0.113.0")
        );
        assert_eq!(
            r.exported(ip("2001:db8:abcd:1234::1")).as_deref(),
            Some("2001:db8:abcd::")
        );
        let mut config = Config::default();
        config.privacy.export_client_ip = true;
        config.privacy.client_ip_v4_prefix = 32;
        config.privacy.client_ip_v6_prefix = 0;
        let r = ClientIps::new(&config).unwrap();
        assert_eq!(
            r.exported(ip("203.0.113.77")).as_deref(),
            Some("203.0.113.77")
        );
        assert_eq!(r.exported(ip("2001:db8::1")).as_deref(), Some("::"));
    }

    #[test]
    fn rate_limit_keys_group_ipv6_by_64() {
        assert_eq!(
            ClientIps::rate_limit_key(ip("203.0.113.77")),
            ip("203.0.113.77")
        );
        assert_eq!(
            ClientIps::rate_limit_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
    }

    #[test]
    fn proxy_entries() {
        assert_eq!(parse_proxy("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_proxy(" 192.0.2.1 ").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(parse_proxy("::1").unwrap().to_string(), "::1/128");
        assert!(parse_proxy("10.0.0.0/33").is_err());
        assert!(parse_proxy("proxy.local")
            .unwrap_err()
            .contains("\"proxy.local\""));
    }
}
