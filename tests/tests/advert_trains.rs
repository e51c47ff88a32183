//! A master of many instances sends their adverts as one train from a thread of its own
//! (`daemon/train.rs`). Seen from the wire: every instance advertises on its interval without
//! a gap when the train hands its members back each second (the address renewal) and forms
//! again, and a priority change reaches the wire at once, never followed by a stale advert.

use std::{
    collections::BTreeMap,
    fs,
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use vrrp_agent::{election::State, packet::Advert};
use vrrp_lab::{Capture, Lab, require_root, wait_for};

const SEC: Duration = Duration::from_secs(1);
const INSTANCES: u8 = 20;

/// VRID and priority of a VRRPv3 advert over IPv4 sent by `src`.
fn advert_of(frame: &[u8], src: Ipv4Addr) -> Option<(u8, u8)> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 112 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let from = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let to = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if from != src {
        return None;
    }
    let advert = Advert::parse(ip.get(ihl..)?, IpAddr::V4(from), IpAddr::V4(to)).ok()?;
    Some((advert.vrid, advert.priority))
}

/// Every advert `src` sends during `window`: (when, VRID, priority).
fn adverts(cap: &Capture, src: Ipv4Addr, window: Duration) -> Vec<(Instant, u8, u8)> {
    let end = Instant::now() + window;
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Some(f) = cap.recv(left)
            && let Some((vrid, priority)) = advert_of(&f.data, src)
        {
            seen.push((f.at, vrid, priority));
        }
    }
    seen
}

fn config(check: &std::path::Path) -> String {
    let mut c = format!(
        "global_defs {{\n    vrrp_version 3\n}}\nvrrp_script chk {{\n    script \"/bin/sh -c 'test ! -e {}'\"\n    interval 0.2\n    weight -10\n}}\n",
        check.display()
    );
    for vrid in 1..=INSTANCES {
        let track = if vrid == 1 {
            "    track_script {\n        chk\n    }\n"
        } else {
            ""
        };
        c.push_str(&format!(
            "vrrp_instance VI_{vrid} {{\n    state MASTER\n    interface eth0\n    virtual_router_id {vrid}\n    priority 200\n    advert_int 0.1\n    virtual_ipaddress {{\n        10.0.{vrid}.100/32\n    }}\n{track}}}\n"
        ));
    }
    c
}

#[test]
fn a_train_of_masters_keeps_the_grid_and_sends_a_new_priority_at_once() {
    if !require_root("a_train_of_masters_keeps_the_grid_and_sends_a_new_priority_at_once") {
        return;
    }
    let lab = Lab::new("trains", 1).expect("lab");
    let r1 = lab.router(0).clone();
    let check = lab.dir.join("fail");
    let agent = lab.spawn_agent(&r1, &config(&check)).expect("agent");
    let masters = wait_for(5 * SEC, Duration::from_millis(100), || {
        let status = agent.status().ok()?;
        (status
            .instances
            .iter()
            .filter(|i| i.state == State::Master)
            .count()
            == usize::from(INSTANCES))
        .then_some(())
    });
    assert!(masters.is_some(), "every instance became master");
    // The sender thread exists: the adverts are the train's, not the main loop's.
    let threads: Vec<String> = fs::read_dir(format!("/proc/{}/task", agent.pid()))
        .expect("the agent's threads")
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(threads.iter().any(|t| t == "advert-trains"), "{threads:?}");

    // 2.5 s: two handovers at the 1 s address renewals, each followed by a new train.
    let cap = lab.capture(&lab.client).expect("capture");
    let seen = adverts(&cap, r1.addr, 5 * SEC / 2);
    let mut by_vrid: BTreeMap<u8, Vec<Instant>> = BTreeMap::new();
    for (at, vrid, priority) in &seen {
        assert_eq!(*priority, 200, "VRID {vrid}");
        by_vrid.entry(*vrid).or_default().push(*at);
    }
    assert_eq!(
        by_vrid.len(),
        usize::from(INSTANCES),
        "{:?}",
        by_vrid.keys()
    );
    for (vrid, times) in &by_vrid {
        // 25 due; the first and last may fall just outside the window.
        assert!(times.len() >= 22, "VRID {vrid}: {} adverts", times.len());
        let widest = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        // One interval apart; a missed grid point would show as 200 ms.
        assert!(
            widest < Duration::from_millis(170),
            "VRID {vrid}: a gap of {widest:?}"
        );
    }

    // VRID 1's tracked script fails: priority 190, on the wire at once and for good.
    fs::write(&check, b"").expect("fail the check");
    let changed = wait_for(5 * SEC, Duration::from_millis(50), || {
        let status = agent.status().ok()?;
        let vi1 = status.instances.iter().find(|i| i.vrid == 1)?;
        (vi1.effective_priority == 190).then_some(())
    });
    assert!(changed.is_some(), "the script's weight never applied");
    // A new socket: the old one still holds frames sent before the change.
    drop(cap);
    let cap = lab.capture(&lab.client).expect("capture");
    let after = adverts(&cap, r1.addr, SEC);
    let vrid1: Vec<u8> = after
        .iter()
        .filter(|(_, vrid, _)| *vrid == 1)
        .map(|(_, _, p)| *p)
        .collect();
    assert!(vrid1.len() >= 8, "{vrid1:?}");
    assert!(
        vrid1.iter().all(|&p| p == 190),
        "VRID 1 after its priority fell: {vrid1:?}"
    );
    assert!(
        after
            .iter()
            .filter(|(_, vrid, _)| *vrid != 1)
            .all(|(_, _, p)| *p == 200),
        "the other instances keep theirs"
    );
}
