//! Whose address a request is: the TCP peer, or, when that peer is a reverse proxy the app
//! trusts, the client the proxy names in `X-Forwarded-For`.
//!
//! Per-IP stream caps ([`Limits::max_streams_per_ip`](crate::Limits)) and per-route
//! `rate_limit`s count by this address. Behind a proxy every peer is the proxy, so without
//! this all clients would share one count.
//!
//! The header is only read from trusted peers, and walked from the right: each proxy appends
//! the address it received the request from, so the rightmost entry that is not itself a
//! trusted proxy is the first address no trusted party can vouch beyond. Whatever a client
//! writes into the header itself sits further left and is never reached.
//!
//! Every address in the list is believed about any client: list exactly the proxies, not
//! whole networks other hosts share, and let clients reach the app only through them.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

/// Env var read by [`TrustedProxies::from_env`]: comma-separated proxy addresses or CIDR
/// ranges (`127.0.0.1, 10.0.3.7`).
pub const TRUSTED_PROXIES_ENV: &str = "PIKKU_TRUSTED_PROXIES";

/// Most `X-Forwarded-For` entries looked at per request: a chain of proxies is a few hops, and
/// the walk stops at the first untrusted entry anyway; this only bounds a trusted peer's header.
const MAX_HOPS: usize = 32;

/// The reverse proxies whose `X-Forwarded-For` the app believes. None by default: every
/// request is its TCP peer's.
///
/// ```
/// use pikku::TrustedProxies;
/// // nginx on the same host, and the load balancer in front of it.
/// let proxies = TrustedProxies::parse("127.0.0.1, 10.0.3.7").unwrap();
/// # let _ = proxies;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A [`TrustedProxies`] list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not an IP address or CIDR range (as in `10.0.0.0/8`)")]
pub struct TrustedProxiesError {
    /// The entry that is neither.
    pub entry: String,
}

impl TrustedProxies {
    /// Trusts these addresses or ranges (an address is a range of one).
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            nets: nets.into_iter().map(canonical_net).collect(),
        }
    }

    /// Parses a comma-separated list of addresses and CIDR ranges; empty entries are skipped.
    pub fn parse(list: &str) -> Result<Self, TrustedProxiesError> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                IpNet::from_str(e)
                    .or_else(|_| IpAddr::from_str(e).map(IpNet::from))
                    .map_err(|_| TrustedProxiesError {
                        entry: e.to_owned(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(nets))
    }

    /// The list in `PIKKU_TRUSTED_PROXIES` (the default of [`Pikku::new`](crate::Pikku::new));
    /// none when unset.
    ///
    /// A list that does not parse is refused whole, with an error in the log: trusting part of
    /// what the operator wrote could let clients choose their own address.
    pub fn from_env() -> Self {
        Self::from_env_value(std::env::var(TRUSTED_PROXIES_ENV).ok())
    }

    fn from_env_value(value: Option<String>) -> Self {
        let Some(list) = value else {
            return Self::default();
        };
        Self::parse(&list).unwrap_or_else(|e| {
            tracing::error!("ignoring {TRUSTED_PROXIES_ENV}: {e}; no proxy is trusted");
            Self::default()
        })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: `peer`, or when `peer` is trusted, the rightmost
    /// `X-Forwarded-For` entry that is not. When every entry is trusted it is the leftmost
    /// one (so a trusted address may name any client); an entry that is not an address stops
    /// the walk at the proxy that passed it on.
    pub(crate) fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if self.nets.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        // Header lines in order, each a comma-separated list: together one list. Split as
        // bytes, so a line with a byte that is not text (which a client can put left of what
        // its proxy appends, on the same line) stops the walk only where that entry sits.
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|v| v.as_bytes().rsplit(|&b| b == b','))
            .take(MAX_HOPS);
        let mut hop = peer;
        for entry in entries {
            let Some(ip) = std::str::from_utf8(entry)
                .ok()
                .and_then(|e| parse_entry(e.trim()))
            else {
                return Some(hop);
            };
            if !self.trusts(ip) {
                return Some(ip);
            }
            hop = ip;
        }
        Some(hop)
    }
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]`, or with a port (`203.0.113.7:5000`,
/// `[2001:db8::1]:5000`), as some proxies write them.
fn parse_entry(e: &str) -> Option<IpAddr> {
    let bare = e.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    IpAddr::from_str(bare.unwrap_or(e))
        .or_else(|_| SocketAddr::from_str(e).map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// A range written as IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) is the IPv4 range it maps, as
/// addresses are compared in their [`canonical`] form.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|a| ipnet::Ipv4Net::new(a, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`: compared and counted as
/// the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let got = none.client_ip(Some(ip("127.0.0.1")), &xff(&["203.0.113.7"]));
        assert_eq!(got, Some(ip("127.0.0.1")));
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let p = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let got = p.client_ip(Some(ip("198.51.100.1")), &xff(&["203.0.113.7"]));
        assert_eq!(got, Some(ip("198.51.100.1")));
    }

    #[test]
    fn a_trusted_peer_names_the_client() {
        let p = TrustedProxies::parse("127.0.0.1").unwrap();
        let got = p.client_ip(Some(ip("127.0.0.1")), &xff(&["203.0.113.7"]));
        assert_eq!(got, Some(ip("203.0.113.7")));
    }

    #[test]
    fn what_the_client_wrote_itself_is_never_reached() {
        // The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended its real address.
        let p = TrustedProxies::parse("127.0.0.1").unwrap();
        let got = p.client_ip(Some(ip("127.0.0.1")), &xff(&["1.1.1.1, 203.0.113.7"]));
        assert_eq!(got, Some(ip("203.0.113.7")));
    }

    #[test]
    fn trusted_hops_are_skipped_across_header_lines() {
        // CDN edge (10.1.2.3) then the local proxy (127.0.0.1), both trusted.
        let p = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let h = xff(&["1.1.1.1, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.7"))
        );
    }

    #[test]
    fn no_header_or_only_trusted_entries() {
        let p = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let peer = Some(ip("127.0.0.1"));
        assert_eq!(p.client_ip(peer, &HeaderMap::new()), peer);
        let h = xff(&["10.0.0.9, 10.0.0.8"]);
        assert_eq!(p.client_ip(peer, &h), Some(ip("10.0.0.9")));
    }

    #[test]
    fn garbage_stops_at_the_proxy_that_passed_it_on() {
        let p = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let h = xff(&["203.0.113.7, unknown, 10.0.0.5"]);
        assert_eq!(p.client_ip(Some(ip("127.0.0.1")), &h), Some(ip("10.0.0.5")));
    }

    #[test]
    fn ports_ipv6_and_mapped_addresses() {
        let p = TrustedProxies::parse("127.0.0.1, fd00::/8").unwrap();
        let mapped = Some(ip("::ffff:127.0.0.1"));
        assert_eq!(
            p.client_ip(mapped, &xff(&["203.0.113.7:5000"])),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            p.client_ip(Some(ip("fd00::1")), &xff(&["[2001:db8::1]:443"])),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn the_walk_is_bounded() {
        let p = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let long = vec!["10.0.0.1"; 1000].join(",");
        let h = xff(&[&format!("203.0.113.7,{long}")]);
        // Not reached within the bound: the last trusted hop looked at counts instead.
        assert_eq!(p.client_ip(Some(ip("10.0.0.2")), &h), Some(ip("10.0.0.1")));
    }

    #[test]
    fn a_line_that_is_not_text_stops_only_where_it_sits() {
        // nginx appends to the client's own line: the client's bytes sit left of its address.
        let p = TrustedProxies::parse("127.0.0.1").unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 203.0.113.7").unwrap(),
        );
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.7"))
        );
        // Right of it: the walk stops at the proxy that passed it on.
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"203.0.113.7, \xff").unwrap(),
        );
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn empty_entries_brackets_and_mapped_forms() {
        let p = TrustedProxies::parse("127.0.0.1, ::ffff:10.0.0.0/104").unwrap();
        // A client's trailing comma is left of what the proxy appends.
        let h = xff(&["1.1.1.1,, 203.0.113.7"]);
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.7"))
        );
        // Bracketed IPv6 without a port.
        let h = xff(&["[2001:db8::1]"]);
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("2001:db8::1"))
        );
        // An IPv4-mapped entry counts as its IPv4 address.
        let h = xff(&["::ffff:203.0.113.7"]);
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.7"))
        );
        // A range written IPv4-mapped trusts those IPv4 peers.
        let h = xff(&["203.0.113.7"]);
        assert_eq!(
            p.client_ip(Some(ip("10.1.1.1")), &h),
            Some(ip("203.0.113.7"))
        );
        // An untrusted dual-stack peer is its IPv4 address too.
        let h = HeaderMap::new();
        assert_eq!(
            p.client_ip(Some(ip("::ffff:198.51.100.1")), &h),
            Some(ip("198.51.100.1"))
        );
    }

    #[test]
    fn the_env_list_is_taken_whole_or_not_at_all() {
        assert!(TrustedProxies::from_env_value(None).is_empty());
        let p = TrustedProxies::from_env_value(Some("127.0.0.1, 10.0.3.7".into()));
        assert!(p.trusts(ip("10.0.3.7")) && p.trusts(ip("127.0.0.1")));
        // One bad entry: nothing is trusted, not the entries that did parse.
        let bad = TrustedProxies::from_env_value(Some("127.0.0.1, proxy.local".into()));
        assert!(bad.is_empty());
    }

    #[test]
    fn lists_parse_or_name_the_bad_entry() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let p = TrustedProxies::parse(" 10.0.0.0/8 ,, ::1 ").unwrap();
        assert!(p.trusts(ip("10.9.9.9")) && p.trusts(ip("::1")));
        assert!(!p.trusts(ip("11.0.0.1")));
        let e = TrustedProxies::parse("10.0.0.0/8, nginx").unwrap_err();
        assert_eq!(e.entry, "nginx");
    }
}
