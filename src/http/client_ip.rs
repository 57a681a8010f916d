//! The client's IP address, for rate limits, audit events and session records.
//!
//! By default it is the socket's peer and nothing a client sends can change it. Behind reverse proxies,
//! `trusted_proxies` lists their networks; a request whose peer is one of them is attributed to the
//! right-most address of the forwarding chain (`Forwarded: for=`, RFC 7239, else `X-Forwarded-For`) that
//! is NOT a trusted proxy: every hop to its right was added by a proxy we trust, while anything to its
//! left was written by the client and may be forged.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::HeaderMap;
use http::request::Parts;
use ipnet::IpNet;

use crate::app::AppState;

/// Parses `trusted_proxies`: comma-separated CIDRs or bare addresses; the offending item on error.
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| item.to_string())
        })
        .collect()
}

fn trusted(ip: IpAddr, nets: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

/// The client address for a request from `peer` with these headers.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, nets: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer, nets) {
        return peer;
    }
    let mut nearest = peer;
    for hop in chain(headers).iter().rev() {
        match hop {
            // The hop a trusted proxy recorded is the client unless it is itself a trusted proxy.
            Some(ip) if trusted(*ip, nets) => nearest = *ip,
            Some(ip) => return *ip,
            // Unreadable (`unknown`, an obfuscated name, garbage): nothing to its left can be believed.
            None => return nearest,
        }
    }
    nearest
}

/// The forwarding chain, left (client side) to right (nearest proxy); `None` for an unreadable hop.
/// `Forwarded` wins over `X-Forwarded-For` when both are present.
fn chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.eq_ignore_ascii_case("for").then_some(v)
                    })
                    .and_then(parse_node)
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(parse_node)
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse::<IpAddr>().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

/// Extractor: the resolved client address (needs the server to run with `ConnectInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(resolve(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_headers_are_ignored() {
        let headers = h(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(resolve(ip("10.0.0.9"), &headers, &[]), ip("10.0.0.9"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let nets = parse_trusted("10.0.0.0/8").unwrap();
        let headers = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            resolve(ip("203.0.113.7"), &headers, &nets),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn right_most_untrusted_hop_wins_over_a_spoofed_left_part() {
        let nets = parse_trusted("10.0.0.0/8, 192.168.1.1").unwrap();
        // The client forged "6.6.6.6"; the edge proxy appended the real 198.51.100.2; an inner proxy
        // (10.0.0.2) appended the edge's address.
        let headers = h(&[("x-forwarded-for", "6.6.6.6, 198.51.100.2, 192.168.1.1")]);
        assert_eq!(resolve(ip("10.0.0.2"), &headers, &nets), ip("198.51.100.2"));
        // Two header lines form one list.
        let split = h(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        assert_eq!(resolve(ip("10.0.0.2"), &split, &nets), ip("198.51.100.2"));
    }

    #[test]
    fn forwarded_header_with_ports_quotes_and_ipv6() {
        let nets = parse_trusted("10.0.0.0/8").unwrap();
        let headers = h(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.1.1.1:80",
        )]);
        assert_eq!(
            resolve(ip("10.0.0.2"), &headers, &nets),
            ip("2001:db8:cafe::17")
        );
        // An IPv4-mapped peer is matched as IPv4.
        assert_eq!(
            resolve(ip("::ffff:10.0.0.2"), &h(&[]), &nets),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn unreadable_hops_stop_the_walk() {
        let nets = parse_trusted("10.0.0.0/8").unwrap();
        let headers = h(&[("x-forwarded-for", "1.2.3.4, garbage, 10.0.0.5")]);
        assert_eq!(resolve(ip("10.0.0.2"), &headers, &nets), ip("10.0.0.5"));
        let all_trusted = h(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(resolve(ip("10.0.0.2"), &all_trusted, &nets), ip("10.9.9.9"));
    }

    #[test]
    fn config_parsing_names_the_bad_item() {
        assert_eq!(parse_trusted("").unwrap(), vec![]);
        assert_eq!(parse_trusted(" 10.0.0.0/8 ,::1").unwrap().len(), 2);
        assert_eq!(parse_trusted("10.0.0.0/8, nope").unwrap_err(), "nope");
    }
}
