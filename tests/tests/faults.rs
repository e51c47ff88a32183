//! The fault suite: processes killed, links and the bridge cut, stuck scripts, readers and
//! clients, events lost. After each fault the lab must settle to exactly one ARP answerer per
//! VIP, and no VIP on a node that is not master (`vrrp_lab::faults::settle`, whose records
//! `cargo xtask test` sums up in one line).

use std::{
    io::Write as _,
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    time::Duration,
};

use vrrp_agent::{
    control::{InstanceAction, Request},
    election::State,
    packet::Advert,
};
use vrrp_common::timers;
use vrrp_lab::{
    Agent, Lab, Spec, VIP, faults,
    frames::{AdvertStream, advert_frame},
    require_root, single_instance_config, wait_for,
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
    let (stream, backup) = lab.backup_of_injected_master();
    drop(stream);

    // Stopped, the agent reads nothing: adverts alternating between two sources raise a
    // NEW_MASTER event each (a new master is never rate-limited, unlike a priority flip)
    // until the ring is full.
    backup.signal(libc::SIGSTOP);
    let capture = lab.capture(&r1).unwrap();
    let other = std::net::Ipv4Addr::new(10, 0, 0, 99);
    for i in 0..4000u32 {
        let src = if i % 2 == 0 { r1.addr } else { other };
        let frame = advert_frame(
            r1.mac,
            src,
            &Advert::v3(51, 200, 10, vec![VIP]),
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
    faults::assert_settled(
        &lab,
        "lost-master-down-event",
        &[(lab.router(0), None), (lab.router(1), Some(&backup))],
        &[VIP],
        5 * SEC,
    );
}

/// Master_Down_Interval at 0.1 s for the priority-100 backup, and a margin.
fn takeover_bound() -> Duration {
    Duration::from_nanos(timers::master_down_ns(3, 100, 10)) + 2 * SEC
}

/// How long a scenario may take to settle: a dead node's VIP must have expired.
const SETTLE: Duration = Duration::from_secs(vrrp_lab::faults::VIP_EXPIRY.as_secs() + 3);

fn assert_settled(lab: &Lab, scenario: &str, members: &[(&vrrp_lab::Node, Option<&Agent>)]) {
    faults::assert_settled(lab, scenario, members, &[VIP], SETTLE);
}

fn kill(agent: &mut Agent) {
    agent.signal(libc::SIGKILL);
    assert!(agent.wait_exit(5 * SEC).is_some(), "the agent did not die");
}

#[test]
fn the_master_and_the_backup_killed_in_turn_leave_one_answerer() {
    if !require_root("the_master_and_the_backup_killed_in_turn_leave_one_answerer") {
        return;
    }
    let lab = Lab::new("killturn", 2).expect("lab");
    let (r1, r2) = (lab.router(0), lab.router(1));
    let (mut master, backup) = lab.elected_pair("0.1");
    kill(&mut master);
    assert!(backup.wait_state(State::Master, takeover_bound()).is_some());
    assert_settled(&lab, "kill-9-master", &[(r1, None), (r2, Some(&backup))]);

    // The old master comes back and, with the higher priority, takes over again.
    let master = lab
        .spawn_agent(r1, &single_instance_config(200, "0.1"))
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    assert!(backup.wait_state(State::Backup, 5 * SEC).is_some());
    assert_settled(
        &lab,
        "master-restarted",
        &[(r1, Some(&master)), (r2, Some(&backup))],
    );

    // Now the backup dies: nothing changes for the master.
    let mut backup = backup;
    kill(&mut backup);
    assert_settled(&lab, "kill-9-backup", &[(r1, Some(&master)), (r2, None)]);
    assert_eq!(master.state(), Some(State::Master));
}

#[test]
fn the_backups_link_going_down_and_up_changes_nothing_for_the_master() {
    if !require_root("the_backups_link_going_down_and_up_changes_nothing_for_the_master") {
        return;
    }
    let lab = Lab::new("bklink", 2).expect("lab");
    let (r1, r2) = (lab.router(0), lab.router(1));
    let (master, backup) = lab.elected_pair("0.1");
    vrrp_lab::ip(&r2.ns, &["link", "set", "eth0", "down"]).unwrap();
    assert!(backup.wait_state(State::Fault, 2 * SEC).is_some());
    assert_settled(
        &lab,
        "backup-link-down",
        &[(r1, Some(&master)), (r2, Some(&backup))],
    );
    vrrp_lab::ip(&r2.ns, &["link", "set", "eth0", "up"]).unwrap();
    assert!(
        backup
            .wait_backup_of(Some(r1.addr.into()), 5 * SEC)
            .is_some()
    );
    assert_eq!(master.state(), Some(State::Master));
    assert_settled(
        &lab,
        "backup-link-up",
        &[(r1, Some(&master)), (r2, Some(&backup))],
    );
}

/// A partition (r2's bridge port detached, its carrier up) makes two masters; once it heals
/// the RFC's rules leave one: r2 hears the higher priority and steps down.
#[test]
fn a_partition_that_heals_converges_to_one_master() {
    if !require_root("a_partition_that_heals_converges_to_one_master") {
        return;
    }
    let lab = Lab::new("partition", 2).expect("lab");
    let (r1, r2) = (lab.router(0), lab.router(1));
    let (master, backup) = lab.elected_pair("0.1");
    lab.set_port_attached("r2", false).unwrap();
    assert!(
        backup.wait_state(State::Master, takeover_bound()).is_some(),
        "the cut-off backup did not take over"
    );
    assert_eq!(master.state(), Some(State::Master), "split brain expected");
    lab.set_port_attached("r2", true).unwrap();
    assert!(
        backup.wait_state(State::Backup, 3 * SEC).is_some(),
        "two masters after the partition healed"
    );
    assert_eq!(master.state(), Some(State::Master));
    assert_settled(
        &lab,
        "partition-healed",
        &[(r1, Some(&master)), (r2, Some(&backup))],
    );
}

/// Notify scripts that never return do not hold up elections, failovers or the next
/// notifications.
#[test]
fn hanging_notify_scripts_hold_nothing_up() {
    if !require_root("hanging_notify_scripts_hold_nothing_up") {
        return;
    }
    let lab = Lab::new("hangnotify", 2).expect("lab");
    let (r1, r2) = (lab.router(0), lab.router(1));
    let script = lab.dir.join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 600\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = |priority| {
        let mut spec = Spec::v3(priority, "0.1");
        spec.extra = format!(
            "    notify_master \"{0}\"\n    notify_backup \"{0}\"\n    notify_fault \"{0}\"\n",
            script.display()
        );
        spec.config()
    };
    let mut master = lab.spawn_agent(r1, &config(200)).unwrap();
    let backup = lab.spawn_agent(r2, &config(100)).unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    assert!(backup.wait_state(State::Backup, 5 * SEC).is_some());
    kill(&mut master);
    assert!(backup.wait_state(State::Master, takeover_bound()).is_some());
    let master = lab.spawn_agent(r1, &config(200)).unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    assert!(
        backup.wait_state(State::Backup, 3 * SEC).is_some(),
        "a hanging notify_master held the backup's step-down"
    );
    assert_settled(
        &lab,
        "hanging-notify-scripts",
        &[(r1, Some(&master)), (r2, Some(&backup))],
    );
}

/// A real server that accepts connections and never answers: its HTTP_GET checker times it
/// out and calls it down, while the daemon goes on answering and advertising.
#[test]
fn a_checker_target_that_accepts_and_never_answers_is_timed_out() {
    if !require_root("a_checker_target_that_accepts_and_never_answers_is_timed_out") {
        return;
    }
    let lab = Lab::new("mutecheck", 2).expect("lab");
    let (r1, r2) = (lab.router(0), lab.router(1));
    // r2 accepts on port 80 and keeps every connection open, silent.
    let listener = vrrp_lab::run_in(&r2.ns, || std::net::TcpListener::bind(("0.0.0.0", 80)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let config = format!(
        "{}virtual_server {VIP} 80 {{\n    delay_loop 1\n    lb_kind DR\n    real_server {} 80 {{\n        HTTP_GET {{\n            url {{\n                path /\n                status_code 200\n            }}\n            connect_timeout 1\n            retry 0\n        }}\n    }}\n}}\n",
        single_instance_config(200, "0.1"),
        r2.addr
    );
    let agent = lab.spawn_agent(r1, &config).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    let down = wait_for(10 * SEC, Duration::from_millis(100), || {
        let status = agent.status().ok()?;
        let rs = status.virtual_servers.first()?.real_servers.first()?;
        (!rs.up && rs.checkers.first()?.attempts > 0).then_some(())
    });
    assert!(down.is_some(), "a silent server was not called down");
    let asked = std::time::Instant::now();
    agent.status().unwrap();
    assert!(asked.elapsed() < SEC, "the daemon answers slowly");
    assert_settled(&lab, "silent-checker-target", &[(r1, Some(&agent))]);
}

/// A notify FIFO whose reader stopped reading (its pipe full), then one with no reader at
/// all: lines are dropped and counted, the daemon never blocks.
#[test]
fn a_notify_fifo_nobody_reads_never_blocks_the_daemon() {
    if !require_root("a_notify_fifo_nobody_reads_never_blocks_the_daemon") {
        return;
    }
    let lab = Lab::new("stuckfifo", 1).expect("lab");
    let r1 = lab.router(0);
    let fifo = lab.dir.join("notify.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // The reader opens the FIFO, shrinks its pipe to a page, and never reads.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    let config = single_instance_config(200, "0.1").replace(
        "global_defs {\n",
        &format!("global_defs {{\n    notify_fifo {}\n", fifo.display()),
    );
    let agent = lab.spawn_agent(r1, &config).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    let act = |action| {
        vrrp_lab::agent::request(
            &agent.socket,
            &Request::Instance {
                name: "VI_1".into(),
                action,
            },
        )
        .unwrap()
    };
    let cycles = |n| {
        for _ in 0..n {
            act(InstanceAction::Fault);
            act(InstanceAction::Resume);
        }
    };
    cycles(150);
    let dropped = |agent: &Agent| agent.status().unwrap().notify.fifo_lines_dropped;
    assert!(dropped(&agent) > 0, "the full pipe dropped nothing");
    drop(reader);
    let before = dropped(&agent);
    cycles(10);
    assert!(dropped(&agent) > before, "lines to a FIFO without a reader");
    assert!(agent.wait_state(State::Master, 3 * SEC).is_some());
    assert_settled(&lab, "stuck-notify-fifo", &[(r1, Some(&agent))]);
}

/// A misbehaving client floods the control socket (idle connections, endless lines): the
/// daemon goes on electing and failing over, and answers again once the flood stops.
#[test]
fn a_flooded_control_socket_does_not_stop_the_daemon() {
    if !require_root("a_flooded_control_socket_does_not_stop_the_daemon") {
        return;
    }
    let lab = Lab::new("ctlflood", 2).expect("lab");
    let (r1, r2) = (lab.router(0), lab.router(1));
    let (mut master, backup) = lab.elected_pair("0.1");
    let mut flood = Vec::new();
    for i in 0..400 {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&backup.socket) else {
            continue;
        };
        if i % 4 == 0 {
            let _ = s.set_nonblocking(true);
            let _ = s.write_all(&[b'x'; 8192]);
        }
        flood.push(s);
    }
    assert!(flood.len() > 64, "the flood did not connect");
    // Elections go on: the master dies, the flooded backup takes over.
    kill(&mut master);
    assert!(
        wait_for(takeover_bound(), Duration::from_millis(50), || {
            let s = std::fs::read_to_string(&backup.log).ok()?;
            s.contains("to=Master").then_some(())
        })
        .is_some(),
        "the flooded backup did not take over\n{}",
        backup.log_text()
    );
    drop(flood);
    assert!(
        wait_for(7 * SEC, Duration::from_millis(100), || backup.status().ok()).is_some(),
        "the control socket did not recover"
    );
    assert_eq!(backup.state(), Some(State::Master));
    assert_settled(
        &lab,
        "control-socket-flood",
        &[(r1, None), (r2, Some(&backup))],
    );
}

/// Adverts for our VRID from a foreign cluster with another address list are counted and
/// logged, and do not disturb the election.
#[test]
fn a_duplicate_vrid_from_a_foreign_cluster_is_counted_and_logged() {
    if !require_root("a_duplicate_vrid_from_a_foreign_cluster_is_counted_and_logged") {
        return;
    }
    let lab = Lab::new("dupvrid", 3).expect("lab");
    let (r1, r2, foreign) = (lab.router(0), lab.router(1), lab.router(2).clone());
    let (master, backup) = lab.elected_pair("0.1");
    let _stream = AdvertStream::start(
        lab.capture(&foreign).unwrap(),
        foreign.mac,
        foreign.addr,
        Advert::v3(51, 50, 10, vec![std::net::Ipv4Addr::new(10, 0, 0, 222)]),
        Duration::from_millis(100),
    );
    let counted = wait_for(3 * SEC, Duration::from_millis(100), || {
        (master.instance_counter("address-list-mismatch") > 0).then_some(())
    });
    assert!(counted.is_some(), "the foreign list was not counted");
    let logged = wait_for(3 * SEC, Duration::from_millis(100), || {
        let log = std::fs::read_to_string(&master.log).ok()?;
        log.contains(&foreign.addr.to_string()).then_some(())
    });
    assert!(logged.is_some(), "not logged\n{}", master.log_text());
    assert_eq!(master.state(), Some(State::Master));
    assert_settled(
        &lab,
        "foreign-duplicate-vrid",
        &[(r1, Some(&master)), (r2, Some(&backup))],
    );
}
