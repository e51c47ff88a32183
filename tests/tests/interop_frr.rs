//! Interop with FRR's vrrpd (VRRPv3, IPv4 and IPv6), both directions, failover both ways.

use std::{net::IpAddr, time::Duration};

use vrrp_agent::election::State;
use vrrp_common::timers;
use vrrp_lab::{
    Lab, Spec, VIP, VIP6,
    frr::{self, Frr},
    require_root,
};

const SEC: Duration = Duration::from_secs(1);

fn scenario(name: &str, v6: bool) {
    let lab = Lab::new(name, 2).expect("lab");
    let (spec, vip): (fn(u8) -> Spec, (IpAddr, u8)) = if v6 {
        (|p| Spec::v6(p, "0.1"), (VIP6.into(), 64))
    } else {
        (|p| Spec::v3(p, "0.1"), (VIP.into(), 24))
    };
    // We are master; FRR joins with a lower priority and must accept our adverts.
    let ours = lab.spawn_agent(lab.router(1), &spec(200).config()).unwrap();
    assert!(ours.wait_state(State::Master, 5 * SEC).is_some());
    let frr = Frr::spawn(&lab.dir, lab.router(0), 51, 100, 100, vip).unwrap();
    assert!(
        frr.wait_state(v6, "Backup", 5 * SEC),
        "FRR is not our backup: {:?}",
        frr.state(v6)
    );
    std::thread::sleep(SEC);
    let (state, received) = frr.state(v6).unwrap();
    assert_eq!(state, "Backup", "FRR did not stay backup");
    assert!(received >= 5, "FRR counted only {received} of our adverts");
    assert!(
        frr.receive_errors().is_empty(),
        "FRR complained: {:?}",
        frr.receive_errors()
    );

    // Our SIGTERM (priority 0): FRR takes over.
    ours.signal(libc::SIGTERM);
    assert!(
        frr.wait_state(v6, "Master", 3 * SEC),
        "FRR did not take over"
    );
    drop(ours);

    // We come back lower and follow FRR; when its vrrpd dies, we take over.
    let ours = lab.spawn_agent(lab.router(1), &spec(50).config()).unwrap();
    let heard = ours.wait_backup_of(None, 5 * SEC);
    assert!(heard.is_some(), "we do not follow FRR: {:?}", ours.status());
    frr.kill_vrrpd();
    let bound = Duration::from_nanos(timers::master_down_ns(3, 50, 10));
    assert!(
        ours.wait_state(State::Master, bound + 2 * SEC).is_some(),
        "no takeover after FRR died"
    );
}

fn skip(test: &str) -> bool {
    !require_root(test) || !frr::available(test)
}

#[test]
fn frr_vrrpd_ipv4_both_directions() {
    if skip("frr_vrrpd_ipv4_both_directions") {
        return;
    }
    scenario("frr4", false);
}

#[test]
fn frr_vrrpd_ipv6_both_directions() {
    if skip("frr_vrrpd_ipv6_both_directions") {
        return;
    }
    scenario("frr6", true);
}
