//! The load balancer's agent side: keeps the kernel's services and scheduling tables in line
//! with the `virtual_server` blocks and what the checkers say.
//!
//! What a service forwards to: its real servers that are up with a weight above 0
//! (`inhibit_on_failure` keeps a failed one at weight 0: in the pool for its established
//! flows, out of the table for new ones), or only its `sorry_server` while the checkers say
//! the quorum is lost. The table is a weighted sequence for `rr`/`wrr` (and `lc`/`wlc`,
//! approximated: see docs/load-balancing.md) or a Maglev table for `sh`/`mh`. DR needs each
//! real server's MAC: it is read from the neighbour table (the checkers' own connections fill
//! it); one not known yet is asked for and left out of the table until it is.

mod table;

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, UdpSocket},
    time::{Duration, Instant},
};

use vrrp_common::{
    InstanceKey,
    lb::{
        KIND_DR, KIND_NAT, LbAddr, LbBackend, LbService, LbServiceKey, MAX_REAL_SERVERS,
        MAX_SERVICES, TABLE_SLOTS, lb_counters, mapped_v4, pick,
    },
};

use crate::{
    checker::{Forwarded, VirtualServerStatus},
    config::{Protocol, VirtualServer},
    dataplane::Dataplane,
    net::link::Netlink,
};

/// The index the sorry server's counters live at.
const SORRY_INDEX: u32 = MAX_REAL_SERVERS - 1;

/// One service as last written to the kernel.
#[derive(Clone, PartialEq)]
struct Written {
    service: LbService,
    table: Vec<LbBackend>,
}

/// The agent's copy of what the kernel forwards.
#[derive(Default)]
pub struct Balancer {
    written: BTreeMap<LbServiceKey, Written>,
    /// Interfaces running our program for NAT replies (attached once).
    reply_interfaces: Vec<u32>,
    /// Where each real server was found (interface, MAC) and when.
    located: HashMap<(IpAddr, u8), (u32, [u8; 6], Instant)>,
}

/// How long a real server's interface and MAC are trusted before netlink is asked again.
const LOCATE_TTL: Duration = Duration::from_secs(10);

/// A real server the table may hold: where it is and its weight now.
struct Candidate {
    addr: IpAddr,
    port: u16,
    weight: u32,
    index: u32,
}

/// Whether the XDP balancer forwards this virtual server; `Err` says why not (the config
/// checker warns with it).
pub fn forwardable(vs: &VirtualServer) -> Result<(), String> {
    let v4 = vs.address.is_ipv4();
    if vs.group.iter().any(|(a, _)| a.is_ipv4() != v4) {
        return Err(
            "a virtual_server_group mixing IPv4 and IPv6 is health-checked but not load-balanced: DR and NAT forward within one family"
                .into(),
        );
    }
    let family = |a: &IpAddr| a.is_ipv4() == v4;
    if let Some(rs) = vs.real_servers.iter().find(|rs| !family(&rs.address)) {
        return Err(format!(
            "real server {} is not of the virtual server's address family: DR and NAT forward within one family, so this virtual server is health-checked but not load-balanced",
            rs.address
        ));
    }
    if let Some((sorry, _)) = vs.sorry_server.filter(|(a, _)| !family(a)) {
        return Err(format!(
            "sorry_server {sorry} is not of the virtual server's address family: this virtual server is health-checked but not load-balanced"
        ));
    }
    if vs.protocol == Protocol::Sctp {
        return Err(
            "SCTP virtual servers are health-checked but not load-balanced (TCP and UDP are)"
                .into(),
        );
    }
    if vs.real_servers.len() >= SORRY_INDEX as usize {
        return Err(format!(
            "only the first {} real servers of a virtual server are load-balanced",
            SORRY_INDEX
        ));
    }
    Ok(())
}

impl Balancer {
    /// Whether nothing is being forwarded (no wake-ups are needed for it).
    pub fn is_idle(&self) -> bool {
        self.written.is_empty()
    }

    /// Brings the kernel in line: `servers` as configured, `status` from the checkers (same
    /// order), `gate` the VRRP instance holding an address as a VIP, if any.
    pub async fn sync(
        &mut self,
        dataplane: &mut Dataplane,
        netlink: &Netlink,
        servers: &[&VirtualServer],
        status: &[VirtualServerStatus],
        gate: impl Fn(IpAddr) -> Option<InstanceKey>,
    ) {
        let mut wanted = BTreeMap::new();
        let mut nat = false;
        for (id, (vs, st)) in servers.iter().zip(status).enumerate() {
            if id >= MAX_SERVICES as usize || forwardable(vs).is_err() {
                continue;
            }
            let kind = if vs.method.eq_ignore_ascii_case("DR") {
                KIND_DR
            } else {
                KIND_NAT
            };
            nat |= kind == KIND_NAT;
            let mut backends = Vec::new();
            for c in candidates(vs, st) {
                let Some(backend) = self.locate(dataplane, netlink, &c, kind).await else {
                    continue;
                };
                backends.push((backend, c));
            }
            let table = schedule(vs, &backends);
            // A virtual_server_group: every member forwarded alike (one table, one id).
            let members = if vs.group.is_empty() {
                vec![(vs.address, vs.port)]
            } else {
                vs.group.clone()
            };
            for (address, port) in members {
                let key = LbServiceKey {
                    addr: lb_addr(address),
                    port: port.to_be_bytes(),
                    protocol: if vs.protocol == Protocol::Udp { 17 } else { 6 },
                    pad: 0,
                };
                let generation = self.written.get(&key).map_or(0, |w| {
                    if w.table == table {
                        w.service.generation
                    } else {
                        w.service.generation.wrapping_add(1)
                    }
                });
                let instance = gate(address);
                let service = LbService {
                    generation,
                    pad2: 0,
                    id: id as u32,
                    slots: table.len() as u32,
                    persistence_s: vs.persistence_timeout.unwrap_or(0),
                    kind,
                    pick: pick_of(vs),
                    gated: u8::from(instance.is_some()),
                    pad: 0,
                    instance: instance.unwrap_or_default(),
                };
                wanted.insert(
                    key,
                    Written {
                        service,
                        table: table.clone(),
                    },
                );
            }
        }
        for key in self.written.keys() {
            if !wanted.contains_key(key) {
                dataplane.lb.remove_service(key);
            }
        }
        for (key, w) in &wanted {
            if self.written.get(key) == Some(w) {
                continue;
            }
            match dataplane.lb.set_service(*key, w.service, &w.table) {
                Ok(()) => {
                    let kept = |b: &LbBackend| w.table.contains(b);
                    dataplane.lb.forget_persistence(w.service.id, kept);
                    tracing::info!(
                        service = %service_name(key),
                        slots = w.table.len(),
                        "load-balancing table updated"
                    );
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "load balancer"),
            }
        }
        if let Err(e) = dataplane.lb.set_nat_in_use(nat) {
            tracing::error!(error = %format!("{e:#}"), "load balancer");
        }
        self.written = wanted;
    }

    /// Where a real server is (its interface and, for DR, its MAC), from the cache while it
    /// is fresh: a sync runs on every verdict and every second, and two netlink dumps per
    /// real server each time would not scale to many servers.
    async fn locate(
        &mut self,
        dataplane: &mut Dataplane,
        netlink: &Netlink,
        c: &Candidate,
        kind: u8,
    ) -> Option<LbBackend> {
        let key = (c.addr, kind);
        let (ifindex, mac) = match self.located.get(&key) {
            Some(&(ifindex, mac, at)) if at.elapsed() < LOCATE_TTL => (ifindex, mac),
            _ => {
                let found = self.look_up(dataplane, netlink, c.addr, kind).await?;
                self.located.insert(key, (found.0, found.1, Instant::now()));
                found
            }
        };
        Some(LbBackend {
            addr: lb_addr(c.addr),
            port: c.port.to_be_bytes(),
            mac,
            ifindex,
            index: c.index,
        })
    }

    /// Asks netlink where a real server is: for NAT its address is enough (the stack
    /// routes), but its interface must run our program for the replies; for DR also its MAC.
    async fn look_up(
        &mut self,
        dataplane: &mut Dataplane,
        netlink: &Netlink,
        addr: IpAddr,
        kind: u8,
    ) -> Option<(u32, [u8; 6])> {
        let ifindex = match netlink.connected_interface(addr).await {
            Ok(Some(i)) => i,
            Ok(None) if kind == KIND_NAT => return Some((0, [0; 6])),
            Ok(None) => {
                tracing::warn!(server = %addr, "lb_kind DR needs the real server on a directly connected subnet");
                return None;
            }
            Err(e) => {
                tracing::warn!(server = %addr, error = %format!("{e:#}"), "real server");
                return None;
            }
        };
        if kind == KIND_NAT {
            self.serve_replies(dataplane, netlink, ifindex).await;
            return Some((ifindex, [0; 6]));
        }
        match netlink.neighbour(ifindex, addr).await {
            Ok(Some(mac)) => Some((ifindex, mac)),
            _ => {
                // Make the kernel resolve it (ARP or neighbour discovery); the next sync
                // finds it.
                let any = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                if let Ok(s) = UdpSocket::bind(any) {
                    let _ = s.send_to(&[0], (addr, 9));
                }
                tracing::debug!(server = %addr, "real server's MAC not known yet");
                None
            }
        }
    }

    /// Attaches the program to an interface NAT replies arrive on (once).
    async fn serve_replies(&mut self, dataplane: &mut Dataplane, netlink: &Netlink, ifindex: u32) {
        if self.reply_interfaces.contains(&ifindex) {
            return;
        }
        let Ok(name) = crate::net::link::if_name(ifindex) else {
            return;
        };
        match dataplane.attach(netlink, ifindex, &name).await {
            Ok(_) => self.reply_interfaces.push(ifindex),
            Err(e) => {
                tracing::warn!(interface = %name, error = %format!("{e:#}"), "NAT replies cannot be translated there")
            }
        }
    }

    /// Fills the forwarding counters into the checkers' status (packets, bytes, new flows).
    pub fn annotate(&self, dataplane: &Dataplane, status: &mut [VirtualServerStatus]) {
        for (id, vs) in status.iter_mut().enumerate() {
            // The virtual server's totals: its real servers' and the sorry server's.
            let forwarded = |index: u32| {
                let c = dataplane.lb.counters(id as u32, index);
                Forwarded {
                    packets: c[lb_counters::PACKETS],
                    bytes: c[lb_counters::BYTES],
                    flows: c[lb_counters::FLOWS],
                }
            };
            vs.forwarded = forwarded(SORRY_INDEX);
            for (index, rs) in vs.real_servers.iter_mut().enumerate() {
                rs.forwarded = forwarded(index as u32);
                vs.forwarded += rs.forwarded;
            }
        }
    }
}

/// The real servers a service may send new flows to now, or its sorry server.
fn candidates(vs: &VirtualServer, st: &VirtualServerStatus) -> Vec<Candidate> {
    if st.sorry_server_active
        && let Some((addr, port)) = vs.sorry_server
    {
        return vec![Candidate {
            addr,
            port,
            weight: 1,
            index: SORRY_INDEX,
        }];
    }
    vs.real_servers
        .iter()
        .zip(&st.real_servers)
        .enumerate()
        .filter(|(_, (_, s))| s.up && s.weight > 0)
        .map(|(index, (rs, s))| Candidate {
            addr: rs.address,
            port: rs.port,
            weight: s.weight,
            index: index as u32,
        })
        .collect()
}

/// The table of a service over the located real servers.
fn schedule(vs: &VirtualServer, backends: &[(LbBackend, Candidate)]) -> Vec<LbBackend> {
    let scheduler = vs.scheduler.to_ascii_lowercase();
    let sorry = backends.iter().any(|(_, c)| c.index == SORRY_INDEX);
    if (scheduler == "sh" || scheduler == "mh") && !sorry {
        return hashed(vs, backends);
    }
    let weights: Vec<u32> = backends
        .iter()
        .map(|(_, c)| if scheduler == "rr" { 1 } else { c.weight })
        .collect();
    table::weighted_sequence(&weights, TABLE_SLOTS as usize)
        .into_iter()
        .map(|i| backends[i].0)
        .collect()
}

/// sh/mh: a Maglev table over every configured real server (the current weight of those in
/// the table, the configured one of the others), whose absent servers' slots go to present
/// ones, so a failure moves only the failed server's clients.
fn hashed(vs: &VirtualServer, backends: &[(LbBackend, Candidate)]) -> Vec<LbBackend> {
    let names: Vec<String> = vs
        .real_servers
        .iter()
        .map(|rs| std::net::SocketAddr::new(rs.address, rs.port).to_string())
        .collect();
    let mut weights: Vec<u32> = vs.real_servers.iter().map(|rs| rs.weight).collect();
    let mut by_index: Vec<Option<LbBackend>> = vec![None; names.len()];
    for (backend, c) in backends {
        let i = c.index as usize;
        if let (Some(w), Some(slot)) = (weights.get_mut(i), by_index.get_mut(i)) {
            *w = c.weight;
            *slot = Some(*backend);
        }
    }
    let present: Vec<bool> = by_index.iter().map(Option::is_some).collect();
    table::maglev_stable(&names, &weights, &present, TABLE_SLOTS as usize)
        .into_iter()
        .filter_map(|i| by_index[i])
        .collect()
}

/// How the kernel picks a slot for the service's scheduler.
fn pick_of(vs: &VirtualServer) -> u8 {
    let port = |flag: &str| vs.flags.iter().any(|f| f == flag);
    match vs.scheduler.to_ascii_lowercase().as_str() {
        "sh" if port("sh-port") => pick::SOURCE_PORT,
        "mh" if port("mh-port") => pick::SOURCE_PORT,
        "sh" | "mh" => pick::SOURCE,
        _ => pick::CURSOR,
    }
}

fn service_name(key: &LbServiceKey) -> String {
    let proto = if key.protocol == 17 { "UDP" } else { "TCP" };
    let v6 = std::net::Ipv6Addr::from(key.addr);
    let addr = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
    let port = u16::from_be_bytes(key.port);
    format!("{}/{proto}", std::net::SocketAddr::new(addr, port))
}

/// An address as the kernel's maps hold it.
fn lb_addr(addr: IpAddr) -> LbAddr {
    match addr {
        IpAddr::V4(v4) => mapped_v4(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}
