//! The fault suite: processes killed, links and the bridge cut, stuck scripts, readers and
//! clients, events lost. After each fault the lab must settle to exactly one ARP answerer per
//! VIP, and no VIP on a node that is not master (`vrrp_lab::faults::settle`, whose records
//! `cargo xtask test` sums up in one line).

use std::time::Duration;

use vrrp_agent::{election::State, packet::Advert};
use vrrp_common::timers;
use vrrp_lab::{
    Lab, VIP,
    faults::settle,
    frames::{AdvertStream, advert_frame},
    require_root, single_instance_config,
};

const SEC: Duration = Duration::from_secs(1);

/// The kernel's events for a stopped agent pile up until the ring buffer is full; the
/// master-down event that follows is lost. The agent, resumed, must still take over from the
/// silent master (its watchdog reads the kernel's timer) instead of following it forever.
#[test]
fn a_backup_whose_master_down_event_was_lost_still_takes_over() {
    if !require_root("a_backup_whose_master_down_event_was_lost_still_takes_over") {
        return;
    }
    let lab = Lab::new("lostevent", 2).expect("lab");
    let r1 = lab.router(0).clone();
    // The test speaks for a master at r1, 100 ms adverts.
    let stream = AdvertStream::start(
        lab.capture(&r1).unwrap(),
        r1.mac,
        r1.addr,
        Advert::v3(51, 200, 10, vec![VIP]),
        Duration::from_millis(100),
    );
    let backup = lab
        .spawn_agent(lab.router(1), &single_instance_config(100, "0.1"))
        .unwrap();
    assert!(
        backup
            .wait_backup_of(Some(r1.addr.into()), 5 * SEC)
            .is_some(),
        "the backup does not follow the injected master"
    );
    drop(stream);

    // Stopped, the agent reads nothing: adverts alternating priority raise an event each
    // until the ring is full.
    backup.signal(libc::SIGSTOP);
    let capture = lab.capture(&r1).unwrap();
    for i in 0..4000u32 {
        let priority = 200 + (i % 2) as u8;
        let frame = advert_frame(
            r1.mac,
            r1.addr,
            &Advert::v3(51, priority, 10, vec![VIP]),
            vrrp_lab::frames::Flaw::None,
        );
        capture.send(&frame).unwrap();
    }
    // The master falls silent; its master-down event finds the ring full.
    let master_down = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    std::thread::sleep(master_down + SEC / 2);
    backup.signal(libc::SIGCONT);

    assert!(
        backup.counter("events-lost") > 0,
        "the ring never filled: the scenario did not happen"
    );
    assert!(
        backup.wait_state(State::Master, 5 * SEC).is_some(),
        "the backup follows a silent master forever\n{}",
        backup.log_text()
    );
    let steady = settle(
        &lab,
        "lost-master-down-event",
        &[(lab.router(0), None), (lab.router(1), Some(&backup))],
        &[VIP],
        5 * SEC,
    );
    assert!(steady.ok(), "{steady:?}");
}
