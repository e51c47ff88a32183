//! rtnetlink adapter: interface facts and the virtual addresses.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::TryStreamExt as _;
use rtnetlink::{
    Handle,
    packet_route::{
        address::{AddressAttribute, AddressHeaderFlags, AddressMessage},
        link::LinkAttribute,
    },
};

use crate::config::VirtualAddress;

/// What the agent needs to know about a VRRP interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: u32,
    /// Its hardware address (the source of gratuitous ARPs).
    pub mac: [u8; 6],
    /// Its primary IPv4 address: the advert source and the tie-breaker.
    pub primary: Ipv4Addr,
}

/// A route-netlink connection.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the connection (its I/O runs as a tokio task).
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("opening a route netlink socket")?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Looks an interface up by name, with its MAC and primary IPv4 address.
    pub async fn interface(&self, name: &str) -> Result<Interface> {
        let link = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await
            .with_context(|| format!("interface {name} does not exist"))?
            .ok_or_else(|| anyhow!("interface {name} does not exist"))?;
        let index = link.header.index;
        let mac = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(m) if m.len() == 6 => <[u8; 6]>::try_from(m.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| anyhow!("interface {name} has no Ethernet address"))?;
        let primary = self
            .ipv4_addresses(index)
            .await?
            .into_iter()
            .find(|m| !m.header.flags.contains(AddressHeaderFlags::Secondary))
            .and_then(|m| ipv4_of(&m))
            .ok_or_else(|| {
                anyhow!("interface {name} has no IPv4 address to send adverts from; add one (e.g. `ip addr add 10.0.0.1/24 dev {name}`)")
            })?;
        Ok(Interface {
            name: name.to_string(),
            index,
            mac,
            primary,
        })
    }

    async fn ipv4_addresses(&self, index: u32) -> Result<Vec<AddressMessage>> {
        let all: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .context("listing addresses")?;
        Ok(all.into_iter().filter(|m| ipv4_of(m).is_some()).collect())
    }

    /// Adds a virtual address; adding one that is already there is not an error.
    pub async fn add_address(&self, index: u32, vip: &VirtualAddress) -> Result<()> {
        if self.find_address(index, vip).await?.is_some() {
            return Ok(());
        }
        self.handle
            .address()
            .add(index, IpAddr::V4(vip.address), vip.prefix_len)
            .execute()
            .await
            .with_context(|| format!("adding {}/{}", vip.address, vip.prefix_len))
    }

    /// Removes a virtual address if present.
    pub async fn remove_address(&self, index: u32, vip: &VirtualAddress) -> Result<()> {
        if let Some(msg) = self.find_address(index, vip).await? {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .with_context(|| format!("removing {}/{}", vip.address, vip.prefix_len))?;
        }
        Ok(())
    }

    async fn find_address(
        &self,
        index: u32,
        vip: &VirtualAddress,
    ) -> Result<Option<AddressMessage>> {
        Ok(self
            .ipv4_addresses(index)
            .await?
            .into_iter()
            .find(|m| ipv4_of(m) == Some(vip.address) && m.header.prefix_len == vip.prefix_len))
    }
}

fn ipv4_of(m: &AddressMessage) -> Option<Ipv4Addr> {
    m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(v4)) | AddressAttribute::Address(IpAddr::V4(v4)) => {
            Some(*v4)
        }
        _ => None,
    })
}

/// Resolves an interface name to its index (fails for unknown names).
pub fn if_index(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).context("interface name contains NUL")?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("interface {name} does not exist");
    }
    Ok(index)
}
