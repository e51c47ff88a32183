//! Indices of the XDP program's per-CPU counters, and their names.
//!
//! Names follow RFC 8347 where it has one (`checksum-errors`, `version-errors`, `vrid-errors`,
//! `ip-ttl-errors`, `invalid-type-pkts-rcvd`, `packet-length-errors`, `address-list-errors`,
//! `interval-errors`); the rest say plainly what they count.

/// Every IPv4 protocol-112 packet the program looked at.
pub const VRRP_RX: u32 = 0;
/// Valid adverts for a configured instance, absorbed by the kernel.
pub const VALID_ADVERTS: u32 = 1;
/// Valid adverts for a VRID not configured on this interface: passed to the stack.
pub const VRID_ERRORS: u32 = 2;
/// TTL was not 255.
pub const IP_TTL_ERRORS: u32 = 3;
/// Version field was not the instance's version.
pub const VERSION_ERRORS: u32 = 4;
/// Checksum wrong in both accepted forms.
pub const CHECKSUM_ERRORS: u32 = 5;
/// Shorter than the fixed header, than the address list, or than the IP header says.
pub const PACKET_LENGTH_ERRORS: u32 = 6;
/// Type was not ADVERTISEMENT (1).
pub const INVALID_TYPE: u32 = 7;
/// Address count of zero (RFC 9568 erratum 8299).
pub const ADDRESS_LIST_ERRORS: u32 = 8;
/// Advertised interval of zero (RFC 9568 erratum 8301).
pub const INTERVAL_ERRORS: u32 = 9;
/// IPv4 fragments: never valid VRRP, passed to the stack untouched.
pub const FRAGMENTS: u32 = 10;
/// 802.1Q / 802.1ad tagged frames: passed to the stack.
pub const VLAN_TAGGED: u32 = 11;
/// Valid adverts that did not count (lower priority while preempting, or a loser while master).
pub const IGNORED_ADVERTS: u32 = 12;
/// Events delivered to the agent.
pub const EVENTS_SENT: u32 = 13;
/// Events lost because the ring buffer was full.
pub const EVENTS_LOST: u32 = 14;
/// Master-down timers that expired in the kernel.
pub const MASTER_DOWN_TIMERS: u32 = 15;

/// VRRPv2 auth type differs from the instance's (keepalived's "Type Mismatch").
pub const AUTH_TYPE_MISMATCH: u32 = 16;
/// VRRPv2 PASS authentication data differs (keepalived's "Failure").
pub const AUTH_FAILURES: u32 = 17;
/// CARP packets (protocol 112 too): passed to the stack.
pub const CARP_PACKETS: u32 = 18;

/// While master, lower-priority adverts answered with an immediate advert.
pub const REASSERTS: u32 = 19;
/// While master, lower-priority adverts not answered (already answered this interval).
pub const REASSERTS_RATE_LIMITED: u32 = 20;

/// v3 adverts whose address list differs from ours: counted, logged, still valid (RFC 9568).
/// (A v2 mismatch from a non-owner is dropped and counted as `address-list-errors`.)
pub const ADDRESS_LIST_MISMATCH: u32 = 21;
/// IPv6 adverts whose list does not start with a link-local address: counted, still valid.
pub const NOT_LINK_LOCAL_FIRST: u32 = 22;

/// ARP requests for an active VIP answered in the kernel (XDP_TX).
pub const ARP_REPLIES: u32 = 23;
/// ARP requests for a VIP this node must not answer for (backup, fault, or master whose
/// agent stopped advertising): dropped.
pub const ARP_DROPPED: u32 = 24;
/// Neighbor Solicitations for an active VIP answered in the kernel with an NA.
pub const ND_REPLIES: u32 = 25;
/// Neighbor Solicitations for a VIP this node must not answer for: dropped.
pub const ND_DROPPED: u32 = 26;
/// Packets addressed to a VIP this node must not accept (not master, fenced, or
/// `no_accept`): dropped.
pub const VIP_TRAFFIC_DROPPED: u32 = 27;
/// Our own adverts seen leaving by the egress program (each refreshes the heartbeat).
pub const ADVERTS_SENT: u32 = 28;

/// Frames to a virtual MAC this node must not accept (not the active master): dropped.
pub const VMAC_DROPPED: u32 = 29;

/// Adverts dropped by `check_unicast_src`: their source is not a unicast peer.
pub const UNICAST_SOURCE_ERRORS: u32 = 30;

/// VRRP packets over `vrrp_agent_rate_limit vrrp` on their interface: dropped unread.
pub const VRRP_RATE_LIMITED: u32 = 31;
/// ARP requests / Neighbor Solicitations for a VIP over `vrrp_agent_rate_limit arp`:
/// dropped unanswered.
pub const ARP_RATE_LIMITED: u32 = 32;

/// Priority or interval changes of a followed master not raised as events (more than one
/// per advertisement interval: a spoofed or flapping master); the agent reads the latest
/// from `SEEN` within a second instead.
pub const NEWS_RATE_LIMITED: u32 = 33;

/// Number of counters.
pub const COUNT: usize = 34;

/// Counter names, indexed by the constants above.
pub const NAMES: [&str; COUNT] = [
    "vrrp-rx",
    "valid-adverts",
    "vrid-errors",
    "ip-ttl-errors",
    "version-errors",
    "checksum-errors",
    "packet-length-errors",
    "invalid-type-pkts-rcvd",
    "address-list-errors",
    "interval-errors",
    "fragments",
    "vlan-tagged",
    "ignored-adverts",
    "events-sent",
    "events-lost",
    "master-down-timers",
    "auth-type-mismatch",
    "auth-failures",
    "carp-packets",
    "lower-priority-reasserts",
    "lower-priority-rate-limited",
    "address-list-mismatch",
    "ipv6-list-not-link-local-first",
    "arp-replies",
    "arp-requests-dropped",
    "nd-replies",
    "nd-solicits-dropped",
    "vip-traffic-dropped",
    "adverts-sent",
    "vmac-frames-dropped",
    "unicast-source-errors",
    "vrrp-rate-limited",
    "arp-rate-limited",
    "master-news-rate-limited",
];
