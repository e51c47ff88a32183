//! The load balancer's maps (keepalived's `virtual_server` blocks, done in XDP instead of
//! IPVS): which services exist, the scheduling table of each, the flows already placed, and
//! for NAT the replies to translate back.
//!
//! The agent does the scheduling arithmetic (weights, Maglev) when something changes and
//! writes a table of [`TABLE_SLOTS`] backends per service; the kernel only picks a slot, by a
//! per-CPU round-robin cursor or by a hash of the flow, for the first packet of a flow and
//! remembers the choice in [`LbFlowKey`]-keyed LRU map.

/// How many slots each service's table has (a prime, as Maglev wants).
pub const TABLE_SLOTS: u32 = 251;
/// How many services the kernel knows (their ids index the tables).
pub const MAX_SERVICES: u32 = 64;
/// How many real servers a service may have (their index keys the counters).
pub const MAX_REAL_SERVERS: u32 = 64;

/// `lb_kind` in [`LbService::flags`]: direct routing (only the destination MAC changes).
pub const KIND_DR: u8 = 0;
/// `lb_kind NAT`: the destination address and port change, and the replies are translated
/// back on their way through this host.
pub const KIND_NAT: u8 = 1;

/// How [`LbService::pick`] chooses a slot for a new flow.
pub mod pick {
    /// The next slot of a per-CPU cursor (`rr`, `wrr`, and the `lc`/`wlc` approximation).
    pub const CURSOR: u8 = 0;
    /// A hash of the client's address (`sh`, and `mh` without the `mh-port` flag).
    pub const SOURCE: u8 = 1;
    /// A hash of the client's address and port (`mh` with `mh-port`, `sh` with `sh-port`).
    pub const SOURCE_PORT: u8 = 2;
}

/// Counter indices of [`LbCounters`] (per real server, per CPU).
pub mod lb_counters {
    /// Packets forwarded.
    pub const PACKETS: usize = 0;
    /// Bytes forwarded (IP length).
    pub const BYTES: usize = 1;
    /// New flows placed.
    pub const FLOWS: usize = 2;
    /// How many.
    pub const COUNT: usize = 3;
}

/// Per real server counters, indexed by [`lb_counters`].
pub type LbCounters = [u64; lb_counters::COUNT];

/// An address as the load balancer's maps hold it: IPv6 as it is, IPv4 as an IPv4-mapped
/// IPv6 address (`::ffff:a.b.c.d`), so one key type serves both families and they never
/// collide.
pub type LbAddr = [u8; 16];

/// The [`LbAddr`] of an IPv4 address.
pub const fn mapped_v4(v4: [u8; 4]) -> LbAddr {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

/// Key of the services map: a virtual service (IPv4 or IPv6).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LbServiceKey {
    /// The virtual address ([`LbAddr`]).
    pub addr: LbAddr,
    /// The virtual port (network byte order).
    pub port: [u8; 2],
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    /// Explicit padding.
    pub pad: u8,
}

/// Value of the services map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbService {
    /// Index of its table and counters, below [`MAX_SERVICES`].
    pub id: u32,
    /// How many slots of the table are in use (0: nobody to send to; the packet goes to
    /// the stack).
    pub slots: u32,
    /// `persistence_timeout` in seconds (0: none).
    pub persistence_s: u32,
    /// [`KIND_DR`] or [`KIND_NAT`].
    pub kind: u8,
    /// One of [`pick`].
    pub pick: u8,
    /// Only the master of this VRRP instance forwards (the service's address is one of its
    /// VIPs); 0 in `gated`: always.
    pub gated: u8,
    /// Explicit padding.
    pub pad: u8,
    /// The instance whose mastership gates it (when `gated`).
    pub instance: crate::InstanceKey,
    /// Bumped by the agent whenever the table changes: a TCP SYN whose flow was placed under
    /// an older table is a new connection reusing a port, and is placed afresh.
    pub generation: u32,
    /// Explicit padding.
    pub pad2: u32,
}

/// One slot of a service's table: a real server.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbBackend {
    /// Its address ([`LbAddr`]).
    pub addr: LbAddr,
    /// Its port (network byte order; NAT rewrites to it).
    pub port: [u8; 2],
    /// Its MAC (DR rewrites to it).
    pub mac: [u8; 6],
    /// The interface it is reached by (DR sends there).
    pub ifindex: u32,
    /// Its index in the service's `real_server` list (its counters), or
    /// [`MAX_REAL_SERVERS`] - 1 for the sorry server.
    pub index: u32,
}

/// A flow, as the first packet of a connection named it ([`LbAddr`]s, ports in network
/// byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LbFlowKey {
    /// Source address.
    pub src: LbAddr,
    /// Destination address.
    pub dst: LbAddr,
    /// Source port.
    pub sport: [u8; 2],
    /// Destination port.
    pub dport: [u8; 2],
    /// 6 or 17.
    pub protocol: u8,
    /// Explicit padding.
    pub pad: [u8; 3],
}

/// Value of the flows map: where a flow goes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbFlow {
    /// The real server.
    pub backend: LbBackend,
    /// The service's id (for counters).
    pub service: u32,
    /// The service's table generation when the flow was placed.
    pub generation: u32,
}

/// Value of the NAT replies map, keyed by the reply's own [`LbFlowKey`] (real server to
/// client): what its source becomes again.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbNatReply {
    /// The virtual address.
    pub addr: LbAddr,
    /// The virtual port.
    pub port: [u8; 2],
    /// Explicit padding.
    pub pad: [u8; 2],
}

/// Key of the persistence map: a client of a service.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LbPersistKey {
    /// The client's address.
    pub client: LbAddr,
    /// The service's id.
    pub service: u32,
}

/// Value of the persistence map: the client's real server and when it was last used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbPersist {
    /// The real server.
    pub backend: LbBackend,
    /// CLOCK_MONOTONIC ns of the last new flow sent there.
    pub at_ns: u64,
}
