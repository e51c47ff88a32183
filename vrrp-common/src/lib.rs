//! Types shared by the vrrp-agent daemon and its kernel programs.
//!
//! Everything here is `#[repr(C)]` plain data: map keys and values, ring-buffer events, counter
//! indices and wire constants. Two small pure functions also live here, [`timers`] and
//! [`advert_rule`], because the kernel and the agent must apply *exactly* the same RFC 9568
//! arithmetic and the same rule of which adverts reset the master-down timer; one copy of that
//! logic, compiled into both, is the only way to keep them from drifting apart.
#![no_std]
#![deny(missing_docs)]

pub mod advert_rule;
pub mod counters;
pub mod lb;
pub mod timers;

/// `AF_INET`, as stored in [`InstanceKey::family`].
pub const FAMILY_IPV4: u8 = 2;
/// `AF_INET6`, as stored in [`InstanceKey::family`].
pub const FAMILY_IPV6: u8 = 10;
/// IP protocol number of VRRP (and of CARP, which shares it).
pub const IPPROTO_VRRP: u8 = 112;
/// The IPv4 VRRP multicast group, 224.0.0.18.
pub const VRRP_GROUP_V4: [u8; 4] = [224, 0, 0, 18];
/// The IPv6 VRRP multicast group, ff02::12.
pub const VRRP_GROUP_V6: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];
/// Advertisements must arrive with this TTL / hop limit (RFC 9568 5.1.1.3).
pub const VRRP_TTL: u8 = 255;
/// IPv6 next-header number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// IPv6 Neighbor Discovery (RFC 4861) as the kernel's responder and the agent's announcer
/// both write it.
pub mod nd {
    /// ICMPv6 type of a Neighbor Solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// ICMPv6 type of a Neighbor Advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// NA flag: the sender is a router (a virtual router is one).
    pub const FLAG_ROUTER: u8 = 0x80;
    /// NA flag: the answer to a solicitation.
    pub const FLAG_SOLICITED: u8 = 0x40;
    /// NA flag: override the receiver's cached link-layer address.
    pub const FLAG_OVERRIDE: u8 = 0x20;
    /// Option type of the Target Link-Layer Address.
    pub const OPT_TARGET_LLA: u8 = 2;
    /// ND messages are sent, and must arrive, with this hop limit.
    pub const HOP_LIMIT: u8 = 255;
}

/// Identifies one virtual router on one interface.
///
/// v4 and v6 instances with the same VRID on the same interface are distinct routers, hence the
/// family in the key; so are unicast instances sharing a VRID with disjoint peer sets (which
/// keepalived allows), hence the peer set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    /// Interface index the adverts arrive on.
    pub ifindex: u32,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// Virtual router identifier, 1-255.
    pub vrid: u8,
    /// 0, or for unicast instances that share (interface, family, VRID), which one: the
    /// kernel finds it from the advert's source in [`PEERS`](PeerKey).
    pub peer_set: u8,
    /// Explicit padding so the key has no uninitialised bytes (hash maps compare all of them).
    pub pad: u8,
}

impl InstanceKey {
    /// Builds the key of an IPv4 instance.
    pub const fn ipv4(ifindex: u32, vrid: u8) -> Self {
        Self::new(ifindex, FAMILY_IPV4, vrid)
    }

    /// Builds the key of an instance of either family.
    pub const fn new(ifindex: u32, family: u8, vrid: u8) -> Self {
        Self {
            ifindex,
            family,
            vrid,
            peer_set: 0,
            pad: 0,
        }
    }

    /// The same router in another peer set.
    pub const fn with_peer_set(mut self, peer_set: u8) -> Self {
        self.peer_set = peer_set;
        self
    }
}

/// Key of the kernel's PEERS map: a unicast peer of a VRID that several instances on one
/// interface share. Its value is the instance's [`InstanceKey::peer_set`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerKey {
    /// The instance key with `peer_set` 0.
    pub instance: InstanceKey,
    /// The peer's address (IPv4 in the first four bytes).
    pub addr: [u8; 16],
}

/// The agent's state as the kernel needs to know it, in [`InstanceConfig::state`].
pub mod state {
    /// Not yet running, or shutting down: the kernel records adverts but raises no events.
    pub const INIT: u8 = 0;
    /// Listening to a master: adverts feed the master-down timer.
    pub const BACKUP: u8 = 1;
    /// Sending adverts: a better advert means we must step down.
    pub const MASTER: u8 = 2;
    /// Interface or tracker failure: adverts are recorded only.
    pub const FAULT: u8 = 3;
}

/// What the agent tells the kernel about one instance (written by the agent, read by XDP).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceConfig {
    /// One of the [`state`] constants.
    pub state: u8,
    /// Local effective priority, 1-255.
    pub priority: u8,
    /// 1 when preemption is on (keepalived's default), 0 for `nopreempt`.
    pub preempt: u8,
    /// Protocol version the instance speaks (2 or 3).
    pub version: u8,
    /// The local primary address in network byte order, for the equal-priority tie-break
    /// (IPv4 in the first four bytes).
    pub primary: [u8; 16],
    /// Bumped by the agent on every state change. The kernel reports the first counted advert
    /// of a new generation even when nothing about the master changed, so the agent always
    /// learns that the kernel has taken over the master-down timer.
    pub generation: u32,
    /// Configured advertisement interval in centiseconds (v2 adverts must carry exactly it).
    pub interval_cs: u16,
    /// VRRPv2 authentication: one of the [`auth`] constants.
    pub auth_type: u8,
    /// [`instance_flags`] bits.
    pub flags: u8,
    /// VRRPv2 PASS authentication data, NUL-padded to 8 bytes as keepalived sends it.
    pub auth_pass: [u8; 8],
    /// keepalived's `preempt_delay` in milliseconds (0: none). After the first lower-priority
    /// advert of a generation, lower-priority adverts keep counting for this long.
    pub preempt_delay_ms: u32,
    /// Explicit padding.
    pub pad2: u32,
    /// The startup part of `preempt_delay`: until this CLOCK_MONOTONIC time, lower-priority
    /// adverts count (0: none).
    pub preempt_hold_until_ns: u64,
}

/// Bits of [`InstanceConfig::flags`].
pub mod instance_flags {
    /// `no_accept`: while master (and not the address owner), drop traffic addressed to the
    /// VIPs, except ARP and Neighbor Discovery (RFC 9568 Accept_Mode False).
    pub const NO_ACCEPT: u8 = 1;
    /// Observe mode: valid adverts are accounted and then passed on to the stack, so a
    /// packet capture on the host still sees them.
    pub const OBSERVE: u8 = 2;
    /// `use_vmac`: the instance answers with the VRRP virtual MAC; frames to it are accepted
    /// while active master and dropped otherwise; our adverts leave with it as source.
    pub const USE_VMAC: u8 = 4;
    /// `vmac_xmit_base`: adverts keep the interface's own MAC as source.
    pub const VMAC_XMIT_BASE: u8 = 8;
    /// `check_unicast_src`: adverts from a source that is not one of the instance's unicast
    /// peers are counted (`unicast-source-errors`) and dropped.
    pub const CHECK_UNICAST_SRC: u8 = 16;
}

/// The VRRP virtual MAC of a router (RFC 9568 7.3): 00-00-5E-00-01-{VRID} for IPv4,
/// 00-00-5E-00-02-{VRID} for IPv6.
pub const fn virtual_mac(family: u8, vrid: u8) -> [u8; 6] {
    let kind = if family == FAMILY_IPV6 { 2 } else { 1 };
    [0, 0, 0x5e, 0, kind, vrid]
}

/// Key of the kernel's VMAC map: a virtual MAC on an interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VmacKey {
    /// Interface index.
    pub ifindex: u32,
    /// The virtual MAC.
    pub mac: [u8; 6],
    /// Explicit padding.
    pub pad: [u8; 2],
}

/// Value of the kernel's VMAC map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmacEntry {
    /// The instance that owns the virtual MAC.
    pub instance: InstanceKey,
    /// The interface's own MAC, which frames to the VMAC are rewritten to on the way in (so
    /// the stack takes them as addressed to this host).
    pub interface_mac: [u8; 6],
    /// Explicit padding.
    pub pad: [u8; 2],
}

/// Key of the kernel's VIP map: one virtual address on the interface it lives on.
///
/// The interface is the VIP's own (`dev` in `virtual_ipaddress` may differ from the
/// instance's), because that is where ARP requests and traffic for it arrive.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// Interface index the address is configured on.
    pub ifindex: u32,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// Explicit padding.
    pub pad: [u8; 3],
    /// The address, IPv4 in the first four bytes.
    pub addr: [u8; 16],
}

impl VipKey {
    /// Builds a key (padding zeroed, as hash maps compare every byte).
    pub const fn new(ifindex: u32, family: u8, addr: [u8; 16]) -> Self {
        Self {
            ifindex,
            family,
            pad: [0; 3],
            addr,
        }
    }
}

/// Value of the kernel's VIP map: which instance owns the address and which MAC answers
/// for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipEntry {
    /// The instance whose state decides whether this node answers for the address.
    pub instance: InstanceKey,
    /// The MAC that ARP and NA replies carry: the interface's, or the VMAC.
    pub mac: [u8; 6],
    /// Explicit padding.
    pub pad: [u8; 2],
}

/// VRRPv2 authentication types (RFC 2338 values, kept by keepalived).
pub mod auth {
    /// No authentication.
    pub const NONE: u8 = 0;
    /// Simple text password (`auth_type PASS`).
    pub const PASS: u8 = 1;
}

/// The latest counted advert of an instance, as recorded by XDP (kernel-written, agent-read).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdvertSeen {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the advert was processed.
    pub at_ns: u64,
    /// [`InstanceConfig::generation`] at the time it was recorded.
    pub generation: u32,
    /// Source address (IPv4 in the first four bytes).
    pub src: [u8; 16],
    /// Advertised priority.
    pub priority: u8,
    /// What the kernel noticed about the advert's address list: [`seen_flags`].
    pub flags: u8,
    /// Advertised interval in centiseconds.
    pub interval_cs: u16,
}

/// Bits of [`AdvertSeen::flags`].
pub mod seen_flags {
    /// The address list differs from ours (counted and logged, not dropped, in v3).
    pub const LIST_MISMATCH: u8 = 1;
    /// An IPv6 list that does not start with a link-local address (keepalived only warns).
    pub const NOT_LINK_LOCAL_FIRST: u8 = 2;
}

/// How many configured addresses the kernel compares with an advert's list.
pub const MAX_LIST: usize = 16;

/// The instance's configured address list, written by the agent, compared by XDP.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressList {
    /// Number of configured (advertised) addresses.
    pub count: u8,
    /// Explicit padding.
    pub pad: [u8; 7],
    /// The first [`MAX_LIST`] addresses, IPv4 in the first four bytes of each.
    pub addresses: [[u8; 16]; MAX_LIST],
}

impl Default for AddressList {
    fn default() -> Self {
        Self {
            count: 0,
            pad: [0; 7],
            addresses: [[0; 16]; MAX_LIST],
        }
    }
}

/// The agent's read-only view of the kernel-private per-instance state (`KERNEL_STATE`): the
/// same layout, with the `bpf_timer` as opaque words (the kernel zeroes them on lookup).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStateView {
    /// The `bpf_timer` (opaque).
    pub timer: [u64; 2],
    /// The agent generation the timer was armed for.
    pub generation: u32,
    /// 1 once the timer is initialised.
    pub timer_ready: u32,
    /// When LOWER_PRIORITY was last raised.
    pub last_reassert_ns: u64,
    /// When `preempt_delay` started.
    pub lower_since_ns: u64,
    /// The generation `lower_since_ns` belongs to.
    pub lower_generation: u32,
    /// Explicit padding.
    pub pad: u32,
    /// When the master-down timer was last set to fire (CLOCK_MONOTONIC ns).
    pub master_down_at_ns: u64,
    /// When a priority or interval change was last raised as an event.
    pub last_news_ns: u64,
    /// When one was last held back (rate-limited): the agent reads `SEEN` if this is newer
    /// than the advert it last heard of.
    pub news_held_ns: u64,
}

/// Kinds of [`Event`] the kernel raises.
pub mod event {
    /// The first counted advert of a generation, or one from a new source.
    pub const NEW_MASTER: u32 = 1;
    /// The master's advertised priority changed.
    pub const PRIORITY_CHANGE: u32 = 2;
    /// A master announced it is leaving (priority 0).
    pub const PRIORITY_ZERO: u32 = 3;
    /// The master's advertised interval changed (a v3 backup adopts it).
    pub const INTERVAL_CHANGE: u32 = 4;
    /// The in-kernel master-down timer expired.
    pub const MASTER_DOWN: u32 = 5;
    /// While we are master, an advert that wins the election arrived: step down.
    pub const PREEMPTED: u32 = 6;
    /// While we are master, a lower-priority peer advertised: reassert (rate-limited to one
    /// per advertisement interval in the kernel).
    pub const LOWER_PRIORITY: u32 = 7;
}

/// A state-relevant change, sent from XDP to the agent over the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The instance concerned.
    pub key: InstanceKey,
    /// One of the [`event`] constants.
    pub kind: u32,
    /// The advert that caused it (zero for [`event::MASTER_DOWN`]).
    pub advert: AdvertSeen,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), Copy, contain only integers and byte arrays, and have
    // explicit padding fields, so every bit pattern is valid and none has uninitialised bytes.
    unsafe impl aya::Pod for super::InstanceKey {}
    unsafe impl aya::Pod for super::InstanceConfig {}
    unsafe impl aya::Pod for super::AdvertSeen {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::AddressList {}
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipEntry {}
    unsafe impl aya::Pod for super::VmacKey {}
    unsafe impl aya::Pod for super::VmacEntry {}
    unsafe impl aya::Pod for super::KernelStateView {}
    unsafe impl aya::Pod for super::PeerKey {}
    unsafe impl aya::Pod for super::RateLimits {}
    unsafe impl aya::Pod for super::lb::LbServiceKey {}
    unsafe impl aya::Pod for super::lb::LbService {}
    unsafe impl aya::Pod for super::lb::LbBackend {}
    unsafe impl aya::Pod for super::lb::LbFlowKey {}
    unsafe impl aya::Pod for super::lb::LbFlow {}
    unsafe impl aya::Pod for super::lb::LbNatReply {}
    unsafe impl aya::Pod for super::lb::LbPersistKey {}
    unsafe impl aya::Pod for super::lb::LbPersist {}
}

/// Per-interface packet-rate limits (`vrrp_agent_rate_limit`), written by the agent into the
/// one-entry `RATE_LIMITS` array. 0: no limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// VRRP packets per second, except adverts from the master being followed.
    pub vrrp_per_s: u32,
    /// ARP requests and Neighbor Solicitations for VIPs answered per second.
    pub arp_per_s: u32,
}

/// Which limit a rate window belongs to (the low bit of its key, after the ifindex).
pub mod rate_kind {
    /// VRRP packets.
    pub const VRRP: u32 = 0;
    /// ARP requests and Neighbor Solicitations.
    pub const ARP: u32 = 1;
}
