//! Two agents elect a master over real VRRPv3 packets, and the VIP moves when it dies.
//!
//! Each test builds its own lab (namespaces named after the test and the process), so they
//! run in parallel and clean up even when they fail.

use std::time::{Duration, Instant};

use vrrp_agent::{
    election::State,
    packet::{Arp, NeighbourAdvert},
};
use vrrp_common::timers;
use vrrp_lab::{
    Lab, Spec, VIP, VIP6, frames, mac_string, require_root, single_instance_config, wait_for,
};

const SEC: Duration = Duration::from_secs(1);

/// Asks for the VIP's MAC with a crafted ARP request from the client.
fn arp_for_vip(lab: &Lab) -> Option<[u8; 6]> {
    let cap = lab.capture(&lab.client).expect("client capture");
    let request = frames::arp_request(lab.client.mac, lab.client.addr, VIP);
    for _ in 0..3 {
        cap.send(&request).expect("send ARP request");
        let reply = cap.wait_incoming(SEC, |f| {
            Arp::parse_frame(f)
                .is_some_and(|a| a.op == vrrp_agent::packet::ARP_REPLY && a.spa == VIP)
        });
        if let Some(frame) = reply {
            return Arp::parse_frame(&frame.data).map(|a| a.sha);
        }
    }
    None
}

#[test]
fn higher_priority_becomes_master_holds_the_vip_and_answers_arp() {
    if !require_root("higher_priority_becomes_master_holds_the_vip_and_answers_arp") {
        return;
    }
    let lab = Lab::new("elect", 2).expect("lab");
    let (master, backup) = lab.elected_pair("0.1");
    assert!(
        lab.addresses(lab.router(0)).unwrap().contains(&VIP),
        "MASTER does not hold the VIP"
    );
    assert!(
        !lab.addresses(lab.router(1)).unwrap().contains(&VIP),
        "BACKUP holds the VIP"
    );
    assert_eq!(
        arp_for_vip(&lab),
        Some(lab.router(0).mac),
        "the VIP does not resolve to r1"
    );
    // The status names the master the backup listens to, and the VIP.
    let status = backup.status().unwrap();
    assert_eq!(status.instances[0].virtual_addresses[0].address, VIP);
    assert!(status.counters["valid-adverts"] > 0);
    // The backup joined the VRRP group, so real NICs and switches deliver adverts.
    let maddr = std::process::Command::new("ip")
        .args(["-n", &lab.router(1).ns, "maddr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&maddr.stdout).contains("224.0.0.18"));
    drop(master);
}

#[test]
fn sigkill_of_the_master_moves_the_vip_within_master_down_interval() {
    if !require_root("sigkill_of_the_master_moves_the_vip_within_master_down_interval") {
        return;
    }
    let lab = Lab::new("sigkill", 2).expect("lab");
    let (mut master, backup) = lab.elected_pair("0.1");
    // The client learns the VIP -> r1 through its own ARP resolution.
    lab.client_poke(VIP).unwrap();
    let learned = wait_for(3 * SEC, Duration::from_millis(20), || {
        lab.client_neighbour(VIP).ok().flatten()
    });
    assert_eq!(learned, Some(lab.router(0).mac));
    let client = lab.capture(&lab.client).unwrap();

    let killed = Instant::now();
    master.signal(libc::SIGKILL);
    master.wait_exit(5 * SEC);
    let bound = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    // The dead agent's XDP program outlives it and fences the node: once the peers'
    // Master_Down_Interval (plus 100 ms) has passed, r1 no longer answers ARP for the VIP,
    // although the address is still on its interface until its lifetime runs out.
    vrrp_lab::sleep_until(killed + bound + Duration::from_millis(100));
    assert!(
        lab.addresses(lab.router(0)).unwrap().contains(&VIP),
        "the VIP lifetime (3 s) should still run: this checks the XDP fence, not the lifetime"
    );
    let answerers = lab.arp_answerers(VIP, Duration::from_millis(300)).unwrap();
    assert!(
        !answerers.contains(&lab.router(0).mac),
        "the dead master still answers ARP for the VIP: {:?}",
        answerers.iter().map(mac_string).collect::<Vec<_>>()
    );
    let took = backup.wait_state(State::Master, bound + 2 * SEC);
    let took = took.unwrap_or_else(|| panic!("r2 did not take over within {bound:?} + 2 s"));
    eprintln!(
        "takeover after SIGKILL: {:?} (master-down interval {bound:?})",
        killed.elapsed()
    );
    assert!(took <= bound + 2 * SEC);

    assert!(
        lab.addresses(lab.router(1)).unwrap().contains(&VIP),
        "new MASTER lacks the VIP"
    );
    let garp = client.wait_incoming(2 * SEC, |f| {
        Arp::parse_frame(f)
            .is_some_and(|a| a.spa == VIP && a.tpa == VIP && a.sha == lab.router(1).mac)
    });
    assert!(garp.is_some(), "no gratuitous ARP from r2 for the VIP");
    let moved = wait_for(2 * SEC, Duration::from_millis(20), || {
        (lab.client_neighbour(VIP).ok().flatten() == Some(lab.router(1).mac)).then_some(())
    });
    assert!(
        moved.is_some(),
        "client neighbour entry still {:?}, expected {}",
        lab.client_neighbour(VIP)
            .ok()
            .flatten()
            .map(|m| mac_string(&m)),
        mac_string(&lab.router(1).mac)
    );
    assert_eq!(
        lab.arp_answerers(VIP, Duration::from_millis(300)).unwrap(),
        vec![lab.router(1).mac],
        "exactly the new master answers ARP for the VIP"
    );
    // The crashed node's VIP had a finite lifetime nobody renews: it is gone within seconds.
    let lifetime = Duration::from_secs(u64::from(vrrp_agent::net::link::VIP_LIFETIME_S));
    let gone = wait_for(lifetime + 2 * SEC, Duration::from_millis(50), || {
        (!lab.addresses(lab.router(0)).ok()?.contains(&VIP)).then_some(())
    });
    assert!(
        gone.is_some(),
        "the crashed master still holds the VIP after its lifetime"
    );
    assert!(
        lab.addresses(lab.router(1)).unwrap().contains(&VIP),
        "the new master's VIP expired: not renewed"
    );
}

#[test]
fn sigterm_of_the_master_hands_over_after_skew_time() {
    if !require_root("sigterm_of_the_master_hands_over_after_skew_time") {
        return;
    }
    let lab = Lab::new("sigterm", 2).expect("lab");
    // 0.5 s adverts: master-down is 1.80 s, skew 0.30 s, so the two paths are far apart.
    let (mut master, backup) = lab.elected_pair("0.5");
    let master_down = Duration::from_nanos(timers::master_down_ns(3, 100, 50));
    let skew = Duration::from_nanos(timers::skew_ns(3, 100, 50));

    master.signal(libc::SIGTERM);
    let took = backup
        .wait_state(State::Master, master_down + 2 * SEC)
        .expect("no takeover");
    eprintln!("takeover after SIGTERM: {took:?} (skew {skew:?}, master-down {master_down:?})");
    assert!(
        took < skew + (master_down - skew) / 2,
        "takeover took {took:?}: the priority-0 advert was not honoured (skew {skew:?})"
    );
    let status = master
        .wait_exit(5 * SEC)
        .expect("r1 did not exit on SIGTERM");
    assert!(status.success(), "r1 exited with {status}");
    assert!(
        !lab.addresses(lab.router(0)).unwrap().contains(&VIP),
        "r1 left the VIP behind"
    );
    assert!(lab.addresses(lab.router(1)).unwrap().contains(&VIP));
}

#[test]
fn unicast_peers_elect_without_multicast_and_fail_over() {
    if !require_root("unicast_peers_elect_without_multicast_and_fail_over") {
        return;
    }
    let lab = Lab::new("unicast", 2).expect("lab");
    let (a, b) = (lab.router(0).addr, lab.router(1).addr);
    let client = lab.capture(&lab.client).unwrap();
    let mut master = lab
        .spawn_agent(
            lab.router(0),
            &Spec::v3(200, "0.1").with_unicast(a, &[b]).config(),
        )
        .unwrap();
    let backup = lab
        .spawn_agent(
            lab.router(1),
            &Spec::v3(100, "0.1").with_unicast(b, &[a]).config(),
        )
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    let heard = wait_for(5 * SEC, Duration::from_millis(10), || {
        let s = backup.status().ok()?;
        (s.instances[0].master.as_ref()?.address == a).then_some(())
    });
    assert!(
        heard.is_some(),
        "the backup did not hear the unicast master"
    );
    // Nothing goes to 224.0.0.18: the client (on the same bridge) sees no multicast advert.
    let multicast = client.wait_incoming(SEC, |f| {
        f.len() > 34 && f[23] == 112 && f[30..34] == [224, 0, 0, 18]
    });
    assert!(
        multicast.is_none(),
        "a multicast advert was sent with unicast peers configured"
    );

    master.signal(libc::SIGKILL);
    master.wait_exit(5 * SEC);
    let bound = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    assert!(backup.wait_state(State::Master, bound + 2 * SEC).is_some());
}

#[test]
fn ipv6_pair_elects_announces_with_unsolicited_na_and_fails_over() {
    if !require_root("ipv6_pair_elects_announces_with_unsolicited_na_and_fails_over") {
        return;
    }
    let lab = Lab::new("ipv6", 2).expect("lab");
    let mut master = lab
        .spawn_agent(lab.router(0), &Spec::v6(200, "0.1").config())
        .unwrap();
    let backup = lab
        .spawn_agent(lab.router(1), &Spec::v6(100, "0.1").config())
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    let heard = wait_for(5 * SEC, Duration::from_millis(10), || {
        let s = backup.status().ok()?;
        let m = s.instances[0].master.clone()?;
        (s.instances[0].state == State::Backup && m.address.is_ipv6()).then_some(m)
    })
    .expect("the backup did not hear the IPv6 master");
    assert!(
        heard.address.to_string().starts_with("fe80::"),
        "adverts must come from the link-local address"
    );
    assert!(lab.addresses_v6(lab.router(0)).unwrap().contains(&VIP6));
    assert!(!lab.addresses_v6(lab.router(1)).unwrap().contains(&VIP6));
    // Neighbor Solicitations for the VIP: answered in r1's kernel, dropped by r2's.
    let window = Duration::from_millis(300);
    assert_eq!(
        lab.nd_answerers(VIP6, window).unwrap(),
        vec![lab.router(0).mac]
    );
    assert!(master.instance_counter("nd-replies") > 0);
    assert!(backup.instance_counter("nd-solicits-dropped") > 0);

    let client = lab.capture(&lab.client).unwrap();
    master.signal(libc::SIGKILL);
    master.wait_exit(5 * SEC);
    let bound = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    assert!(
        backup.wait_state(State::Master, bound + 2 * SEC).is_some(),
        "no IPv6 takeover"
    );
    assert!(lab.addresses_v6(lab.router(1)).unwrap().contains(&VIP6));
    let na = client
        .wait_incoming(2 * SEC, |f| {
            NeighbourAdvert::parse_frame(f).is_some_and(|na| na.target == VIP6)
        })
        .and_then(|f| NeighbourAdvert::parse_frame(&f.data))
        .expect("no unsolicited NA for the VIP from the new master");
    assert_eq!(
        (na.router, na.solicited, na.override_),
        (true, false, true),
        "{na:?}"
    );
    assert_eq!(na.target_mac, Some(lab.router(1).mac));
    // The dead r1 is fenced: only r2 answers solicitations now.
    assert_eq!(
        lab.nd_answerers(VIP6, window).unwrap(),
        vec![lab.router(1).mac]
    );
    assert_eq!(na.dst, "ff02::1".parse::<std::net::Ipv6Addr>().unwrap());
}

#[test]
fn interface_down_is_fault_and_the_backup_takes_over() {
    if !require_root("interface_down_is_fault_and_the_backup_takes_over") {
        return;
    }
    let lab = Lab::new("fault", 2).expect("lab");
    let master = lab
        .spawn_agent(lab.router(0), &single_instance_config(200, "0.1"))
        .unwrap();
    let backup = lab
        .spawn_agent(lab.router(1), &single_instance_config(100, "0.1"))
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    assert!(backup.wait_state(State::Backup, 5 * SEC).is_some());

    vrrp_lab::ip(&lab.router(0).ns, &["link", "set", "eth0", "down"]).unwrap();
    assert!(
        master.wait_state(State::Fault, 2 * SEC).is_some(),
        "no FAULT on link down"
    );
    assert!(
        !lab.addresses(lab.router(0)).unwrap().contains(&VIP),
        "a FAULT node kept the VIP"
    );
    let bound = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    assert!(backup.wait_state(State::Master, bound + 2 * SEC).is_some());

    vrrp_lab::ip(&lab.router(0).ns, &["link", "set", "eth0", "up"]).unwrap();
    // Back from FAULT as BACKUP, then preempts with its higher priority.
    assert!(
        master.wait_state(State::Master, 5 * SEC).is_some(),
        "no recovery after link up"
    );
    assert!(backup.wait_state(State::Backup, 2 * SEC).is_some());
    assert!(lab.addresses(lab.router(0)).unwrap().contains(&VIP));
    // One of the fault suite's scenarios: the master's link down and up again.
    vrrp_lab::faults::assert_settled(
        &lab,
        "master-link-down-up",
        &[
            (lab.router(0), Some(&master)),
            (lab.router(1), Some(&backup)),
        ],
        &[VIP],
        5 * SEC,
    );
}

#[test]
fn virtual_address_options_and_excluded_addresses_are_held_but_not_advertised() {
    if !require_root("virtual_address_options_and_excluded_addresses_are_held_but_not_advertised") {
        return;
    }
    let lab = Lab::new("vipopts", 1).expect("lab");
    let client = lab.capture(&lab.client).unwrap();
    let mut spec = Spec::v3(255, "0.1");
    spec.vip = format!("{VIP}/24\n        10.0.0.101/24 label eth0:vip scope global");
    spec.extra = "    virtual_ipaddress_excluded {\n        192.0.2.1/32\n    }\n".into();
    let mut agent = lab.spawn_agent(lab.router(0), &spec.config()).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    // The addresses follow the state change (installed off the election's loop).
    let wanted: Vec<std::net::Ipv4Addr> = ["10.0.0.100", "10.0.0.101", "192.0.2.1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let held = vrrp_lab::wait_for(2 * SEC, Duration::from_millis(10), || {
        let held = lab.addresses(lab.router(0)).ok()?;
        wanted.iter().all(|a| held.contains(a)).then_some(held)
    });
    assert!(held.is_some(), "not all of {wanted:?} held after 2 s");
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            &lab.router(0).ns,
            "-4",
            "addr",
            "show",
            "to",
            "10.0.0.101",
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("scope global") && shown.contains("eth0:vip"),
        "{shown}"
    );
    // The advert lists exactly the two virtual_ipaddress entries, not the excluded one.
    let advert = client
        .wait_incoming(2 * SEC, |f| f.len() > 34 && f[23] == 112)
        .expect("no advert");
    assert_eq!(advert.data[34 + 3], 2, "address count in the advert");
    agent.signal(libc::SIGTERM);
    agent.wait_exit(5 * SEC).expect("exit");
    let left = lab.addresses(lab.router(0)).unwrap();
    assert_eq!(
        left,
        vec![lab.router(0).addr],
        "addresses left behind: {left:?}"
    );
}

#[test]
fn preempt_delay_holds_a_higher_priority_backup_behind_a_lower_master() {
    if !require_root("preempt_delay_holds_a_higher_priority_backup_behind_a_lower_master") {
        return;
    }
    let lab = Lab::new("pdelay", 2).expect("lab");
    // r1 runs no agent: the test speaks for a priority-100 master.
    let r1 = lab.router(0).clone();
    let _stream = vrrp_lab::frames::AdvertStream::start(
        lab.capture(&r1).unwrap(),
        r1.mac,
        r1.addr,
        vrrp_agent::packet::Advert::v3(51, 100, 10, vec![VIP]),
        Duration::from_millis(10),
    );
    let mut spec = Spec::v3(200, "0.1");
    spec.extra = "    preempt_delay 1.5\n".into();
    let started = Instant::now();
    let agent = lab.spawn_agent(lab.router(1), &spec.config()).unwrap();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        agent.state(),
        Some(State::Backup),
        "preempted before preempt_delay ran out"
    );
    assert!(
        agent.wait_state(State::Master, 4 * SEC).is_some(),
        "never preempted"
    );
    let took = started.elapsed();
    eprintln!("preempted {took:?} after start (preempt_delay 1.5 s)");
    assert!(
        took >= Duration::from_millis(1400),
        "preempted after {took:?}"
    );
}

#[test]
fn accept_mode_the_master_answers_traffic_to_the_vip() {
    if !require_root("accept_mode_the_master_answers_traffic_to_the_vip") {
        return;
    }
    let lab = Lab::new("accept", 1).expect("lab");
    let agent = lab
        .spawn_agent(lab.router(0), &Spec::v3(255, "0.1").config())
        .unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    // keepalived's default accept mode: the master's stack answers for the VIP. A TCP
    // connection to a closed port is refused at once (RST); a dropped one would time out.
    let refused = vrrp_lab::run_in(&lab.client.ns, || {
        let addr = std::net::SocketAddr::from((VIP, 9));
        std::net::TcpStream::connect_timeout(&addr, 2 * SEC).map_err(|e| e.kind())
    })
    .unwrap();
    assert_eq!(refused.err(), Some(std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn no_accept_a_non_owner_master_answers_arp_but_drops_traffic_to_the_vip() {
    if !require_root("no_accept_a_non_owner_master_answers_arp_but_drops_traffic_to_the_vip") {
        return;
    }
    let lab = Lab::new("noaccept", 1).expect("lab");
    let mut spec = Spec::v3(200, "0.1");
    spec.extra = "    no_accept\n".into();
    let agent = lab.spawn_agent(lab.router(0), &spec.config()).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    assert_eq!(
        lab.arp_answerers(VIP, Duration::from_millis(300)).unwrap(),
        vec![lab.router(0).mac],
        "a no_accept master still answers ARP"
    );
    let before = agent.instance_counter("vip-traffic-dropped");
    assert!(
        !lab.client_ping(VIP, SEC).unwrap(),
        "the VIP answered a ping under no_accept"
    );
    assert!(agent.instance_counter("vip-traffic-dropped") > before);
    // Its own address is not a VIP: unaffected.
    assert!(lab.client_ping(lab.router(0).addr, SEC).unwrap());
}

#[test]
fn virtual_routes_follow_the_master() {
    if !require_root("virtual_routes_follow_the_master") {
        return;
    }
    let lab = Lab::new("vroutes", 1).expect("lab");
    let mut spec = Spec::v3(255, "0.1");
    spec.extra = "    virtual_routes {\n        192.0.2.0/24 via 10.0.0.254 metric 7\n        blackhole 198.51.100.0/24\n    }\n    virtual_rules {\n        from 10.0.0.100 table 100 priority 1000\n    }\n".into();
    let mut agent = lab.spawn_agent(lab.router(0), &spec.config()).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    let routes = || {
        let show = |what: &str| {
            let out = std::process::Command::new("ip")
                .args(["-n", &lab.router(0).ns, what, "show"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        show("route") + &show("rule")
    };
    let shown = routes();
    assert!(
        shown.contains("192.0.2.0/24 via 10.0.0.254") && shown.contains("metric 7"),
        "{shown}"
    );
    assert!(shown.contains("blackhole 198.51.100.0/24"), "{shown}");
    assert!(
        shown.contains("1000:\tfrom 10.0.0.100 lookup 100"),
        "{shown}"
    );
    agent.signal(libc::SIGTERM);
    agent.wait_exit(5 * SEC).expect("exit");
    let shown = routes();
    assert!(
        !shown.contains("192.0.2.0")
            && !shown.contains("198.51.100.0")
            && !shown.contains("lookup 100"),
        "routes or rules left behind:\n{shown}"
    );
}
