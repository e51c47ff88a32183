//! The VIPs' side of the program: ARP and Neighbor Solicitations for a VIP are answered here
//! while this node is the active master of the VIP's instance and dropped while it is not (so
//! a backup, or a master whose agent has stopped advertising, never answers), and traffic
//! addressed to a VIP is dropped where the node must not accept it.
//!
//! "Active" means the instance is MASTER in `CONFIG` *and* the heartbeat (stamped each time
//! one of our adverts leaves) is younger than three advertisement intervals. Backups take over
//! after `3 * interval + skew`, so a master whose agent died or hung goes silent before any
//! peer starts answering: at most one node answers for a VIP at any time.
//!
//! Anything this module cannot or need not judge (malformed requests, unknown addresses,
//! gratuitous ARP from another node) goes to the stack, which applies its own checks.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use vrrp_common::{
    FAMILY_IPV4, FAMILY_IPV6, IPPROTO_ICMPV6, InstanceKey, VipKey, VmacKey, counters,
    instance_flags, nd, rate_kind, state, timers,
};

use crate::{
    CONFIG, HEARTBEAT, VIPS, VMACS, count_for,
    csum::fold,
    frame::{Ingress, bytes, verdict},
    packet::{ETH_HLEN, ETH_P_IPV4, ETH_P_IPV6, IPV6_HLEN},
    rate,
};

const ETH_P_ARP: u16 = 0x0806;
const ARP_LEN: usize = 28;
const ARP_REQUEST: u8 = 1;
const ARP_REPLY: u8 = 2;
/// NS/NA fixed part: type, code, checksum, reserved/flags, target.
const ND_LEN: usize = 24;
/// The NA we send: fixed part plus one Target Link-Layer Address option.
const NA_LEN: usize = ND_LEN + 8;
/// The longest NS we check and answer ourselves (longer ones go to the stack).
const MAX_NS_LEN: usize = 64;
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// How this node stands towards one address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Not one of our VIPs: the stack's business.
    Unknown,
    /// Master with a live agent, accepting traffic.
    Active,
    /// Master with a live agent under `no_accept`: answers ARP/ND, drops traffic.
    ActiveNoAccept,
    /// Backup, fault, init, or a master whose heartbeat is stale: silent.
    Silent,
    /// Silent, for an instance that owns its addresses (priority 255).
    SilentOwner,
}

/// One of our VIPs as the kernel sees it right now.
struct Vip {
    standing: Standing,
    instance: InstanceKey,
    mac: [u8; 6],
}

/// Handles a frame that is not VRRP: ARP, NS, and traffic to VIPs. Not inlined: a BPF call
/// gets its own stack frame, so this path and the advert path do not add up on the stack.
/// `within_budget`: whether an answer may be sent ([`arp_budget`]).
#[inline(never)]
pub fn handle<C: Ingress>(ctx: &C, within_budget: bool) -> u32 {
    let Some(eth) = bytes::<ETH_HLEN>(ctx, 0) else {
        return verdict::PASS;
    };
    match u16::from_be_bytes([eth[12], eth[13]]) {
        ETH_P_ARP => arp(ctx, within_budget),
        ETH_P_IPV4 => ipv4(ctx),
        ETH_P_IPV6 => ipv6(ctx, within_budget),
        _ => verdict::PASS,
    }
}

/// `vrrp_agent_rate_limit arp`: whether an ARP request or Neighbor Solicitation for one of
/// our VIPs is within its interface's budget (spending one unit); any other frame is. Its own
/// BPF function, called before [`handle`]: checked inside that path, the budget's branches
/// multiplied the verifier's work on the reply-building code that follows.
#[inline(never)]
pub fn arp_budget<C: Ingress>(ctx: &C) -> bool {
    if !rate::limits(rate_kind::ARP) {
        return true;
    }
    let Some(eth) = bytes::<ETH_HLEN>(ctx, 0) else {
        return true;
    };
    let target = match u16::from_be_bytes([eth[12], eth[13]]) {
        ETH_P_ARP => match bytes::<ARP_LEN>(ctx, ETH_HLEN) {
            Some(a) if a[7] == ARP_REQUEST => VipKey::new(
                ctx.ifindex(),
                FAMILY_IPV4,
                v4_key([a[24], a[25], a[26], a[27]]),
            ),
            _ => return true,
        },
        ETH_P_IPV6 => match (
            bytes::<IPV6_HLEN>(ctx, ETH_HLEN),
            bytes::<ND_LEN>(ctx, ETH_HLEN + IPV6_HLEN),
        ) {
            (Some(ip), Some(icmp))
                if ip[6] == IPPROTO_ICMPV6 && icmp[0] == nd::NEIGHBOR_SOLICIT =>
            {
                VipKey::new(ctx.ifindex(), FAMILY_IPV6, sub16(&icmp, 8))
            }
            _ => return true,
        },
        _ => return true,
    };
    VIPS.get_ptr(target).is_none() || rate::allow(ctx.ifindex(), rate_kind::ARP)
}

/// Looks an address up in `VIPS` and judges the owning instance's standing.
#[inline(always)]
fn lookup<C: Ingress>(ctx: &C, family: u8, addr: [u8; 16]) -> Vip {
    let key = VipKey::new(ctx.ifindex(), family, addr);
    let mut vip = Vip {
        standing: Standing::Unknown,
        instance: InstanceKey::default(),
        mac: [0; 6],
    };
    let Some(entry) = VIPS.get_ptr(key) else {
        return vip;
    };
    // SAFETY: a map value pointer returned by lookup is valid for this program run.
    let entry = unsafe { *entry };
    vip.instance = entry.instance;
    vip.mac = entry.mac;
    vip.standing = standing(&entry.instance);
    vip
}

/// Whether this node is the active master of `instance` (the load balancer's gate).
#[inline(always)]
pub fn standing_is_active(instance: &InstanceKey) -> bool {
    matches!(
        standing(instance),
        Standing::Active | Standing::ActiveNoAccept
    )
}

/// How this node stands towards an instance's addresses: active only while the instance is
/// MASTER and its heartbeat is younger than three advertisement intervals.
#[inline(always)]
fn standing(instance: &InstanceKey) -> Standing {
    let Some(cfg) = CONFIG.get_ptr(instance) else {
        return Standing::Silent;
    };
    // SAFETY: a map value pointer returned by lookup is valid for this program run.
    let cfg = unsafe { *cfg };
    // The address owner's VIPs are its own addresses: silent for ARP/ND like any other when
    // not active, but traffic to them is the host's (management access survives a FAULT).
    let silent = if cfg.priority == 255 {
        Standing::SilentOwner
    } else {
        Standing::Silent
    };
    if cfg.state != state::MASTER {
        return silent;
    }
    let Some(beat) = HEARTBEAT.get_ptr(instance) else {
        return silent;
    };
    // SAFETY: as above.
    let beat = unsafe { *beat };
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let fence_ns = 3 * cfg.interval_cs as u64 * timers::NS_PER_CS;
    if now.saturating_sub(beat) >= fence_ns {
        return silent;
    }
    if cfg.flags & instance_flags::NO_ACCEPT != 0 && cfg.priority != 255 {
        Standing::ActiveNoAccept
    } else {
        Standing::Active
    }
}

/// `use_vmac` on the way in: a frame to one of our virtual MACs is rewritten to the
/// interface's own MAC (so the stack takes it as addressed to this host) while the instance
/// is active, and dropped otherwise. Returns XDP_DROP, or [`CONTINUE`] to go on.
#[inline(never)]
pub fn vmac_ingress<C: Ingress>(ctx: &C) -> u32 {
    let Some(dst) = bytes::<6>(ctx, 0) else {
        return CONTINUE;
    };
    // Only 00-00-5E-00-01-xx and 00-00-5E-00-02-xx can be VMACs: skip the lookup otherwise.
    if dst[0] != 0 || dst[1] != 0 || dst[2] != 0x5e || dst[3] != 0 || (dst[4] != 1 && dst[4] != 2) {
        return CONTINUE;
    }
    let key = VmacKey {
        ifindex: ctx.ifindex(),
        mac: dst,
        pad: [0; 2],
    };
    let Some(entry) = VMACS.get_ptr(key) else {
        return CONTINUE;
    };
    // SAFETY: a map value pointer returned by lookup is valid for this program run.
    let entry = unsafe { *entry };
    if matches!(
        standing(&entry.instance),
        Standing::Silent | Standing::SilentOwner
    ) {
        count_for(&entry.instance, counters::VMAC_DROPPED);
        return verdict::DROP;
    }
    let start = ctx.start();
    if start + 6 > ctx.end() {
        return CONTINUE;
    }
    // SAFETY: the six bytes written are bounds-checked just above.
    unsafe { put(start, entry.interface_mac) };
    ctx.now_for_host();
    CONTINUE
}

/// What [`vmac_ingress`] returns to let the frame go on (not an XDP action).
pub const CONTINUE: u32 = u32::MAX;

/// An ARP request for a VIP: answered in place while active, dropped while silent.
#[inline(always)]
fn arp<C: Ingress>(ctx: &C, within_budget: bool) -> u32 {
    let Some(a) = bytes::<ARP_LEN>(ctx, ETH_HLEN) else {
        return verdict::PASS;
    };
    // Ethernet/IPv4 requests only: htype 1, ptype 0x0800, hlen 6, plen 4, op 1.
    if a[0] != 0 || a[1] != 1 || a[2] != 8 || a[3] != 0 || a[4] != 6 || a[5] != 4 {
        return verdict::PASS;
    }
    if a[6] != 0 || a[7] != ARP_REQUEST {
        return verdict::PASS;
    }
    let sender_ip = [a[14], a[15], a[16], a[17]];
    let target_ip = [a[24], a[25], a[26], a[27]];
    // Gratuitous ARP (sender = target) announces someone's address: the stack's to learn.
    if u32::from_ne_bytes(sender_ip) == u32::from_ne_bytes(target_ip) {
        return verdict::PASS;
    }
    let vip = lookup(ctx, FAMILY_IPV4, v4_key(target_ip));
    match vip.standing {
        Standing::Unknown => verdict::PASS,
        Standing::Silent | Standing::SilentOwner => {
            count_for(&vip.instance, counters::ARP_DROPPED);
            verdict::DROP
        }
        Standing::Active | Standing::ActiveNoAccept => {
            if !within_budget {
                count_for(&vip.instance, counters::ARP_RATE_LIMITED);
                return verdict::DROP;
            }
            let sender_mac = [a[8], a[9], a[10], a[11], a[12], a[13]];
            let start = ctx.start();
            if start + ETH_HLEN + ARP_LEN > ctx.end() {
                return verdict::PASS;
            }
            // SAFETY: the 42 bytes written are bounds-checked just above.
            unsafe {
                put(start, sender_mac);
                put(start + 6, vip.mac);
                let arp = start + ETH_HLEN;
                put(arp + 6, [0, ARP_REPLY]);
                put(arp + 8, vip.mac);
                put(arp + 14, target_ip);
                put(arp + 18, sender_mac);
                put(arp + 24, sender_ip);
            }
            count_for(&vip.instance, counters::ARP_REPLIES);
            verdict::TX
        }
    }
}

/// IPv4 traffic: dropped when addressed to a VIP this node must not accept.
#[inline(always)]
fn ipv4<C: Ingress>(ctx: &C) -> u32 {
    let Some(ip) = bytes::<20>(ctx, ETH_HLEN) else {
        return verdict::PASS;
    };
    let vip = lookup(ctx, FAMILY_IPV4, v4_key([ip[16], ip[17], ip[18], ip[19]]));
    filter_traffic(&vip)
}

/// IPv6: Neighbor Solicitations for a VIP are answered or dropped; other traffic to a VIP
/// is filtered like IPv4's.
#[inline(always)]
fn ipv6<C: Ingress>(ctx: &C, within_budget: bool) -> u32 {
    let Some(ip) = bytes::<IPV6_HLEN>(ctx, ETH_HLEN) else {
        return verdict::PASS;
    };
    if ip[6] == IPPROTO_ICMPV6
        && let Some(icmp) = bytes::<ND_LEN>(ctx, ETH_HLEN + IPV6_HLEN)
        && icmp[0] == nd::NEIGHBOR_SOLICIT
    {
        return solicitation(ctx, &ip, &icmp, within_budget);
    }
    let vip = lookup(ctx, FAMILY_IPV6, sub16(&ip, 24));
    filter_traffic(&vip)
}

#[inline(always)]
fn filter_traffic(vip: &Vip) -> u32 {
    match vip.standing {
        Standing::Unknown | Standing::Active | Standing::SilentOwner => verdict::PASS,
        Standing::ActiveNoAccept | Standing::Silent => {
            count_for(&vip.instance, counters::VIP_TRAFFIC_DROPPED);
            verdict::DROP
        }
    }
}

/// A Neighbor Solicitation whose target may be a VIP (RFC 4861 7.1.1 / 7.2.4).
#[inline(always)]
fn solicitation<C: Ingress>(
    ctx: &C,
    ip: &[u8; IPV6_HLEN],
    icmp: &[u8; ND_LEN],
    within_budget: bool,
) -> u32 {
    let target = sub16(icmp, 8);
    let vip = lookup(ctx, FAMILY_IPV6, target);
    match vip.standing {
        Standing::Unknown => return verdict::PASS,
        Standing::Silent | Standing::SilentOwner => {
            count_for(&vip.instance, counters::ND_DROPPED);
            return verdict::DROP;
        }
        Standing::Active | Standing::ActiveNoAccept => {}
    }
    // Only a valid solicitation gets our answer; the stack judges the rest.
    let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    if ip[7] != nd::HOP_LIMIT || icmp[1] != 0 || !(ND_LEN..=MAX_NS_LEN).contains(&payload) {
        return verdict::PASS;
    }
    if !ns_checksum_ok(ctx, ip, payload) {
        return verdict::PASS;
    }
    if !within_budget {
        count_for(&vip.instance, counters::ARP_RATE_LIMITED);
        return verdict::DROP;
    }
    let source = sub16(ip, 8);
    let dad = is_unspecified(&source);
    let eth_src = match bytes::<12>(ctx, 0) {
        Some(e) => [e[6], e[7], e[8], e[9], e[10], e[11]],
        None => return verdict::PASS,
    };
    let (eth_dst, ip_dst, flags) = if dad {
        // RFC 4861 7.2.4: a solicitation from the unspecified address is answered to
        // all-nodes, without the Solicited flag.
        (
            ALL_NODES_MAC,
            ALL_NODES,
            nd::FLAG_ROUTER | nd::FLAG_OVERRIDE,
        )
    } else {
        (
            eth_src,
            source,
            nd::FLAG_ROUTER | nd::FLAG_SOLICITED | nd::FLAG_OVERRIDE,
        )
    };
    let wanted = ETH_HLEN + IPV6_HLEN + NA_LEN;
    if !ctx.resize(wanted) {
        return verdict::PASS;
    }
    let start = ctx.start();
    if start + wanted > ctx.end() {
        return verdict::PASS;
    }
    let checksum = na_checksum(&target, &ip_dst, flags, &vip.mac);
    // SAFETY: the `wanted` bytes written are bounds-checked just above.
    unsafe {
        put(start, eth_dst);
        put(start + 6, vip.mac);
        put(start + 12, ETH_P_IPV6.to_be_bytes());
        let ip = start + ETH_HLEN;
        put(ip, [0x60, 0, 0, 0]);
        put(ip + 4, (NA_LEN as u16).to_be_bytes());
        put(ip + 6, [IPPROTO_ICMPV6, nd::HOP_LIMIT]);
        put(ip + 8, target);
        put(ip + 24, ip_dst);
        let na = ip + IPV6_HLEN;
        put(na, [nd::NEIGHBOR_ADVERT, 0]);
        put(na + 2, checksum.to_be_bytes());
        put(na + 4, [flags, 0, 0, 0]);
        put(na + 8, target);
        put(na + 24, [nd::OPT_TARGET_LLA, 1]);
        put(na + 26, vip.mac);
    }
    count_for(&vip.instance, counters::ND_REPLIES);
    verdict::TX
}

/// Verifies the ICMPv6 checksum of a solicitation of `len` bytes (a multiple of 8, at most
/// [`MAX_NS_LEN`]), read in 8-byte steps so every read is bounds-checked for the verifier.
#[inline(always)]
fn ns_checksum_ok<C: Ingress>(ctx: &C, ip: &[u8; IPV6_HLEN], len: usize) -> bool {
    if !len.is_multiple_of(8) {
        return false;
    }
    let mut sum = sum16(&sub16(ip, 8)) + sum16(&sub16(ip, 24)) + len as u64;
    sum += IPPROTO_ICMPV6 as u64;
    let mut i = 0;
    while i < MAX_NS_LEN / 8 {
        if i * 8 >= len {
            break;
        }
        let Some(chunk) = bytes::<8>(ctx, ETH_HLEN + IPV6_HLEN + i * 8) else {
            return false;
        };
        sum += u16::from_be_bytes([chunk[0], chunk[1]]) as u64
            + u16::from_be_bytes([chunk[2], chunk[3]]) as u64
            + u16::from_be_bytes([chunk[4], chunk[5]]) as u64
            + u16::from_be_bytes([chunk[6], chunk[7]]) as u64;
        i += 1;
    }
    fold(sum) == 0xffff
}

/// The ICMPv6 checksum of the NA we build, computed from its fields (no packet reads).
#[inline(always)]
fn na_checksum(src: &[u8; 16], dst: &[u8; 16], flags: u8, mac: &[u8; 6]) -> u16 {
    let sum = sum16(src)
        + sum16(dst)
        + NA_LEN as u64
        + IPPROTO_ICMPV6 as u64
        + ((nd::NEIGHBOR_ADVERT as u64) << 8)
        + ((flags as u64) << 8)
        + sum16(src)
        + (((nd::OPT_TARGET_LLA as u64) << 8) | 1)
        + u16::from_be_bytes([mac[0], mac[1]]) as u64
        + u16::from_be_bytes([mac[2], mac[3]]) as u64
        + u16::from_be_bytes([mac[4], mac[5]]) as u64;
    !fold(sum)
}

/// Sum of the eight big-endian 16-bit words of an IPv6 address.
#[inline(always)]
fn sum16(a: &[u8; 16]) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while i < 16 {
        sum += u16::from_be_bytes([a[i], a[i + 1]]) as u64;
        i += 2;
    }
    sum
}

/// The 16 bytes at `at` of a header copy.
#[inline(always)]
fn sub16<const N: usize>(h: &[u8; N], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = h[at + i];
        i += 1;
    }
    out
}

#[inline(always)]
fn is_unspecified(a: &[u8; 16]) -> bool {
    let mut any = 0u8;
    let mut i = 0;
    while i < 16 {
        any |= a[i];
        i += 1;
    }
    any == 0
}

/// An IPv4 address in the 16-byte key form.
#[inline(always)]
pub fn v4_key(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = a[0];
    out[1] = a[1];
    out[2] = a[2];
    out[3] = a[3];
    out
}

/// Writes `N` bytes at an address the caller has bounds-checked.
#[inline(always)]
pub unsafe fn put<const N: usize>(at: usize, value: [u8; N]) {
    // SAFETY: the caller guarantees `at..at + N` lies inside the packet.
    unsafe { core::ptr::write_unaligned(at as *mut [u8; N], value) };
}
