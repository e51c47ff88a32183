//! keepalived.conf: syntax, the typed model, and keepalived's validation rules.
//!
//! This is the subset the foundation needs (`global_defs { router_id, vrrp_version }` and
//! `vrrp_instance`); every other keyword is reported with its location rather than ignored,
//! because a silently dropped `track_script` or `unicast_peer` changes who becomes master.

mod addresses;
mod builder;
mod diagnostic;
mod instance;
pub mod keywords;
mod mail;
mod preprocess;
mod routes;
mod scripts;
mod sync_group;
mod syntax;
mod tracking;
mod values;
mod virtual_server;
mod vs_group;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

pub use diagnostic::{Diagnostic, Diagnostics, Location};
pub use mail::MailSettings;
pub use preprocess::Options;
pub use scripts::{Notify, Script, ScriptGlobals};
pub use syntax::{Statement, Word};
pub use tracking::{ParamMatch, Track, TrackFile, TrackProcess, Tracked, VrrpScript};
pub use virtual_server::{CheckKind, Checker, Protocol, RealServer, Url, VirtualServer};

/// The parsed, validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `global_defs { router_id }`; defaults to the host name like keepalived.
    pub router_id: Option<String>,
    /// The VRRP instances, in file order.
    pub instances: Vec<Instance>,
    /// `vrrp_sync_group`s: instances that change state together.
    pub sync_groups: Vec<SyncGroup>,
    /// `vrrp_script` health checks (run only when something tracks them).
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `track_file` blocks.
    pub track_files: Vec<TrackFile>,
    /// `vrrp_track_process` blocks.
    pub track_processes: Vec<TrackProcess>,
    /// `virtual_server` blocks: real servers and their health checks.
    pub virtual_servers: Vec<VirtualServer>,
    /// Script user, script security and the notify FIFOs.
    pub scripts: ScriptGlobals,
    /// Scripts are configured but `enable_script_security` is not (keepalived runs them and
    /// warns; `-t` exits 5).
    pub unsafe_scripts: bool,
    /// `global_defs { dynamic_interfaces }`: an instance whose interface does not exist yet
    /// waits for it instead of stopping the daemon.
    pub dynamic_interfaces: bool,
    /// `global_defs { vrrp_agent_observe }` (a vrrp-agent extension): the kernel accounts
    /// adverts and then passes them on to the stack instead of absorbing them, so tcpdump on
    /// the host still sees them.
    pub observe: bool,
    /// `global_defs { vrrp_agent_rate_limit vrrp N arp M }` (a vrrp-agent extension): per
    /// interface and second, at most N adverts not from the master being followed and M
    /// answered ARP requests / Neighbor Solicitations; the rest are dropped in XDP. 0 is no
    /// limit.
    pub rate_limit: RateLimit,
    /// Things that are accepted but probably not what was meant.
    pub warnings: Vec<Diagnostic>,
}

/// A `virtual_routes` entry (IPv4).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualRoute {
    /// Destination network.
    pub destination: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `via`/`gw`.
    pub gateway: Option<Ipv4Addr>,
    /// `dev`.
    pub dev: Option<String>,
    /// `src` (preferred source).
    pub src: Option<Ipv4Addr>,
    /// `metric`.
    pub metric: Option<u32>,
    /// `table`.
    pub table: Option<u32>,
    /// `blackhole`.
    pub blackhole: bool,
}

/// A `virtual_rules` entry (IPv4 policy rule).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualRule {
    /// `from NET`.
    pub from: Option<(Ipv4Addr, u8)>,
    /// `to NET`.
    pub to: Option<(Ipv4Addr, u8)>,
    /// `table N` (required).
    pub table: Option<u32>,
    /// `priority N`.
    pub priority: Option<u32>,
    /// `iif IF`.
    pub iif: Option<String>,
    /// `oif IF`.
    pub oif: Option<String>,
}

/// A `vrrp_sync_group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroup {
    /// Its name.
    pub name: String,
    /// Where the block starts.
    pub location: Location,
    /// Member `vrrp_instance` names.
    pub members: Vec<String>,
    /// Its notify scripts.
    pub notify: Notify,
    /// Its `track_*` entries (applied to every member).
    pub tracks: Vec<Track>,
    /// `sync_group_tracking_weight`: members may use tracking weights.
    pub tracking_weight: bool,
}

/// How an instance starts (keepalived's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InitialState {
    /// `state MASTER`.
    Master,
    /// `state BACKUP` (the default).
    Backup,
}

/// A virtual address with its prefix length and keepalived's per-address options.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualAddress {
    /// The address.
    pub address: IpAddr,
    /// Prefix length (keepalived defaults to the full length: 32 or 128).
    pub prefix_len: u8,
    /// `dev IF`: the interface to put it on (default: the instance's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// `label LABEL` (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `scope SCOPE` as a number (0 global, 253 link, 254 host, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
    /// `brd ADDR` (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Ipv4Addr>,
}

impl Default for VirtualAddress {
    fn default() -> Self {
        Self {
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix_len: 32,
            dev: None,
            label: None,
            scope: None,
            broadcast: None,
        }
    }
}

/// One `vrrp_instance` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The block's name.
    pub name: String,
    /// Where the block starts.
    pub location: Location,
    /// `state`.
    pub initial_state: InitialState,
    /// `interface`.
    pub interface: String,
    /// `virtual_router_id`, 1-255.
    pub vrid: u8,
    /// `priority`, 1-255 (keepalived's default 100).
    pub priority: u8,
    /// `advert_int` in centiseconds (keepalived's default 1 s).
    pub advert_int_cs: u16,
    /// Preempt_Mode: false with `nopreempt`.
    pub preempt: bool,
    /// `preempt_delay` in milliseconds (0-1000 s; 0: none).
    pub preempt_delay_ms: u32,
    /// Protocol version: `version` in the instance, else `global_defs { vrrp_version }`.
    pub version: u8,
    /// `virtual_ipaddress`, sent in adverts in exactly this order.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// `virtual_ipaddress_excluded`: held by the master but not advertised.
    pub excluded_addresses: Vec<VirtualAddress>,
    /// `virtual_routes`: installed by the master with its addresses.
    pub virtual_routes: Vec<VirtualRoute>,
    /// `virtual_rules`: policy rules installed by the master with its addresses.
    pub virtual_rules: Vec<VirtualRule>,
    /// VRRPv2 `authentication { auth_type PASS auth_pass ... }`: the 8 bytes sent.
    pub auth_pass: Option<[u8; 8]>,
    /// `v3_checksum_as_v2`: send the VRRPv3/IPv4 checksum without the pseudo-header (RFC 9568's
    /// reading) instead of keepalived's and FRR's default with it. Both are accepted on receive.
    pub v3_checksum_as_v2: bool,
    /// `unicast_src_ip`: the advert source instead of the interface's primary address.
    pub unicast_src_ip: Option<IpAddr>,
    /// `unicast_peer { ... }`: adverts go to each of these instead of the VRRP group.
    pub unicast_peers: Vec<IpAddr>,
    /// `check_unicast_src` (or `vrrp_check_unicast_src` in global_defs): adverts whose source
    /// is not one of `unicast_peers` are dropped (in XDP).
    pub check_unicast_src: bool,
    /// `accept` (keepalived's default without `vrrp_strict`) or `no_accept`: whether a master
    /// that does not own the addresses (priority below 255) accepts traffic sent to them.
    pub accept: bool,
    /// `use_vmac`: answer with the VRRP virtual MAC (done in the dataplane, no macvlan).
    pub use_vmac: bool,
    /// `vmac_xmit_base`: with `use_vmac`, adverts keep the interface's own MAC as source.
    pub vmac_xmit_base: bool,
    /// Its notify scripts.
    pub notify: Notify,
    /// What it tracks (its own `track_*` entries and its sync group's), weights resolved.
    pub tracks: Vec<Track>,
}

impl Instance {
    /// Whether two instances are configured alike, wherever they were written (a reload keeps
    /// an instance running exactly when this holds).
    pub fn same_settings(&self, other: &Instance) -> bool {
        fn unplaced(i: &Instance) -> Instance {
            let mut i = i.clone();
            i.location = Location {
                file: std::sync::Arc::new(std::path::PathBuf::new()),
                line: 0,
                col: 0,
            };
            for script in [
                &mut i.notify.master,
                &mut i.notify.backup,
                &mut i.notify.fault,
                &mut i.notify.stop,
                &mut i.notify.generic,
                &mut i.notify.deleted,
            ]
            .into_iter()
            .flatten()
            {
                script.location = None;
            }
            i
        }
        unplaced(self) == unplaced(other)
    }

    /// Whether `other` is this instance with only settings a running instance can take in
    /// place changed: priority, preemption, `preempt_delay`, `advert_int`, accept mode,
    /// notifications, what it tracks, and its addresses, routes and rules as long as the family stays (a
    /// reload retunes it instead of restarting it, as keepalived patches addresses in place).
    pub fn retunable_to(&self, other: &Instance) -> bool {
        if self.is_ipv6() != other.is_ipv6() {
            return false;
        }
        let mut same = other.clone();
        same.virtual_addresses = self.virtual_addresses.clone();
        same.excluded_addresses = self.excluded_addresses.clone();
        same.virtual_routes = self.virtual_routes.clone();
        same.virtual_rules = self.virtual_rules.clone();
        same.priority = self.priority;
        same.preempt = self.preempt;
        same.preempt_delay_ms = self.preempt_delay_ms;
        same.advert_int_cs = self.advert_int_cs;
        same.accept = self.accept;
        same.notify = self.notify.clone();
        same.tracks = self.tracks.clone();
        self.same_settings(&same)
    }

    /// Every address the master holds: advertised ones first, then excluded ones.
    pub fn all_addresses(&self) -> impl Iterator<Item = &VirtualAddress> {
        self.virtual_addresses
            .iter()
            .chain(&self.excluded_addresses)
    }

    /// Whether this is an IPv6 instance (its first virtual address is IPv6, as keepalived
    /// decides).
    pub fn is_ipv6(&self) -> bool {
        self.virtual_addresses
            .first()
            .is_some_and(|v| v.address.is_ipv6())
    }
}

/// Reads and validates a configuration file (config id: the short host name).
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    load_with(path, &Options::default())
}

/// Reads and validates a configuration file with the given options (`-i` config id).
pub fn load_with(path: &Path, options: &Options) -> Result<Config, Diagnostics> {
    let (lines, errors) = preprocess::expand_file(path, options);
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    build(syntax::parse_lines(&lines).map_err(Diagnostics)?)
}

/// Validates configuration text that claims to come from `path` (includes resolve from its
/// directory).
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    parse_with(path, text, &Options::default())
}

/// [`parse`] with the given options.
pub fn parse_with(path: &Path, text: &str, options: &Options) -> Result<Config, Diagnostics> {
    build(syntax::parse(path, text, options).map_err(Diagnostics)?)
}

fn build(parsed: syntax::Parsed) -> Result<Config, Diagnostics> {
    let mut b = builder::Builder {
        warnings: parsed.warnings,
        ..builder::Builder::default()
    };
    b.top_level(&parsed.statements);
    b.finish()
}

#[cfg(test)]
mod tests;

/// Per-interface packet-rate limits applied in XDP (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// VRRP packets per second that are not from the master being followed.
    pub vrrp: u32,
    /// ARP requests and Neighbor Solicitations for VIPs answered per second.
    pub arp: u32,
}
