//! VRRPv2 (RFC 3768) and VRRPv3 (RFC 9568) advertisements.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;
use vrrp_common::{IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6, VRRP_TTL};

use super::{
    ethernet,
    ip::{
        ETH_P_IP, ETH_P_IPV6, IPV4_HLEN, Ipv4Header, checksum, ipv4_multicast_mac, ipv6_header,
        ipv6_multicast_mac, pseudo_header_sum,
    },
};

/// Length of the fixed VRRP header.
pub const VRRP_HLEN: usize = 8;
/// Length of VRRPv2's authentication data.
pub const V2_AUTH_LEN: usize = 8;

/// Which checksum form a VRRPv3/IPv4 advert carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumForm {
    /// Over the pseudo-header and the VRRP message (keepalived's and FRR's default; the only
    /// form for IPv6).
    PseudoHeader,
    /// Over the VRRP message only (keepalived's `v3_checksum_as_v2`; always for v2).
    VrrpOnly,
}

/// A VRRP advertisement.
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
    /// The virtual addresses, in configured order, all of the packet's family.
    pub addresses: Vec<IpAddr>,
    /// v2 `auth_type PASS` data (NUL-padded to 8 bytes); `None` is auth type 0.
    pub auth: Option<[u8; 8]>,
}

/// Why a received advert was rejected by [`Advert::parse`].
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its header or address list says.
    #[error("packet length error")]
    Length,
    /// Not version 2 or 3 (or v2 over IPv6).
    #[error("version error")]
    Version,
    /// Not an ADVERTISEMENT.
    #[error("invalid type")]
    Type,
    /// Wrong checksum in every accepted form.
    #[error("checksum error")]
    Checksum,
    /// An address count of zero (RFC 9568 erratum 8299; the kernel's `address-list-errors`).
    #[error("address list error")]
    AddressList,
    /// An advertisement interval of zero (erratum 8301; the kernel's `interval-errors`).
    #[error("interval error")]
    Interval,
}

impl Advert {
    /// A VRRPv3 advert.
    pub fn v3<A: Into<IpAddr>>(
        vrid: u8,
        priority: u8,
        interval_cs: u16,
        addresses: impl IntoIterator<Item = A>,
    ) -> Self {
        Self {
            version: 3,
            vrid,
            priority,
            interval_cs,
            addresses: addresses.into_iter().map(Into::into).collect(),
            auth: None,
        }
    }

    /// The whole Ethernet frame of this advert from `src` (the interface's `mac`) to the VRRP
    /// group of `src`'s family, as it leaves through an AF_PACKET socket: IPv4 with TTL 255,
    /// TOS 0xc0 and Don't Fragment (an atomic datagram, so identification 0, RFC 6864); IPv6
    /// with hop limit 255 and traffic class 0xc0.
    pub fn group_frame(&self, src: IpAddr, mac: [u8; 6], form: ChecksumForm) -> Vec<u8> {
        match src {
            IpAddr::V4(src) => {
                let group = Ipv4Addr::from(VRRP_GROUP_V4);
                let payload = self.encode(src.into(), group.into(), form);
                let mut ip = Ipv4Header::vrrp(src).wrap(&payload);
                ip[6] = 0x40;
                ip[10..12].copy_from_slice(&[0, 0]);
                let sum = checksum(0, &ip[..IPV4_HLEN]);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                ethernet(ipv4_multicast_mac(group), mac, ETH_P_IP, &ip)
            }
            IpAddr::V6(src) => {
                let group = Ipv6Addr::from(VRRP_GROUP_V6);
                let payload = self.encode(src.into(), group.into(), form);
                let ip = ipv6_header(src, group, IPPROTO_VRRP, VRRP_TTL, &payload);
                ethernet(ipv6_multicast_mac(group), mac, ETH_P_IPV6, &ip)
            }
        }
    }

    /// Encodes the VRRP message (no IP header) with its checksum. `form` only matters for
    /// v3/IPv4: a v2 checksum never covers a pseudo-header, a v3/IPv6 one always does.
    pub fn encode(&self, src: IpAddr, dst: IpAddr, form: ChecksumForm) -> Vec<u8> {
        let v2 = self.version == 2;
        let mut b = Vec::with_capacity(VRRP_HLEN + 16 * self.addresses.len() + V2_AUTH_LEN);
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
            match a {
                IpAddr::V4(v4) => b.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => b.extend_from_slice(&v6.octets()),
            }
        }
        if v2 {
            b.extend_from_slice(&self.auth.unwrap_or_default());
        }
        let pseudo = !v2 && (src.is_ipv6() || form == ChecksumForm::PseudoHeader);
        let seed = if pseudo {
            pseudo_header_sum(src, dst, IPPROTO_VRRP, b.len())
        } else {
            0
        };
        let sum = checksum(seed, &b);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        b
    }

    /// Decodes a VRRP message that came from `src` to `dst`; v3/IPv4 accepts either checksum
    /// form.
    pub fn parse(msg: &[u8], src: IpAddr, dst: IpAddr) -> Result<Self, ParseError> {
        if msg.len() < VRRP_HLEN {
            return Err(ParseError::Length);
        }
        let version = msg[0] >> 4;
        let v2 = version == 2;
        if !(v2 || version == 3) || (v2 && src.is_ipv6()) {
            return Err(ParseError::Version);
        }
        if msg[0] & 0x0f != 1 {
            return Err(ParseError::Type);
        }
        let size = if src.is_ipv6() { 16 } else { 4 };
        let count = usize::from(msg[3]);
        if count == 0 {
            return Err(ParseError::AddressList);
        }
        let addresses_end = VRRP_HLEN + size * count;
        if msg.len() != addresses_end + if v2 { V2_AUTH_LEN } else { 0 } {
            return Err(ParseError::Length);
        }
        let pseudo_ok =
            !v2 && checksum(pseudo_header_sum(src, dst, IPPROTO_VRRP, msg.len()), msg) == 0;
        let plain_ok = src.is_ipv4() && checksum(0, msg) == 0;
        if !pseudo_ok && !plain_ok {
            return Err(ParseError::Checksum);
        }
        let auth = (v2 && msg[4] != 0)
            .then(|| <[u8; 8]>::try_from(&msg[addresses_end..]).unwrap_or_default());
        let interval_cs = if v2 {
            u16::from(msg[5]) * 100
        } else {
            u16::from_be_bytes([msg[4] & 0x0f, msg[5]])
        };
        if interval_cs == 0 {
            return Err(ParseError::Interval);
        }
        let addresses = msg[VRRP_HLEN..addresses_end]
            .chunks_exact(size)
            .map(|c| match <[u8; 16]>::try_from(c) {
                Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
                Err(_) => IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            })
            .collect();
        Ok(Self {
            version,
            vrid: msg[1],
            priority: msg[2],
            interval_cs,
            addresses,
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

    fn advert() -> Advert {
        Advert::v3(51, 200, 100, [Ipv4Addr::new(10, 0, 0, 100)])
    }

    #[test]
    fn round_trip_in_both_checksum_forms() {
        for form in [ChecksumForm::PseudoHeader, ChecksumForm::VrrpOnly] {
            let wire = advert().encode(SRC, GROUP, form);
            assert_eq!(wire.len(), 12);
            assert_eq!(Advert::parse(&wire, SRC, GROUP).unwrap(), advert());
        }
    }

    mod round_trip {
        use proptest::prelude::*;

        use super::*;

        fn v4_list() -> impl Strategy<Value = Vec<IpAddr>> {
            proptest::collection::vec(any::<[u8; 4]>().prop_map(IpAddr::from), 1..=20)
        }

        proptest! {
            /// Whatever we encode parses back to itself, in both v3 checksum forms.
            #[test]
            fn v3_ipv4(vrid in 1u8..=255, priority: u8, interval_cs in 1u16..=4095, addresses in v4_list(), plain: bool) {
                let advert = Advert { version: 3, vrid, priority, interval_cs, addresses, auth: None };
                let form = if plain { ChecksumForm::VrrpOnly } else { ChecksumForm::PseudoHeader };
                let wire = advert.encode(SRC, GROUP, form);
                prop_assert_eq!(Advert::parse(&wire, SRC, GROUP), Ok(advert));
            }

            #[test]
            fn v3_ipv6(vrid in 1u8..=255, priority: u8, interval_cs in 1u16..=4095,
                       addresses in proptest::collection::vec(any::<[u8; 16]>().prop_map(IpAddr::from), 1..=8)) {
                let (src, dst): (IpAddr, IpAddr) = ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap());
                let advert = Advert { version: 3, vrid, priority, interval_cs, addresses, auth: None };
                let wire = advert.encode(src, dst, ChecksumForm::PseudoHeader);
                prop_assert_eq!(Advert::parse(&wire, src, dst), Ok(advert));
            }

            #[test]
            fn v2_with_pass(vrid in 1u8..=255, priority: u8, seconds in 1u16..=255, addresses in v4_list(), pass: [u8; 8]) {
                let advert = Advert { version: 2, vrid, priority, interval_cs: seconds * 100, addresses, auth: Some(pass) };
                let wire = advert.encode(SRC, GROUP, ChecksumForm::PseudoHeader);
                prop_assert_eq!(Advert::parse(&wire, SRC, GROUP), Ok(advert));
            }

            /// A single flipped bit never parses into a different advert: a one's
            /// complement sum catches every single-bit error.
            #[test]
            fn a_flipped_bit_never_parses_to_another_advert(vrid in 1u8..=255, priority: u8, addresses in v4_list(), bit in 0usize..96) {
                let advert = Advert { version: 3, vrid, priority, interval_cs: 100, addresses, auth: None };
                let mut wire = advert.encode(SRC, GROUP, ChecksumForm::PseudoHeader);
                let bit = bit % (wire.len() * 8);
                wire[bit / 8] ^= 1 << (bit % 8);
                if let Ok(other) = Advert::parse(&wire, SRC, GROUP) {
                    prop_assert_eq!(other, advert);
                }
            }
        }
    }

    /// Found by the vrrp_codec fuzz target: a v2 advert with interval 0 parsed, and encoded
    /// back as 1 s. Interval 0 (and an empty address list) are refused, as in the kernel.
    #[test]
    fn interval_zero_and_no_addresses_are_refused() {
        let crash = [
            33, 51, 100, 1, 1, 0, 51, 1, 10, 26, 0, 100, 115, 101, 99, 114, 101, 116, 0, 0,
        ];
        assert_eq!(Advert::parse(&crash, SRC, GROUP), Err(ParseError::Interval));
        let mut empty = advert();
        empty.addresses.clear();
        let wire = empty.encode(SRC, GROUP, ChecksumForm::PseudoHeader);
        assert_eq!(
            Advert::parse(&wire, SRC, GROUP),
            Err(ParseError::AddressList)
        );
    }

    #[test]
    fn known_vector_with_pseudo_header() {
        // Computed by hand: VRRPv3 vrid 51 prio 200 count 1 int 100, 10.0.0.100, from 10.0.0.1.
        let wire = advert().encode(SRC, GROUP, ChecksumForm::PseudoHeader);
        assert_eq!(&wire[..6], &[0x31, 51, 200, 1, 0x00, 0x64]);
        let pseudo = 0x0a00 + 0x0001 + 0xe000 + 0x0012 + 112 + 12;
        let sum: u32 = pseudo + 0x3133 + 0xc801 + 0x0064 + 0x0a00 + 0x0064;
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(u16::from_be_bytes([wire[6], wire[7]]), !(folded as u16));
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
    fn ipv6_always_uses_the_pseudo_header() {
        let src: IpAddr = "fe80::1".parse().unwrap();
        let group: IpAddr = "ff02::12".parse().unwrap();
        let v6 = Advert::v3(51, 100, 10, ["fd00::100".parse::<Ipv6Addr>().unwrap()]);
        let wire = v6.encode(src, group, ChecksumForm::VrrpOnly);
        assert_eq!(wire.len(), 8 + 16);
        assert_eq!(
            checksum(
                pseudo_header_sum(src, group, IPPROTO_VRRP, wire.len()),
                &wire
            ),
            0
        );
        assert_eq!(Advert::parse(&wire, src, group).unwrap(), v6);
        // A v6 advert checksummed without the pseudo-header is rejected.
        let mut plain = wire.clone();
        plain[6..8].copy_from_slice(&[0, 0]);
        let sum = checksum(0, &plain);
        plain[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(Advert::parse(&plain, src, group), Err(ParseError::Checksum));
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
    fn group_frames_parse_back() {
        let advert = Advert {
            version: 3,
            vrid: 51,
            priority: 150,
            interval_cs: 1,
            addresses: vec!["10.0.0.100".parse().unwrap()],
            auth: None,
        };
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let mac = [2, 0, 0, 0, 0, 1];
        let f = advert.group_frame(src, mac, ChecksumForm::PseudoHeader);
        assert_eq!(f[..12], [1, 0, 0x5e, 0, 0, 18, 2, 0, 0, 0, 0, 1]);
        assert_eq!(f[12..14], ETH_P_IP.to_be_bytes());
        let ip = &f[14..];
        assert_eq!(checksum(0, &ip[..IPV4_HLEN]), 0, "IPv4 header checksum");
        assert_eq!(
            (ip[1], ip[6], ip[8], ip[9]),
            (0xc0, 0x40, 255, IPPROTO_VRRP)
        );
        let group: IpAddr = Ipv4Addr::from(VRRP_GROUP_V4).into();
        assert_eq!(
            Advert::parse(&ip[IPV4_HLEN..], src, group),
            Ok(advert.clone())
        );

        let src6: IpAddr = "fe80::1".parse().unwrap();
        let mut v6 = advert.clone();
        v6.addresses = vec!["2001:db8::100".parse().unwrap()];
        let f = v6.group_frame(src6, mac, ChecksumForm::PseudoHeader);
        assert_eq!(f[..6], [0x33, 0x33, 0, 0, 0, 0x12]);
        let ip = &f[14..];
        assert_eq!((ip[0], ip[6], ip[7]), (0x6c, IPPROTO_VRRP, 255));
        let group: IpAddr = Ipv6Addr::from(VRRP_GROUP_V6).into();
        assert_eq!(
            Advert::parse(&ip[crate::packet::IPV6_HLEN..], src6, group),
            Ok(v6)
        );
    }
}
