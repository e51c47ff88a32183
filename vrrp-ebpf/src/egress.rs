//! The TC egress side: frames leaving a VRRP interface.
//!
//! - Our own adverts stamp the instance's heartbeat, which tells the XDP side that the agent
//!   is alive and advertising, at no cost to the agent.
//! - NAT replies of the load balancer get the virtual service back as their source.
//! - `use_vmac`: our adverts (unless `vmac_xmit_base`), ARP from a VIP, and IP traffic sourced
//!   from a VIP leave with the VIP's MAC (the VMAC) as Ethernet source.

use aya_ebpf::{bindings::BPF_ANY, helpers::bpf_ktime_get_ns, programs::TcContext};
use vrrp_common::{FAMILY_IPV4, FAMILY_IPV6, VipKey, counters, instance_flags, virtual_mac};

use crate::{
    CONFIG, HEARTBEAT, VIPS, VMAC_IN_USE, count_for, csum,
    frame::{Frame, bytes},
    instance_key,
    packet::{self, ETH_HLEN, ETH_P_IPV4, ETH_P_IPV6, Parsed},
    vip::{put, v4_key},
};

const ETH_P_ARP: u16 = 0x0806;

/// Handles one outgoing frame; it always leaves (TC_ACT_OK).
#[inline(always)]
pub fn handle(ctx: &TcContext) {
    if own_advert(ctx) {
        return;
    }
    crate::lb::egress(ctx);
    if VMAC_IN_USE.get(0).is_some_and(|in_use| *in_use != 0) {
        from_a_vip(ctx);
    }
}

/// Whether the frame is a VRRP advert (then handled: an instance's own gets its heartbeat
/// stamped and, under `use_vmac`, the virtual MAC as source). Not inlined, so its stack frame
/// and the load balancer's do not add up.
#[inline(never)]
fn own_advert(ctx: &TcContext) -> bool {
    if let Parsed::Vrrp(advert) = packet::parse(ctx) {
        // SAFETY: the context's skb pointer is valid for this program run.
        let ifindex = unsafe { (*ctx.skb.skb).ifindex };
        let key = instance_key(ifindex, &advert, &advert.dst);
        let Some(cfg) = CONFIG.get_ptr(key) else {
            return true;
        };
        // SAFETY: map value pointer valid for this run.
        let cfg = unsafe { *cfg };
        if !csum::same_address(&cfg.primary, &advert.src) {
            return true; // not ours (routed through this host)
        }
        // SAFETY: helper without preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        let _ = HEARTBEAT.insert(key, now, BPF_ANY as u64);
        count_for(&key, counters::ADVERTS_SENT);
        let vmac = instance_flags::USE_VMAC;
        if cfg.flags & (vmac | instance_flags::VMAC_XMIT_BASE) == vmac {
            set_source(ctx, virtual_mac(advert.family, advert.vrid), false);
        }
        return true;
    }
    false
}

/// Frames sourced from a VIP leave with the VIP's MAC (the VMAC under `use_vmac`; for other
/// VIPs that is the interface's own MAC already, and nothing is written). Called only while
/// some instance uses a VMAC. Not inlined: its frame and the load balancer's do not add up.
#[inline(never)]
fn from_a_vip(ctx: &TcContext) {
    let Some(eth) = bytes::<ETH_HLEN>(ctx, 0) else {
        return;
    };
    let (family, addr, arp) = match u16::from_be_bytes([eth[12], eth[13]]) {
        ETH_P_IPV4 => match bytes::<20>(ctx, ETH_HLEN) {
            Some(ip) => (FAMILY_IPV4, v4_key([ip[12], ip[13], ip[14], ip[15]]), false),
            None => return,
        },
        ETH_P_IPV6 => match bytes::<24>(ctx, ETH_HLEN) {
            Some(ip) => {
                let mut a = [0u8; 16];
                let mut i = 0;
                while i < 16 {
                    a[i] = ip[8 + i];
                    i += 1;
                }
                (FAMILY_IPV6, a, false)
            }
            None => return,
        },
        ETH_P_ARP => match bytes::<28>(ctx, ETH_HLEN) {
            Some(a) => (FAMILY_IPV4, v4_key([a[14], a[15], a[16], a[17]]), true),
            None => return,
        },
        _ => return,
    };
    // SAFETY: the context's skb pointer is valid for this program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(entry) = VIPS.get_ptr(VipKey::new(ifindex, family, addr)) else {
        return;
    };
    // SAFETY: map value pointer valid for this run.
    let mac = unsafe { (*entry).mac };
    let src = [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]];
    if u32::from_ne_bytes([src[0], src[1], src[2], src[3]])
        == u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]])
        && src[4] == mac[4]
        && src[5] == mac[5]
    {
        return;
    }
    set_source(ctx, mac, arp);
}

/// Rewrites the Ethernet source (and, for ARP, the sender hardware address).
#[inline(always)]
fn set_source(ctx: &TcContext, mac: [u8; 6], arp: bool) {
    let start = ctx.start();
    if start + ETH_HLEN + 14 > ctx.end() {
        if start + ETH_HLEN <= ctx.end() {
            // SAFETY: bounds-checked just above.
            unsafe { put(start + 6, mac) };
        }
        return;
    }
    // SAFETY: the bytes written are bounds-checked above.
    unsafe {
        put(start + 6, mac);
        if arp {
            put(start + ETH_HLEN + 8, mac);
        }
    }
}
