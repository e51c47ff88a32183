//! IPv6 neighbour advertisements (RFC 4861 4.4): the IPv6 counterpart of gratuitous ARP.

use std::net::{IpAddr, Ipv6Addr};

use super::{
    ETH_HLEN, ethernet,
    ip::{ETH_P_IPV6, IPV6_HLEN, checksum, ipv6_header, ipv6_multicast_mac, pseudo_header_sum},
};

use vrrp_common::{
    IPPROTO_ICMPV6 as ICMPV6,
    nd::{
        FLAG_OVERRIDE, FLAG_ROUTER, FLAG_SOLICITED, HOP_LIMIT as ND_HOP_LIMIT,
        NEIGHBOR_ADVERT as NEIGHBOUR_ADVERTISEMENT, OPT_TARGET_LLA as OPTION_TARGET_LLA,
    },
};

/// The fields of a neighbour advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourAdvert {
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// R flag.
    pub router: bool,
    /// S flag.
    pub solicited: bool,
    /// O flag.
    pub override_: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The Target Link-Layer Address option, if present.
    pub target_mac: Option<[u8; 6]>,
}

/// The unsolicited NA a new master sends for a virtual address: R=1, S=0, O=1, the target's
/// link-layer address option, from our link-local address to all nodes (ff02::1).
pub fn unsolicited_na(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![
        NEIGHBOUR_ADVERTISEMENT,
        0,
        0,
        0,
        FLAG_ROUTER | FLAG_OVERRIDE,
        0,
        0,
        0,
    ];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[OPTION_TARGET_LLA, 1]);
    icmp.extend_from_slice(&mac);
    let seed = pseudo_header_sum(IpAddr::V6(src), IpAddr::V6(all_nodes), ICMPV6, icmp.len());
    let sum = checksum(seed, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let ip = ipv6_header(src, all_nodes, ICMPV6, ND_HOP_LIMIT, &icmp);
    ethernet(ipv6_multicast_mac(all_nodes), mac, ETH_P_IPV6, &ip)
}

impl NeighbourAdvert {
    /// Parses an Ethernet frame carrying a neighbour advertisement with a valid checksum and
    /// hop limit 255.
    pub fn parse_frame(frame: &[u8]) -> Option<Self> {
        let ip = frame.get(ETH_HLEN..)?;
        if frame.get(12..14)? != ETH_P_IPV6.to_be_bytes() || ip.len() < IPV6_HLEN + 24 {
            return None;
        }
        if ip[6] != ICMPV6 || ip[7] != ND_HOP_LIMIT {
            return None;
        }
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?);
        let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        let icmp = ip.get(IPV6_HLEN..IPV6_HLEN + len)?;
        // An NA is at least 24 bytes (type, code, checksum, flags, target).
        if icmp.len() < 24
            || icmp[0] != NEIGHBOUR_ADVERTISEMENT
            || checksum(
                pseudo_header_sum(IpAddr::V6(src), IpAddr::V6(dst), ICMPV6, len),
                icmp,
            ) != 0
        {
            return None;
        }
        let target = Ipv6Addr::from(<[u8; 16]>::try_from(icmp.get(8..24)?).ok()?);
        let mut target_mac = None;
        let mut options = &icmp[24..];
        while options.len() >= 8 {
            let olen = usize::from(options[1]) * 8;
            if olen == 0 || olen > options.len() {
                break;
            }
            if options[0] == OPTION_TARGET_LLA {
                target_mac = <[u8; 6]>::try_from(&options[2..8]).ok();
            }
            options = &options[olen..];
        }
        Some(Self {
            src,
            dst,
            router: icmp[4] & FLAG_ROUTER != 0,
            solicited: icmp[4] & FLAG_SOLICITED != 0,
            override_: icmp[4] & FLAG_OVERRIDE != 0,
            target,
            target_mac,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the vrrp_codec fuzz target: a payload length of zero indexed an empty slice.
    #[test]
    fn a_short_payload_is_not_an_na() {
        let mut frame = unsolicited_na(
            [2, 0, 0, 0, 0, 1],
            "fe80::1".parse().unwrap(),
            "fd00::1".parse().unwrap(),
        );
        frame[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&[0, 0]);
        assert!(NeighbourAdvert::parse_frame(&frame).is_none());
    }

    #[test]
    fn unsolicited_na_has_the_rfc_flags_and_option() {
        let mac = [2, 0, 0, 0, 0, 1];
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let vip: Ipv6Addr = "fd00::100".parse().unwrap();
        let frame = unsolicited_na(mac, src, vip);
        assert_eq!(&frame[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let na = NeighbourAdvert::parse_frame(&frame).expect("parses with a valid checksum");
        assert_eq!((na.router, na.solicited, na.override_), (true, false, true));
        assert_eq!(na.target, vip);
        assert_eq!(na.target_mac, Some(mac));
        assert_eq!(na.dst, "ff02::1".parse::<Ipv6Addr>().unwrap());
    }
}
