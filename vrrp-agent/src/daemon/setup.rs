//! Turning a configured `vrrp_instance` into a running one: its interface and source address,
//! sockets, election, and what the kernel must know (instance, address list, VIPs, VMAC, peers).

use std::{
    collections::{BTreeMap, btree_map},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use vrrp_common::{
    AddressList, FAMILY_IPV4, FAMILY_IPV6, InstanceKey, VipEntry, VipKey, VmacEntry, VmacKey,
    virtual_mac,
};

use super::{Group, Held, Instance};
use crate::{
    config::{self, Config, VirtualAddress},
    dataplane::Dataplane,
    election::{Election, Params},
    net::{
        link::{Interface, Netlink},
        sockets::{AdvertSender, Announcer},
    },
    packet::{ChecksumForm, bytes16},
};

/// Sets one instance up (not started: the caller feeds it `Startup`).
pub(super) async fn instance(
    dataplane: &mut Dataplane,
    netlink: &Netlink,
    config: &Config,
    ic: &config::Instance,
) -> Result<Instance> {
    let (iface, primary) = source(netlink, ic)
        .await
        .with_context(|| format!("vrrp_instance {} ({})", ic.name, ic.location))?;
    let xdp_mode = dataplane.attach(netlink, iface.index, &iface.name).await?;
    dataplane.attach_egress(iface.index, &iface.name);
    let family = if ic.is_ipv6() {
        FAMILY_IPV6
    } else {
        FAMILY_IPV4
    };
    let key = InstanceKey::new(iface.index, family, ic.vrid).with_peer_set(peer_set(config, ic));
    // The kernel looks an advert's source up among the peers to tell instances sharing a
    // VRID apart, and to drop strangers' adverts under `check_unicast_src`.
    if key.peer_set != 0 || ic.check_unicast_src {
        for peer in &ic.unicast_peers {
            dataplane.set_peer(key, bytes16(*peer))?;
        }
    }
    let adverts = match primary {
        IpAddr::V4(v4) => {
            let form = if ic.v3_checksum_as_v2 {
                ChecksumForm::VrrpOnly
            } else {
                ChecksumForm::PseudoHeader
            };
            let peers: Vec<Ipv4Addr> = ic
                .unicast_peers
                .iter()
                .filter_map(|p| match p {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                })
                .collect();
            AdvertSender::open_v4(&iface, v4, &peers)?.with_checksum_form(form)
        }
        IpAddr::V6(v6) => {
            let peers: Vec<Ipv6Addr> = ic
                .unicast_peers
                .iter()
                .filter_map(|p| match p {
                    IpAddr::V6(v6) => Some(*v6),
                    IpAddr::V4(_) => None,
                })
                .collect();
            AdvertSender::open_v6(&iface, v6, &peers)?
        }
    };
    let election = Election::new(Params {
        version: ic.version,
        priority: ic.priority,
        preempt: ic.preempt,
        initial_master: ic.initial_state == config::InitialState::Master,
        preempt_delay_ns: u64::from(ic.preempt_delay_ms) * 1_000_000,
        advert_int_cs: ic.advert_int_cs,
        primary,
    });
    // use_vmac: the instance's interface answers with the virtual MAC. The NIC must
    // deliver frames sent to it (unicast filter); the kernel programs do the rest.
    let vmac = ic.use_vmac.then(|| virtual_mac(family, ic.vrid));
    let own_mac = vmac.unwrap_or(iface.mac);
    if let Some(vmac) = vmac {
        netlink.add_unicast_filter(iface.index, vmac).await?;
        dataplane.set_vmac(
            VmacKey {
                ifindex: iface.index,
                mac: vmac,
                pad: [0; 2],
            },
            VmacEntry {
                instance: key,
                interface_mac: iface.mac,
                pad: [0; 2],
            },
        )?;
    }
    let Addresses {
        held,
        routes,
        announcers,
    } = addresses(dataplane, netlink, ic, &iface, own_mac, key).await?;
    let instance = Instance {
        adverts,
        held,
        routes,
        announcers,
        config: ic.clone(),
        iface,
        key,
        election,
        generation: 0,
        xdp_mode,
        observe: config.observe,
        transitions: 0,
        link_up: true,
        iface_gone: false,
        tracker_fault: false,
        forced_fault: false,
        deleting: false,
    };
    dataplane.set_instance(key, instance.kernel_config())?;
    dataplane.set_address_list(key, address_list(&ic.virtual_addresses))?;
    tracing::info!(
        instance = %ic.name,
        interface = %instance.iface.name,
        vrid = ic.vrid,
        priority = ic.priority,
        xdp = ?xdp_mode,
        "instance ready"
    );
    Ok(instance)
}

/// What an instance holds while master, resolved to interfaces.
pub(super) struct Addresses {
    pub(super) held: Vec<Held>,
    pub(super) routes: Vec<(config::VirtualRoute, Option<u32>)>,
    pub(super) announcers: BTreeMap<u32, Arc<Announcer>>,
}

/// Resolves an instance's addresses and routes to interfaces, opens an announcer per
/// interface and registers every address with the kernel's responder (set up and reload).
pub(super) async fn addresses(
    dataplane: &mut Dataplane,
    netlink: &Netlink,
    ic: &config::Instance,
    iface: &Interface,
    own_mac: [u8; 6],
    key: InstanceKey,
) -> Result<Addresses> {
    let mut held = Vec::new();
    let mut announcers = BTreeMap::new();
    announcers.insert(
        iface.index,
        Arc::new(Announcer::open(iface)?.with_mac(own_mac)),
    );
    for vip in ic.all_addresses() {
        let index = match &vip.dev {
            Some(dev) => {
                let other = netlink.interface(dev).await.with_context(|| {
                    format!(
                        "vrrp_instance {}: virtual address {} dev {dev}",
                        ic.name, vip.address
                    )
                })?;
                if let btree_map::Entry::Vacant(slot) = announcers.entry(other.index) {
                    slot.insert(Arc::new(Announcer::open(&other)?));
                    // ARP/ND for the address arrive there: the responder must run there.
                    dataplane.attach(netlink, other.index, &other.name).await?;
                }
                (other.index, other.mac)
            }
            None => (iface.index, own_mac),
        };
        let (ifindex, mac) = index;
        dataplane.set_vip(
            VipKey::new(ifindex, family_of(vip.address), bytes16(vip.address)),
            VipEntry {
                instance: key,
                mac,
                pad: [0; 2],
            },
        )?;
        held.push(Held {
            vip: vip.clone(),
            ifindex,
        });
    }
    let mut routes = Vec::new();
    for route in &ic.virtual_routes {
        let index = match &route.dev {
            Some(dev) => Some(
                netlink
                    .interface(dev)
                    .await
                    .with_context(|| format!("vrrp_instance {}: virtual route dev {dev}", ic.name))?
                    .index,
            ),
            None => None,
        };
        routes.push((route.clone(), index));
    }
    Ok(Addresses {
        held,
        routes,
        announcers,
    })
}

/// Whether an instance must wait for its interface to appear (`dynamic_interfaces`, and the
/// interface does not exist now). Without `dynamic_interfaces` a missing interface is an error
/// at setup, as in keepalived.
pub(super) async fn waits_for_interface(
    netlink: &Netlink,
    config: &Config,
    ic: &config::Instance,
) -> bool {
    let absent = config.dynamic_interfaces && netlink.interface(&ic.interface).await.is_err();
    if absent {
        tracing::warn!(
            instance = %ic.name,
            interface = %ic.interface,
            "interface absent: the instance waits for it (dynamic_interfaces)"
        );
    }
    absent
}

/// The sync groups with their members as indexes into `instances`.
pub(super) fn groups(config: &Config, instances: &[Instance]) -> Vec<Group> {
    config
        .sync_groups
        .iter()
        .map(|g| Group {
            name: g.name.clone(),
            members: g
                .members
                .iter()
                .filter_map(|m| instances.iter().position(|i| &i.config.name == m))
                .collect(),
            notify: g.notify.clone(),
            notified: None,
        })
        .collect()
}

/// The interface of an instance and the address its adverts come from, which doubles as the
/// tie-breaking primary address: `unicast_src_ip`, the interface's primary IPv4 address, or
/// for IPv6 its link-local address (waited for while duplicate address detection runs).
async fn source(netlink: &Netlink, ic: &config::Instance) -> Result<(Interface, IpAddr)> {
    let deadline = tokio::time::Instant::now() + LINK_LOCAL_WAIT;
    loop {
        let iface = netlink.interface(&ic.interface).await?;
        let primary = if ic.is_ipv6() {
            ic.unicast_src_ip.or(iface.link_local.map(IpAddr::V6))
        } else {
            ic.unicast_src_ip.or(iface.primary_v4.map(IpAddr::V4))
        };
        if let Some(primary) = primary {
            return Ok((iface, primary));
        }
        if !ic.is_ipv6() {
            bail!(
                "interface {} has no IPv4 address to send adverts from; add one (e.g. `ip addr add 10.0.0.1/24 dev {}`) or set unicast_src_ip",
                iface.name,
                iface.name
            );
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "interface {} has no usable IPv6 link-local address (is IPv6 enabled and the link up?)",
                iface.name
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long to wait for a tentative link-local address to finish duplicate address detection.
const LINK_LOCAL_WAIT: Duration = Duration::from_secs(10);

/// 0, or for a unicast instance sharing (interface, family, VRID) with others (config
/// validation made their peer sets disjoint), its 1-based place among them.
fn peer_set(config: &Config, ic: &config::Instance) -> u8 {
    let sharing: Vec<&config::Instance> = config
        .instances
        .iter()
        .filter(|o| o.interface == ic.interface && o.vrid == ic.vrid && o.is_ipv6() == ic.is_ipv6())
        .collect();
    if sharing.len() < 2 {
        return 0;
    }
    sharing
        .iter()
        .position(|o| o.name == ic.name)
        .map_or(0, |i| i as u8 + 1)
}

pub(super) fn family_of(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => FAMILY_IPV4,
        IpAddr::V6(_) => FAMILY_IPV6,
    }
}

/// The list adverts must carry, as the kernel compares it.
pub(super) fn address_list(vips: &[VirtualAddress]) -> AddressList {
    let mut list = AddressList {
        count: vips.len().min(255) as u8,
        ..AddressList::default()
    };
    for (slot, vip) in list.addresses.iter_mut().zip(vips) {
        *slot = bytes16(vip.address);
    }
    list
}
