//! The kernel validates adverts and absorbs the stream: the backup is not woken per advert,
//! and invalid adverts do not hold it back.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use vrrp_agent::{election::State, packet::Advert};
use vrrp_common::timers;
use vrrp_lab::{
    Agent, Lab, Spec, VIP, VIP6,
    frames::{AdvertStream, Flaw},
    frames::{advert_frame, advert_frame_v6},
    require_root, single_instance_config, timing_sensitive,
};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_backup_of_a_healthy_10ms_master_is_not_woken_per_advert() {
    if !require_root("a_backup_of_a_healthy_10ms_master_is_not_woken_per_advert") {
        return;
    }
    let _serial = timing_sensitive();
    let lab = Lab::new("absorb", 2).expect("lab");
    let master = lab
        .spawn_agent(lab.router(0), &single_instance_config(200, "0.01"))
        .unwrap();
    let backup = lab
        .spawn_agent(lab.router(1), &single_instance_config(100, "0.01"))
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    assert!(backup.wait_state(State::Backup, 5 * SEC).is_some());
    std::thread::sleep(SEC / 2); // let start-up settle

    let valid_before = backup.counter("valid-adverts");
    let switches_before = backup.voluntary_context_switches().unwrap();
    let cpu_before = backup.cpu_time().unwrap();
    let master_cpu_before = master.cpu_time().unwrap();
    let window = Instant::now();
    std::thread::sleep(10 * SEC);
    let switches = backup.voluntary_context_switches().unwrap() - switches_before;
    let cpu = backup.cpu_time().unwrap() - cpu_before;
    let master_cpu = master.cpu_time().unwrap() - master_cpu_before;
    let elapsed = window.elapsed();
    let valid = backup.counter("valid-adverts") - valid_before;

    eprintln!(
        "in {elapsed:?}: {valid} valid adverts counted in the kernel, {switches} voluntary context switches, {cpu:?} of agent CPU (the master sending them: {master_cpu:?})"
    );
    assert!(
        master_cpu > Duration::ZERO,
        "the CPU-time probe reads nothing"
    );
    assert_eq!(backup.state(), Some(State::Backup), "the backup flapped");
    assert_eq!(master.state(), Some(State::Master), "the master flapped");
    assert!(
        (700..=1300).contains(&valid),
        "expected about 1000 adverts in 10 s, the kernel counted {valid}"
    );
    assert!(
        switches < 50,
        "the agent was woken {switches} times for {valid} adverts"
    );
    assert!(
        cpu < Duration::from_millis(20),
        "the agent used {cpu:?} of CPU for {valid} adverts"
    );
}

/// The master is silenced and the test speaks for it from r1: a stream of adverts invalid in
/// one way each must not hold the backup (it takes over at about Master_Down_Interval and the
/// matching counter grows), while the stream made valid, or odd-but-valid, keeps it BACKUP.
fn discards_do_not_hold_a_backup(
    name: &str,
    spec: Spec,
    advert: Advert,
    every: Duration,
    invalid: &[Flaw],
    odd_but_valid: &[Flaw],
) {
    let lab = Lab::new(name, 2).expect("lab");
    let r1 = lab.router(0).clone();
    let v6 = spec.vip.contains(':');
    let link_local = lab
        .addresses_v6(&r1)
        .unwrap()
        .into_iter()
        .find(|a| a.is_unicast_link_local())
        .expect("r1 has a link-local address");
    let master: IpAddr = if v6 {
        link_local.into()
    } else {
        r1.addr.into()
    };
    let stream = AdvertStream::start_with(lab.capture(&r1).unwrap(), every, move |flaw| {
        if v6 {
            advert_frame_v6(r1.mac, link_local, &advert, flaw)
        } else {
            advert_frame(r1.mac, r1.addr, &advert, flaw)
        }
    });
    let backup = lab.spawn_agent(lab.router(1), &spec.config()).unwrap();
    let interval_cs = if spec.version == 2 { 100 } else { 10 };
    let master_down = Duration::from_nanos(timers::master_down_ns(
        spec.version,
        spec.priority,
        interval_cs,
    ));
    let follows = |backup: &Agent| {
        backup
            .wait_backup_of(Some(master), master_down + 5 * SEC)
            .is_some()
    };
    assert!(
        follows(&backup),
        "{name}: the backup does not follow the injected master"
    );

    for &flaw in odd_but_valid {
        let before = backup.instance_counter("valid-adverts");
        stream.set(flaw);
        std::thread::sleep(2 * master_down);
        assert_eq!(
            backup.state(),
            Some(State::Backup),
            "{name}: {flaw:?} adverts did not hold the backup"
        );
        assert!(
            backup.instance_counter("valid-adverts") > before,
            "{name}: {flaw:?} not counted valid"
        );
    }
    for &flaw in invalid {
        stream.set(Flaw::None);
        assert!(
            follows(&backup),
            "{name}: the backup did not yield to valid adverts before {flaw:?}"
        );
        std::thread::sleep(master_down + master_down / 2);
        assert_eq!(
            backup.state(),
            Some(State::Backup),
            "{name}: valid adverts did not hold the backup"
        );

        let before = backup.instance_counter(flaw.counter());
        let global_before = backup.counter(flaw.counter());
        stream.set(flaw);
        let took = backup.wait_state(State::Master, master_down + 2 * SEC);
        let took = took.unwrap_or_else(|| panic!("{name}: {flaw:?} adverts held the backup"));
        eprintln!("{name}: {flaw:?}: takeover after {took:?} (master-down {master_down:?})");
        let counted = backup.instance_counter(flaw.counter()) - before;
        assert!(
            counted >= 2,
            "{name}: {flaw:?}: {} grew by {counted}",
            flaw.counter()
        );
        assert!(backup.counter(flaw.counter()) > global_before);
        let held = if v6 {
            lab.addresses_v6(lab.router(1))
                .unwrap()
                .iter()
                .any(|a| !a.is_unicast_link_local())
        } else {
            lab.addresses(lab.router(1)).unwrap().contains(&VIP)
        };
        assert!(held, "{name}: the new master does not hold the VIP");
    }
}

#[test]
fn vrrpv3_ipv4_discards_do_not_hold_a_backup() {
    if !require_root("vrrpv3_ipv4_discards_do_not_hold_a_backup") {
        return;
    }
    let invalid = [
        Flaw::Ttl254,
        Flaw::BadChecksum,
        Flaw::TooShort,
        Flaw::WrongVersion,
        Flaw::IntervalZero,
    ];
    discards_do_not_hold_a_backup(
        "discard4",
        Spec::v3(100, "0.1"),
        Advert::v3(51, 200, 10, vec![VIP]),
        Duration::from_millis(10),
        &invalid,
        &[Flaw::IpOptions, Flaw::Padded],
    );
}

#[test]
fn vrrpv3_ipv6_discards_do_not_hold_a_backup() {
    if !require_root("vrrpv3_ipv6_discards_do_not_hold_a_backup") {
        return;
    }
    discards_do_not_hold_a_backup(
        "discard6",
        Spec::v6(100, "0.1"),
        Advert::v3(51, 200, 10, vec![VIP6]),
        Duration::from_millis(10),
        &[
            Flaw::Ttl254,
            Flaw::BadChecksum,
            Flaw::TooShort,
            Flaw::IntervalZero,
        ],
        &[Flaw::Padded],
    );
}

#[test]
fn vrrpv2_wrong_password_does_not_hold_a_backup() {
    if !require_root("vrrpv2_wrong_password_does_not_hold_a_backup") {
        return;
    }
    let mut advert = Advert::v3(51, 200, 100, vec![VIP]);
    advert.version = 2;
    advert.auth = Some(*b"s3cret\0\0");
    discards_do_not_hold_a_backup(
        "discardv2",
        Spec::v2(100, 1).with_auth("s3cret"),
        advert,
        Duration::from_millis(100),
        &[Flaw::WrongPassword],
        &[],
    );
}

#[test]
fn a_flood_of_lower_priority_adverts_is_answered_once_per_interval() {
    if !require_root("a_flood_of_lower_priority_adverts_is_answered_once_per_interval") {
        return;
    }
    let lab = Lab::new("reassert", 2).expect("lab");
    let master = lab
        .spawn_agent(lab.router(0), &single_instance_config(200, "0.1"))
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    let r2 = lab.router(1).clone();
    let watch = lab.capture(&r2).unwrap();
    let before = (
        master.instance_counter("lower-priority-reasserts"),
        master.voluntary_context_switches().unwrap(),
    );
    // 1000 valid priority-100 adverts per second for 2 s from r2.
    let flood = AdvertStream::start(
        lab.capture(&r2).unwrap(),
        r2.mac,
        r2.addr,
        Advert::v3(51, 100, 10, vec![VIP]),
        Duration::from_millis(1),
    );
    let start = Instant::now();
    let mut from_master = 0;
    while start.elapsed() < 2 * SEC {
        if watch
            .wait_incoming(Duration::from_millis(50), |f| {
                f.len() > 34 && f[23] == 112 && f[26..30] == lab.router(0).addr.octets()
            })
            .is_some()
        {
            from_master += 1;
        }
    }
    drop(flood);
    let reasserts = master.instance_counter("lower-priority-reasserts") - before.0;
    let limited = master.instance_counter("lower-priority-rate-limited");
    let switches = master.voluntary_context_switches().unwrap() - before.1;
    eprintln!(
        "2 s of flood: {reasserts} reasserts, {limited} rate-limited, {from_master} adverts from the master, {switches} wake-ups"
    );
    assert_eq!(master.state(), Some(State::Master));
    assert!(
        (5..=40).contains(&reasserts),
        "{reasserts} reasserts in 2 s at a 100 ms interval"
    );
    assert!(limited >= 500, "only {limited} adverts rate-limited");
    assert!(
        from_master <= 60,
        "the master sent {from_master} adverts in 2 s"
    );
    assert!(switches < 400, "the master was woken {switches} times");
}
