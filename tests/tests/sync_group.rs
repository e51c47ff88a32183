//! `vrrp_sync_group`: members move together, and a group never splits while one member still
//! hears a live master.

use std::{io::Read as _, net::Ipv4Addr, time::Duration};

use vrrp_agent::{election::State, packet::Advert};
use vrrp_lab::{
    Agent, Lab, VIP,
    frames::{AdvertStream, Flaw},
    require_root, wait_for,
};

const SEC: Duration = Duration::from_secs(1);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);

fn config(fifo: &std::path::Path) -> String {
    let instance = |name: &str, vrid: u8, vip: Ipv4Addr| {
        format!(
            "vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id {vrid}\n    priority 100\n    \
             advert_int 0.1\n    virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n"
        )
    };
    format!(
        "global_defs {{\n    vrrp_version 3\n    vrrp_notify_fifo {}\n}}\n{}{}vrrp_sync_group VG_1 {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}\n",
        fifo.display(),
        instance("VI_1", 51, VIP),
        instance("VI_2", 52, VIP2)
    )
}

fn both(agent: &Agent, state: State, timeout: Duration) -> bool {
    wait_for(timeout, Duration::from_millis(10), || {
        (agent.instance_state("VI_1") == Some(state) && agent.instance_state("VI_2") == Some(state))
            .then_some(())
    })
    .is_some()
}

#[test]
fn sync_group_members_follow_each_other() {
    if !require_root("sync_group_members_follow_each_other") {
        return;
    }
    let lab = Lab::new("syncgrp", 2).expect("lab");
    // r2 runs no agent: the test speaks for a priority-200 master of VRID 51 only.
    let r2 = lab.router(1).clone();
    let stream = AdvertStream::start(
        lab.capture(&r2).unwrap(),
        r2.mac,
        r2.addr,
        Advert::v3(51, 200, 10, vec![VIP]),
        Duration::from_millis(10),
    );
    // The group's own notifications arrive on the FIFO, with priority 0.
    let (fifo, mut reader) = lab.fifo_reader("group.fifo").unwrap();
    let agent = lab.spawn_agent(lab.router(0), &config(&fifo)).unwrap();
    // Nobody advertises VRID 52, but VI_2 must not take over while VI_1 hears a master.
    std::thread::sleep(2 * SEC);
    assert_eq!(agent.instance_state("VI_1"), Some(State::Backup));
    assert_eq!(
        agent.instance_state("VI_2"),
        Some(State::Backup),
        "the group split"
    );
    let held = lab.addresses(lab.router(0)).unwrap();
    assert!(!held.contains(&VIP) && !held.contains(&VIP2), "{held:?}");

    // The master of VRID 51 goes silent: VI_1 takes over and VI_2 follows.
    stream.set(Flaw::Silent);
    assert!(
        both(&agent, State::Master, 3 * SEC),
        "the group did not go MASTER together"
    );
    let held = lab.addresses(lab.router(0)).unwrap();
    assert!(held.contains(&VIP) && held.contains(&VIP2), "{held:?}");

    // It comes back with a higher priority: VI_1 steps down and VI_2 follows.
    stream.set(Flaw::None);
    assert!(
        both(&agent, State::Backup, 3 * SEC),
        "the group did not step down together"
    );
    assert!(!lab.addresses(lab.router(0)).unwrap().contains(&VIP2));

    let mut text = String::new();
    reader.read_to_string(&mut text).ok();
    let group: Vec<&str> = text.lines().filter(|l| l.starts_with("GROUP")).collect();
    assert_eq!(
        group,
        [
            "GROUP \"VG_1\" BACKUP 0",
            "GROUP \"VG_1\" MASTER 0",
            "GROUP \"VG_1\" BACKUP 0"
        ],
        "{text}"
    );
}
