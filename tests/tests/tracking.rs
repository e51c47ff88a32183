//! Trackers drive the election as keepalived's do: a failing `vrrp_script` with a negative
//! weight lowers the priority (a preempting peer takes over, and gives back when fixed); with
//! weight 0 the master goes FAULT and says priority 0; with `nopreempt` the VIP stays; a hung
//! script is killed at its timeout; a tracked interface, file or process moves the instance
//! into FAULT and back.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use vrrp_agent::election::State;
use vrrp_lab::{Lab, Spec, VIP, agent::Agent, require_root, wait_for};

const SEC: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);

/// A check script that fails while `flag` exists.
fn flag_check(dir: &Path, name: &str, flag: &Path) -> std::path::PathBuf {
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntest ! -e {}\n", flag.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// A v3 instance at 0.1 s tracking `tracks` (lines of `track_*` blocks), plus `blocks` at the
/// top level.
fn tracking_config(priority: u8, extra: &str, blocks: &str) -> String {
    let mut spec = Spec::v3(priority, "0.1");
    spec.extra = extra.to_string();
    format!("{blocks}{}", spec.config())
}

fn script_block(script: &Path, weight: i32, more: &str) -> String {
    format!(
        "vrrp_script chk {{\n    script \"{}\"\n    interval 0.2\n    weight {weight}\n{more}}}\n",
        script.display()
    )
}

fn wait_state(agent: &Agent, state: State, within: Duration) -> bool {
    agent.wait_state(state, within).is_some()
}

fn effective_priority(agent: &Agent) -> Option<u8> {
    Some(agent.status().ok()?.instances.first()?.effective_priority)
}

/// r1 at `priority` tracking `chk` (failing while the returned flag file exists) with
/// `weight`, `extra` lines in its instance, elected master.
fn checked_master(
    lab: &Lab,
    priority: u8,
    weight: i32,
    extra: &str,
) -> (Agent, std::path::PathBuf) {
    let flag = lab.dir.join("broken");
    let check = flag_check(&lab.dir, "chk.sh", &flag);
    let tracks = format!("{extra}    track_script {{\n        chk\n    }}\n");
    let r1 = lab
        .spawn_agent(
            lab.router(0),
            &tracking_config(priority, &tracks, &script_block(&check, weight, "")),
        )
        .unwrap();
    assert!(wait_state(&r1, State::Master, 5 * SEC), "{}", r1.log_text());
    (r1, flag)
}

/// After a second (ten and more intervals) `master` (router `i`) is still master with the VIP
/// and `backup` still backup: nothing moved.
fn holds_for_a_second(lab: &Lab, (master, i): (&Agent, usize), backup: &Agent) {
    std::thread::sleep(SEC);
    assert_eq!(master.state(), Some(State::Master));
    assert_eq!(backup.state(), Some(State::Backup));
    assert!(lab.addresses(lab.router(i)).unwrap().contains(&VIP));
}

#[test]
fn a_failing_script_with_a_negative_weight_hands_over_and_takes_back() {
    if !require_root("a_failing_script_with_a_negative_weight_hands_over_and_takes_back") {
        return;
    }
    let lab = Lab::new("trkneg", 2).expect("lab");
    let (r1, flag) = checked_master(&lab, 100, -60, "");
    let r2 = lab
        .spawn_agent(lab.router(1), &Spec::v3(80, "0.1").config())
        .unwrap();
    assert!(
        r2.wait_backup_of(Some(lab.router(0).addr.into()), 3 * SEC)
            .is_some()
    );

    // The check fails: 100 - 60 = 40 < 80, and r2 preempts.
    std::fs::write(&flag, "").unwrap();
    let lowered = wait_for(3 * SEC, POLL, || {
        (effective_priority(&r1) == Some(40)).then_some(())
    });
    assert!(lowered.is_some(), "{:?}", r1.status());
    assert!(wait_state(&r2, State::Master, 3 * SEC), "{}", r2.log_text());
    assert!(wait_state(&r1, State::Backup, 2 * SEC));
    let status = r1.status().unwrap();
    assert_eq!(status.instances[0].base_priority, 100);
    assert_eq!(status.instances[0].tracking[0].effect, "-60");
    assert!(status.vrrp_scripts[0].failures > 0);

    // Fixed: back to 100, and r1 takes the VIP back.
    std::fs::remove_file(&flag).unwrap();
    assert!(
        wait_state(&r1, State::Master, 3 * SEC),
        "{}\n{:#?}",
        r1.log_text(),
        r1.status()
    );
    assert_eq!(effective_priority(&r1), Some(100));
    assert!(wait_state(&r2, State::Backup, 2 * SEC));
    let vip_home = wait_for(2 * SEC, POLL, || {
        lab.addresses(lab.router(0))
            .ok()?
            .contains(&VIP)
            .then_some(())
    });
    assert!(vip_home.is_some());
}

#[test]
fn weight_zero_faults_the_master_which_hands_over_with_priority_zero() {
    if !require_root("weight_zero_faults_the_master_which_hands_over_with_priority_zero") {
        return;
    }
    let lab = Lab::new("trkzero", 2).expect("lab");
    let (r1, flag) = checked_master(&lab, 200, 0, "");
    let r2 = lab
        .spawn_agent(lab.router(1), &Spec::v3(100, "0.1").config())
        .unwrap();
    assert!(
        r2.wait_backup_of(Some(lab.router(0).addr.into()), 3 * SEC)
            .is_some()
    );
    // On the client: the routers' XDP absorbs adverts before a packet socket would see them.
    let capture = lab.capture(&lab.client).unwrap();

    std::fs::write(&flag, "").unwrap();
    assert!(wait_state(&r1, State::Fault, 3 * SEC), "{}", r1.log_text());
    // r1's goodbye: an advert from r1 with priority 0.
    let r1_ip = lab.router(0).addr.octets();
    let goodbye = capture.wait_incoming(2 * SEC, |f| {
        f.len() > 42 && f[23] == 112 && f[26..30] == r1_ip && f[36] == 0
    });
    assert!(
        goodbye.is_some(),
        "no priority 0 advert from the faulted master"
    );
    assert!(wait_state(&r2, State::Master, 2 * SEC));
    assert!(!lab.addresses(lab.router(0)).unwrap().contains(&VIP));

    // Good again: out of FAULT, and (preempting, 200 > 100) master again.
    std::fs::remove_file(&flag).unwrap();
    assert!(wait_state(&r1, State::Master, 3 * SEC), "{}", r1.log_text());
}

#[test]
fn with_nopreempt_a_lowered_master_keeps_the_vip() {
    if !require_root("with_nopreempt_a_lowered_master_keeps_the_vip") {
        return;
    }
    let lab = Lab::new("trknopre", 2).expect("lab");
    let (r1, flag) = checked_master(&lab, 100, -60, "    nopreempt\n");
    let mut spec = Spec::v3(80, "0.1");
    spec.extra = "    nopreempt\n".into();
    let r2 = lab.spawn_agent(lab.router(1), &spec.config()).unwrap();
    assert!(
        r2.wait_backup_of(Some(lab.router(0).addr.into()), 3 * SEC)
            .is_some()
    );

    std::fs::write(&flag, "").unwrap();
    let lowered = wait_for(3 * SEC, POLL, || {
        (effective_priority(&r1) == Some(40)).then_some(())
    });
    assert!(lowered.is_some(), "{:?}", r1.status());
    // r2 hears the lower priority and, not preempting, stays backup: ten intervals and more.
    let heard = wait_for(2 * SEC, POLL, || {
        let s = r2.status().ok()?;
        (s.instances[0].master.as_ref()?.priority == 40).then_some(())
    });
    assert!(heard.is_some(), "{:?}", r2.status());
    holds_for_a_second(&lab, (&r1, 0), &r2);
}

#[test]
fn a_hanging_script_is_killed_at_its_timeout_and_counts_as_a_failure() {
    if !require_root("a_hanging_script_is_killed_at_its_timeout_and_counts_as_a_failure") {
        return;
    }
    let lab = Lab::new("trkhang", 1).expect("lab");
    // A script whose child hangs too: the whole process group must go.
    let script = lab.dir.join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 31.25 &\nsleep 31.5\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let block = format!(
        "vrrp_script chk {{\n    script \"{}\"\n    interval 1\n    timeout 0.3\n}}\n",
        script.display()
    );
    let r1 = lab
        .spawn_agent(
            lab.router(0),
            &tracking_config(100, "    track_script {\n        chk\n    }\n", &block),
        )
        .unwrap();
    // Good until its first run times out (keepalived's default without init_fail), then FAULT.
    assert!(wait_state(&r1, State::Fault, 5 * SEC), "{}", r1.log_text());
    let status = r1.status().unwrap();
    assert!(status.vrrp_scripts[0].timeouts >= 1, "{status:?}");
    assert!(!status.vrrp_scripts[0].up);
    let lingering = wait_for(2 * SEC, POLL, || {
        (!sleepers_running(&["31.25", "31.5"])).then_some(())
    });
    assert!(
        lingering.is_some(),
        "the hung script's processes survived its timeout"
    );
}

/// Whether a `sleep ARG` process is running for any of `args`.
fn sleepers_running(args: &[&str]) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        args.iter().any(|a| text.trim() == format!("sleep {a}"))
    })
}

#[test]
fn a_tracked_interface_faults_the_instance_while_down() {
    if !require_root("a_tracked_interface_faults_the_instance_while_down") {
        return;
    }
    let lab = Lab::new("trkif", 1).expect("lab");
    let ns = lab.router(0).ns.clone();
    vrrp_lab::ip(
        &ns,
        &["link", "add", "up0", "type", "veth", "peer", "name", "up1"],
    )
    .unwrap();
    vrrp_lab::ip(&ns, &["link", "set", "up1", "up"]).unwrap();
    vrrp_lab::ip(&ns, &["link", "set", "up0", "up"]).unwrap();
    let r1 = lab
        .spawn_agent(
            lab.router(0),
            &tracking_config(100, "    track_interface {\n        up0\n    }\n", ""),
        )
        .unwrap();
    assert!(wait_state(&r1, State::Master, 5 * SEC), "{}", r1.log_text());
    vrrp_lab::ip(&ns, &["link", "set", "up0", "down"]).unwrap();
    assert!(wait_state(&r1, State::Fault, 2 * SEC), "{}", r1.log_text());
    assert!(!lab.addresses(lab.router(0)).unwrap().contains(&VIP));
    vrrp_lab::ip(&ns, &["link", "set", "up0", "up"]).unwrap();
    assert!(wait_state(&r1, State::Master, 3 * SEC), "{}", r1.log_text());
}

#[test]
fn a_tracked_file_sets_the_priority_and_faults_beyond_minus_253() {
    if !require_root("a_tracked_file_sets_the_priority_and_faults_beyond_minus_253") {
        return;
    }
    let lab = Lab::new("trkfile", 1).expect("lab");
    let path = lab.dir.join("weight");
    let block = format!(
        "track_file tf {{\n    file \"{}\"\n    weight -10\n    init_file 2\n}}\n",
        path.display()
    );
    let r1 = lab
        .spawn_agent(
            lab.router(0),
            &tracking_config(100, "    track_file {\n        tf\n    }\n", &block),
        )
        .unwrap();
    assert!(wait_state(&r1, State::Master, 5 * SEC), "{}", r1.log_text());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        "2",
        "init_file"
    );
    assert_eq!(effective_priority(&r1), Some(80));
    // Replaced by rename, as editors do: seen through the directory watch.
    let tmp = lab.dir.join("weight.tmp");
    std::fs::write(&tmp, "5\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let changed = wait_for(2 * SEC, POLL, || {
        (effective_priority(&r1) == Some(50)).then_some(())
    });
    assert!(changed.is_some(), "{:?}", r1.status());
    std::fs::write(&path, "30\n").unwrap();
    assert!(
        wait_state(&r1, State::Fault, 2 * SEC),
        "-300 is below -253: FAULT"
    );
    std::fs::write(&path, "0\n").unwrap();
    assert!(wait_state(&r1, State::Master, 3 * SEC), "{}", r1.log_text());
    assert_eq!(effective_priority(&r1), Some(100));
}

#[test]
fn a_tracked_process_faults_the_instance_while_absent() {
    if !require_root("a_tracked_process_faults_the_instance_while_absent") {
        return;
    }
    let lab = Lab::new("trkproc", 1).expect("lab");
    // A process with a name of its own: sleep run through a link of that name (its comm is
    // the name it was executed by). Not a copy: a copy written while parallel tests fork can
    // fail to execute with ETXTBSY, the child inheriting the write descriptor.
    let program = lab.dir.join("trkproc-svc");
    std::os::unix::fs::symlink("/bin/sleep", &program).unwrap();
    let start = || {
        std::process::Command::new(&program)
            .arg("60")
            .spawn()
            .unwrap()
    };
    let mut service = start();
    let block = "vrrp_track_process svc {\n    process trkproc-svc\n    weight 0\n}\n";
    let r1 = lab
        .spawn_agent(
            lab.router(0),
            &tracking_config(100, "    track_process {\n        svc\n    }\n", block),
        )
        .unwrap();
    assert!(wait_state(&r1, State::Master, 5 * SEC), "{}", r1.log_text());
    service.kill().unwrap();
    service.wait().unwrap();
    assert!(wait_state(&r1, State::Fault, 3 * SEC), "{}", r1.log_text());
    let mut service = start();
    assert!(wait_state(&r1, State::Master, 3 * SEC), "{}", r1.log_text());
    service.kill().unwrap();
    let _ = service.wait();
}

/// A stand-in Redis: a TCP listener on 127.0.0.1:6379 inside a namespace, accepting (and
/// closing) connections until it is stopped.
struct Service {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    fn start(ns: &str) -> Self {
        vrrp_lab::ip(ns, &["link", "set", "lo", "up"]).unwrap();
        let listener = vrrp_lab::netns::run_in(ns, || {
            std::net::TcpListener::bind(("127.0.0.1", 6379)).unwrap()
        })
        .unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = listener.accept();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn redis_pair_with_nopreempt_moves_the_vip_when_the_service_dies_and_keeps_it_after() {
    if !require_root(
        "redis_pair_with_nopreempt_moves_the_vip_when_the_service_dies_and_keeps_it_after",
    ) {
        return;
    }
    let lab = Lab::new("trkseed", 2).expect("lab");
    let notify = lab.dir.join("notify.sh");
    std::fs::write(
        &notify,
        "#!/bin/sh\necho \"$@\" >> \"$LOG_DIR/notify-$1.log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755)).unwrap();
    // keepalived's usual Redis check, through bash's /dev/tcp; default weight: FAULT on failure.
    let block = "vrrp_script chk_redis {\n    script \"/bin/bash -c 'echo > /dev/tcp/127.0.0.1/6379'\"\n    interval 0.2\n    timeout 0.5\n    fall 2\n    rise 2\n}\n";
    let config = |node: &str, priority: u8| {
        let n = notify.display();
        let extra = format!(
            "    nopreempt\n    track_script {{\n        chk_redis\n    }}\n    notify_master \"{n} {node} master\"\n    notify_backup \"{n} {node} backup\"\n"
        );
        tracking_config(priority, &extra, block).replace(
            "    router_id lab\n",
            "    router_id lab\n    script_user root\n",
        )
    };
    let services = [
        Service::start(&lab.router(0).ns),
        Service::start(&lab.router(1).ns),
    ];
    // SAFETY: set before any agent starts; the tests in this file do not read it.
    unsafe { std::env::set_var("LOG_DIR", &lab.dir) };
    let r1 = lab.spawn_agent(lab.router(0), &config("r1", 100)).unwrap();
    assert!(wait_state(&r1, State::Master, 5 * SEC), "{}", r1.log_text());
    let r2 = lab.spawn_agent(lab.router(1), &config("r2", 90)).unwrap();
    assert!(
        r2.wait_backup_of(Some(lab.router(0).addr.into()), 3 * SEC)
            .is_some()
    );
    let log = |node: &str| {
        std::fs::read_to_string(lab.dir.join(format!("notify-{node}.log"))).unwrap_or_default()
    };
    let started = wait_for(2 * SEC, POLL, || {
        (log("r1") == "r1 backup\nr1 master\n").then_some(())
    });
    assert!(started.is_some(), "r1's notify log: {:?}", log("r1"));

    // Redis dies on the master: two failed checks, FAULT, and the peer takes the VIP.
    let [s1, _s2] = services;
    drop(s1);
    assert!(wait_state(&r1, State::Fault, 3 * SEC), "{}", r1.log_text());
    assert!(wait_state(&r2, State::Master, 2 * SEC), "{}", r2.log_text());
    let moved = wait_for(2 * SEC, POLL, || {
        lab.addresses(lab.router(1))
            .ok()?
            .contains(&VIP)
            .then_some(())
    });
    assert!(moved.is_some());
    assert!(!lab.addresses(lab.router(0)).unwrap().contains(&VIP));
    let promoted = wait_for(2 * SEC, POLL, || {
        (log("r2") == "r2 backup\nr2 master\n").then_some(())
    });
    assert!(promoted.is_some(), "r2's notify log: {:?}", log("r2"));

    // Redis is back: r1 leaves FAULT as BACKUP and, nopreempt, leaves the VIP where it is.
    let _s1 = Service::start(&lab.router(0).ns);
    assert!(wait_state(&r1, State::Backup, 3 * SEC), "{}", r1.log_text());
    let demoted = wait_for(2 * SEC, POLL, || {
        (log("r1") == "r1 backup\nr1 master\nr1 backup\n").then_some(())
    });
    assert!(demoted.is_some(), "r1's notify log: {:?}", log("r1"));
    holds_for_a_second(&lab, (&r2, 1), &r1);
}

#[test]
fn a_sync_groups_tracked_script_faults_every_member() {
    if !require_root("a_sync_groups_tracked_script_faults_every_member") {
        return;
    }
    let lab = Lab::new("trkgroup", 1).expect("lab");
    let flag = lab.dir.join("broken");
    let check = flag_check(&lab.dir, "chk.sh", &flag);
    let second = "vrrp_instance VI_2 {\n    interface eth0\n    virtual_router_id 52\n    priority 100\n    advert_int 0.1\n    virtual_ipaddress {\n        10.0.0.101/24\n    }\n}\n";
    let group = "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n    track_script {\n        chk\n    }\n}\n";
    let config = format!(
        "{}{second}{group}",
        tracking_config(100, "", &script_block(&check, 0, ""))
    );
    let r1 = lab.spawn_agent(lab.router(0), &config).unwrap();
    let both = |state: State| {
        wait_for(3 * SEC, POLL, || {
            (r1.instance_state("VI_1") == Some(state) && r1.instance_state("VI_2") == Some(state))
                .then_some(())
        })
        .is_some()
    };
    assert!(both(State::Master), "{}", r1.log_text());
    std::fs::write(&flag, "").unwrap();
    assert!(both(State::Fault), "{}", r1.log_text());
    std::fs::remove_file(&flag).unwrap();
    assert!(both(State::Master), "{}", r1.log_text());
}
