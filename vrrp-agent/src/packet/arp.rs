//! ARP (RFC 826) for Ethernet/IPv4, and the gratuitous ARP keepalived sends.

use std::net::Ipv4Addr;

use super::{BROADCAST_MAC, ETH_HLEN, ethernet};

/// ARP ethertype.
pub const ETH_P_ARP: u16 = 0x0806;
/// ARP request opcode.
pub const ARP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const ARP_REPLY: u16 = 2;

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// [`ARP_REQUEST`] or [`ARP_REPLY`].
    pub op: u16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl Arp {
    /// A gratuitous ARP announcing that `mac` now holds `address` (a request with sender and
    /// target address equal, broadcast, as keepalived sends).
    pub fn gratuitous(mac: [u8; 6], address: Ipv4Addr) -> Self {
        Self {
            op: ARP_REQUEST,
            sha: mac,
            spa: address,
            tha: BROADCAST_MAC,
            tpa: address,
        }
    }

    /// The full broadcast Ethernet frame.
    pub fn frame(&self, dst: [u8; 6]) -> Vec<u8> {
        let mut p = vec![0, 1, 0x08, 0x00, 6, 4];
        p.extend_from_slice(&self.op.to_be_bytes());
        p.extend_from_slice(&self.sha);
        p.extend_from_slice(&self.spa.octets());
        p.extend_from_slice(&self.tha);
        p.extend_from_slice(&self.tpa.octets());
        ethernet(dst, self.sha, ETH_P_ARP, &p)
    }

    /// Parses an Ethernet frame carrying Ethernet/IPv4 ARP.
    pub fn parse_frame(frame: &[u8]) -> Option<Self> {
        if frame.len() < ETH_HLEN + 28 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
            return None;
        }
        let p = &frame[ETH_HLEN..];
        if p[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
            return None;
        }
        let mac = |o: usize| -> [u8; 6] { p[o..o + 6].try_into().unwrap_or_default() };
        let ip = |o: usize| Ipv4Addr::new(p[o], p[o + 1], p[o + 2], p[o + 3]);
        Some(Self {
            op: u16::from_be_bytes([p[6], p[7]]),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_round_trip() {
        let mac = [2, 0, 0, 0, 0, 1];
        let garp = Arp::gratuitous(mac, Ipv4Addr::new(10, 0, 0, 100));
        let frame = garp.frame(BROADCAST_MAC);
        assert_eq!(Arp::parse_frame(&frame), Some(garp));
    }
}
