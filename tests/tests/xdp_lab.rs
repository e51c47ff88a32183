//! The dataplane on real packets in the namespace lab: who answers ARP for the VIP when agents
//! crash, hang, restart or are flooded, and how the XDP attachment treats what it finds.

use std::time::{Duration, Instant};

use vrrp_agent::{
    dataplane::XdpMode,
    election::State,
    packet::{Advert, Arp},
};
use vrrp_common::timers;
use vrrp_lab::{
    Lab, Spec, VIP, frames, mac_string, require_root, single_instance_config, sleep_until, wait_for,
};

const SEC: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_millis(300);

fn macs(list: &[[u8; 6]]) -> Vec<String> {
    list.iter().map(mac_string).collect()
}

#[test]
fn an_unrelated_xdp_program_is_reported_not_replaced() {
    if !require_root("an_unrelated_xdp_program_is_reported_not_replaced") {
        return;
    }
    let lab = Lab::new("foreignxdp", 1).expect("lab");
    lab.attach_foreign_xdp(lab.router(0), "their_xdp").unwrap();
    let refused = lab.spawn_agent(lab.router(0), &single_instance_config(100, "0.1"));
    let error = match refused {
        Ok(agent) => panic!(
            "the agent ran over a foreign XDP program:\n{}",
            agent.log_text()
        ),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("already runs another XDP program (their_xdp"),
        "the refusal does not name the program:\n{error}"
    );
    assert_eq!(
        lab.xdp_program_name(lab.router(0)).unwrap().as_deref(),
        Some("their_xdp"),
        "the foreign program was replaced"
    );
}

#[test]
fn a_restarted_agent_replaces_what_a_crashed_one_left_and_a_clean_stop_detaches() {
    if !require_root("a_restarted_agent_replaces_what_a_crashed_one_left_and_a_clean_stop_detaches")
    {
        return;
    }
    let lab = Lab::new("restart", 2).expect("lab");
    let (mut master, backup) = lab.elected_pair("0.1");
    master.signal(libc::SIGKILL);
    master.wait_exit(5 * SEC);
    assert_eq!(
        lab.xdp_program_name(lab.router(0)).unwrap().as_deref(),
        Some("vrrp_xdp"),
        "the XDP program should outlive the agent to fence the node"
    );
    assert!(backup.wait_state(State::Master, 3 * SEC).is_some());
    // What an older daemon's crash may leave besides the program: the VIP for good.
    let r1 = &lab.router(0).ns;
    let _ = vrrp_lab::ip(r1, &["addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
    vrrp_lab::ip(r1, &["addr", "add", &format!("{VIP}/24"), "dev", "eth0"]).unwrap();

    // Restarted below r2's priority: it must come up BACKUP, adopting the interface.
    let mut restarted = lab
        .spawn_agent(lab.router(0), &single_instance_config(50, "0.1"))
        .expect("restart r1");
    assert!(
        restarted
            .log_text()
            .contains("replacing the XDP program a previous vrrp-agent left"),
        "{}",
        restarted.log_text()
    );
    let heard = restarted.wait_backup_of(Some(lab.router(1).addr.into()), 3 * SEC);
    assert!(heard.is_some(), "{:?}", restarted.status());
    assert_eq!(
        lab.arp_answerers(VIP, WINDOW).unwrap(),
        vec![lab.router(1).mac],
        "only the master answers for the VIP"
    );
    // The left-over VIP is removed, not kept by a backup.
    vrrp_lab::faults::assert_settled(
        &lab,
        "restart-after-crash",
        &[
            (lab.router(0), Some(&restarted)),
            (lab.router(1), Some(&backup)),
        ],
        &[VIP],
        2 * SEC,
    );

    // A clean stop takes the program off the interface at once.
    restarted.signal(libc::SIGTERM);
    assert!(restarted.wait_exit(5 * SEC).is_some());
    assert_eq!(lab.xdp_program_name(lab.router(0)).unwrap(), None);
}

#[test]
fn a_stopped_backup_agent_stays_backup_when_it_resumes() {
    if !require_root("a_stopped_backup_agent_stays_backup_when_it_resumes") {
        return;
    }
    let lab = Lab::new("stopbackup", 2).expect("lab");
    let (master, backup) = lab.elected_pair("0.1");
    let watch = lab.capture(&lab.client).unwrap();
    // Stopped for three master-down intervals while the master keeps advertising.
    backup.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_nanos(3 * timers::master_down_ns(3, 100, 10)));
    backup.signal(libc::SIGCONT);
    let r2 = lab.router(1).addr.octets();
    let advert_from_r2 =
        watch.wait_incoming(SEC, |f| f.len() > 34 && f[23] == 112 && f[26..30] == r2);
    assert!(advert_from_r2.is_none(), "the resumed backup advertised");
    assert_eq!(backup.state(), Some(State::Backup));
    assert_eq!(master.state(), Some(State::Master));
    assert!(!lab.addresses(lab.router(1)).unwrap().contains(&VIP));
}

#[test]
fn a_hung_master_agent_is_fenced_and_the_pair_converges_when_it_resumes() {
    if !require_root("a_hung_master_agent_is_fenced_and_the_pair_converges_when_it_resumes") {
        return;
    }
    let lab = Lab::new("hungmaster", 2).expect("lab");
    let (master, backup) = lab.elected_pair("0.1");
    let stopped = Instant::now();
    master.signal(libc::SIGSTOP);
    let bound = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    assert!(
        backup.wait_state(State::Master, bound + 2 * SEC).is_some(),
        "r2 did not take over from a hung master"
    );
    sleep_until(stopped + bound + Duration::from_millis(100));
    // r1 still holds the VIP (its agent is frozen, the lifetime has not run out) and still
    // believes it is master, but its kernel has stopped answering: one answerer.
    assert!(lab.addresses(lab.router(0)).unwrap().contains(&VIP));
    let answerers = lab.arp_answerers(VIP, WINDOW).unwrap();
    assert_eq!(answerers, vec![lab.router(1).mac], "{:?}", macs(&answerers));

    // Resumed, the higher-priority r1 preempts again and exactly one node answers.
    master.signal(libc::SIGCONT);
    let converged = wait_for(3 * SEC, Duration::from_millis(50), || {
        (master.state() == Some(State::Master) && backup.state() == Some(State::Backup))
            .then_some(())
    });
    assert!(
        converged.is_some(),
        "{:?} / {:?}",
        master.state(),
        backup.state()
    );
    let answerers = lab.arp_answerers(VIP, WINDOW).unwrap();
    assert_eq!(answerers, vec![lab.router(0).mac], "{:?}", macs(&answerers));
}

#[test]
fn floods_of_arp_requests_and_invalid_adverts_do_not_disturb_the_election() {
    if !require_root("floods_of_arp_requests_and_invalid_adverts_do_not_disturb_the_election") {
        return;
    }
    let lab = Lab::new("flood", 2).expect("lab");
    let (master, backup) = lab.elected_pair("0.1");
    let status = master.status().unwrap();
    assert_eq!(
        status.instances[0].xdp_mode,
        XdpMode::Generic,
        "veth runs generic XDP"
    );

    let client = lab.capture(&lab.client).unwrap();
    let arp = frames::arp_request(lab.client.mac, lab.client.addr, VIP);
    // Claims priority 255 from the client, but with a broken checksum: must not count.
    let forged = frames::advert_frame(
        lab.client.mac,
        lab.client.addr,
        &Advert::v3(51, 255, 10, vec![VIP]),
        frames::Flaw::BadChecksum,
    );
    const N: u64 = 5000;
    let (replies, dropped, bad) = (
        master.instance_counter("arp-replies"),
        backup.instance_counter("arp-requests-dropped"),
        backup.instance_counter("checksum-errors"),
    );
    let start = Instant::now();
    for _ in 0..N {
        client.send(&arp).unwrap();
        client.send(&forged).unwrap();
    }
    eprintln!("sent {} frames in {:?}", 2 * N, start.elapsed());
    // Counters are read once the flood has drained.
    let settled = wait_for(5 * SEC, Duration::from_millis(100), || {
        (master.instance_counter("arp-replies") - replies >= N * 9 / 10).then_some(())
    });
    let replies = master.instance_counter("arp-replies") - replies;
    let dropped = backup.instance_counter("arp-requests-dropped") - dropped;
    let bad = backup.instance_counter("checksum-errors") - bad;
    eprintln!(
        "{replies} ARP replies by r1, {dropped} requests dropped by r2, {bad} forged adverts dropped by r2"
    );
    assert!(
        settled.is_some(),
        "the master answered only {replies} of {N} ARP requests"
    );
    assert!(
        dropped >= N * 9 / 10,
        "the backup dropped only {dropped} of {N}"
    );
    assert!(
        bad >= N * 9 / 10,
        "the backup counted only {bad} of {N} forged adverts"
    );
    assert_eq!(master.state(), Some(State::Master));
    assert_eq!(
        backup.wait_backup_of(Some(lab.router(0).addr.into()), SEC),
        Some(lab.router(0).addr.into()),
        "the backup follows r1 still"
    );
    assert_eq!(
        lab.arp_answerers(VIP, WINDOW).unwrap(),
        vec![lab.router(0).mac]
    );
}

/// Whether a frame is IPv4 from `src` with protocol `proto` and Ethernet source `mac`.
fn ipv4_from(f: &[u8], src: std::net::Ipv4Addr, proto: u8, mac: [u8; 6]) -> bool {
    f.len() >= 34
        && f[12..14] == [8, 0]
        && f[23] == proto
        && f[26..30] == src.octets()
        && f[6..12] == mac
}

#[test]
fn use_vmac_the_client_reaches_the_vip_through_the_virtual_mac_across_a_failover() {
    if !require_root(
        "use_vmac_the_client_reaches_the_vip_through_the_virtual_mac_across_a_failover",
    ) {
        return;
    }
    let lab = Lab::new("vmac", 2).expect("lab");
    // Every frame reaches every node, so the backup sees (and must drop) frames to the VMAC.
    lab.bridge_as_hub().unwrap();
    let vmac = [0, 0, 0x5e, 0, 1, 51];
    let config = |priority| {
        Spec {
            extra: "    use_vmac\n".into(),
            ..Spec::v3(priority, "0.1")
        }
        .config()
    };
    let client = lab.capture(&lab.client).unwrap();
    let mut r1 = lab.spawn_agent(lab.router(0), &config(200)).unwrap();
    let r2 = lab.spawn_agent(lab.router(1), &config(100)).unwrap();
    assert!(r1.wait_state(State::Master, 5 * SEC).is_some());
    assert!(
        r2.wait_backup_of(Some(lab.router(0).addr.into()), 5 * SEC)
            .is_some()
    );
    assert_eq!(
        r1.status().unwrap().instances[0].vmac.as_deref(),
        Some("00:00:5e:00:01:33")
    );
    // What the client sees of the master `holder`: its GARP and adverts from the VMAC, the
    // VIP answering pings through the VMAC, echo replies from it, and one ARP answer.
    let served_through_vmac = |holder: std::net::Ipv4Addr| {
        let garp = |f: &[u8]| {
            Arp::parse_frame(f).is_some_and(|a| a.spa == VIP && a.tpa == VIP && a.sha == vmac)
                && f[6..12] == vmac
        };
        assert!(
            client.wait_incoming(2 * SEC, garp).is_some(),
            "no GARP from the VMAC ({holder})"
        );
        assert!(
            client
                .wait_incoming(SEC, |f| ipv4_from(f, holder, 112, vmac))
                .is_some(),
            "{holder}'s adverts do not carry the VMAC"
        );
        assert!(
            lab.client_ping(VIP, SEC).unwrap(),
            "no echo reply from the VIP ({holder})"
        );
        assert_eq!(lab.client_neighbour(VIP).unwrap(), Some(vmac));
        assert!(
            client
                .wait_incoming(SEC, |f| ipv4_from(f, VIP, 1, vmac))
                .is_some(),
            "echo replies do not come from the VMAC ({holder})"
        );
        assert_eq!(
            lab.arp_answerers(VIP, WINDOW).unwrap(),
            vec![vmac],
            "one ARP answer"
        );
    };
    served_through_vmac(lab.router(0).addr);
    let dropped = r2.instance_counter("vmac-frames-dropped");
    assert!(
        dropped > 0,
        "the backup did not drop frames sent to the VMAC"
    );

    // Failover: r2 takes the VMAC over; the client's neighbour entry does not even change, and
    // the dead r1's kernel is fenced (one answer, checked inside).
    r1.signal(libc::SIGKILL);
    r1.wait_exit(5 * SEC);
    assert!(r2.wait_state(State::Master, 3 * SEC).is_some());
    served_through_vmac(lab.router(1).addr);
}

#[test]
fn observe_mode_lets_a_capture_on_the_host_see_the_adverts_it_counts() {
    if !require_root("observe_mode_lets_a_capture_on_the_host_see_the_adverts_it_counts") {
        return;
    }
    let lab = Lab::new("observe", 3).expect("lab");
    let master = lab
        .spawn_agent(lab.router(0), &single_instance_config(200, "0.1"))
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    // r2 absorbs adverts (the default), r3 observes: both count them, only r3's stack sees them.
    let observing = single_instance_config(100, "0.1").replace(
        "    router_id lab\n",
        "    router_id lab\n    vrrp_agent_observe\n",
    );
    assert_ne!(observing, single_instance_config(100, "0.1"));
    let absorbing = lab
        .spawn_agent(lab.router(1), &single_instance_config(100, "0.1"))
        .unwrap();
    let observer = lab.spawn_agent(lab.router(2), &observing).unwrap();
    let r1 = Some(lab.router(0).addr.into());
    assert!(absorbing.wait_backup_of(r1, 3 * SEC).is_some());
    assert!(observer.wait_backup_of(r1, 3 * SEC).is_some());
    let from_r1 =
        |f: &[u8]| f.len() > 34 && f[23] == 112 && f[26..30] == lab.router(0).addr.octets();
    let (absorbed, observed) = (
        lab.capture(lab.router(1)).unwrap(),
        lab.capture(lab.router(2)).unwrap(),
    );
    assert!(
        observed.wait_incoming(SEC, from_r1).is_some(),
        "observe mode hid the adverts"
    );
    assert!(
        absorbed.wait_incoming(SEC, from_r1).is_none(),
        "absorbed adverts reached the stack"
    );
    assert!(absorbing.counter("valid-adverts") > 0 && observer.counter("valid-adverts") > 0);
}

/// One unicast instance block: VRID 51 on eth0 from `src` to `peer`, holding `vip`.
fn unicast_instance(
    name: &str,
    priority: u8,
    src: std::net::Ipv4Addr,
    peer: std::net::Ipv4Addr,
    vip: &str,
) -> String {
    format!(
        "vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id 51\n    priority {priority}\n    advert_int 0.1\n    unicast_src_ip {src}\n    unicast_peer {{\n        {peer}\n    }}\n    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n"
    )
}

#[test]
fn unicast_instances_sharing_a_vrid_on_one_interface_are_independent_routers() {
    if !require_root("unicast_instances_sharing_a_vrid_on_one_interface_are_independent_routers") {
        return;
    }
    let lab = Lab::new("sharedvrid", 3).expect("lab");
    let (r1, r2, r3) = (lab.router(0).addr, lab.router(1).addr, lab.router(2).addr);
    let global = "global_defs {\n    vrrp_version 3\n}\n";
    // r1 runs VRID 51 twice: with r2 (r1 wins, 10.0.0.100) and with r3 (r3 wins, 10.0.0.101).
    let hub = format!(
        "{global}{}{}",
        unicast_instance("WITH_R2", 200, r1, r2, "10.0.0.100/24"),
        unicast_instance("WITH_R3", 50, r1, r3, "10.0.0.101/24")
    );
    let a1 = lab.spawn_agent(lab.router(0), &hub).unwrap();
    let a2 = lab
        .spawn_agent(
            lab.router(1),
            &format!(
                "{global}{}",
                unicast_instance("A", 100, r2, r1, "10.0.0.100/24")
            ),
        )
        .unwrap();
    let a3 = lab
        .spawn_agent(
            lab.router(2),
            &format!(
                "{global}{}",
                unicast_instance("B", 100, r3, r1, "10.0.0.101/24")
            ),
        )
        .unwrap();
    let settled = wait_for(5 * SEC, Duration::from_millis(50), || {
        (a1.instance_state("WITH_R2") == Some(State::Master)
            && a1.instance_state("WITH_R3") == Some(State::Backup)
            && a2.instance_state("A") == Some(State::Backup)
            && a3.instance_state("B") == Some(State::Master))
        .then_some(())
    });
    assert!(
        settled.is_some(),
        "r1 {:?}/{:?}, r2 {:?}, r3 {:?}",
        a1.instance_state("WITH_R2"),
        a1.instance_state("WITH_R3"),
        a2.instance_state("A"),
        a3.instance_state("B")
    );
    // And they stay so: r1's master instance wakes the daemon every interval, which must not
    // make its backup instance act on a stale master-down deadline, not even for a moment
    // (a blip between two polls still shows in the log).
    let took_over = || {
        a1.log_text()
            .matches("(WITH_R3) Entering MASTER STATE")
            .count()
    };
    let before = took_over();
    std::thread::sleep(1500 * Duration::from_millis(1));
    assert_eq!(a1.instance_state("WITH_R3"), Some(State::Backup));
    assert_eq!(
        took_over(),
        before,
        "WITH_R3 took over from a live master:\n{}",
        a1.log_text()
    );
    let status = a1.status().unwrap();
    let masters: Vec<_> = status
        .instances
        .iter()
        .map(|i| i.master.as_ref().map(|m| m.address))
        .collect();
    assert_eq!(masters[1], Some(r3.into()), "WITH_R3 follows r3");
    let vip2: std::net::Ipv4Addr = "10.0.0.101".parse().unwrap();
    assert_eq!(
        lab.arp_answerers(VIP, WINDOW).unwrap(),
        vec![lab.router(0).mac]
    );
    assert_eq!(
        lab.arp_answerers(vip2, WINDOW).unwrap(),
        vec![lab.router(2).mac]
    );
}

#[test]
fn the_tc_ingress_fallback_answers_fences_and_is_replaced_like_xdp() {
    if !require_root("the_tc_ingress_fallback_answers_fences_and_is_replaced_like_xdp") {
        return;
    }
    let lab = Lab::new("tcmode", 2).expect("lab");
    let mut master = lab
        .spawn_agent_with(
            lab.router(0),
            &single_instance_config(200, "0.1"),
            &["--xdp-mode", "tc"],
        )
        .unwrap();
    let backup = lab
        .spawn_agent_with(
            lab.router(1),
            &single_instance_config(100, "0.1"),
            &["--xdp-mode", "tc"],
        )
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    assert!(
        backup
            .wait_backup_of(Some(lab.router(0).addr.into()), 3 * SEC)
            .is_some()
    );
    assert_eq!(master.status().unwrap().instances[0].xdp_mode, XdpMode::Tc);
    assert_eq!(
        lab.xdp_program_name(lab.router(0)).unwrap(),
        None,
        "no XDP in TC mode"
    );
    // The backup's kernel absorbs the adverts and the master's answers ARP, from TC.
    assert!(backup.counter("valid-adverts") > 0);
    assert_eq!(
        lab.arp_answerers(VIP, WINDOW).unwrap(),
        vec![lab.router(0).mac]
    );
    assert!(master.instance_counter("arp-replies") > 0);
    assert!(backup.instance_counter("arp-requests-dropped") > 0);

    // The cls_bpf filter outlives a SIGKILLed agent and fences its node.
    let killed = Instant::now();
    master.signal(libc::SIGKILL);
    master.wait_exit(5 * SEC);
    assert!(backup.wait_state(State::Master, 3 * SEC).is_some());
    let bound = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    sleep_until(killed + bound + Duration::from_millis(100));
    assert!(lab.addresses(lab.router(0)).unwrap().contains(&VIP));
    assert_eq!(
        lab.arp_answerers(VIP, WINDOW).unwrap(),
        vec![lab.router(1).mac]
    );

    // A restart in XDP mode removes the leftover filter (one receive program, not two).
    let restarted = lab
        .spawn_agent(lab.router(0), &single_instance_config(50, "0.1"))
        .unwrap();
    assert!(
        restarted
            .log_text()
            .contains("removed the TC program a previous vrrp-agent left"),
        "{}",
        restarted.log_text()
    );
    assert!(
        restarted
            .wait_backup_of(Some(lab.router(1).addr.into()), 3 * SEC)
            .is_some()
    );
    let before = restarted.counter("valid-adverts");
    std::thread::sleep(SEC);
    let counted = restarted.counter("valid-adverts") - before;
    assert!(
        (5..=15).contains(&counted),
        "{counted} adverts counted in 1 s at 100 ms: counted twice?"
    );
}
