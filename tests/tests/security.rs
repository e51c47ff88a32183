//! Security on the wire: what a stranger on the LAN can and cannot do to an instance.

use std::time::Duration;

use vrrp_agent::{election::State, packet::Advert};
use vrrp_common::timers;
use vrrp_lab::{
    Lab, Spec, VIP,
    frames::{AdvertStream, unicast_advert_frame},
    require_root, wait_for,
};

const SEC: Duration = Duration::from_secs(1);

/// With `check_unicast_src`, adverts from a source outside `unicast_peer` are dropped in XDP
/// (and counted): a stranger claiming priority 250 does not hold the backup, which takes
/// over once its peer is silent, and then follows its peer again when it speaks.
#[test]
fn check_unicast_src_drops_a_strangers_adverts_in_the_kernel() {
    if !require_root("check_unicast_src_drops_a_strangers_adverts_in_the_kernel") {
        return;
    }
    let lab = Lab::new("unisrc", 3).expect("lab");
    let (peer, me, stranger) = (
        lab.router(0).clone(),
        lab.router(1).clone(),
        lab.router(2).clone(),
    );
    let mut spec = Spec::v3(100, "0.1").with_unicast(me.addr, &[peer.addr]);
    spec.extra = "    check_unicast_src\n".into();
    let stream = |from: &vrrp_lab::Node| {
        let frame = unicast_advert_frame(
            (from.mac, from.addr),
            (me.mac, me.addr),
            &Advert::v3(51, 250, 10, vec![VIP]),
        );
        AdvertStream::start_with(
            lab.capture(from).unwrap(),
            Duration::from_millis(100),
            move |_| frame.clone(),
        )
    };
    let strangers = stream(&stranger);
    let agent = lab.spawn_agent(&me, &spec.config()).unwrap();
    let master_down = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    assert!(
        agent
            .wait_state(State::Master, master_down + 3 * SEC)
            .is_some(),
        "a stranger's adverts held the backup\n{}",
        agent.log_text()
    );
    assert!(
        agent.counter("unicast-source-errors") > 0,
        "the stranger's adverts were not counted as unicast source errors"
    );
    assert_eq!(
        agent.instance_counter("valid-adverts"),
        0,
        "a stranger's advert counted"
    );

    // The configured peer at a higher priority is followed.
    let _peer = stream(&peer);
    assert!(
        agent
            .wait_backup_of(Some(peer.addr.into()), 3 * SEC)
            .is_some(),
        "the peer's adverts were not accepted"
    );
    drop(strangers);
}

/// `vrrp_agent_rate_limit`: a flood of adverts from a stranger and of ARP requests for the
/// VIP is cut to the configured rate in XDP (counted), the followed master's adverts are
/// never limited (the backup does not flap), and ARP replies stay within the budget.
#[test]
fn rate_limits_bound_a_flood_and_spare_the_followed_master() {
    if !require_root("rate_limits_bound_a_flood_and_spare_the_followed_master") {
        return;
    }
    let lab = Lab::new("ratelimit", 3).expect("lab");
    let limited = |priority| {
        Spec::v3(priority, "0.1").config().replace(
            "global_defs {\n",
            "global_defs {\n    vrrp_agent_rate_limit vrrp 50 arp 20\n",
        )
    };
    let master = lab.spawn_agent(lab.router(0), &limited(200)).unwrap();
    let backup = lab.spawn_agent(lab.router(1), &limited(100)).unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    let r1 = lab.router(0).addr;
    assert!(backup.wait_backup_of(Some(r1.into()), 5 * SEC).is_some());
    let transitions = |agent: &vrrp_lab::Agent| {
        agent
            .status()
            .ok()
            .and_then(|s| s.instances.first().map(|i| i.transitions))
    };
    let backup_transitions = transitions(&backup);

    // A stranger's lower-priority adverts and the client's ARP requests, as fast as they go.
    let stranger = lab.router(2).clone();
    let flood = lab.capture(&stranger).unwrap();
    let advert = vrrp_lab::frames::advert_frame(
        stranger.mac,
        stranger.addr,
        &Advert::v3(51, 50, 10, vec![VIP]),
        vrrp_lab::frames::Flaw::None,
    );
    let asking = lab.capture(&lab.client).unwrap();
    let request = vrrp_lab::frames::arp_request(lab.client.mac, vrrp_lab::CLIENT_ADDR, VIP);
    let replies_before = master.counter("arp-replies");
    let started = std::time::Instant::now();
    for _ in 0..3000 {
        flood.send(&advert).unwrap();
        asking.send(&request).unwrap();
    }
    let elapsed = started.elapsed();

    assert!(
        backup.counter("vrrp-rate-limited") > 1000,
        "the advert flood was not limited: {}",
        backup.counter("vrrp-rate-limited")
    );
    let replies = master.counter("arp-replies") - replies_before;
    // 20 a second in 100 ms windows of 2, over the flood and the window it began in.
    let budget = 2 * (elapsed.as_millis() as u64 / 100 + 2);
    assert!(
        replies <= budget,
        "{replies} ARP replies in {elapsed:?}, budget {budget}"
    );
    assert!(master.counter("arp-rate-limited") > 1000);
    std::thread::sleep(SEC);
    assert_eq!(
        transitions(&backup),
        backup_transitions,
        "the backup changed state under the flood"
    );
    assert_eq!(backup.state(), Some(State::Backup));
    assert!(backup.wait_backup_of(Some(r1.into()), SEC).is_some());
}

/// A followed master whose adverts flip priority (a spoofer with the master's address, which
/// `vrrp_agent_rate_limit` deliberately spares) raises at most one event per interval; the
/// backup still follows it and learns the last priority within a second or so.
#[test]
fn a_master_flipping_its_priority_cannot_wake_the_backup_per_advert() {
    if !require_root("a_master_flipping_its_priority_cannot_wake_the_backup_per_advert") {
        return;
    }
    let lab = Lab::new("flipprio", 2).expect("lab");
    let r1 = lab.router(0).clone();
    let (stream, backup) = lab.backup_of_injected_master();
    drop(stream);
    let events_before = backup.counter("events-sent");

    let flood = lab.capture(&r1).unwrap();
    for i in 0..2000u32 {
        let frame = vrrp_lab::frames::advert_frame(
            r1.mac,
            r1.addr,
            &Advert::v3(51, 200 + (i % 2) as u8, 10, vec![VIP]),
            vrrp_lab::frames::Flaw::None,
        );
        flood.send(&frame).unwrap();
    }
    // The master goes on at the last priority it flipped to.
    let _stream = AdvertStream::start(
        flood,
        r1.mac,
        r1.addr,
        Advert::v3(51, 201, 10, vec![VIP]),
        Duration::from_millis(100),
    );

    let held = backup.instance_counter("master-news-rate-limited");
    assert!(held > 1500, "changes held back: {held}");
    let events = backup.counter("events-sent") - events_before;
    assert!(events < 100, "{events} events for 2000 flipping adverts");
    let learnt = wait_for(4 * SEC, Duration::from_millis(100), || {
        let status = backup.status().ok()?;
        let instance = status.instances.first()?;
        (instance.state == State::Backup && instance.master.as_ref()?.priority == 201).then_some(())
    });
    assert!(
        learnt.is_some(),
        "the backup never learnt the master's last priority: {:?}",
        backup
            .status()
            .ok()
            .and_then(|s| s.instances.first().cloned())
    );
}

/// The running daemon holds exactly the documented capabilities (seen from outside, in
/// /proc), and still does its work with them: it became master, holds the VIP and reloads.
#[test]
fn the_daemon_keeps_exactly_the_capabilities_it_documents() {
    if !require_root("the_daemon_keeps_exactly_the_capabilities_it_documents") {
        return;
    }
    let lab = Lab::new("caps", 1).expect("lab");
    let agent = lab
        .spawn_agent(lab.router(0), &Spec::v3(200, "0.1").config())
        .unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap()
    };
    let [low, high] = vrrp_agent::privileges::mask();
    let documented = u64::from(low) | (u64::from(high) << 32);
    assert_eq!(field("CapEff:"), documented, "effective set");
    assert_eq!(field("CapPrm:"), documented, "permitted set");
    assert_eq!(field("CapInh:"), 0, "inheritable set");
    // The control socket is root's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&agent.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode {mode:o}");
    assert!(
        wait_for(3 * SEC, Duration::from_millis(50), || {
            lab.addresses(lab.router(0))
                .ok()?
                .contains(&VIP)
                .then_some(())
        })
        .is_some()
    );
    agent.reload().expect("a reload with the kept set");
    assert_eq!(agent.state(), Some(State::Master));
}
