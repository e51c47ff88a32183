//! Interop with Debian's keepalived as the peer, both directions, failover both ways.
//!
//! Each scenario fails if keepalived logs a complaint about our packets or its statistics
//! (SIGUSR2 dump) show any receive or authentication error.

use std::{net::Ipv4Addr, time::Duration};

use vrrp_agent::election::State;
use vrrp_common::timers;
use vrrp_lab::{
    Agent, Lab, Spec, VIP,
    keepalived::{self, KaState, Keepalived},
    require_root, single_instance_config, wait_for,
};

const SEC: Duration = Duration::from_secs(1);

/// `heard_us`: whether keepalived must have received adverts from us (not when it is master
/// from the start: a lower-priority backup never sends).
fn assert_clean(ka: &Keepalived, heard_us: bool) {
    let errors = ka.receive_errors();
    assert!(
        errors.is_empty(),
        "keepalived complained about our packets:\n{}",
        errors.join("\n")
    );
    let stats = ka.stats().expect("keepalived statistics");
    assert!(
        stats.nonzero_errors().is_empty(),
        "keepalived counted receive errors: {:?}",
        stats.nonzero_errors()
    );
    if heard_us {
        assert!(
            stats.adverts_received > 0,
            "keepalived received none of our adverts"
        );
    }
}

fn follows(agent: &Agent, master: std::net::Ipv4Addr) -> bool {
    agent
        .wait_backup_of(Some(master.into()), 10 * SEC)
        .is_some()
}

fn skip(test: &str) -> bool {
    !require_root(test) || !keepalived::available(test)
}

#[test]
fn keepalived_master_we_backup_then_we_take_over_when_it_dies() {
    if skip("keepalived_master_we_backup_then_we_take_over_when_it_dies") {
        return;
    }
    let _stats = keepalived::stats_lock();
    let lab = Lab::new("kamaster", 2).expect("lab");
    let config = |prio| single_instance_config(prio, "0.1");
    let mut ka = Keepalived::spawn(&lab.dir, lab.router(0), &config(150)).unwrap();
    let ours = lab.spawn_agent(lab.router(1), &config(100)).unwrap();

    assert!(
        ka.wait_state(KaState::Master, 10 * SEC).is_some(),
        "keepalived never became MASTER"
    );
    assert!(
        follows(&ours, lab.router(0).addr),
        "we do not follow keepalived: {:?}",
        ours.status()
    );
    std::thread::sleep(SEC);
    assert_eq!(ours.state(), Some(State::Backup));
    assert!(!lab.addresses(lab.router(1)).unwrap().contains(&VIP));
    assert!(lab.addresses(lab.router(0)).unwrap().contains(&VIP));
    assert_clean(&ka, false);

    ka.kill();
    let bound = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    assert!(
        ours.wait_state(State::Master, bound + 2 * SEC).is_some(),
        "no takeover after keepalived died"
    );
    assert!(lab.addresses(lab.router(1)).unwrap().contains(&VIP));
}

#[test]
fn we_master_keepalived_backup_then_it_takes_over_when_we_stop() {
    if skip("we_master_keepalived_backup_then_it_takes_over_when_we_stop") {
        return;
    }
    let _stats = keepalived::stats_lock();
    let lab = Lab::new("kabackup", 2).expect("lab");
    let config = |prio| single_instance_config(prio, "0.1");
    let ours = lab.spawn_agent(lab.router(0), &config(200)).unwrap();
    assert!(ours.wait_state(State::Master, 10 * SEC).is_some());
    let ka = Keepalived::spawn(&lab.dir, lab.router(1), &config(100)).unwrap();

    assert!(ka.wait_state(KaState::Backup, 10 * SEC).is_some());
    std::thread::sleep(2 * SEC);
    assert_eq!(
        ka.state(),
        Some(KaState::Backup),
        "keepalived did not accept us as master"
    );
    assert!(!lab.addresses(lab.router(1)).unwrap().contains(&VIP));
    assert_clean(&ka, true);

    // Our SIGTERM sends priority 0: keepalived takes over after its skew time.
    ours.signal(libc::SIGTERM);
    let took = ka
        .wait_state(KaState::Master, 3 * SEC)
        .expect("keepalived did not take over");
    eprintln!("keepalived took over {took:?} after our SIGTERM");
    assert!(
        wait_for(2 * SEC, Duration::from_millis(20), || {
            lab.addresses(lab.router(1))
                .ok()?
                .contains(&VIP)
                .then_some(())
        })
        .is_some()
    );
    let stats = ka.stats().unwrap();
    assert!(
        stats.priority_zero_received > 0,
        "keepalived saw no priority-0 advert: {stats:?}"
    );
}

/// Both directions and failover both ways with one protocol variant: we are master and
/// keepalived, lower, accepts our adverts; our priority 0 hands over to it; we come back
/// lower and follow it; when it dies we take over.
fn both_directions(
    name: &str,
    ours: impl Fn(u8) -> Spec,
    theirs: impl Fn(u8) -> Spec,
    settle: Duration,
) {
    both_directions_with(name, |_| {}, ours, theirs, settle);
}

/// [`both_directions`] with extra lab preparation (addresses) first.
fn both_directions_with(
    name: &str,
    prepare: impl FnOnce(&Lab),
    ours: impl Fn(u8) -> Spec,
    theirs: impl Fn(u8) -> Spec,
    settle: Duration,
) {
    let _stats = keepalived::stats_lock();
    let lab = Lab::new(name, 2).expect("lab");
    prepare(&lab);
    // Priority 255 (address owner, state MASTER) takes over at once, keeping v2 tests short.
    let agent = lab.spawn_agent(lab.router(0), &ours(255).config()).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    let mut ka = Keepalived::spawn(&lab.dir, lab.router(1), &theirs(100).config()).unwrap();
    assert!(ka.wait_state(KaState::Backup, 5 * SEC).is_some());
    std::thread::sleep(settle);
    assert_eq!(
        ka.state(),
        Some(KaState::Backup),
        "{name}: keepalived rejected our adverts"
    );
    assert_clean(&ka, true);

    agent.signal(libc::SIGTERM);
    assert!(
        ka.wait_state(KaState::Master, 3 * SEC).is_some(),
        "{name}: no takeover after our priority 0"
    );
    drop(agent);

    let spec = ours(50);
    let agent = lab.spawn_agent(lab.router(0), &spec.config()).unwrap();
    let heard = agent.wait_backup_of(None, 10 * SEC);
    assert!(
        heard.is_some(),
        "{name}: we do not follow keepalived: {:?}",
        agent.status()
    );
    assert_eq!(agent.instance_counter("auth-failures"), 0);
    assert_eq!(agent.instance_counter("address-list-mismatch"), 0);
    ka.kill();
    let interval_cs = if spec.version == 2 { 100 } else { 10 };
    let bound = Duration::from_nanos(timers::master_down_ns(spec.version, 50, interval_cs));
    assert!(
        agent.wait_state(State::Master, bound + 2 * SEC).is_some(),
        "{name}: no takeover after keepalived died"
    );
}

#[test]
fn vrrpv2_with_pass_authentication_both_directions() {
    if skip("vrrpv2_with_pass_authentication_both_directions") {
        return;
    }
    let spec = |prio| Spec::v2(prio, 1).with_auth("s3cret");
    both_directions("kav2", spec, spec, 3 * SEC);
}

#[test]
fn unicast_peers_both_directions() {
    if skip("unicast_peers_both_directions") {
        return;
    }
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    both_directions(
        "kauni",
        |prio| Spec::v3(prio, "0.1").with_unicast(a, &[b]),
        |prio| Spec::v3(prio, "0.1").with_unicast(b, &[a]),
        SEC,
    );
}

#[test]
fn ipv6_without_a_link_local_vip_both_directions() {
    if skip("ipv6_without_a_link_local_vip_both_directions") {
        return;
    }
    let spec = |prio| Spec::v6(prio, "0.1");
    both_directions("kav6", spec, spec, SEC);
}

#[test]
fn ipv6_unicast_peers_both_directions() {
    if skip("ipv6_unicast_peers_both_directions") {
        return;
    }
    let a: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
    let b: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
    both_directions_with(
        "kauni6",
        |lab| {
            vrrp_lab::ip(
                &lab.router(0).ns,
                &["addr", "add", "fd00::1/64", "dev", "eth0", "nodad"],
            )
            .unwrap();
            vrrp_lab::ip(
                &lab.router(1).ns,
                &["addr", "add", "fd00::2/64", "dev", "eth0", "nodad"],
            )
            .unwrap();
        },
        move |prio| Spec::v6(prio, "0.1").with_unicast(a, &[b]),
        move |prio| Spec::v6(prio, "0.1").with_unicast(b, &[a]),
        SEC,
    );
}
