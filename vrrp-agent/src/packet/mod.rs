//! Wire formats the agent writes and reads: VRRP adverts (v2, v3; IPv4, IPv6), IP headers,
//! ARP and IPv6 neighbour advertisements.
//!
//! Pure functions over byte slices, so they are tested without sockets and reused by the lab to
//! craft frames (valid and deliberately broken).

mod arp;
mod ip;
mod nd;
mod vrrp;

pub use arp::{ARP_REPLY, ARP_REQUEST, Arp, ETH_P_ARP};
pub use ip::{
    ETH_P_IP, ETH_P_IPV6, IPV4_HLEN, IPV6_HLEN, Ipv4Header, bytes16, checksum, ipv4_multicast_mac,
    ipv6_header, ipv6_multicast_mac, pseudo_header_sum,
};
pub use nd::{NeighbourAdvert, unsolicited_na};
pub use vrrp::{Advert, ChecksumForm, ParseError, V2_AUTH_LEN, VRRP_HLEN};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
/// Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Prepends an Ethernet header.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HLEN + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}
