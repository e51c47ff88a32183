//! Where real servers are: the interface whose subnet holds an address, and the MAC the
//! neighbour table has for it (the load balancer's DR mode writes both into its table).

use std::net::IpAddr;

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use rtnetlink::packet_route::{
    AddressFamily,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState},
};

use super::link::{Netlink, address_of};

impl Netlink {
    /// The interface (index) whose own subnet (of `addr`'s family) holds `addr`, if any.
    pub async fn connected_interface(&self, addr: IpAddr) -> Result<Option<u32>> {
        let addresses: Vec<_> = self
            .handle()
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .context("listing addresses")?;
        Ok(addresses.iter().find_map(|m| match address_of(m) {
            Some(own) if same_subnet(own, addr, m.header.prefix_len) => Some(m.header.index),
            _ => None,
        }))
    }

    /// The MAC the neighbour table holds for `addr` on `ifindex` (reachable, stale, or being
    /// confirmed; not incomplete or failed).
    pub async fn neighbour(&self, ifindex: u32, addr: IpAddr) -> Result<Option<[u8; 6]>> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let entries: Vec<_> = self
            .handle()
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .context("listing neighbours")?;
        Ok(entries.iter().find_map(|n| {
            let usable = matches!(
                n.header.state,
                NeighbourState::Reachable
                    | NeighbourState::Stale
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
            );
            if n.header.ifindex != ifindex || !usable {
                return None;
            }
            let mut dst = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => {
                        dst = Some(IpAddr::V4(*d))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(d)) => {
                        dst = Some(IpAddr::V6(*d))
                    }
                    NeighbourAttribute::LinkLayerAddress(m) => {
                        mac = <[u8; 6]>::try_from(m.as_slice()).ok()
                    }
                    _ => {}
                }
            }
            (dst == Some(addr)).then_some(mac).flatten()
        }))
    }
}

/// Whether `a` and `b` are of one family and share the first `prefix` bits.
fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    // IPv4 addresses as the top 32 bits, so one mask rule serves both families.
    let (a, b, width) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (
            u128::from(a.to_bits()) << 96,
            u128::from(b.to_bits()) << 96,
            32,
        ),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    let prefix = u32::from(prefix.min(width));
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    prefix > 0 && a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets() {
        let a = ip("10.1.2.3");
        assert!(same_subnet(a, ip("10.1.2.200"), 24));
        assert!(!same_subnet(a, ip("10.1.3.1"), 24));
        assert!(same_subnet(a, a, 32));
        assert!(!same_subnet(a, ip("10.1.2.4"), 32));
        assert!(!same_subnet(a, ip("10.1.2.4"), 0));
        // A prefix longer than the family's is the whole address.
        assert!(!same_subnet(a, ip("10.1.2.4"), 64));
    }

    #[test]
    fn ipv6_subnets_and_families() {
        let a = ip("fd00::3");
        assert!(same_subnet(a, ip("fd00::1"), 64));
        assert!(!same_subnet(a, ip("fd00:0:0:1::1"), 64));
        assert!(same_subnet(a, a, 128));
        assert!(!same_subnet(a, ip("fd00::4"), 128));
        assert!(!same_subnet(ip("fe80::1"), a, 64));
        // Never across families, whatever the bits.
        assert!(!same_subnet(ip("10.0.0.1"), ip("a00:1::"), 8));
    }
}
