//! Internet checksums, pseudo-headers and IP headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrrp_common::{IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_TTL};

/// IPv4 ethertype.
pub const ETH_P_IP: u16 = 0x0800;
/// IPv6 ethertype.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// IPv4 header length without options.
pub const IPV4_HLEN: usize = 20;
/// IPv6 header length.
pub const IPV6_HLEN: usize = 40;

/// Internet checksum (RFC 1071) of `data`, starting from a partial `sum`.
pub fn checksum(sum: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(sum);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn words(bytes: &[u8]) -> u32 {
    bytes
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum()
}

/// Partial sum of the pseudo-header (IPv4 or IPv6, by the addresses' family) for an
/// upper-layer message of `len` bytes and protocol `next`.
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, next: u8, len: usize) -> u32 {
    let addresses = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => words(&s.octets()) + words(&d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => words(&s.octets()) + words(&d.octets()),
        // Mixed families never share a packet; an impossible pair sums to garbage, never panics.
        (s, d) => words(&bytes16(s)) + words(&bytes16(d)),
    };
    // IPv4: zero, protocol, 16-bit length. IPv6: 32-bit length, three zeros, next header.
    // Both sum to the same 16-bit words for lengths under 64 KiB.
    addresses + u32::from(next) + (len as u32 & 0xffff) + (len as u32 >> 16)
}

/// An address as 16 bytes, IPv4 in the first four (the dataplane's layout).
pub fn bytes16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => vrrp_common::advert_rule::v4(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Fields of an IPv4 header the agent (and the lab) choose.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Header {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live (255 for VRRP).
    pub ttl: u8,
    /// Protocol number.
    pub protocol: u8,
}

impl Ipv4Header {
    /// The header of a multicast VRRP advert from `src`.
    pub fn vrrp(src: Ipv4Addr) -> Self {
        Self {
            src,
            dst: Ipv4Addr::from(VRRP_GROUP_V4),
            ttl: VRRP_TTL,
            protocol: IPPROTO_VRRP,
        }
    }

    /// Prepends a 20-byte IPv4 header to `payload`.
    pub fn wrap(&self, payload: &[u8]) -> Vec<u8> {
        let total = (IPV4_HLEN + payload.len()) as u16;
        let mut h = vec![0x45, 0xc0]; // IHL 5; TOS internetwork control, as keepalived sends
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]); // id, flags, fragment offset
        h.push(self.ttl);
        h.push(self.protocol);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        let sum = checksum(0, &h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// Prepends an IPv6 header (traffic class 0xc0 like keepalived, no flow label).
pub fn ipv6_header(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = vec![0x6c, 0x00, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.push(next);
    h.push(hop_limit);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// The Ethernet multicast MAC of an IPv4 group (01:00:5e + low 23 bits).
pub fn ipv4_multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// The Ethernet multicast MAC of an IPv6 group (33:33 + low 32 bits).
pub fn ipv6_multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let pkt = Ipv4Header::vrrp(Ipv4Addr::new(10, 0, 0, 1)).wrap(&[0; 12]);
        assert_eq!(checksum(0, &pkt[..IPV4_HLEN]), 0);
        assert_eq!(pkt[8], 255);
        assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), 32);
    }

    #[test]
    fn multicast_macs() {
        assert_eq!(
            ipv4_multicast_mac(Ipv4Addr::new(224, 0, 0, 18)),
            [1, 0, 0x5e, 0, 0, 18]
        );
        assert_eq!(
            ipv6_multicast_mac("ff02::12".parse().unwrap()),
            [0x33, 0x33, 0, 0, 0, 0x12]
        );
    }
}
