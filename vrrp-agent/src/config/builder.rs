//! Turns statements into the typed model: the top level, `global_defs`, and the rules that
//! need the whole file (version defaults, duplicate VRIDs).

use super::{Config, Diagnostic, Diagnostics, Instance, Location, Statement, SyncGroup};

#[derive(Default)]
pub(super) struct Builder {
    pub(super) errors: Vec<Diagnostic>,
    pub(super) warnings: Vec<Diagnostic>,
    pub(super) router_id: Option<String>,
    pub(super) vrrp_version: Option<u8>,
    /// `global_defs { v3_checksum_as_v2 }`: the default for instances defined after it.
    pub(super) v3_checksum_as_v2: bool,
    /// `global_defs { vrrp_check_unicast_src }`: the default for instances defined after it.
    pub(super) check_unicast_src: bool,
    /// `global_defs { vrrp_agent_observe }`.
    pub(super) observe: bool,
    /// `global_defs { vrrp_agent_rate_limit ... }`.
    pub(super) rate_limit: super::RateLimit,
    /// `global_defs { dynamic_interfaces }`.
    pub(super) dynamic_interfaces: bool,
    /// `smtp_alert_vrrp` was given (it wins over `smtp_alert`).
    pub(super) smtp_alert_vrrp_seen: bool,
    /// Script and FIFO settings from `global_defs`.
    pub(super) scripts: super::ScriptGlobals,
    /// Instances with the version still unresolved (`None` = take the global default), and
    /// where their `advert_int` was written.
    pub(super) instances: Vec<(Instance, Option<u8>, Option<Location>)>,
    /// Sync groups with where each member name was written.
    pub(super) sync_groups: Vec<(SyncGroup, Vec<Location>)>,
    /// `vrrp_script` blocks.
    pub(super) vrrp_scripts: Vec<super::VrrpScript>,
    /// `track_file` blocks.
    pub(super) track_files: Vec<super::TrackFile>,
    /// `vrrp_track_process` blocks.
    pub(super) track_processes: Vec<super::TrackProcess>,
    /// `virtual_server` blocks.
    pub(super) virtual_servers: Vec<super::VirtualServer>,
    /// `virtual_server_group` blocks: name and members.
    pub(super) vs_groups: Vec<(String, Vec<(std::net::IpAddr, u16)>)>,
    /// Every `MISC_CHECK` script (for the script security checks).
    pub(super) misc_scripts: Vec<super::Script>,
    /// Where each `track_*` entry was written, to report unknown names there.
    pub(super) track_refs: Vec<(super::Tracked, Location)>,
    /// IPv6 DR virtual servers with checkers that do not `bindto` (where, and the address):
    /// warned about in `finish` if the address is a VIP here.
    pub(super) unbound_ipv6_dr_checks: Vec<(Location, std::net::IpAddr)>,
}

impl Builder {
    pub(super) fn top_level(&mut self, statements: &[Statement]) {
        // Groups first: as in keepalived, a virtual_server may name a group defined after it.
        let (groups, rest): (Vec<&Statement>, Vec<&Statement>) = statements
            .iter()
            .partition(|s| s.keyword.text == "virtual_server_group");
        for s in groups.into_iter().chain(rest) {
            match s.keyword.text.as_str() {
                "global_defs" => {
                    if let Some(block) = self.block(s) {
                        self.global_defs(block);
                    }
                }
                "vrrp_instance" => self.vrrp_instance(s),
                "vrrp_sync_group" => self.vrrp_sync_group(s),
                "vrrp_script" => self.vrrp_script(s),
                "track_file" | "vrrp_track_file" => self.track_file_block(s),
                "vrrp_track_process" => self.vrrp_track_process(s),
                "virtual_server" => self.virtual_server(s),
                "virtual_server_group" => self.virtual_server_group(s),
                // The man page files SSL's keywords with virtual_server's.
                "SSL" => self.unknown(s, "virtual_server"),
                _ => self.unknown(s, "top"),
            }
        }
        // Reported in file order although the groups went first.
        sort_by_place(&mut self.errors);
        sort_by_place(&mut self.warnings);
    }

    /// `vrrp_agent_rate_limit [vrrp N] [arp M]`: packets per second per interface.
    fn rate_limit(&mut self, s: &Statement) {
        if s.args.is_empty() {
            self.errors.push(
                Diagnostic::new(&s.keyword.location, "vrrp_agent_rate_limit needs a limit")
                    .hint("write `vrrp_agent_rate_limit vrrp 2000 arp 10000` (packets per second per interface)"),
            );
        }
        for pair in s.args.chunks(2) {
            let [kind, value] = pair else {
                self.errors.push(
                    Diagnostic::new(&pair[0].location, format!("`{}` needs a rate", pair[0].text))
                        .hint("write `vrrp_agent_rate_limit vrrp 2000 arp 10000` (packets per second per interface)"),
                );
                continue;
            };
            let Ok(rate) = value.text.parse::<u32>() else {
                self.errors.push(Diagnostic::new(
                    &value.location,
                    format!(
                        "expected packets per second (0 for no limit), not `{}`",
                        value.text
                    ),
                ));
                continue;
            };
            match kind.text.as_str() {
                "vrrp" => self.rate_limit.vrrp = rate,
                "arp" => self.rate_limit.arp = rate,
                other => self.errors.push(
                    Diagnostic::new(&kind.location, format!("no rate limit called `{other}`"))
                        .hint("the limits are `vrrp` and `arp` (ARP and Neighbor Discovery)"),
                ),
            }
        }
    }

    pub(super) fn global_defs(&mut self, block: &[Statement]) {
        for s in block {
            match s.keyword.text.as_str() {
                "router_id" => self.router_id = self.string(s),
                "vrrp_version" => self.vrrp_version = self.version(s),
                "v3_checksum_as_v2" => self.v3_checksum_as_v2 = self.flag(s),
                "vrrp_check_unicast_src" => self.check_unicast_src = self.flag(s),
                "vrrp_agent_observe" => self.observe = self.flag(s),
                "vrrp_agent_rate_limit" => self.rate_limit(s),
                // `allow_if_changes` (keepalived lets an interface's index change) is what we
                // do anyway: instances find their interface by name.
                "dynamic_interfaces" => {
                    if let Some(arg) = s.args.first()
                        && arg.text != "allow_if_changes"
                    {
                        self.errors.push(Diagnostic::new(
                            &arg.location,
                            format!(
                                "`dynamic_interfaces` takes only `allow_if_changes`, not `{}`",
                                arg.text
                            ),
                        ));
                    }
                    self.dynamic_interfaces = true;
                }
                _ if self.script_global(s) => {}
                _ if self.mail_global(s) => {}
                _ => self.unknown(s, "global_defs"),
            }
        }
    }

    pub(super) fn finish(mut self) -> Result<Config, Diagnostics> {
        let default_version = self.vrrp_version.unwrap_or(2);
        let mut instances = Vec::new();
        for (mut instance, version, advert_int_at) in std::mem::take(&mut self.instances) {
            instance.version = version.unwrap_or(default_version);
            if instance.is_ipv6() {
                self.ipv6_rules(&mut instance, version);
            } else if let Some(a) = instance
                .unicast_src_ip
                .iter()
                .chain(&instance.unicast_peers)
                .find(|a| a.is_ipv6())
            {
                self.errors.push(Diagnostic::new(
                    &instance.location,
                    format!("unicast address {a} is IPv6 but the instance is IPv4"),
                ));
            }
            let at = advert_int_at.unwrap_or_else(|| instance.location.clone());
            if instance.version == 2 {
                // VRRPv2 carries whole seconds, 1-255: keepalived rounds and warns.
                let seconds = instance.advert_int_cs.div_ceil(100).clamp(1, 255);
                if seconds * 100 != instance.advert_int_cs {
                    self.warnings.push(
                        Diagnostic::new(
                            &at,
                            format!(
                                "VRRPv2 advertises whole seconds: advert_int {} is used as {seconds}",
                                f64::from(instance.advert_int_cs) / 100.0
                            ),
                        )
                        .hint("use `vrrp_version 3` for sub-second intervals"),
                    );
                }
                instance.advert_int_cs = seconds * 100;
            } else {
                if !(1..=4095).contains(&instance.advert_int_cs) {
                    self.errors.push(Diagnostic::new(
                        &at,
                        "advert_int must be from 0.01 to 40.95 seconds for VRRPv3",
                    ));
                }
                if instance.auth_pass.take().is_some() {
                    self.warnings.push(
                        Diagnostic::new(
                            &instance.location,
                            "VRRPv3 has no authentication: the authentication block is ignored",
                        )
                        .hint("remove it, or use `version 2` on every peer"),
                    );
                }
            }
            if let Some(other) = instances
                .iter()
                .find(|o: &&Instance| same_router(o, &instance))
            {
                self.errors.push(
                    Diagnostic::new(
                        &instance.location,
                        format!(
                            "virtual_router_id {} is already used on {} by vrrp_instance {} at {}",
                            instance.vrid, instance.interface, other.name, other.location
                        ),
                    )
                    .hint("each instance on an interface needs its own virtual_router_id per address family (unicast instances may share one if their unicast_peer sets do not overlap)"),
                );
            }
            if instance.virtual_addresses.is_empty() {
                self.errors.push(
                    Diagnostic::new(&instance.location, "vrrp_instance has no virtual_ipaddress")
                        .hint("add `virtual_ipaddress { 10.0.0.100/24 }`"),
                );
            }
            instances.push(instance);
        }
        // Scripts run as root need enable_script_security's checks; without it keepalived
        // runs them anyway and says so (`-t` exits 5).
        let mut sync_groups = self.check_sync_groups(&instances);
        self.resolve_tracks(&mut instances, &mut sync_groups);
        let scripts: Vec<super::Script> = instances
            .iter()
            .map(|i: &Instance| &i.notify)
            .chain(sync_groups.iter().map(|g| &g.notify))
            .flat_map(|n| {
                [
                    &n.master, &n.backup, &n.fault, &n.stop, &n.generic, &n.deleted,
                ]
            })
            .flatten()
            .cloned()
            .chain(self.tracked_scripts(&instances))
            .chain(self.misc_scripts.iter().cloned())
            .chain(self.virtual_servers.iter().flat_map(|vs| {
                let rs = vs
                    .real_servers
                    .iter()
                    .flat_map(|r| [r.notify_up.clone(), r.notify_down.clone()]);
                [vs.quorum_up.clone(), vs.quorum_down.clone()]
                    .into_iter()
                    .chain(rs)
                    .flatten()
            }))
            .collect();
        let no_script_user = self.scripts.script_user.is_none();
        if self.scripts.script_security {
            for script in scripts
                .iter()
                .filter(|s| s.user.is_none() && no_script_user)
            {
                self.check_script_security(script);
            }
        }
        self.warn_unbound_ipv6_dr_checks(&instances);
        let unsafe_scripts = !self.scripts.script_security && !scripts.is_empty();
        if self.errors.is_empty() {
            Ok(Config {
                router_id: self.router_id,
                instances,
                sync_groups,
                vrrp_scripts: self.vrrp_scripts,
                track_files: self.track_files,
                track_processes: self.track_processes,
                virtual_servers: self.virtual_servers,
                scripts: self.scripts,
                unsafe_scripts,
                dynamic_interfaces: self.dynamic_interfaces,
                observe: self.observe,
                rate_limit: self.rate_limit,
                warnings: self.warnings,
            })
        } else {
            Err(Diagnostics(self.errors))
        }
    }
}

/// Whether two instances would be the same virtual router on the wire: same interface, family
/// and VRID, unless both are unicast with disjoint peer sets (keepalived 2.2.7 allows that;
/// the kernel tells them apart by the advert's source).
fn same_router(a: &Instance, b: &Instance) -> bool {
    if a.interface != b.interface || a.vrid != b.vrid || a.is_ipv6() != b.is_ipv6() {
        return false;
    }
    let disjoint_unicast = !a.unicast_peers.is_empty()
        && !b.unicast_peers.is_empty()
        && a.unicast_peers.iter().all(|p| !b.unicast_peers.contains(p));
    !disjoint_unicast
}

/// Orders diagnostics by line and column within each file, files in the order they first
/// appear (stable, so several at one place keep their order).
fn sort_by_place(diagnostics: &mut [Diagnostic]) {
    let mut files: Vec<std::sync::Arc<std::path::PathBuf>> = Vec::new();
    for d in diagnostics.iter() {
        if !files.contains(&d.location.file) {
            files.push(d.location.file.clone());
        }
    }
    diagnostics.sort_by_key(|d| {
        let file = files.iter().position(|f| *f == d.location.file);
        (file, d.location.line, d.location.col)
    });
}
