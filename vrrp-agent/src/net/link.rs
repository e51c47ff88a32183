//! rtnetlink adapter: interface facts and the virtual addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::TryStreamExt as _;
use rtnetlink::{
    Handle, RouteMessageBuilder,
    packet_route::{
        address::{
            AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
            CacheInfo,
        },
        link::LinkAttribute,
        route::{RouteMessage, RouteType},
    },
};

use crate::config::{VirtualAddress, VirtualRoute, VirtualRule};

/// Lifetime of a virtual address, in seconds; the master renews it every second.
pub const VIP_LIFETIME_S: u32 = 3;

/// What the agent needs to know about a VRRP interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: u32,
    /// Its hardware address (the source of gratuitous ARPs and NAs).
    pub mac: [u8; 6],
    /// Its primary IPv4 address: the advert source and tie-breaker of IPv4 instances.
    pub primary_v4: Option<Ipv4Addr>,
    /// Its (non-tentative) IPv6 link-local address: the same for IPv6 instances.
    pub link_local: Option<Ipv6Addr>,
    /// Administratively up with carrier.
    pub up: bool,
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

    /// The underlying rtnetlink handle, for the sibling adapters.
    pub(super) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Looks an interface up by name, with its MAC and source addresses.
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
        let up = super::monitor::link_is_up(&link);
        let mac = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| anyhow!("interface {name} has no Ethernet address"))?;
        let addresses = self.addresses(index).await?;
        let primary_v4 = addresses
            .iter()
            .filter(|m| !m.header.flags.contains(AddressHeaderFlags::Secondary))
            .find_map(|m| match address_of(m) {
                Some(IpAddr::V4(v4)) => Some(v4),
                _ => None,
            });
        let link_local = addresses.iter().find_map(|m| match address_of(m) {
            Some(IpAddr::V6(v6)) if v6.is_unicast_link_local() && !tentative(m) => Some(v6),
            _ => None,
        });
        Ok(Interface {
            name: name.to_string(),
            index,
            mac,
            primary_v4,
            link_local,
            up,
        })
    }

    async fn addresses(&self, index: u32) -> Result<Vec<AddressMessage>> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .context("listing addresses")
    }

    /// Adds a virtual address, or renews it: it carries a finite lifetime
    /// ([`VIP_LIFETIME_S`]) that the master renews every second, so a node whose agent died
    /// drops it within seconds. IPv6 addresses skip duplicate address detection, as keepalived
    /// adds them: the new master must be able to use the address at once.
    pub async fn add_address(&self, index: u32, vip: &VirtualAddress) -> Result<()> {
        let mut request = self
            .handle
            .address()
            .add(index, vip.address, vip.prefix_len)
            .replace();
        let message = request.message_mut();
        let mut lifetime = CacheInfo::default();
        lifetime.ifa_preferred = VIP_LIFETIME_S;
        lifetime.ifa_valid = VIP_LIFETIME_S;
        message
            .attributes
            .push(AddressAttribute::CacheInfo(lifetime));
        if vip.address.is_ipv6() {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        if let Some(label) = &vip.label {
            message
                .attributes
                .push(AddressAttribute::Label(label.clone()));
        }
        if let Some(brd) = vip.broadcast {
            message
                .attributes
                .retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
            message.attributes.push(AddressAttribute::Broadcast(brd));
        }
        if let Some(scope) = vip.scope {
            message.header.scope = AddressScope::from(scope);
        }
        request
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
            .addresses(index)
            .await?
            .into_iter()
            .find(|m| address_of(m) == Some(vip.address) && m.header.prefix_len == vip.prefix_len))
    }
}

impl Netlink {
    /// Installs a `virtual_routes` entry (replacing an equal one).
    pub async fn add_route(&self, route: &VirtualRoute, ifindex: Option<u32>) -> Result<()> {
        self.handle
            .route()
            .add(route_message(route, ifindex))
            .replace()
            .execute()
            .await
            .with_context(|| format!("adding route {}/{}", route.destination, route.prefix_len))
    }

    /// Removes a `virtual_routes` entry; one already gone is not an error.
    pub async fn remove_route(&self, route: &VirtualRoute, ifindex: Option<u32>) -> Result<()> {
        match self
            .handle
            .route()
            .del(route_message(route, ifindex))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
            Err(e) => Err(e).with_context(|| {
                format!("removing route {}/{}", route.destination, route.prefix_len)
            }),
        }
    }
}

impl Netlink {
    /// Installs a `virtual_rules` entry.
    pub async fn add_rule(&self, rule: &VirtualRule) -> Result<()> {
        rule_request(&self.handle, rule)
            .execute()
            .await
            .with_context(|| format!("adding rule {rule:?}"))
    }

    /// Removes a `virtual_rules` entry; one already gone is not an error.
    pub async fn remove_rule(&self, rule: &VirtualRule) -> Result<()> {
        let message = rule_request(&self.handle, rule).message_mut().clone();
        match self.handle.rule().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENOENT => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing rule {rule:?}")),
        }
    }
}

fn rule_request(handle: &Handle, rule: &VirtualRule) -> rtnetlink::RuleAddRequest<Ipv4Addr> {
    let mut r = handle.rule().add().v4();
    if let Some((a, l)) = rule.from {
        r = r.source_prefix(a, l);
    }
    if let Some((a, l)) = rule.to {
        r = r.destination_prefix(a, l);
    }
    if let Some(t) = rule.table {
        r = r.table_id(t);
    }
    if let Some(p) = rule.priority {
        r = r.priority(p);
    }
    if let Some(i) = &rule.iif {
        r = r.input_interface(i.clone());
    }
    if let Some(o) = &rule.oif {
        r = r.output_interface(o.clone());
    }
    r
}

fn route_message(route: &VirtualRoute, ifindex: Option<u32>) -> RouteMessage {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.destination, route.prefix_len);
    if let Some(gw) = route.gateway {
        b = b.gateway(gw);
    }
    if let Some(src) = route.src {
        b = b.pref_source(src);
    }
    if let Some(index) = ifindex {
        b = b.output_interface(index);
    }
    if let Some(metric) = route.metric {
        b = b.priority(metric);
    }
    if let Some(table) = route.table {
        b = b.table_id(table);
    }
    if route.blackhole {
        b = b.kind(RouteType::BlackHole);
    }
    b.build()
}

pub(super) fn address_of(m: &AddressMessage) -> Option<IpAddr> {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    let local = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(a) => Some(*a),
        _ => None,
    });
    local.or_else(|| {
        m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(a) => Some(*a),
            _ => None,
        })
    })
}

fn tentative(m: &AddressMessage) -> bool {
    let flags = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Flags(f) => Some(*f),
        _ => None,
    });
    flags.is_some_and(|f| f.contains(AddressFlags::Tentative))
        || m.header.flags.contains(AddressHeaderFlags::Tentative)
}

/// An interface's name from its index (fails for unknown indexes).
pub fn if_name(index: u32) -> Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        bail!("no interface has index {index}");
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
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
