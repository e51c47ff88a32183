//! The load balancer: keepalived's `virtual_server` blocks forwarded here instead of by IPVS.
//!
//! A TCP/UDP packet to a configured IPv4 service is placed on a real server from the
//! service's table (the agent's scheduling: rr/wrr as a weighted sequence walked by a per-CPU
//! cursor, sh/mh as a Maglev table indexed by a hash of the client), the choice is kept in
//! an LRU flow map so a connection stays where it started, and the frame goes on:
//! - DR: only the MACs change (the real server holds the VIP on a loopback) and the frame
//!   leaves by the real server's interface;
//! - NAT: the destination address and port change and the stack routes it; the reply,
//!   routed back through this host, gets the virtual address and port back as its source in
//!   TC egress.
//!
//! A service on a VRRP VIP forwards only while that instance is the active master, so the
//! backup director of a pair never forwards.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray},
    helpers::{bpf_ktime_get_ns, generated::bpf_redirect},
    programs::TcContext,
};
use vrrp_common::lb::{
    KIND_NAT, LbBackend, LbCounters, LbFlow, LbFlowKey, LbNatReply, LbPersist, LbPersistKey,
    LbService, LbServiceKey, MAX_REAL_SERVERS, MAX_SERVICES, TABLE_SLOTS, lb_counters, pick,
};

use crate::{
    frame::{Frame, Ingress, bytes, store, verdict},
    packet::{ETH_HLEN, ETH_P_IPV4},
    vip::standing_is_active,
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The virtual services, written by the agent.
#[aya_ebpf::macros::btf_map]
static LB_SERVICES: HashMap<LbServiceKey, LbService, { MAX_SERVICES as usize }> = HashMap::new();

/// Each service's table of [`TABLE_SLOTS`] backends, at `id * TABLE_SLOTS + slot`.
#[aya_ebpf::macros::btf_map]
static LB_TABLES: Array<LbBackend, { (MAX_SERVICES * TABLE_SLOTS) as usize }> = Array::new();

/// Flows already placed.
#[aya_ebpf::macros::btf_map]
static LB_FLOWS: LruHashMap<LbFlowKey, LbFlow, 65536> = LruHashMap::new();

/// NAT replies to translate back, keyed by the reply's own flow (real server to client).
#[aya_ebpf::macros::btf_map]
static LB_NAT_REPLIES: LruHashMap<LbFlowKey, LbNatReply, 65536> = LruHashMap::new();

/// `persistence_timeout`: each client's real server per service.
#[aya_ebpf::macros::btf_map]
static LB_PERSIST: LruHashMap<LbPersistKey, LbPersist, 16384> = LruHashMap::new();

/// The round-robin cursor of each service, per CPU.
#[aya_ebpf::macros::btf_map]
static LB_CURSORS: PerCpuArray<u32, { MAX_SERVICES as usize }> = PerCpuArray::new();

/// Per real server counters, at `service id * MAX_REAL_SERVERS + index`.
#[aya_ebpf::macros::btf_map]
static LB_COUNTERS: PerCpuArray<LbCounters, { (MAX_SERVICES * MAX_REAL_SERVERS) as usize }> =
    PerCpuArray::new();

/// 1 while any service uses NAT: only then is every other TCP/UDP packet looked up as a
/// possible reply. Written by the agent.
#[aya_ebpf::macros::btf_map]
static LB_NAT_IN_USE: Array<u32, 1> = Array::new();

/// What [`ipv4`] returns for a packet that is not the load balancer's (not a verdict).
pub const NOT_OURS: u32 = u32::MAX;

/// The parts of an IPv4 TCP/UDP packet the balancer reads.
struct Packet {
    /// Offset of the transport header.
    l4: usize,
    protocol: u8,
    total_len: u16,
    src: [u8; 4],
    dst: [u8; 4],
    sport: [u8; 2],
    dport: [u8; 2],
    /// TCP SYN and ACK flags (false for UDP).
    syn: bool,
    ack: bool,
}

/// An IPv4 frame that may be to a virtual service or a NAT reply. Not inlined: its own BPF
/// stack frame.
#[inline(never)]
pub fn ipv4<C: Ingress>(ctx: &C) -> u32 {
    let Some(p) = parse(ctx) else {
        return NOT_OURS;
    };
    let key = LbServiceKey {
        addr: p.dst,
        port: p.dport,
        protocol: p.protocol,
        pad: 0,
    };
    let Some(service) = LB_SERVICES.get_ptr(key) else {
        return NOT_OURS;
    };
    // SAFETY: a map value pointer returned by lookup is valid for this program run.
    let service = unsafe { *service };
    if service.gated != 0 && !standing_is_active(&service.instance) {
        return NOT_OURS;
    }
    forward(ctx, &p, &service)
}

/// TC egress: a NAT reply leaving for the client gets the virtual address and port back as
/// its source. Here, after the stack routed it: a packet arriving with one of this host's
/// own addresses as source would be dropped as a martian, not forwarded.
#[inline(never)]
pub fn egress(ctx: &TcContext) {
    if LB_NAT_IN_USE.get(0) != Some(&1) {
        return;
    }
    if let Some(p) = parse(ctx) {
        reply(ctx, &p);
    }
}

#[inline(always)]
fn parse(ctx: &impl Frame) -> Option<Packet> {
    if bytes::<2>(ctx, 12)? != ETH_P_IPV4.to_be_bytes() {
        return None;
    }
    let ip = bytes::<20>(ctx, ETH_HLEN)?;
    if ip[0] >> 4 != 4 || (ip[9] != IPPROTO_TCP && ip[9] != IPPROTO_UDP) {
        return None;
    }
    // Fragments other than the first carry no ports: not ours (nor is the first, whose
    // followers could not be placed alike).
    if ip[6] & 0x3f != 0 || ip[7] != 0 {
        return None;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if !(20..=60).contains(&ihl) {
        return None;
    }
    let l4 = ETH_HLEN + ihl;
    let ports = bytes::<4>(ctx, l4)?;
    let flags = if ip[9] == IPPROTO_TCP {
        bytes::<1>(ctx, l4 + 13)?[0]
    } else {
        0
    };
    Some(Packet {
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        l4,
        protocol: ip[9],
        total_len: u16::from_be_bytes([ip[2], ip[3]]),
        src: [ip[12], ip[13], ip[14], ip[15]],
        dst: [ip[16], ip[17], ip[18], ip[19]],
        sport: [ports[0], ports[1]],
        dport: [ports[2], ports[3]],
    })
}

fn flow_key(p: &Packet) -> LbFlowKey {
    LbFlowKey {
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: p.dport,
        protocol: p.protocol,
        pad: [0; 3],
    }
}

#[inline(always)]
fn forward<C: Ingress>(ctx: &C, p: &Packet, service: &LbService) -> u32 {
    let key = flow_key(p);
    // A bare SYN on a flow placed under an older table is a new connection on a reused port.
    let fresh_syn = p.syn && !p.ack;
    let backend = match LB_FLOWS.get_ptr(key) {
        // SAFETY: as above.
        Some(flow)
            if unsafe { (*flow).service } == service.id
                && !(fresh_syn && unsafe { (*flow).generation } != service.generation) =>
        {
            // SAFETY: as above.
            unsafe { (*flow).backend }
        }
        _ => {
            let Some(backend) = schedule(p, service) else {
                // Nobody to send to: the stack answers (a TCP reset, an ICMP error).
                return NOT_OURS;
            };
            let flow = LbFlow {
                backend,
                service: service.id,
                generation: service.generation,
            };
            let _ = LB_FLOWS.insert(key, flow, 0);
            add(service.id, backend.index, lb_counters::FLOWS, 1);
            backend
        }
    };
    add(service.id, backend.index, lb_counters::PACKETS, 1);
    add(
        service.id,
        backend.index,
        lb_counters::BYTES,
        p.total_len as u64,
    );
    if service.kind == KIND_NAT {
        return nat(ctx, p, &backend);
    }
    direct(ctx, &backend)
}

/// Picks a real server for a new flow: the client's persistent one if fresh, else a slot.
#[inline(always)]
fn schedule(p: &Packet, service: &LbService) -> Option<LbBackend> {
    if service.slots == 0 || service.slots > TABLE_SLOTS || service.id >= MAX_SERVICES {
        return None;
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let persist_key = LbPersistKey {
        client: p.src,
        service: service.id,
    };
    if service.persistence_s != 0
        && let Some(kept) = LB_PERSIST.get_ptr_mut(persist_key)
    {
        // SAFETY: as above; the entry is this client's.
        let kept = unsafe { &mut *kept };
        if now.saturating_sub(kept.at_ns) < service.persistence_s as u64 * 1_000_000_000 {
            kept.at_ns = now;
            return Some(kept.backend);
        }
    }
    let slot = match service.pick {
        pick::SOURCE => mix(u32::from_ne_bytes(p.src)) % service.slots,
        pick::SOURCE_PORT => {
            let port = u16::from_ne_bytes(p.sport) as u32;
            mix(u32::from_ne_bytes(p.src) ^ mix(port)) % service.slots
        }
        _ => {
            let cursor = LB_CURSORS.get_ptr_mut(service.id)?;
            // SAFETY: a per-CPU slot: nobody else writes it during this run.
            let cursor = unsafe { &mut *cursor };
            *cursor = (*cursor + 1) % service.slots;
            *cursor
        }
    };
    let backend = *LB_TABLES.get(service.id * TABLE_SLOTS + slot)?;
    if service.persistence_s != 0 {
        let kept = LbPersist {
            backend,
            pad: 0,
            at_ns: now,
        };
        let _ = LB_PERSIST.insert(persist_key, kept, 0);
    }
    Some(backend)
}

/// murmur3's finaliser: every input bit moves every output bit, and both directors of a
/// pair compute the same value.
#[inline(always)]
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// DR: the frame goes to the real server's MAC from ours, out of its interface.
#[inline(always)]
fn direct<C: Ingress>(ctx: &C, backend: &LbBackend) -> u32 {
    let Some(eth) = bytes::<12>(ctx, 0) else {
        return verdict::DROP;
    };
    let ours = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
    if !store(ctx, 0, backend.mac) || !store(ctx, 6, ours) {
        return verdict::DROP;
    }
    if backend.ifindex == ctx.ifindex() {
        return verdict::TX;
    }
    // SAFETY: helper without memory arguments.
    unsafe { bpf_redirect(backend.ifindex, 0) };
    verdict::REDIRECT
}

/// NAT, the way in: the destination becomes the real server; the stack routes it there.
#[inline(always)]
fn nat<C: Ingress>(ctx: &C, p: &Packet, backend: &LbBackend) -> u32 {
    let reply = LbFlowKey {
        src: backend.addr,
        dst: p.src,
        sport: backend.port,
        dport: p.sport,
        protocol: p.protocol,
        pad: [0; 3],
    };
    let back = LbNatReply {
        addr: p.dst,
        port: p.dport,
        pad: [0; 2],
    };
    let _ = LB_NAT_REPLIES.insert(reply, back, 0);
    if !rewrite(ctx, p, false, backend.addr, backend.port) {
        return verdict::DROP;
    }
    verdict::PASS
}

/// NAT, the way back: a reply from a real server gets the virtual address and port as its
/// source again.
#[inline(always)]
fn reply(ctx: &impl Frame, p: &Packet) {
    if let Some(back) = LB_NAT_REPLIES.get_ptr(flow_key(p)) {
        // SAFETY: as above.
        let back = unsafe { *back };
        rewrite(ctx, p, true, back.addr, back.port);
    }
}

/// Rewrites the source (or destination) address and port, updating the IPv4 header's
/// checksum and the transport checksum incrementally (RFC 1624).
#[inline(always)]
fn rewrite(ctx: &impl Frame, p: &Packet, source: bool, addr: [u8; 4], port: [u8; 2]) -> bool {
    let ip = ETH_HLEN;
    let (old_addr, old_port) = if source {
        (p.src, p.sport)
    } else {
        (p.dst, p.dport)
    };
    let (addr_at, port_at) = if source {
        (ip + 12, p.l4)
    } else {
        (ip + 16, p.l4 + 2)
    };
    let csum_at = if p.protocol == IPPROTO_TCP {
        p.l4 + 16
    } else {
        p.l4 + 6
    };
    let (Some(ip_sum), Some(l4_sum)) = (bytes::<2>(ctx, ip + 10), bytes::<2>(ctx, csum_at)) else {
        return false;
    };
    let ip_sum = replace(u16::from_be_bytes(ip_sum), &old_addr, &addr);
    let mut l4 = u16::from_be_bytes(l4_sum);
    // A UDP checksum of 0 means "none": it stays so.
    if p.protocol == IPPROTO_TCP || l4 != 0 {
        l4 = replace(l4, &old_addr, &addr);
        l4 = replace(l4, &old_port, &port);
        if p.protocol == IPPROTO_UDP && l4 == 0 {
            l4 = 0xffff;
        }
    }
    store(ctx, addr_at, addr)
        && store(ctx, port_at, port)
        && store(ctx, ip + 10, ip_sum.to_be_bytes())
        && store(ctx, csum_at, l4.to_be_bytes())
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), over the 16-bit words of `old` and `new`.
#[inline(always)]
fn replace<const N: usize>(check: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut sum = (!check) as u32;
    let mut i = 0;
    while i + 1 < N {
        sum += (!u16::from_be_bytes([old[i], old[i + 1]])) as u32;
        sum += u16::from_be_bytes([new[i], new[i + 1]]) as u32;
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[inline(always)]
fn add(service: u32, index: u32, counter: usize, n: u64) {
    if index >= MAX_REAL_SERVERS || counter >= lb_counters::COUNT {
        return;
    }
    if let Some(row) = LB_COUNTERS.get_ptr_mut(service * MAX_REAL_SERVERS + index) {
        // SAFETY: a per-CPU slot: nobody else writes it during this run.
        unsafe { (*row)[counter] += n };
    }
}
