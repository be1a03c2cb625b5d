//! The client's IP address. `X-Forwarded-For` is believed only when the direct peer is a
//! trusted proxy, and then the right-most address that is not itself a trusted proxy is
//! the client: a client cannot choose its own key by sending the header.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
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
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return Some(peer_ip);
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(ip),
                Err(_) => return Some(peer_ip),
            }
        }
    }
    Some(
        chain
            .into_iter()
            .rev()
            .find(|ip| !trusted(*ip, proxies))
            .unwrap_or(peer_ip),
    )
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
}
