//! Reloading the configuration (SIGHUP, `vrrp-agent reload`): an unchanged master keeps its
//! VIP without a flap while instances are added and removed, and a broken configuration
//! changes nothing.

use std::{
    io::Read as _,
    net::Ipv4Addr,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use vrrp_agent::election::State;
use vrrp_lab::{Lab, VIP, agent::agent_binary, require_root, single_instance_config, wait_for};

const SEC: Duration = Duration::from_secs(1);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);
const VIP3: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 102);

/// `single_instance_config` plus a second instance, VRID 52, holding VIP2.
fn with_second(priority: u8) -> String {
    format!(
        "{}vrrp_instance VI_2 {{\n    interface eth0\n    virtual_router_id 52\n    priority {priority}\n    advert_int 0.1\n    notify_deleted\n    virtual_ipaddress {{\n        {VIP2}/24\n    }}\n}}\n",
        single_instance_config(priority, "0.1")
    )
}

#[test]
fn reload_adds_and_removes_instances_without_touching_the_running_master() {
    if !require_root("reload_adds_and_removes_instances_without_touching_the_running_master") {
        return;
    }
    let lab = Lab::new("reload", 2).expect("lab");
    let (master, backup) = lab.elected_pair("0.1");
    // A FIFO reader from here on, to see how the removed instance is reported.
    let (fifo, mut reader) = lab.fifo_reader("reload.fifo").unwrap();
    let with_fifo = |config: String| {
        config.replace(
            "    router_id lab\n",
            &format!("    router_id lab\n    notify_fifo {}\n", fifo.display()),
        )
    };
    let transitions = || master.status().unwrap().instances[0].transitions;
    assert_eq!(transitions(), 2);

    // Watch both nodes every few milliseconds for as long as the reloads take.
    let stop = Arc::new(AtomicBool::new(false));
    let (lost, stolen) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let watcher = {
        let (stop, lost, stolen) = (stop.clone(), lost.clone(), stolen.clone());
        let (r1, r2) = (lab.router(0).ns.clone(), lab.router(1).ns.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if !vrrp_lab::netns::ipv4_addresses(&r1, "eth0")
                    .unwrap_or_default()
                    .contains(&VIP)
                {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
                if vrrp_lab::netns::ipv4_addresses(&r2, "eth0")
                    .unwrap_or_default()
                    .contains(&VIP)
                {
                    stolen.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };

    // SIGHUP with an added instance: VI_2 starts, VI_1 goes on as it was.
    master.rewrite_config(&with_fifo(with_second(200))).unwrap();
    master.signal(libc::SIGHUP);
    let second_up = wait_for(5 * SEC, Duration::from_millis(20), || {
        (master.instance_state("VI_2") == Some(State::Master)).then_some(())
    });
    assert!(second_up.is_some(), "{}", master.log_text());
    assert!(lab.addresses(lab.router(0)).unwrap().contains(&VIP2));

    // A broken configuration (an unterminated quote) is refused and changes nothing.
    master
        .rewrite_config(&with_fifo(with_second(200)).replace("VI_2 {", "\"VI_2 {"))
        .unwrap();
    let out = Command::new(agent_binary())
        .args(["reload", "--control-socket"])
        .arg(&master.socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("unterminated") && said.contains("running one stays"),
        "{said}"
    );
    assert_eq!(master.status().unwrap().instances.len(), 2);

    // Removing VI_2 again stops it cleanly (its VIP goes), VI_1 still untouched.
    master
        .rewrite_config(&with_fifo(single_instance_config(200, "0.1")))
        .unwrap();
    let message = master.reload().unwrap();
    assert!(
        message.contains("1 instance(s) kept") && message.contains("1 stopped"),
        "{message}"
    );
    let gone = wait_for(2 * SEC, Duration::from_millis(20), || {
        (!lab.addresses(lab.router(0)).ok()?.contains(&VIP2)).then_some(())
    });
    assert!(
        gone.is_some(),
        "VI_2's VIP stayed after its instance was removed"
    );
    let mut lines = String::new();
    reader.read_to_string(&mut lines).ok();
    assert!(
        lines.contains("INSTANCE \"VI_2\" DELETED 200"),
        "a removed instance is reported DELETED: {lines}"
    );

    // A new priority (still above r2's) is taken in place: no flap, and r2 learns it at once;
    // with vrrp_notify_priority_changes the FIFO hears of it.
    let with_fifo = |config: String| {
        with_fifo(config).replace(
            "    router_id lab\n",
            "    router_id lab\n    vrrp_notify_priority_changes\n",
        )
    };
    master
        .rewrite_config(&with_fifo(single_instance_config(150, "0.1")))
        .unwrap();
    let message = master.reload().unwrap();
    assert!(message.contains("1 retuned in place"), "{message}");
    let learned = wait_for(2 * SEC, Duration::from_millis(20), || {
        let status = backup.status().ok()?;
        (status.instances[0].master.as_ref()?.priority == 150).then_some(())
    });
    assert!(learned.is_some(), "{:?}", backup.status());
    assert_eq!(
        master.status().unwrap().instances[0].effective_priority,
        150
    );
    let said = vrrp_lab::wait_for(2 * SEC, Duration::from_millis(20), || {
        let mut more = String::new();
        reader.read_to_string(&mut more).ok();
        lines.push_str(&more);
        lines
            .contains("INSTANCE \"VI_1\" MASTER_PRIORITY 150")
            .then_some(())
    });
    assert!(said.is_some(), "no priority change line: {lines}");

    // A VIP added to the running master is taken in place: the master adds and answers for
    // it while the VIP it already held stays put (the watcher would see a gap).
    let with_third = |config: String| {
        config.replace(
            "        10.0.0.100/24\n",
            &format!("        10.0.0.100/24\n        {VIP3}/24\n"),
        )
    };
    master
        .rewrite_config(&with_fifo(with_third(single_instance_config(150, "0.1"))))
        .unwrap();
    let message = master.reload().unwrap();
    assert!(message.contains("1 retuned in place"), "{message}");
    assert!(lab.addresses(lab.router(0)).unwrap().contains(&VIP3));
    assert_eq!(
        lab.arp_answerers(VIP3, Duration::from_millis(300)).unwrap(),
        vec![lab.router(0).mac],
        "the new VIP is answered by the master alone"
    );
    // And taken away again: only it goes.
    master
        .rewrite_config(&with_fifo(single_instance_config(150, "0.1")))
        .unwrap();
    master.reload().unwrap();
    assert!(!lab.addresses(lab.router(0)).unwrap().contains(&VIP3));
    assert!(
        lab.arp_answerers(VIP3, Duration::from_millis(300))
            .unwrap()
            .is_empty(),
        "a removed VIP is no longer answered"
    );

    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(
        lost.load(Ordering::Relaxed),
        0,
        "r1 lost the VIP during the reloads"
    );
    assert_eq!(
        stolen.load(Ordering::Relaxed),
        0,
        "r2 held the VIP during the reloads"
    );
    assert_eq!(
        transitions(),
        2,
        "VI_1 changed state: {}",
        master.log_text()
    );
    assert_eq!(master.state(), Some(State::Master));
    assert!(
        backup
            .wait_backup_of(Some(lab.router(0).addr.into()), SEC)
            .is_some()
    );
}
