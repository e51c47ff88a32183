//! `vrrp_instance` blocks.

use std::net::IpAddr;

use super::{Diagnostic, InitialState, Instance, Statement, builder::Builder};

impl Builder {
    pub(super) fn vrrp_instance(&mut self, s: &Statement) {
        let name = match s.args.as_slice() {
            [name] => name.text.clone(),
            _ => {
                self.errors.push(
                    Diagnostic::new(&s.keyword.location, "vrrp_instance needs exactly one name")
                        .hint("write `vrrp_instance VI_1 {`"),
                );
                return;
            }
        };
        let Some(block) = self.block(s) else { return };
        let mut interface = None;
        let mut vrid = None;
        // Set when `virtual_router_id` was written (valid or not), so a bad value is not
        // reported a second time as missing.
        let mut vrid_written = false;
        let mut instance = Instance {
            name,
            location: s.keyword.location.clone(),
            initial_state: InitialState::Backup,
            interface: String::new(),
            vrid: 0,
            priority: 100,
            advert_int_cs: 100,
            preempt: true,
            preempt_delay_ms: 0,
            version: 0,
            virtual_addresses: Vec::new(),
            excluded_addresses: Vec::new(),
            virtual_routes: Vec::new(),
            virtual_rules: Vec::new(),
            auth_pass: None,
            v3_checksum_as_v2: self.v3_checksum_as_v2,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            check_unicast_src: self.check_unicast_src,
            accept: true,
            use_vmac: false,
            vmac_xmit_base: false,
            notify: Default::default(),
            tracks: Vec::new(),
        };
        let mut tracks = Vec::new();
        let mut version = None;
        let mut nopreempt_at = None;
        let mut advert_int_at = None;
        for st in block {
            match st.keyword.text.as_str() {
                "state" => {
                    if let Some(state) = self.initial_state(st) {
                        instance.initial_state = state;
                    }
                }
                "interface" => interface = self.string(st),
                "virtual_router_id" => {
                    vrid_written = true;
                    vrid = self.integer(st, 1, 255);
                }
                "priority" => {
                    if let Some(p) = self.integer(st, 1, 255) {
                        instance.priority = p as u8;
                    }
                }
                "advert_int" => {
                    if let Some(cs) = self.advert_int(st) {
                        instance.advert_int_cs = cs;
                        advert_int_at = st.args.first().map(|w| w.location.clone());
                    }
                }
                // keepalived treats the two as one: the source of our adverts.
                "unicast_src_ip" | "mcast_src_ip" => instance.unicast_src_ip = self.ip(st),
                // Preemption is the default; keepalived keeps the keyword for old configs.
                "preempt" => {
                    self.no_args(st);
                }
                "v3_checksum_as_v2" => instance.v3_checksum_as_v2 = self.flag(st),
                "check_unicast_src" => instance.check_unicast_src = self.flag(st),
                "unicast_peer" => {
                    if let Some(b) = self.block(st) {
                        instance.unicast_peers = self.unicast_peers(b);
                    }
                }
                "authentication" => {
                    if let Some(b) = self.block(st) {
                        instance.auth_pass = self.authentication(st, b);
                    }
                }
                "preempt_delay" => {
                    if let Some(ms) = self.seconds_ms(st, 1000) {
                        instance.preempt_delay_ms = ms;
                    }
                }
                "nopreempt" => {
                    if self.no_args(st) {
                        instance.preempt = false;
                        nopreempt_at = Some(st.keyword.location.clone());
                    }
                }
                "version" => version = self.version(st),
                "virtual_ipaddress" => {
                    if let Some(b) = self.block(st) {
                        instance.virtual_addresses = self.virtual_addresses(b);
                    }
                }
                "virtual_routes" => {
                    if let Some(b) = self.block(st) {
                        instance.virtual_routes = self.virtual_routes(b);
                    }
                }
                "virtual_rules" => {
                    if let Some(b) = self.block(st) {
                        instance.virtual_rules = self.virtual_rules(b);
                    }
                }
                "virtual_ipaddress_excluded" => {
                    if let Some(b) = self.block(st) {
                        instance.excluded_addresses = self.virtual_addresses(b);
                    }
                }
                // keepalived's default (without vrrp_strict) is to accept.
                "accept" => {
                    self.no_args(st);
                    instance.accept = true;
                }
                "no_accept" => {
                    self.no_args(st);
                    instance.accept = false;
                }
                // keepalived names the macvlan it creates (default vrrp.VRID); the dataplane
                // needs no interface, so the name is accepted and has no effect.
                "use_vmac" => {
                    if let Some(extra) = st.args.get(1) {
                        self.errors.push(Diagnostic::new(
                            &extra.location,
                            "`use_vmac` takes at most one value (the VMAC interface name)",
                        ));
                    }
                    instance.use_vmac = true;
                }
                "vmac_xmit_base" => {
                    self.no_args(st);
                    instance.vmac_xmit_base = true;
                }
                _ if self.notify_keyword(st, &mut instance.notify) => {}
                _ if self.track_keyword(st, &mut tracks) => {}
                _ => self.unknown(st, "vrrp_instance"),
            }
        }
        match interface {
            Some(i) => instance.interface = i,
            None => self.errors.push(
                Diagnostic::new(&s.keyword.location, "vrrp_instance has no `interface`")
                    .hint("add `interface eth0` (the interface the adverts go out on)"),
            ),
        }
        match vrid {
            Some(v) => instance.vrid = v as u8,
            None if vrid_written => {}
            None => self.errors.push(
                Diagnostic::new(
                    &s.keyword.location,
                    "vrrp_instance has no `virtual_router_id`",
                )
                .hint("add `virtual_router_id 51` (1-255, the same on every peer)"),
            ),
        }
        if instance.initial_state == InitialState::Master
            && let Some(at) = nopreempt_at
        {
            // keepalived clears nopreempt under `state MASTER`, with a warning.
            instance.preempt = true;
            self.warnings.push(
                Diagnostic::new(&at, "`nopreempt` has no effect with `state MASTER`")
                    .hint("use `state BACKUP` on every peer with nopreempt"),
            );
        }
        for (track, at) in tracks {
            self.track_refs.push((track.what.clone(), at));
            instance.tracks.push(track);
        }
        self.instances.push((instance, version, advert_int_at));
    }

    /// IPv6 instances are always VRRPv3, all of one family, and multicast (for now).
    pub(super) fn ipv6_rules(&mut self, instance: &mut Instance, version: Option<u8>) {
        if version == Some(2) {
            self.errors.push(
                Diagnostic::new(&instance.location, "VRRPv2 cannot carry IPv6 addresses")
                    .hint("remove `version 2`: IPv6 instances always speak VRRPv3"),
            );
        }
        instance.version = 3;
        if let Some(v4) = instance
            .virtual_addresses
            .iter()
            .find(|v| v.address.is_ipv4())
        {
            self.errors.push(
                Diagnostic::new(
                    &instance.location,
                    format!(
                        "{} is IPv4 but the instance's first virtual address is IPv6",
                        v4.address
                    ),
                )
                .hint(
                    "an advert carries one family: put the other family in its own vrrp_instance",
                ),
            );
        }
        let v4_unicast = instance
            .unicast_src_ip
            .iter()
            .chain(&instance.unicast_peers)
            .find(|a| a.is_ipv4());
        if let Some(a) = v4_unicast {
            self.errors.push(Diagnostic::new(
                &instance.location,
                format!("unicast address {a} is IPv4 but the instance is IPv6"),
            ));
        }
    }

    /// `unicast_peer { ADDRESS ... }`, one address per line.
    pub(super) fn unicast_peers(&mut self, block: &[Statement]) -> Vec<IpAddr> {
        let mut peers = Vec::new();
        for s in block {
            if let Some(extra) = s.args.first() {
                self.errors.push(
                    Diagnostic::new(
                        &extra.location,
                        format!("unicast_peer option `{}` is not supported", extra.text),
                    )
                    .hint("list one peer address per line"),
                );
            }
            match s.keyword.text.parse::<IpAddr>() {
                Ok(a) => peers.push(a),
                Err(_) => self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    format!("unicast peer `{}` is not an IP address", s.keyword.text),
                )),
            }
        }
        peers
    }

    /// keepalived's `authentication` block: `auth_type PASS|AH`, `auth_pass`.
    pub(super) fn authentication(&mut self, s: &Statement, block: &[Statement]) -> Option<[u8; 8]> {
        let mut kind = None;
        let mut pass = None;
        for st in block {
            match st.keyword.text.as_str() {
                "auth_type" => kind = self.value(st).cloned(),
                "auth_pass" => pass = self.value(st).cloned(),
                _ => self.unknown(st, "authentication"),
            }
        }
        let kind = kind.or_else(|| {
            self.errors.push(
                Diagnostic::new(&s.keyword.location, "authentication has no auth_type")
                    .hint("write `auth_type PASS` and `auth_pass SECRET`"),
            );
            None
        })?;
        match kind.text.to_ascii_uppercase().as_str() {
            "PASS" => {}
            "AH" => {
                self.errors.push(
                    Diagnostic::new(&kind.location, "`auth_type AH` is not supported")
                        .hint("IPsec AH changes the packet format peers expect; use PASS or no authentication"),
                );
                return None;
            }
            other => {
                self.errors.push(Diagnostic::new(
                    &kind.location,
                    format!("`auth_type {other}` is not PASS or AH"),
                ));
                return None;
            }
        }
        let Some(pass) = pass else {
            self.errors.push(Diagnostic::new(
                &s.keyword.location,
                "authentication has no auth_pass",
            ));
            return None;
        };
        if pass.text.len() > 8 {
            self.warnings.push(
                Diagnostic::new(
                    &pass.location,
                    "auth_pass is longer than 8 characters: only the first 8 are used",
                )
                .hint("keepalived truncates it the same way"),
            );
        }
        let mut data = [0u8; 8];
        for (d, b) in data.iter_mut().zip(pass.text.bytes()) {
            *d = b;
        }
        Some(data)
    }
}
