//! Which addresses an outgoing request may reach.
//!
//! A grant names a `host:port`; DNS decides where that goes. So after the
//! name is granted, the host resolves it itself and checks each address:
//! a public address is fine; an address in a range that reaches the host
//! itself or its local network (loopback, private, link-local, CGNAT,
//! unique-local, unspecified, multicast, broadcast, documentation) is
//! reachable only through a grant that names it literally (`127.0.0.1:*`
//! in the manifest, and Cedar permitting `http.request` on
//! `127.0.0.1:<port>`). A wildcard grant (`*:443`, `*`) or a name that
//! resolves there (DNS rebinding: `evil.example` → `127.0.0.1`) never does.
//! The connection is then made to the address that was checked, not to the
//! name (which could resolve differently a moment later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::manifest::CapabilityRequest;

/// Why an address is special (not reachable through a name or a wildcard),
/// or `None` for a public address.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address in IPv6 clothing is judged as IPv4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            special_v6(v6)
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_multicast() || a >= 240 {
        Some("a multicast or reserved address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a carrier-grade NAT address")
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) || (a == 192 && b == 0 && c == 0) {
        Some("a documentation, benchmarking or IETF address")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("a unique-local (private) address")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("a documentation address")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64: the embedded IPv4 address decides, and it is not checked.
        Some("a NAT64 address")
    } else {
        None
    }
}

/// `ip:port` as a Cedar resource name (`[::1]:80` for IPv6).
pub fn literal_authority(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// Does a manifest request name `ip` literally (its host part is exactly
/// the address, no wildcard) and cover `ip:port`?
pub fn literally_requested(requested: &[CapabilityRequest], ip: IpAddr, port: u16) -> bool {
    let authority = literal_authority(ip, port);
    requested.iter().any(|r| {
        r.covers(super::REQUEST, &authority)
            && host_part(&r.resource).is_some_and(|host| !host.contains('*') && host_ip(host) == Some(ip))
    })
}

/// The host part of a `host:port` pattern.
fn host_part(pattern: &str) -> Option<&str> {
    if let Some(rest) = pattern.strip_prefix('[') {
        return rest.split_once(']').map(|(host, _)| host);
    }
    pattern.rsplit_once(':').map(|(host, _)| host)
}

fn host_ip(host: &str) -> Option<IpAddr> {
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(resource: &str) -> CapabilityRequest {
        CapabilityRequest { action: crate::capabilities::http::REQUEST.as_str().into(), resource: resource.into() }
    }

    #[test]
    fn special_ranges() {
        for special in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = special.parse().unwrap_or_else(|e| panic!("{special}: {e}"));
            assert!(special_range(ip).is_some(), "{special} should be special");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "100.128.0.1"] {
            let ip: IpAddr = public.parse().unwrap_or_else(|e| panic!("{public}: {e}"));
            assert_eq!(special_range(ip), None, "{public} is public");
        }
    }

    #[test]
    fn only_a_literal_request_reaches_a_special_address() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(literally_requested(&[request("127.0.0.1:*")], loopback, 8091));
        assert!(literally_requested(&[request("127.0.0.1:8091")], loopback, 8091));
        assert!(!literally_requested(&[request("127.0.0.1:8080")], loopback, 8091));
        for wildcard in ["*", "*:8091", "127.0.0.*:8091", "localhost:8091", "*.1:*"] {
            assert!(!literally_requested(&[request(wildcard)], loopback, 8091), "{wildcard}");
        }
        let v6: IpAddr = "::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(literally_requested(&[request("[::1]:*")], v6, 80));
        assert_eq!(literal_authority(v6, 80), "[::1]:80");
    }
}
