//! Where real servers are: the interface whose subnet holds an address, and the MAC the
//! neighbour table has for it (the load balancer's DR mode writes both into its table).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use rtnetlink::packet_route::{
    AddressFamily,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState},
};

use super::link::{Netlink, address_of};

impl Netlink {
    /// The interface (index) whose own IPv4 subnet holds `addr`, if any.
    pub async fn connected_interface(&self, addr: Ipv4Addr) -> Result<Option<u32>> {
        let addresses: Vec<_> = self
            .handle()
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .context("listing addresses")?;
        Ok(addresses.iter().find_map(|m| match address_of(m) {
            Some(IpAddr::V4(own)) if same_subnet(own, addr, m.header.prefix_len) => {
                Some(m.header.index)
            }
            _ => None,
        }))
    }

    /// The MAC the neighbour table holds for `addr` on `ifindex` (reachable, stale, or being
    /// confirmed; not incomplete or failed).
    pub async fn neighbour(&self, ifindex: u32, addr: Ipv4Addr) -> Result<Option<[u8; 6]>> {
        let entries: Vec<_> = self
            .handle()
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
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
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => dst = Some(*d),
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

/// Whether `a` and `b` share the first `prefix` bits.
fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    prefix > 0 && u32::from(a) & mask == u32::from(b) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let a = Ipv4Addr::new(10, 1, 2, 3);
        assert!(same_subnet(a, Ipv4Addr::new(10, 1, 2, 200), 24));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 1, 3, 1), 24));
        assert!(same_subnet(a, a, 32));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 1, 2, 4), 32));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 1, 2, 4), 0));
    }
}
