//! The kernel validates adverts and absorbs the stream: the backup is not woken per advert,
//! and invalid adverts do not hold it back.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use vrrp_agent::{election::State, packet::Advert};
use vrrp_common::timers;
use vrrp_lab::{
    Lab, VIP,
    frames::{AdvertStream, Flaw},
    require_root, single_instance_config, timing_sensitive, wait_for,
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
    let window = Instant::now();
    std::thread::sleep(10 * SEC);
    let switches = backup.voluntary_context_switches().unwrap() - switches_before;
    let elapsed = window.elapsed();
    let valid = backup.counter("valid-adverts") - valid_before;

    eprintln!(
        "in {elapsed:?}: {valid} valid adverts counted in the kernel, {switches} voluntary context switches"
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
}

#[test]
fn invalid_adverts_do_not_hold_a_backup_and_valid_ones_do() {
    if !require_root("invalid_adverts_do_not_hold_a_backup_and_valid_ones_do") {
        return;
    }
    let lab = Lab::new("discard", 2).expect("lab");
    // r1 runs no agent: the test speaks for it, at priority 200 every 10 ms.
    let r1 = lab.router(0).clone();
    let advert = Advert::v3(51, 200, 10, vec![VIP]);
    let stream = AdvertStream::start(
        lab.capture(&r1).unwrap(),
        r1.mac,
        r1.addr,
        advert,
        Duration::from_millis(10),
    );
    let backup = lab
        .spawn_agent(lab.router(1), &single_instance_config(100, "0.1"))
        .unwrap();
    let master_down = Duration::from_nanos(timers::master_down_ns(3, 100, 10));

    let follows_r1 = |backup: &vrrp_lab::Agent| {
        wait_for(5 * SEC, Duration::from_millis(10), || {
            let s = backup.status().ok()?;
            let i = s.instances.first()?;
            (i.state == State::Backup && i.master.as_ref()?.address == Ipv4Addr::new(10, 0, 0, 1))
                .then_some(())
        })
        .is_some()
    };
    assert!(
        follows_r1(&backup),
        "the backup does not follow the injected master"
    );

    for flaw in [Flaw::Ttl254, Flaw::BadChecksum, Flaw::TooShort] {
        // The valid stream holds the backup for several master-down intervals.
        std::thread::sleep(4 * master_down);
        assert_eq!(
            backup.state(),
            Some(State::Backup),
            "valid adverts did not hold the backup"
        );

        let discarded_before = backup.counter(flaw.counter());
        let instance_before = backup.instance_counter(flaw.counter());
        stream.set(flaw);
        let took = backup.wait_state(State::Master, master_down + 2 * SEC);
        let took = took.unwrap_or_else(|| panic!("{flaw:?} adverts held the backup"));
        eprintln!("{flaw:?}: takeover after {took:?} (master-down {master_down:?})");
        let discarded = backup.counter(flaw.counter()) - discarded_before;
        assert!(
            discarded >= 10,
            "{}: only {discarded} counted",
            flaw.counter()
        );
        let per_instance = backup.instance_counter(flaw.counter()) - instance_before;
        assert!(
            per_instance >= 10,
            "{} not counted for the instance",
            flaw.counter()
        );
        assert!(lab.addresses(lab.router(1)).unwrap().contains(&VIP));

        // Valid adverts from a higher priority make it step down again.
        stream.set(Flaw::None);
        assert!(
            follows_r1(&backup),
            "the backup did not yield to valid priority-200 adverts"
        );
        assert!(
            !lab.addresses(lab.router(1)).unwrap().contains(&VIP),
            "VIP left after stepping down"
        );
    }
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
