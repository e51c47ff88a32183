//! keepalived.conf: syntax, the typed model, and keepalived's validation rules.
//!
//! This is the subset the foundation needs (`global_defs { router_id, vrrp_version }` and
//! `vrrp_instance`); every other keyword is reported with its location rather than ignored,
//! because a silently dropped `track_script` or `unicast_peer` changes who becomes master.

mod diagnostic;
mod syntax;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

pub use diagnostic::{Diagnostic, Diagnostics, Location};
pub use syntax::{Statement, Word};

/// The parsed, validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `global_defs { router_id }`; defaults to the host name like keepalived.
    pub router_id: Option<String>,
    /// The VRRP instances, in file order.
    pub instances: Vec<Instance>,
    /// Things that are accepted but probably not what was meant.
    pub warnings: Vec<Diagnostic>,
}

/// How an instance starts (keepalived's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InitialState {
    /// `state MASTER`.
    Master,
    /// `state BACKUP` (the default).
    Backup,
}

/// A virtual address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualAddress {
    /// The address.
    pub address: IpAddr,
    /// Prefix length (keepalived defaults to the full length: 32 or 128).
    pub prefix_len: u8,
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
    /// Protocol version: `version` in the instance, else `global_defs { vrrp_version }`.
    pub version: u8,
    /// `virtual_ipaddress`, sent in adverts in exactly this order.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// VRRPv2 `authentication { auth_type PASS auth_pass ... }`: the 8 bytes sent.
    pub auth_pass: Option<[u8; 8]>,
    /// `unicast_src_ip`: the advert source instead of the interface's primary address.
    pub unicast_src_ip: Option<Ipv4Addr>,
    /// `unicast_peer { ... }`: adverts go to each of these instead of 224.0.0.18.
    pub unicast_peers: Vec<Ipv4Addr>,
}

impl Instance {
    /// Whether this is an IPv6 instance (its first virtual address is IPv6, as keepalived
    /// decides).
    pub fn is_ipv6(&self) -> bool {
        self.virtual_addresses
            .first()
            .is_some_and(|v| v.address.is_ipv6())
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(
            &Location {
                file: std::sync::Arc::new(path.to_path_buf()),
                line: 1,
                col: 1,
            },
            format!("cannot read the configuration: {e}"),
        )])
    })?;
    parse(path, &text)
}

/// Parses and validates configuration text that came from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let statements = syntax::parse(path.to_path_buf(), text).map_err(Diagnostics)?;
    let mut b = Builder::default();
    b.top_level(&statements);
    b.finish()
}

#[derive(Default)]
struct Builder {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    router_id: Option<String>,
    vrrp_version: Option<u8>,
    /// Instances with the version still unresolved (`None` = take the global default), and
    /// where their `advert_int` was written.
    instances: Vec<(Instance, Option<u8>, Option<Location>)>,
}

impl Builder {
    fn top_level(&mut self, statements: &[Statement]) {
        for s in statements {
            match s.keyword.text.as_str() {
                "global_defs" => {
                    if let Some(block) = self.block(s) {
                        self.global_defs(block);
                    }
                }
                "vrrp_instance" => self.vrrp_instance(s),
                _ => self.unknown(s, "at the top level"),
            }
        }
    }

    fn global_defs(&mut self, block: &[Statement]) {
        for s in block {
            match s.keyword.text.as_str() {
                "router_id" => self.router_id = self.string(s),
                "vrrp_version" => self.vrrp_version = self.version(s),
                _ => self.unknown(s, "in global_defs"),
            }
        }
    }

    fn vrrp_instance(&mut self, s: &Statement) {
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
        let mut instance = Instance {
            name,
            location: s.keyword.location.clone(),
            initial_state: InitialState::Backup,
            interface: String::new(),
            vrid: 0,
            priority: 100,
            advert_int_cs: 100,
            preempt: true,
            version: 0,
            virtual_addresses: Vec::new(),
            auth_pass: None,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
        };
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
                "virtual_router_id" => vrid = self.integer(st, 1, 255),
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
                "unicast_src_ip" => instance.unicast_src_ip = self.ipv4(st),
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
                _ => self.unknown(st, "in vrrp_instance"),
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
        self.instances.push((instance, version, advert_int_at));
    }

    /// IPv6 instances are always VRRPv3, all of one family, and multicast (for now).
    fn ipv6_rules(&mut self, instance: &mut Instance, version: Option<u8>) {
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
        if instance.unicast_src_ip.is_some() || !instance.unicast_peers.is_empty() {
            self.errors.push(Diagnostic::new(
                &instance.location,
                "unicast peers are only supported for IPv4 instances so far",
            ));
        }
    }

    /// `unicast_peer { A.B.C.D ... }`, one address per line.
    fn unicast_peers(&mut self, block: &[Statement]) -> Vec<Ipv4Addr> {
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
            match s.keyword.text.parse::<Ipv4Addr>() {
                Ok(a) => peers.push(a),
                Err(_) => self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    format!("unicast peer `{}` is not an IPv4 address", s.keyword.text),
                )),
            }
        }
        peers
    }

    fn ipv4(&mut self, s: &Statement) -> Option<Ipv4Addr> {
        let w = self.value(s)?;
        match w.text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!(
                        "`{}` expects an IPv4 address, not `{}`",
                        s.keyword.text, w.text
                    ),
                ));
                None
            }
        }
    }

    /// keepalived's `authentication` block: `auth_type PASS|AH`, `auth_pass`.
    fn authentication(&mut self, s: &Statement, block: &[Statement]) -> Option<[u8; 8]> {
        let mut kind = None;
        let mut pass = None;
        for st in block {
            match st.keyword.text.as_str() {
                "auth_type" => kind = self.value(st).cloned(),
                "auth_pass" => pass = self.value(st).cloned(),
                _ => self.unknown(st, "in authentication"),
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

    fn virtual_addresses(&mut self, block: &[Statement]) -> Vec<VirtualAddress> {
        let mut out = Vec::new();
        for s in block {
            if let Some(extra) = s.args.first() {
                self.errors.push(
                    Diagnostic::new(
                        &extra.location,
                        format!(
                            "virtual_ipaddress option `{}` is not supported yet",
                            extra.text
                        ),
                    )
                    .hint("write the address alone, e.g. `10.0.0.100/24`"),
                );
            }
            if s.block.is_some() {
                self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    "an address cannot have a block",
                ));
            }
            let text = &s.keyword.text;
            let (addr, len) = match text.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (text.as_str(), None),
            };
            let address = addr.parse::<IpAddr>();
            let full = if address.as_ref().is_ok_and(IpAddr::is_ipv6) {
                128
            } else {
                32
            };
            let prefix_len = len.map_or(Ok(full), str::parse::<u8>);
            match (address, prefix_len) {
                (Ok(address), Ok(prefix_len)) if prefix_len <= full => {
                    out.push(VirtualAddress {
                        address,
                        prefix_len,
                    });
                }
                _ => self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        format!("`{text}` is not an IP address with an optional /prefix"),
                    )
                    .hint("write e.g. 10.0.0.100/24 or fd00::100/64"),
                ),
            }
        }
        out
    }

    fn finish(mut self) -> Result<Config, Diagnostics> {
        let default_version = self.vrrp_version.unwrap_or(2);
        let mut instances = Vec::new();
        for (mut instance, version, advert_int_at) in std::mem::take(&mut self.instances) {
            instance.version = version.unwrap_or(default_version);
            if instance.is_ipv6() {
                self.ipv6_rules(&mut instance, version);
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
                .find(|o: &&Instance| o.interface == instance.interface && o.vrid == instance.vrid)
            {
                self.errors.push(
                    Diagnostic::new(
                        &instance.location,
                        format!(
                            "virtual_router_id {} is already used on {} by vrrp_instance {} at {}",
                            instance.vrid, instance.interface, other.name, other.location
                        ),
                    )
                    .hint("each instance on an interface needs its own virtual_router_id"),
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
        if self.errors.is_empty() {
            Ok(Config {
                router_id: self.router_id,
                instances,
                warnings: self.warnings,
            })
        } else {
            Err(Diagnostics(self.errors))
        }
    }

    // ---- value helpers -------------------------------------------------------------------

    fn unknown(&mut self, s: &Statement, context: &str) {
        self.errors.push(
            Diagnostic::new(
                &s.keyword.location,
                format!("unknown or unsupported keyword `{}` {context}", s.keyword.text),
            )
            .hint("check the spelling; keywords this version does not implement are refused rather than ignored"),
        );
    }

    fn block<'s>(&mut self, s: &'s Statement) -> Option<&'s [Statement]> {
        if s.block.is_none() {
            self.errors.push(
                Diagnostic::new(
                    &s.keyword.location,
                    format!("`{}` needs a block", s.keyword.text),
                )
                .hint("open it with `{` on the same line"),
            );
        }
        s.block.as_deref()
    }

    fn value<'s>(&mut self, s: &'s Statement) -> Option<&'s Word> {
        if s.block.is_some() {
            self.errors.push(Diagnostic::new(
                &s.keyword.location,
                format!("`{}` takes a value, not a block", s.keyword.text),
            ));
            return None;
        }
        match s.args.as_slice() {
            [w] => Some(w),
            [] => {
                self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        format!("`{}` is missing its value", s.keyword.text),
                    )
                    .hint(format!("write `{} VALUE` on one line", s.keyword.text)),
                );
                None
            }
            [_, extra, ..] => {
                self.errors.push(Diagnostic::new(
                    &extra.location,
                    format!(
                        "unexpected `{}` after the value of `{}`",
                        extra.text, s.keyword.text
                    ),
                ));
                None
            }
        }
    }

    fn no_args(&mut self, s: &Statement) -> bool {
        if let Some(extra) = s.args.first() {
            self.errors.push(Diagnostic::new(
                &extra.location,
                format!("`{}` takes no value", s.keyword.text),
            ));
            return false;
        }
        true
    }

    fn string(&mut self, s: &Statement) -> Option<String> {
        self.value(s).map(|w| w.text.clone())
    }

    fn integer(&mut self, s: &Statement, min: u32, max: u32) -> Option<u32> {
        let w = self.value(s)?;
        match w.text.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let d = Diagnostic::new(
                    &w.location,
                    format!(
                        "`{}` expects an integer from {min} to {max}, not `{}`",
                        s.keyword.text, w.text
                    ),
                );
                self.errors.push(d);
                None
            }
        }
    }

    fn version(&mut self, s: &Statement) -> Option<u8> {
        self.integer(s, 2, 3).map(|v| v as u8)
    }

    fn initial_state(&mut self, s: &Statement) -> Option<InitialState> {
        let w = self.value(s)?;
        let state = match w.text.to_ascii_uppercase().as_str() {
            "MASTER" => InitialState::Master,
            "BACKUP" => InitialState::Backup,
            _ => {
                self.errors.push(
                    Diagnostic::new(
                        &w.location,
                        format!("`state` must be MASTER or BACKUP, not `{}`", w.text),
                    )
                    .hint("write `state BACKUP` (or MASTER on the preferred node)"),
                );
                return None;
            }
        };
        if w.text != w.text.to_ascii_uppercase() {
            self.warnings.push(
                Diagnostic::new(
                    &w.location,
                    format!("`state {}` should be upper case", w.text),
                )
                .hint("keepalived expects MASTER or BACKUP"),
            );
        }
        Some(state)
    }

    /// `advert_int` in seconds with up to two decimals, as centiseconds.
    fn advert_int(&mut self, s: &Statement) -> Option<u16> {
        let w = self.value(s)?;
        let parsed = w
            .text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f > 0.0);
        match parsed.map(|f| (f * 100.0).round()) {
            Some(cs) if (1.0..=4095.0).contains(&cs) => Some(cs as u16),
            _ => {
                self.errors.push(
                    Diagnostic::new(
                        &w.location,
                        format!(
                            "`advert_int {}` is not a number of seconds from 0.01 to 40.95",
                            w.text
                        ),
                    )
                    .hint("write e.g. `advert_int 1` or `advert_int 0.1`"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
