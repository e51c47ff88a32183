//! The two implementations under test, run the same way: vrrp-agent or Debian's keepalived on
//! the same keepalived.conf in a lab namespace.

use anyhow::Result;
use vrrp_lab::{Agent, Lab, Node, keepalived::Keepalived};

/// Which implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Impl {
    /// vrrp-agent.
    Agent,
    /// keepalived.
    Keepalived,
}

impl Impl {
    /// Both, ours first.
    pub const BOTH: [Impl; 2] = [Impl::Agent, Impl::Keepalived];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Agent => "vrrp-agent",
            Impl::Keepalived => "keepalived",
        }
    }
}

/// A running daemon.
pub enum Daemon {
    /// vrrp-agent.
    Agent(Agent),
    /// keepalived (parent and VRRP child).
    Keepalived(Keepalived),
}

impl Daemon {
    /// Starts `imp` on `config` in `node`'s namespace.
    pub fn start(imp: Impl, lab: &Lab, node: &Node, config: &str) -> Result<Self> {
        Ok(match imp {
            Impl::Agent => Daemon::Agent(lab.spawn_agent(node, config)?),
            Impl::Keepalived => Daemon::Keepalived(Keepalived::spawn(&lab.dir, node, config)?),
        })
    }

    /// Every process of the daemon.
    pub fn pids(&self) -> Vec<i32> {
        match self {
            Daemon::Agent(a) => vec![a.pid() as i32],
            Daemon::Keepalived(k) => k.pids(),
        }
    }

    /// SIGKILL to every process of the daemon; returns once they are gone (a restarted
    /// keepalived refuses to start while its old pid file names a live process).
    pub fn kill(&mut self) {
        let pids = self.pids();
        match self {
            Daemon::Agent(a) => a.signal(libc::SIGKILL),
            Daemon::Keepalived(k) => k.kill(),
        }
        let _ = vrrp_lab::wait_for(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(5),
            || {
                pids.iter()
                    .all(|p| {
                        std::fs::read_to_string(format!("/proc/{p}/stat")).map_or(true, |s| {
                            s.rsplit_once(')')
                                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                        })
                    })
                    .then_some(())
            },
        );
    }

    /// SIGTERM: a clean stop (priority 0 from a master).
    pub fn terminate(&self) {
        match self {
            Daemon::Agent(a) => a.signal(libc::SIGTERM),
            Daemon::Keepalived(k) => k.terminate(),
        }
    }

    fn log(&self) -> String {
        match self {
            Daemon::Agent(a) => a.log_text(),
            Daemon::Keepalived(k) => k.log_text(),
        }
    }

    /// Each instance's last state from the log, as both write it: "(VI_1) Entering MASTER
    /// STATE".
    pub fn states(&self) -> std::collections::HashMap<String, String> {
        let mut states = std::collections::HashMap::new();
        for line in self.log().lines() {
            let Some(at) = line.find(") Entering ") else {
                continue;
            };
            let Some(open) = line[..at].rfind('(') else {
                continue;
            };
            let name = &line[open + 1..at];
            let rest = &line[at + ") Entering ".len()..];
            if let Some(state) = rest.split_whitespace().next() {
                states.insert(name.to_string(), state.to_string());
            }
        }
        states
    }

    /// How many instances are in `state` now.
    pub fn count(&self, state: &str) -> usize {
        self.states().values().filter(|s| *s == state).count()
    }

    /// State changes of all instances so far.
    pub fn changes(&self) -> usize {
        self.log().matches(") Entering ").count()
    }
}

/// A keepalived.conf with `k` VRRPv3 instances at `priority` and `advert_int`, spread over
/// `ifaces` (eth0, eth1, ...; at most 255 per interface), VRID 1.., each holding one VIP
/// 10.200.x.y/32.
pub fn config(k: usize, priority: u8, advert_int: &str, ifaces: usize) -> String {
    let per_iface = k.div_ceil(ifaces.max(1)).min(255);
    let mut out = String::from("global_defs {\n    router_id bench\n    vrrp_version 3\n}\n\n");
    for i in 0..k {
        let iface = i / per_iface;
        let vrid = i % per_iface + 1;
        out.push_str(&format!(
            "vrrp_instance VI_{i} {{\n    state BACKUP\n    interface eth{iface}\n    virtual_router_id {vrid}\n    priority {priority}\n    advert_int {advert_int}\n    virtual_ipaddress {{\n        {}/32\n    }}\n}}\n",
            vip(i)
        ));
    }
    out
}

/// Instance `i`'s VIP.
pub fn vip(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 200, (i / 250) as u8, (i % 250 + 1) as u8)
}
