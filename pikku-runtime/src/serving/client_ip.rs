//! Whose address a request is: the TCP peer, or, when that peer is a reverse proxy the app
//! trusts, the client the proxy names in `X-Forwarded-For` or, when the app says so, in the
//! RFC 7239 `Forwarded` header.
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
//!
//! Only one header is read, the one the proxies write ([`ForwardedHeader`]): a proxy that
//! appends to one passes the other on as the client wrote it, so reading both would let a
//! client choose its address.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

/// Env var read by [`TrustedProxies::from_env`]: comma-separated proxy addresses or CIDR
/// ranges (`127.0.0.1, 10.0.3.7`).
pub const TRUSTED_PROXIES_ENV: &str = "PIKKU_TRUSTED_PROXIES";

/// Env var read by [`TrustedProxies::from_env`]: the header the trusted proxies name the
/// client in, `x-forwarded-for` (the default) or `forwarded` (RFC 7239).
pub const TRUSTED_PROXIES_HEADER_ENV: &str = "PIKKU_TRUSTED_PROXIES_HEADER";

/// Most `X-Forwarded-For` entries (or `Forwarded` elements) looked at per request: a chain of
/// proxies is a few hops, and the walk stops at the first untrusted entry anyway; this only
/// bounds a trusted peer's header.
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
    header: ForwardedHeader,
}

/// The header trusted proxies name the client in. Only this one is read; the other is
/// ignored, as a client may have written it.
///
/// ```
/// use pikku::{ForwardedHeader, TrustedProxies};
/// // HAProxy with `option forwarded`, or nginx appending `for=` to `Forwarded`.
/// let proxies = TrustedProxies::parse("10.0.3.7")?.header(ForwardedHeader::Forwarded);
/// # let _ = proxies;
/// # Ok::<(), pikku::TrustedProxiesError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: <client>, <proxy 1>, ...` (nginx's `$proxy_add_x_forwarded_for`, most
    /// load balancers). The default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=<client>;proto=https, for=<proxy 1>`: the `for` parameter of
    /// each element. An element without one, or whose node is `unknown` or obfuscated
    /// (`_hidden`), names no address: the walk stops at the proxy that passed it on.
    Forwarded,
}

impl ForwardedHeader {
    /// `x-forwarded-for` or `forwarded`, in any case (the values of
    /// `PIKKU_TRUSTED_PROXIES_HEADER`).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            Some(Self::XForwardedFor)
        } else if name.eq_ignore_ascii_case("forwarded") {
            Some(Self::Forwarded)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
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
            header: ForwardedHeader::default(),
        }
    }

    /// Reads the client from `header` instead of `X-Forwarded-For`.
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
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

    /// The list in `PIKKU_TRUSTED_PROXIES` (the default of [`Pikku::new`](crate::Pikku::new)),
    /// naming the client in the header `PIKKU_TRUSTED_PROXIES_HEADER` names
    /// (`x-forwarded-for` when unset, or `forwarded`); no proxy when the list is unset.
    ///
    /// A list or header that does not parse is refused whole, with an error in the log:
    /// trusting part of what the operator wrote, or another header than the proxies write,
    /// could let clients choose their own address.
    pub fn from_env() -> Self {
        Self::from_env_values(
            std::env::var(TRUSTED_PROXIES_ENV).ok(),
            std::env::var(TRUSTED_PROXIES_HEADER_ENV).ok(),
        )
    }

    fn from_env_values(list: Option<String>, header: Option<String>) -> Self {
        let Some(list) = list else {
            return Self::default();
        };
        let header = match header.as_deref().map(ForwardedHeader::parse) {
            None => ForwardedHeader::default(),
            Some(Some(h)) => h,
            Some(None) => {
                tracing::error!(
                    "ignoring {TRUSTED_PROXIES_ENV}: {TRUSTED_PROXIES_HEADER_ENV} is neither \
                     `x-forwarded-for` nor `forwarded`; no proxy is trusted"
                );
                return Self::default();
            }
        };
        match Self::parse(&list) {
            Ok(p) => p.header(header),
            Err(e) => {
                tracing::error!("ignoring {TRUSTED_PROXIES_ENV}: {e}; no proxy is trusted");
                Self::default()
            }
        }
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: `peer`, or when `peer` is trusted, the rightmost entry of the
    /// header ([`ForwardedHeader`]) that is not. When every entry is trusted it is the
    /// leftmost one (so a trusted address may name any client); an entry that is not an
    /// address stops the walk at the proxy that passed it on.
    pub(crate) fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if self.nets.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        // Header lines in order, each a comma-separated list: together one list. Split as
        // bytes, so a line with a byte that is not text (which a client can put left of what
        // its proxy appends, on the same line) stops the walk only where that entry sits.
        // A `Forwarded` element's quoted values hold no commas where a proxy writes them
        // (`for="[2001:db8::1]:4711"`), so splitting on every comma keeps the proxies'
        // elements whole; quotes a client left open only garble its own, further left.
        let entries = headers
            .get_all(self.header.name())
            .iter()
            .rev()
            .flat_map(|v| v.as_bytes().rsplit(|&b| b == b','))
            .take(MAX_HOPS);
        let mut hop = peer;
        for entry in entries {
            let text = std::str::from_utf8(entry).ok();
            let node = match self.header {
                ForwardedHeader::XForwardedFor => text.map(str::trim),
                ForwardedHeader::Forwarded => text.and_then(forwarded_for),
            };
            let Some(ip) = node.and_then(parse_entry) else {
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

/// The node of a `Forwarded` element's `for` parameter (`for=192.0.2.60;proto=http` or
/// `For="[2001:db8::17]:4711"`), unquoted; `None` without one, or with an escape in it.
fn forwarded_for(element: &str) -> Option<&str> {
    let value = element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then(|| value.trim())
    })?;
    match value.strip_prefix('"') {
        Some(quoted) => quoted
            .strip_suffix('"')
            .filter(|v| !v.contains(['"', '\\'])),
        None => Some(value),
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
        assert!(TrustedProxies::from_env_values(None, None).is_empty());
        let p = TrustedProxies::from_env_values(Some("127.0.0.1, 10.0.3.7".into()), None);
        assert!(p.trusts(ip("10.0.3.7")) && p.trusts(ip("127.0.0.1")));
        assert_eq!(p.header, ForwardedHeader::XForwardedFor);
        // One bad entry: nothing is trusted, not the entries that did parse.
        let bad = TrustedProxies::from_env_values(Some("127.0.0.1, proxy.local".into()), None);
        assert!(bad.is_empty());
    }

    #[test]
    fn the_env_names_the_header_or_nothing_is_trusted() {
        let list = || Some("127.0.0.1".to_owned());
        let p = TrustedProxies::from_env_values(list(), Some("Forwarded".into()));
        assert_eq!(p.header, ForwardedHeader::Forwarded);
        assert!(p.trusts(ip("127.0.0.1")));
        let p = TrustedProxies::from_env_values(list(), Some(" x-forwarded-for ".into()));
        assert_eq!(p.header, ForwardedHeader::XForwardedFor);
        // A header the proxies may not write: reading it could let clients choose.
        let bad = TrustedProxies::from_env_values(list(), Some("x-real-ip".into()));
        assert!(bad.is_empty());
        // The header alone trusts no one.
        assert!(TrustedProxies::from_env_values(None, Some("forwarded".into())).is_empty());
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("forwarded", l.parse().unwrap());
        }
        h
    }

    fn rfc7239(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list)
            .unwrap()
            .header(ForwardedHeader::Forwarded)
    }

    #[test]
    fn forwarded_names_the_client_by_its_for_parameter() {
        let p = rfc7239("127.0.0.1");
        let peer = Some(ip("127.0.0.1"));
        // RFC 7239's examples: parameters in any order and case, quoted IPv6 with a port.
        let h = forwarded(&["proto=https;For=192.0.2.60;by=203.0.113.43"]);
        assert_eq!(p.client_ip(peer, &h), Some(ip("192.0.2.60")));
        let h = forwarded(&["for=\"[2001:db8:cafe::17]:4711\""]);
        assert_eq!(p.client_ip(peer, &h), Some(ip("2001:db8:cafe::17")));
        let h = forwarded(&["for=\"192.0.2.60:5000\""]);
        assert_eq!(p.client_ip(peer, &h), Some(ip("192.0.2.60")));
        // The rightmost untrusted element, across elements and lines.
        let p = rfc7239("127.0.0.1, 10.0.0.0/8");
        let h = forwarded(&["for=1.1.1.1, for=203.0.113.7;proto=https", "for=10.1.2.3"]);
        assert_eq!(p.client_ip(peer, &h), Some(ip("203.0.113.7")));
    }

    #[test]
    fn with_forwarded_chosen_x_forwarded_for_is_ignored_and_the_reverse() {
        let peer = Some(ip("127.0.0.1"));
        let mut both = xff(&["198.51.100.9"]);
        both.append("forwarded", "for=203.0.113.7".parse().unwrap());
        assert_eq!(
            rfc7239("127.0.0.1").client_ip(peer, &both),
            Some(ip("203.0.113.7"))
        );
        let p = TrustedProxies::parse("127.0.0.1").unwrap();
        assert_eq!(p.client_ip(peer, &both), Some(ip("198.51.100.9")));
        // Only `X-Forwarded-For` chosen and only `Forwarded` sent: the peer.
        assert_eq!(
            p.client_ip(peer, &forwarded(&["for=203.0.113.7"])),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn forwarded_elements_without_an_address_stop_the_walk() {
        let p = rfc7239("127.0.0.1, 10.0.0.0/8");
        let peer = Some(ip("127.0.0.1"));
        for element in [
            "for=unknown",
            "for=_hidden",
            "by=10.0.0.1;proto=https",
            "for=\"10.0.0.9",
            "for=\"10.0.0.9\\\"\"",
            "for=",
        ] {
            let h = forwarded(&[&format!("for=203.0.113.7, {element}, for=10.0.0.5")]);
            assert_eq!(p.client_ip(peer, &h), Some(ip("10.0.0.5")), "{element}");
        }
    }

    #[test]
    fn what_a_client_writes_into_forwarded_is_never_reached() {
        let p = rfc7239("127.0.0.1");
        let peer = Some(ip("127.0.0.1"));
        // The client sent an open quote and a `for` of its choice; the proxy appended its
        // real address after a comma, as nginx's `"$http_forwarded, for=..."` does.
        for client in [
            "for=\"1.1.1.1",
            "for=1.1.1.1;x=\"",
            "for=1.1.1.1, for=\"[::1]",
            "",
        ] {
            let h = forwarded(&[&format!("{client}, for=203.0.113.7")]);
            assert_eq!(p.client_ip(peer, &h), Some(ip("203.0.113.7")), "{client}");
        }
    }

    #[test]
    fn header_names_parse() {
        assert_eq!(
            ForwardedHeader::parse("FORWARDED"),
            Some(ForwardedHeader::Forwarded)
        );
        assert_eq!(
            ForwardedHeader::parse("X-Forwarded-For"),
            Some(ForwardedHeader::XForwardedFor)
        );
        assert_eq!(ForwardedHeader::parse("x-real-ip"), None);
        assert_eq!(ForwardedHeader::default(), ForwardedHeader::XForwardedFor);
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
