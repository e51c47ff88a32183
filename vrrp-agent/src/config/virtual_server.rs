//! `virtual_server IP PORT { ... real_server IP PORT { CHECKER { ... } } }`: the real servers
//! and how each is health-checked, with keepalived's defaults and inheritance (a checker's own
//! setting, else its real server's, else its virtual server's, else the checker type's).
//!
//! The load-balancing settings (`lvs_sched`, `lvs_method`, persistence, thresholds) are kept in
//! the model for the dataplane's load balancer.

use std::net::IpAddr;

use super::{Diagnostic, Script, Statement, builder::Builder};

mod checker_block;

/// A `virtual_server`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualServer {
    /// Its address.
    pub address: IpAddr,
    /// Its port (0: all ports, as keepalived without a port).
    pub port: u16,
    /// `protocol` (default TCP).
    pub protocol: Protocol,
    /// `lvs_sched` / `lb_algo` (default wlc).
    pub scheduler: String,
    /// `lvs_method` / `lb_kind` (default NAT).
    pub method: String,
    /// Scheduler flags (`flag-1`, `sh-port`, `mh-fallback`, `ops`, ...).
    pub flags: Vec<String>,
    /// `persistence_timeout` in seconds, if persistent.
    pub persistence_timeout: Option<u32>,
    /// `persistence_granularity` netmask.
    pub persistence_granularity: Option<String>,
    /// `quorum`: the least total weight of live real servers (default 1).
    pub quorum: u32,
    /// `hysteresis` around the quorum (default 0).
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<Script>,
    /// `quorum_down` script.
    pub quorum_down: Option<Script>,
    /// `omega`: run quorum_down / notify_down on shutdown.
    pub omega: bool,
    /// `sorry_server IP [PORT]`: takes the traffic while the quorum is lost.
    pub sorry_server: Option<(IpAddr, u16)>,
    /// `sorry_server_inhibit`.
    pub sorry_server_inhibit: bool,
    /// The real servers.
    pub real_servers: Vec<RealServer>,
    /// With `virtual_server group NAME`: every address and port of the group (`address` and
    /// `port` are the first); empty otherwise.
    pub group: Vec<(IpAddr, u16)>,
}

/// The transport a virtual server balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A `real_server`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RealServer {
    /// Its address.
    pub address: IpAddr,
    /// Its port (default: the virtual server's).
    pub port: u16,
    /// `weight` (default 1).
    pub weight: u32,
    /// `inhibit_on_failure`: weight 0 instead of removal when down.
    pub inhibit_on_failure: bool,
    /// `lvs_method` for this server (default: the virtual server's).
    pub method: Option<String>,
    /// `notify_up` script.
    pub notify_up: Option<Script>,
    /// `notify_down` script.
    pub notify_down: Option<Script>,
    /// `uthreshold` / `lthreshold` connection limits.
    pub thresholds: (Option<u32>, Option<u32>),
    /// Its health checks (none: always up).
    pub checkers: Vec<Checker>,
}

/// One health check of a real server, its settings resolved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checker {
    /// What it checks, and how.
    pub kind: CheckKind,
    /// `connect_ip` (default the real server's).
    pub connect_ip: IpAddr,
    /// `connect_port` (default the real server's).
    pub connect_port: u16,
    /// `bindto`: source address.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: source port.
    pub bind_port: Option<u16>,
    /// `bind_if`: the interface to send from.
    pub bind_if: Option<String>,
    /// `fwmark` put on the checker's packets.
    pub fwmark: Option<u32>,
    /// `connect_timeout` (default 5 s).
    pub connect_timeout_ms: u32,
    /// `retry` (`nb_get_retry`): extra attempts before an up server is marked down.
    pub retry: u32,
    /// `delay_before_retry`.
    pub delay_before_retry_ms: u32,
    /// `warmup`: the first check starts after a random delay up to this.
    pub warmup_ms: u32,
    /// `delay_loop` (default 60 s).
    pub delay_loop_ms: u32,
    /// `alpha`: the server starts down.
    pub alpha: bool,
    /// `log_all_failures`.
    pub log_all_failures: bool,
}

/// The checker types and their own settings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CheckKind {
    /// `TCP_CHECK`: the connection is accepted.
    Tcp,
    /// `HTTP_GET` / `SSL_GET`: every URL answers as configured.
    Http {
        /// `SSL_GET`.
        tls: bool,
        /// `enable_sni`.
        sni: bool,
        /// `http_protocol`: "1.0", "1.0C" or "1.1" (default 1.0).
        protocol: String,
        /// The URLs.
        urls: Vec<Url>,
        /// `virtualhost` inherited from the real or virtual server.
        virtualhost: Option<String>,
    },
    /// `SMTP_CHECK`: a 220 greeting and a 250 answer to HELO.
    Smtp {
        /// `helo_name` (default the host name).
        helo: Option<String>,
    },
    /// `DNS_CHECK`: an answer to a query over UDP.
    Dns {
        /// `type` (default SOA), as its number.
        qtype: u16,
        /// `name` (default ".").
        name: String,
    },
    /// `MISC_CHECK`: a program's exit code.
    Misc {
        /// `misc_path` (and `user`).
        script: Script,
        /// `misc_timeout` (default: delay_loop).
        timeout_ms: u32,
        /// `misc_dynamic`: exit codes 2-255 set the weight to code - 2.
        dynamic: bool,
    },
    /// `UDP_CHECK`: no ICMP error (or, with `require_reply`, a fitting reply).
    Udp {
        /// `payload` (default: a few random bytes).
        payload: Option<Vec<u8>>,
        /// `require_reply [HEX]`: nibbles, `None` where X (ignored).
        require_reply: Option<Vec<Option<u8>>>,
        /// `min_reply_length` / `max_reply_length`.
        reply_length: (u32, u32),
    },
    /// `PING_CHECK`: an ICMP echo reply.
    Ping,
}

/// A `url` of `HTTP_GET` / `SSL_GET`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Url {
    /// `path` (default /).
    pub path: String,
    /// `digest`: the MD5 of the body, lowercase hex.
    pub digest: Option<String>,
    /// `status_code` ranges (default 200-299).
    pub status: Vec<(u16, u16)>,
    /// `virtualhost` for this URL.
    pub virtualhost: Option<String>,
}

/// Checker settings written at some level (virtual server, real server, checker).
#[derive(Clone, Debug, Default)]
struct Common {
    connect_timeout_ms: Option<u32>,
    retry: Option<u32>,
    delay_before_retry_ms: Option<u32>,
    warmup_ms: Option<u32>,
    delay_loop_ms: Option<u32>,
    alpha: Option<bool>,
    inhibit_on_failure: Option<bool>,
    virtualhost: Option<String>,
}

impl Common {
    /// `self` where set, else `outer`.
    fn over(&self, outer: &Common) -> Common {
        Common {
            connect_timeout_ms: self.connect_timeout_ms.or(outer.connect_timeout_ms),
            retry: self.retry.or(outer.retry),
            delay_before_retry_ms: self.delay_before_retry_ms.or(outer.delay_before_retry_ms),
            warmup_ms: self.warmup_ms.or(outer.warmup_ms),
            delay_loop_ms: self.delay_loop_ms.or(outer.delay_loop_ms),
            alpha: self.alpha.or(outer.alpha),
            inhibit_on_failure: self.inhibit_on_failure.or(outer.inhibit_on_failure),
            virtualhost: self.virtualhost.clone().or(outer.virtualhost.clone()),
        }
    }
}

/// The block name the keyword table files every virtual_server keyword under.
const BLOCK: &str = "virtual_server";

impl Builder {
    /// `virtual_server IP [PORT] { ... }`.
    pub(super) fn virtual_server(&mut self, s: &Statement) {
        let mut group = Vec::new();
        let (address, port) = match s.args.as_slice() {
            [kind, ..] if kind.text == "fwmark" => {
                self.errors.push(
                    Diagnostic::new(&kind.location, "`virtual_server fwmark` is not supported")
                        .hint("netfilter marks are set after XDP and TC see a packet; declare the service as `virtual_server IP PORT`"),
                );
                return;
            }
            [kind, name] if kind.text == "group" => match self.vs_group(&name.text) {
                Some(members) if !members.is_empty() => {
                    group = members.to_vec();
                    (Some(members[0].0), Some(members[0].1))
                }
                _ => {
                    self.errors.push(
                        Diagnostic::new(
                            &name.location,
                            format!("no virtual_server_group {} with entries", name.text),
                        )
                        .hint("define it: `virtual_server_group NAME { IP PORT }`"),
                    );
                    return;
                }
            },
            [ip] => (self.address_word(ip), Some(0)),
            [ip, port] => (self.address_word(ip), self.port_word(port)),
            _ => {
                self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        "virtual_server needs an address and a port",
                    )
                    .hint("write `virtual_server 10.0.0.100 80 {`"),
                );
                return;
            }
        };
        let Some(block) = self.block(s) else { return };
        let (Some(address), Some(port)) = (address, port) else {
            return;
        };
        let mut vs = VirtualServer {
            address,
            port,
            protocol: Protocol::Tcp,
            scheduler: "wlc".into(),
            method: "NAT".into(),
            flags: Vec::new(),
            persistence_timeout: None,
            persistence_granularity: None,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            omega: false,
            sorry_server: None,
            sorry_server_inhibit: false,
            real_servers: Vec::new(),
            group,
        };
        let mut common = Common::default();
        let mut real_servers = Vec::new();
        for st in block {
            match st.keyword.text.as_str() {
                "lvs_sched" | "lb_algo" => {
                    if let Some(v) = self.string(st) {
                        vs.scheduler = v;
                    }
                }
                "lvs_method" | "lb_kind" => {
                    if let Some(m) = self.method(st) {
                        vs.method = m;
                    }
                }
                "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
                | "mh-fallback" | "ops" => {
                    self.no_args(st);
                    vs.flags.push(st.keyword.text.clone());
                }
                "persistence_timeout" => {
                    vs.persistence_timeout = if st.args.is_empty() {
                        Some(360)
                    } else {
                        self.integer(st, 1, u32::MAX)
                    }
                }
                "persistence_granularity" => vs.persistence_granularity = self.string(st),
                "protocol" => {
                    vs.protocol = match st.args.first().map(|w| w.text.to_ascii_uppercase()) {
                        Some(p) if p == "TCP" => Protocol::Tcp,
                        Some(p) if p == "UDP" => Protocol::Udp,
                        Some(p) if p == "SCTP" => Protocol::Sctp,
                        _ => {
                            self.errors.push(Diagnostic::new(
                                &st.keyword.location,
                                "`protocol` is TCP, UDP or SCTP",
                            ));
                            vs.protocol
                        }
                    }
                }
                "quorum" => vs.quorum = self.integer(st, 0, u32::MAX).unwrap_or(1),
                "hysteresis" => vs.hysteresis = self.integer(st, 0, u32::MAX).unwrap_or(0),
                "quorum_up" => vs.quorum_up = self.script(st),
                "quorum_down" => vs.quorum_down = self.script(st),
                "omega" => vs.omega = self.flag(st),
                "ip_family" => {
                    let _ = self.string(st);
                }
                "sorry_server" => vs.sorry_server = self.server_address(st),
                "sorry_server_inhibit" => vs.sorry_server_inhibit = self.flag(st),
                "sorry_server_lvs_method" => {
                    let _ = self.method(st);
                }
                "real_server" => {
                    if let Some(rs) = self.real_server(st, port) {
                        real_servers.push(rs);
                    }
                }
                _ if self.common_keyword(st, &mut common) => {}
                _ => self.unknown(st, BLOCK),
            }
        }
        // Settings written after a real_server still apply to it, as in keepalived.
        for (rs, mine, checkers) in real_servers {
            let resolved = mine.over(&common);
            vs.real_servers
                .push(self.resolve_real_server(rs, &resolved, checkers));
        }
        let unbound = vs
            .real_servers
            .iter()
            .flat_map(|rs| &rs.checkers)
            .any(|c| c.bindto.is_none());
        if vs.address.is_ipv6() && vs.method.eq_ignore_ascii_case("DR") && unbound {
            self.unbound_ipv6_dr_checks
                .push((s.keyword.location.clone(), vs.address));
        }
        if let Err(why) = crate::lb::forwardable(&vs) {
            self.warnings.push(
                Diagnostic::new(
                    &s.keyword.location,
                    format!("virtual_server {address} {port}: {why}"),
                )
                .hint("`vrrp-agent status` shows the real servers' health"),
            );
        }
        let scheduler = vs.scheduler.to_ascii_lowercase();
        if !["rr", "wrr", "lc", "wlc", "sh", "mh"].contains(&scheduler.as_str()) {
            self.warnings.push(
                Diagnostic::new(&s.keyword.location, format!("virtual_server {address} {port}: scheduler `{}` is load-balanced as wrr", vs.scheduler))
                    .hint("the XDP load balancer schedules rr, wrr, sh and mh (lc and wlc as wrr, see docs/load-balancing.md)"),
            );
        }
        for rs in &vs.real_servers {
            if rs
                .method
                .as_ref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(&vs.method))
            {
                self.warnings.push(
                    Diagnostic::new(&s.keyword.location, format!("virtual_server {address} {port}: real server {} has its own lvs_method; the virtual server's ({}) is used", rs.address, vs.method))
                        .hint("the XDP load balancer forwards a whole virtual server one way"),
                );
            }
        }
        if vs.real_servers.is_empty() && vs.sorry_server.is_none() {
            self.warnings.push(Diagnostic::new(
                &s.keyword.location,
                "virtual_server has no real_server",
            ));
        }
        self.virtual_servers.push(vs);
    }

    /// `real_server IP [PORT] { ... }`: the server, its own settings, and its checkers with
    /// theirs (resolved once the virtual server's are all known).
    fn real_server(
        &mut self,
        s: &Statement,
        vs_port: u16,
    ) -> Option<(RealServer, Common, Vec<UnresolvedChecker>)> {
        let (address, port) = match s.args.as_slice() {
            [ip] => (self.address_word(ip)?, vs_port),
            [ip, port] => (self.address_word(ip)?, self.port_word(port)?),
            _ => {
                self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    "real_server needs an address and optionally a port",
                ));
                return None;
            }
        };
        let block = self.block(s)?;
        let mut rs = RealServer {
            address,
            port,
            weight: 1,
            inhibit_on_failure: false,
            method: None,
            notify_up: None,
            notify_down: None,
            thresholds: (None, None),
            checkers: Vec::new(),
        };
        let mut common = Common::default();
        let mut checkers = Vec::new();
        for st in block {
            match st.keyword.text.as_str() {
                "weight" => rs.weight = self.integer(st, 0, 65_535).unwrap_or(1),
                "lvs_method" | "lb_kind" => rs.method = self.method(st),
                "notify_up" => rs.notify_up = self.script(st),
                "notify_down" => rs.notify_down = self.script(st),
                "uthreshold" => rs.thresholds.0 = self.integer(st, 0, u32::MAX),
                "lthreshold" => rs.thresholds.1 = self.integer(st, 0, u32::MAX),
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "SMTP_CHECK" | "DNS_CHECK"
                | "MISC_CHECK" | "UDP_CHECK" | "PING_CHECK" => {
                    if let Some(checker) = self.checker(st) {
                        checkers.push(checker);
                    }
                }
                _ if self.common_keyword(st, &mut common) => {}
                _ => self.unknown(st, BLOCK),
            }
        }
        Some((rs, common, checkers))
    }

    fn resolve_real_server(
        &mut self,
        mut rs: RealServer,
        common: &Common,
        checkers: Vec<UnresolvedChecker>,
    ) -> RealServer {
        rs.inhibit_on_failure = common.inhibit_on_failure.unwrap_or(false);
        for (mut kind, own, connect) in checkers {
            let c = own.over(common);
            let delay_loop_ms = c.delay_loop_ms.unwrap_or(60_000);
            let (retry, delay_before_retry) = match &kind {
                CheckKind::Dns { .. } => (3, delay_loop_ms),
                CheckKind::Http { .. } => (1, 3000),
                CheckKind::Misc { .. } => (0, 1000),
                _ => (1, 1000),
            };
            match &mut kind {
                CheckKind::Http { virtualhost, .. } => *virtualhost = c.virtualhost.clone(),
                CheckKind::Misc { timeout_ms, .. } if *timeout_ms == 0 => {
                    *timeout_ms = delay_loop_ms
                }
                _ => {}
            }
            rs.checkers.push(Checker {
                kind,
                connect_ip: connect.ip.unwrap_or(rs.address),
                connect_port: connect.port.unwrap_or(rs.port),
                bindto: connect.bindto,
                bind_port: connect.bind_port,
                bind_if: connect.bind_if,
                fwmark: connect.fwmark,
                connect_timeout_ms: c.connect_timeout_ms.unwrap_or(5000),
                retry: c.retry.unwrap_or(retry),
                delay_before_retry_ms: c.delay_before_retry_ms.unwrap_or(delay_before_retry),
                warmup_ms: c.warmup_ms.unwrap_or(delay_loop_ms),
                delay_loop_ms,
                alpha: c.alpha.unwrap_or(false),
                log_all_failures: connect.log_all_failures,
            });
        }
        rs
    }

    /// A setting every level can carry; false if `s` is none.
    fn common_keyword(&mut self, s: &Statement, c: &mut Common) -> bool {
        match s.keyword.text.as_str() {
            "connect_timeout" => c.connect_timeout_ms = self.seconds_ms(s, 86_400),
            "retry" => c.retry = self.integer(s, 0, 1_000_000),
            "delay_before_retry" => c.delay_before_retry_ms = self.seconds_ms(s, 86_400),
            "warmup" => c.warmup_ms = self.seconds_ms(s, 86_400),
            "delay_loop" => c.delay_loop_ms = self.seconds_ms(s, 86_400).map(|ms| ms.max(1)),
            "alpha" => c.alpha = Some(self.flag(s)),
            "inhibit_on_failure" => c.inhibit_on_failure = Some(self.flag(s)),
            "virtualhost" => c.virtualhost = self.string(s),
            _ => return false,
        }
        true
    }

    /// `lvs_method NAT|DR` (TUN needs IPIP on the real servers, which this build cannot offer).
    fn method(&mut self, s: &Statement) -> Option<String> {
        let m = s.args.first()?.text.to_ascii_uppercase();
        match m.as_str() {
            "NAT" | "DR" => Some(m),
            "TUN" => {
                self.errors.push(
                    Diagnostic::new(&s.keyword.location, "`lvs_method TUN` is not supported").hint(
                        "tunnelling needs IPIP decapsulation on the real servers; use DR or NAT",
                    ),
                );
                None
            }
            _ => {
                self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    format!("`{}` is NAT or DR, not `{m}`", s.keyword.text),
                ));
                None
            }
        }
    }

    fn server_address(&mut self, s: &Statement) -> Option<(IpAddr, u16)> {
        match s.args.as_slice() {
            [ip] => Some((self.address_word(ip)?, 0)),
            [ip, port] => Some((self.address_word(ip)?, self.port_word(port)?)),
            _ => {
                self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    format!(
                        "`{}` takes an address and optionally a port",
                        s.keyword.text
                    ),
                ));
                None
            }
        }
    }

    pub(super) fn address_word(&mut self, w: &super::Word) -> Option<IpAddr> {
        match w.text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!("expected an IP address, not `{}`", w.text),
                ));
                None
            }
        }
    }

    pub(super) fn port_word(&mut self, w: &super::Word) -> Option<u16> {
        match w.text.parse() {
            Ok(p) => Some(p),
            Err(_) => {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!("expected a port (0-65535), not `{}`", w.text),
                ));
                None
            }
        }
    }
}

impl Builder {
    /// An IPv6 VIP that shares the director's prefix becomes the source Linux picks for the
    /// director's own connections, so checks of DR real servers (which hold the VIP) would be
    /// answered by the real servers to themselves, and every server would seem down.
    pub(super) fn warn_unbound_ipv6_dr_checks(&mut self, instances: &[super::Instance]) {
        for (at, address) in std::mem::take(&mut self.unbound_ipv6_dr_checks) {
            let held = instances
                .iter()
                .flat_map(|i| &i.virtual_addresses)
                .any(|v| v.address == address);
            if held {
                self.warnings.push(
                    Diagnostic::new(
                        &at,
                        format!("virtual_server {address} (lb_kind DR): this director holds the IPv6 VIP, which Linux may choose as the source of its checks; the real servers, holding the VIP too, would answer themselves and every server would seem down"),
                    )
                    .hint("give the checkers `bindto` the director's own address on that interface"),
                );
            }
        }
    }
}

/// A checker as written: its type, its own settings and where it connects.
type UnresolvedChecker = (CheckKind, Common, Connect);

/// Where a checker connects from and to, before inheritance.
#[derive(Clone, Debug, Default)]
struct Connect {
    ip: Option<IpAddr>,
    port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
    bind_if: Option<String>,
    fwmark: Option<u32>,
    log_all_failures: bool,
}
