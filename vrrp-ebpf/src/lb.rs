//! The load balancer: keepalived's `virtual_server` blocks forwarded here instead of by IPVS.
//!
//! A TCP/UDP packet to a configured service (IPv4, or IPv6 whose next header is TCP/UDP) is
//! placed on a real server from the
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
    KIND_NAT, LbAddr, LbBackend, LbCounters, LbFlow, LbFlowKey, LbNatReply, LbPersist,
    LbPersistKey, LbService, LbServiceKey, MAX_REAL_SERVERS, MAX_SERVICES, TABLE_SLOTS,
    lb_counters, mapped_v4, pick,
};

use crate::{
    frame::{Frame, Ingress, bytes, store, verdict},
    packet::{ETH_HLEN, ETH_P_IPV4, ETH_P_IPV6},
    vip::standing_is_active,
};

/// Length of the fixed IPv6 header.
const IPV6_HLEN: usize = 40;

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

/// What [`receive`] returns for a packet that is not the load balancer's (not a verdict).
pub const NOT_OURS: u32 = u32::MAX;

/// The parts of a TCP/UDP packet the balancer reads.
#[derive(Clone, Copy, Default)]
struct Packet {
    /// IPv6 (else IPv4).
    v6: bool,
    /// Offset of the transport header.
    l4: usize,
    protocol: u8,
    /// The IP packet's length (IPv4 total length, IPv6 payload plus header).
    total_len: u16,
    src: LbAddr,
    dst: LbAddr,
    sport: [u8; 2],
    dport: [u8; 2],
    /// TCP SYN and ACK flags (false for UDP).
    syn: bool,
    ack: bool,
}

/// A frame that may be to a virtual service. Not inlined: its own BPF stack frame.
#[inline(never)]
pub fn receive<C: Ingress>(ctx: &C) -> u32 {
    // Parsing is inlined here; placing the flow and NAT are BPF functions of their own,
    // called one after the other, so their stack frames never add up (IPv6 keys are large;
    // the limit is 512 bytes for the deepest chain of calls).
    let mut p = Packet::default();
    if !parse(ctx, &mut p) {
        return NOT_OURS;
    }
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
    let mut backend = LbBackend::default();
    if !place(&p, &service, &mut backend) {
        // Nobody to send to: the stack answers (a TCP reset, an ICMP error).
        return NOT_OURS;
    }
    if service.kind == KIND_NAT {
        return nat(ctx, &p, &backend);
    }
    direct(ctx, &backend)
}

/// TC egress: a NAT reply leaving for the client gets the virtual address and port back as
/// its source. Here, after the stack routed it: a packet arriving with one of this host's
/// own addresses as source would be dropped as a martian, not forwarded.
#[inline(never)]
pub fn egress(ctx: &TcContext) {
    if LB_NAT_IN_USE.get(0) != Some(&1) {
        return;
    }
    let mut p = Packet::default();
    if parse(ctx, &mut p) {
        reply(ctx, &p);
    }
}

/// Reads a TCP/UDP packet's fields into `out`; false if it is not one. Written field by
/// field into the caller's `Packet`: building it by value costs a copy per family on the
/// BPF stack.
#[inline(always)]
fn parse<F: Frame>(ctx: &F, out: &mut Packet) -> bool {
    let ok = match bytes::<2>(ctx, 12).map(u16::from_be_bytes) {
        Some(ETH_P_IPV4) => ipv4(ctx, out),
        Some(ETH_P_IPV6) => ipv6(ctx, out),
        _ => None,
    };
    ok.and_then(|()| ports(ctx, out)).is_some()
}

/// An IPv4 TCP/UDP header's fields.
#[inline(always)]
fn ipv4(ctx: &impl Frame, out: &mut Packet) -> Option<()> {
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
    out.v6 = false;
    out.l4 = ETH_HLEN + ihl;
    out.protocol = ip[9];
    out.total_len = u16::from_be_bytes([ip[2], ip[3]]);
    out.src = mapped_v4([ip[12], ip[13], ip[14], ip[15]]);
    out.dst = mapped_v4([ip[16], ip[17], ip[18], ip[19]]);
    Some(())
}

/// An IPv6 header followed by TCP/UDP. Only a transport header right after the fixed header
/// is read: with extension headers (fragments among them) the packet is not ours and goes
/// to the stack, as IPVS would not see its ports either without reassembly.
#[inline(always)]
fn ipv6(ctx: &impl Frame, out: &mut Packet) -> Option<()> {
    let ip = bytes::<8>(ctx, ETH_HLEN)?;
    if ip[0] >> 4 != 6 || (ip[6] != IPPROTO_TCP && ip[6] != IPPROTO_UDP) {
        return None;
    }
    out.v6 = true;
    out.l4 = ETH_HLEN + IPV6_HLEN;
    out.protocol = ip[6];
    out.total_len = u16::from_be_bytes([ip[4], ip[5]]).saturating_add(IPV6_HLEN as u16);
    out.src = bytes::<16>(ctx, ETH_HLEN + 8)?;
    out.dst = bytes::<16>(ctx, ETH_HLEN + 24)?;
    Some(())
}

/// The transport ports and, for TCP, the SYN and ACK flags.
#[inline(always)]
fn ports(ctx: &impl Frame, out: &mut Packet) -> Option<()> {
    let ports = bytes::<4>(ctx, out.l4)?;
    out.sport = [ports[0], ports[1]];
    out.dport = [ports[2], ports[3]];
    if out.protocol == IPPROTO_TCP {
        let flags = bytes::<1>(ctx, out.l4 + 13)?[0];
        out.syn = flags & 0x02 != 0;
        out.ack = flags & 0x10 != 0;
    }
    Some(())
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

/// The real server of the packet's flow (placed now if new), counted, into `out`; false if
/// the service has nobody to send to.
#[inline(never)]
fn place(p: &Packet, service: &LbService, out: &mut LbBackend) -> bool {
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
                return false;
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
    *out = backend;
    true
}

/// Picks a real server for a new flow: the client's persistent one if fresh, else a slot.
#[inline(never)]
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
        pick::SOURCE => mix(fold(&p.src)) % service.slots,
        pick::SOURCE_PORT => {
            let port = u16::from_ne_bytes(p.sport) as u32;
            mix(fold(&p.src) ^ mix(port)) % service.slots
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
            at_ns: now,
        };
        let _ = LB_PERSIST.insert(persist_key, kept, 0);
    }
    Some(backend)
}

/// The four 32-bit words of an address, mixed one into the next (an IPv4 address's
/// mapped prefix adds the same constant for every client).
#[inline(always)]
fn fold(addr: &LbAddr) -> u32 {
    let word = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    mix(mix(mix(word(0)) ^ word(4)) ^ word(8)) ^ word(12)
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
#[inline(never)]
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
#[inline(never)]
fn reply(ctx: &impl Frame, p: &Packet) {
    if let Some(back) = LB_NAT_REPLIES.get_ptr(flow_key(p)) {
        // SAFETY: as above.
        let back = unsafe { *back };
        rewrite(ctx, p, true, back.addr, back.port);
    }
}

/// Rewrites the source (or destination) address and port, updating the transport checksum
/// (whose pseudo-header holds the addresses) and, for IPv4, the header's checksum
/// incrementally (RFC 1624).
#[inline(always)]
fn rewrite(ctx: &impl Frame, p: &Packet, source: bool, addr: LbAddr, port: [u8; 2]) -> bool {
    let (old_addr, old_port) = if source {
        (p.src, p.sport)
    } else {
        (p.dst, p.dport)
    };
    let port_at = if source { p.l4 } else { p.l4 + 2 };
    let csum_at = if p.protocol == IPPROTO_TCP {
        p.l4 + 16
    } else {
        p.l4 + 6
    };
    let Some(l4_sum) = bytes::<2>(ctx, csum_at) else {
        return false;
    };
    let mut l4 = u16::from_be_bytes(l4_sum);
    // A UDP checksum of 0 means "none" (IPv4 only): it stays so.
    let summed = p.protocol == IPPROTO_TCP || l4 != 0;
    let stored = if p.v6 {
        let addr_at = ETH_HLEN + if source { 8 } else { 24 };
        if summed {
            l4 = replace(l4, &old_addr, &addr);
        }
        store(ctx, addr_at, addr)
    } else {
        let ip = ETH_HLEN;
        let addr_at = ip + if source { 12 } else { 16 };
        let (old4, new4) = (last4(&old_addr), last4(&addr));
        let Some(ip_sum) = bytes::<2>(ctx, ip + 10) else {
            return false;
        };
        let ip_sum = replace(u16::from_be_bytes(ip_sum), &old4, &new4);
        if summed {
            l4 = replace(l4, &old4, &new4);
        }
        store(ctx, addr_at, new4) && store(ctx, ip + 10, ip_sum.to_be_bytes())
    };
    if summed {
        l4 = replace(l4, &old_port, &port);
        if p.protocol == IPPROTO_UDP && l4 == 0 {
            l4 = 0xffff;
        }
    }
    stored && store(ctx, port_at, port) && store(ctx, csum_at, l4.to_be_bytes())
}

/// The IPv4 address inside an IPv4-mapped [`LbAddr`].
#[inline(always)]
fn last4(addr: &LbAddr) -> [u8; 4] {
    [addr[12], addr[13], addr[14], addr[15]]
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
