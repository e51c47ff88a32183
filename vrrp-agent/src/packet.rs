//! Wire formats the agent writes and reads: VRRPv3 adverts over IPv4, and ARP.
//!
//! Pure functions over byte slices, so they are tested without sockets and reused by the lab to
//! craft frames (valid and deliberately broken).

use std::net::Ipv4Addr;

use thiserror::Error;
use vrrp_common::{IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_TTL};

/// Length of the fixed VRRP header.
pub const VRRP_HLEN: usize = 8;
/// IPv4 header length without options.
pub const IPV4_HLEN: usize = 20;
/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
/// Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Which checksum form a VRRPv3/IPv4 advert carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumForm {
    /// Over the IPv4 pseudo-header and the VRRP message (keepalived's and FRR's default).
    PseudoHeader,
    /// Over the VRRP message only (keepalived's `v3_checksum_as_v2`).
    VrrpOnly,
}

/// A VRRPv2 or VRRPv3 advertisement over IPv4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// 2 or 3.
    pub version: u8,
    /// Virtual router identifier.
    pub vrid: u8,
    /// Sender's priority (0 = leaving).
    pub priority: u8,
    /// Max_Adver_Int in centiseconds (12 bits); v2 sends whole seconds (`interval_cs / 100`).
    pub interval_cs: u16,
    /// The virtual addresses, in configured order.
    pub addresses: Vec<Ipv4Addr>,
    /// v2 `auth_type PASS` data (NUL-padded to 8 bytes); `None` is auth type 0.
    pub auth: Option<[u8; 8]>,
}

/// Why a received advert was rejected by [`Advert::parse`].
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its header or address list says.
    #[error("packet length error")]
    Length,
    /// Not version 2 or 3.
    #[error("version error")]
    Version,
    /// Not an ADVERTISEMENT.
    #[error("invalid type")]
    Type,
    /// Wrong checksum in both forms.
    #[error("checksum error")]
    Checksum,
}

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

/// Partial sum of the IPv4 pseudo-header for a VRRP message of `len` bytes.
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(IPPROTO_VRRP),
        len as u16,
    ]
    .iter()
    .map(|&w| u32::from(w))
    .sum()
}

/// Length of VRRPv2's authentication data.
pub const V2_AUTH_LEN: usize = 8;

impl Advert {
    /// A VRRPv3 advert.
    pub fn v3(vrid: u8, priority: u8, interval_cs: u16, addresses: Vec<Ipv4Addr>) -> Self {
        Self {
            version: 3,
            vrid,
            priority,
            interval_cs,
            addresses,
            auth: None,
        }
    }

    /// Encodes the VRRP message (no IP header) with its checksum. `form` only matters for v3:
    /// a v2 checksum never covers a pseudo-header.
    pub fn encode(&self, src: Ipv4Addr, dst: Ipv4Addr, form: ChecksumForm) -> Vec<u8> {
        let v2 = self.version == 2;
        let mut b = Vec::with_capacity(VRRP_HLEN + 4 * self.addresses.len() + V2_AUTH_LEN);
        b.push(if v2 { 0x21 } else { 0x31 }); // version, type 1 (ADVERTISEMENT)
        b.push(self.vrid);
        b.push(self.priority);
        b.push(self.addresses.len() as u8);
        if v2 {
            b.push(u8::from(self.auth.is_some()));
            b.push((self.interval_cs / 100).clamp(1, 255) as u8);
        } else {
            b.extend_from_slice(&(self.interval_cs & 0x0fff).to_be_bytes());
        }
        b.extend_from_slice(&[0, 0]);
        for a in &self.addresses {
            b.extend_from_slice(&a.octets());
        }
        if v2 {
            b.extend_from_slice(&self.auth.unwrap_or_default());
        }
        let seed = match form {
            ChecksumForm::PseudoHeader if !v2 => pseudo_header_sum(src, dst, b.len()),
            _ => 0,
        };
        let sum = checksum(seed, &b);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        b
    }

    /// Decodes a VRRP message; v3 accepts either checksum form.
    pub fn parse(msg: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<Self, ParseError> {
        if msg.len() < VRRP_HLEN {
            return Err(ParseError::Length);
        }
        let version = msg[0] >> 4;
        if version != 2 && version != 3 {
            return Err(ParseError::Version);
        }
        if msg[0] & 0x0f != 1 {
            return Err(ParseError::Type);
        }
        let v2 = version == 2;
        let count = usize::from(msg[3]);
        let addresses_end = VRRP_HLEN + 4 * count;
        if msg.len() != addresses_end + if v2 { V2_AUTH_LEN } else { 0 } {
            return Err(ParseError::Length);
        }
        let pseudo_ok = !v2 && checksum(pseudo_header_sum(src, dst, msg.len()), msg) == 0;
        if checksum(0, msg) != 0 && !pseudo_ok {
            return Err(ParseError::Checksum);
        }
        let auth = (v2 && msg[4] != 0)
            .then(|| <[u8; 8]>::try_from(&msg[addresses_end..]).unwrap_or_default());
        Ok(Self {
            version,
            vrid: msg[1],
            priority: msg[2],
            interval_cs: if v2 {
                u16::from(msg[5]) * 100
            } else {
                u16::from_be_bytes([msg[4] & 0x0f, msg[5]])
            },
            addresses: msg[VRRP_HLEN..addresses_end]
                .chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .collect(),
            auth,
        })
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

/// The Ethernet multicast MAC of an IPv4 group (01:00:5e + low 23 bits).
pub fn ipv4_multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Prepends an Ethernet header.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HLEN + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// ARP ethertype.
pub const ETH_P_ARP: u16 = 0x0806;
/// IPv4 ethertype.
pub const ETH_P_IP: u16 = 0x0800;
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

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    fn advert() -> Advert {
        Advert::v3(51, 200, 100, vec![Ipv4Addr::new(10, 0, 0, 100)])
    }

    #[test]
    fn v2_round_trip_with_pass_auth_and_no_pseudo_header() {
        let mut v2 = advert();
        v2.version = 2;
        v2.auth = Some(*b"secret\0\0");
        let wire = v2.encode(SRC, GROUP, ChecksumForm::PseudoHeader);
        assert_eq!(wire.len(), 8 + 4 + 8);
        assert_eq!(&wire[..6], &[0x21, 51, 200, 1, 1, 1]);
        assert_eq!(
            checksum(0, &wire),
            0,
            "v2 checksums cover the VRRP message only"
        );
        assert_eq!(Advert::parse(&wire, SRC, GROUP).unwrap(), v2);
    }

    #[test]
    fn round_trip_in_both_checksum_forms() {
        for form in [ChecksumForm::PseudoHeader, ChecksumForm::VrrpOnly] {
            let wire = advert().encode(SRC, GROUP, form);
            assert_eq!(wire.len(), 12);
            assert_eq!(Advert::parse(&wire, SRC, GROUP).unwrap(), advert());
        }
    }

    #[test]
    fn known_vector_with_pseudo_header() {
        // Computed by hand: VRRPv3 vrid 51 prio 200 count 1 int 100, 10.0.0.100, from 10.0.0.1.
        let wire = advert().encode(SRC, GROUP, ChecksumForm::PseudoHeader);
        assert_eq!(&wire[..6], &[0x31, 51, 200, 1, 0x00, 0x64]);
        let sum = pseudo_header_sum(SRC, GROUP, 12) + 0x3133 + 0xc801 + 0x0064 + 0x0a00 + 0x0064;
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(u16::from_be_bytes([wire[6], wire[7]]), !(folded as u16));
    }

    #[test]
    fn corruption_is_detected() {
        let mut wire = advert().encode(SRC, GROUP, ChecksumForm::PseudoHeader);
        wire[2] = 201;
        assert_eq!(Advert::parse(&wire, SRC, GROUP), Err(ParseError::Checksum));
        assert_eq!(
            Advert::parse(&wire[..10], SRC, GROUP),
            Err(ParseError::Length)
        );
        wire[0] = 0x41;
        assert_eq!(Advert::parse(&wire, SRC, GROUP), Err(ParseError::Version));
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let pkt = Ipv4Header::vrrp(SRC).wrap(&[0; 12]);
        assert_eq!(checksum(0, &pkt[..IPV4_HLEN]), 0);
        assert_eq!(pkt[8], 255);
        assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), 32);
    }

    #[test]
    fn arp_round_trip() {
        let mac = [2, 0, 0, 0, 0, 1];
        let garp = Arp::gratuitous(mac, Ipv4Addr::new(10, 0, 0, 100));
        let frame = garp.frame(BROADCAST_MAC);
        assert_eq!(Arp::parse_frame(&frame), Some(garp));
        assert_eq!(ipv4_multicast_mac(GROUP), [1, 0, 0x5e, 0, 0, 18]);
    }
}
