//! The fault suite's verdict. After a fault has been injected and the peers'
//! Master_Down_Interval (and a dead node's VIP lifetime) has passed, exactly one node answers
//! ARP for each VIP and no node that is not a live master still holds it. Each scenario
//! records what it saw, so `cargo xtask test` can print one line for the whole suite.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use vrrp_agent::election::State;

use crate::{Agent, Lab, Node};

/// Where scenarios record their outcome (set by `cargo xtask test`; unset, nothing is
/// recorded).
pub const RECORD_DIR_ENV: &str = "VRRP_FAULTS_DIR";

/// How long a node whose agent died may keep a VIP: its lifetime (the master renews it every
/// second) plus the kernel's address expiry work.
pub const VIP_EXPIRY: Duration =
    Duration::from_secs(vrrp_agent::net::link::VIP_LIFETIME_S as u64 + 2);

/// What the lab looked like at the end of a scenario.
#[derive(Debug, Default)]
pub struct Steady {
    /// VIPs nobody answers ARP for.
    pub lost: Vec<Ipv4Addr>,
    /// VIPs more than one MAC answers ARP for.
    pub dual: Vec<Ipv4Addr>,
    /// (namespace, VIP): a node that is not a live master and still holds the VIP.
    pub stray: Vec<(String, Ipv4Addr)>,
}

impl Steady {
    /// Whether the lab is as it must be.
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.dual.is_empty() && self.stray.is_empty()
    }
}

/// One router and its agent, if one is running there.
pub type Member<'a> = (&'a Node, Option<&'a Agent>);

/// Waits (up to `within`) until every VIP in `vips` has exactly one ARP answerer and no
/// member that is not a live master holds one; records the outcome under `scenario` and
/// returns it (the last observation when the bound passed).
pub fn settle(
    lab: &Lab,
    scenario: &str,
    members: &[Member<'_>],
    vips: &[Ipv4Addr],
    within: Duration,
) -> Steady {
    let deadline = Instant::now() + within;
    let steady = loop {
        let seen = observe(lab, members, vips);
        if seen.ok() || Instant::now() >= deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    record(scenario, &steady);
    steady
}

/// [`settle`], and fails the test (naming the scenario) unless the lab settled.
pub fn assert_settled(
    lab: &Lab,
    scenario: &str,
    members: &[Member<'_>],
    vips: &[Ipv4Addr],
    within: Duration,
) {
    let steady = settle(lab, scenario, members, vips, within);
    assert!(steady.ok(), "{scenario}: {steady:?}");
}

fn observe(lab: &Lab, members: &[Member<'_>], vips: &[Ipv4Addr]) -> Steady {
    let mut steady = Steady::default();
    for &vip in vips {
        let mut macs = lab
            .arp_answerers(vip, Duration::from_millis(150))
            .unwrap_or_default();
        macs.sort_unstable();
        macs.dedup();
        match macs.len() {
            0 => steady.lost.push(vip),
            1 => {}
            _ => steady.dual.push(vip),
        }
    }
    for (node, agent) in members {
        let master = agent.is_some_and(|a| a.state() == Some(State::Master));
        if master {
            continue;
        }
        for address in lab.addresses(node).unwrap_or_default() {
            if vips.contains(&address) {
                steady.stray.push((node.ns.clone(), address));
            }
        }
    }
    steady
}

/// Writes `scenario lost dual stray` into the record directory, one file per scenario.
fn record(scenario: &str, steady: &Steady) {
    let Some(dir) = std::env::var_os(RECORD_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::create_dir_all(&dir);
    let line = format!(
        "{scenario} {} {} {}\n",
        steady.lost.len(),
        steady.dual.len(),
        steady.stray.len()
    );
    let _ = std::fs::write(dir.join(scenario), line);
}
