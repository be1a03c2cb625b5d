//! The client's IP address. `X-Forwarded-For` is believed only when the direct peer is a
//! trusted proxy, and then the right-most address that is not itself a trusted proxy is
//! the client: a client cannot choose its own key by sending the header.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
}

/// The `for=` address of one `Forwarded` element (RFC 7239): quoted or not, IPv6 in
/// brackets, with or without a port. `None` for obfuscated or unknown nodes.
fn forwarded_for(element: &str) -> Option<Option<IpAddr>> {
    let value = element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })?;
    let value = value.trim_matches('"');
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else if value.matches(':').count() == 1 {
        value.split_once(':').map_or(value, |(h, _)| h)
    } else {
        value
    };
    Some(host.parse::<IpAddr>().ok())
}

/// The forwarding chain, client first: from `Forwarded` when present, else from
/// `X-Forwarded-For`; obfuscated nodes are `None`. `None` overall when a header is
/// malformed (then nothing is believed).
fn forwarding_chain(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut chain = Vec::new();
    let forwarded: Vec<_> = headers.get_all("forwarded").iter().collect();
    if !forwarded.is_empty() {
        for value in forwarded {
            for element in value.to_str().ok()?.split(',') {
                chain.push(forwarded_for(element)?);
            }
        }
        return Some(chain);
    }
    for value in headers.get_all("x-forwarded-for") {
        for part in value.to_str().ok()?.split(',') {
            chain.push(Some(part.trim().parse::<IpAddr>().ok()?));
        }
    }
    Some(chain)
}

/// Determines the client IP from the socket peer and forwarding headers.
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer_ip = peer.map(|p| p.ip())?;
    if !trusted(peer_ip, proxies) {
        return Some(peer_ip);
    }
    let Some(chain) = forwarding_chain(headers) else {
        return Some(peer_ip);
    };
    // Right to left, past our own proxies; an obfuscated node ("_hidden", "unknown")
    // ends what can be believed.
    for hop in chain.into_iter().rev() {
        match hop {
            Some(ip) if trusted(ip, proxies) => continue,
            Some(ip) => return Some(ip),
            None => return Some(peer_ip),
        }
    }
    Some(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let peer: SocketAddr = "203.0.113.9:1234".parse().unwrap();
        let ip = client_ip(Some(peer), &headers("1.2.3.4"), &[]);
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn trusted_peer_gives_rightmost_untrusted() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: SocketAddr = "10.0.0.2:1234".parse().unwrap();
        let ip = client_ip(
            Some(peer),
            &headers("6.6.6.6, 198.51.100.7, 10.0.0.5"),
            &proxies,
        );
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn forwarded_header_is_understood() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: SocketAddr = "10.0.0.2:1234".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\", for=10.0.0.7:80"
                .parse()
                .unwrap(),
        );
        h.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert_eq!(
            client_ip(Some(peer), &h, &proxies),
            Some("2001:db8:cafe::17".parse().unwrap())
        );
        let mut hidden = HeaderMap::new();
        hidden.insert("forwarded", "for=_hidden, for=192.0.2.1".parse().unwrap());
        assert_eq!(
            client_ip(Some(peer), &hidden, &proxies),
            Some("192.0.2.1".parse().unwrap())
        );
        hidden.insert("forwarded", "for=192.0.2.1, for=unknown".parse().unwrap());
        assert_eq!(client_ip(Some(peer), &hidden, &proxies), Some(peer.ip()));
        let untrusted: SocketAddr = "203.0.113.9:1".parse().unwrap();
        assert_eq!(
            client_ip(Some(untrusted), &h, &proxies),
            Some(untrusted.ip())
        );
    }
}
