//! The XDP validation ladder on crafted frames through BPF_PROG_TEST_RUN: every rule gives the
//! expected action and counter, with the real program and maps, no namespaces.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use vrrp_agent::packet::{
    Advert, ChecksumForm, ETH_P_IP, Ipv4Header, checksum, ethernet, ipv4_multicast_mac,
};
use vrrp_common::{AddressList, VRRP_GROUP_V4, counters, event, seen_flags, state, timers};
use vrrp_lab::{
    frames::{Flaw, advert_frame, advert_frame_v6},
    require_root,
    xdp::{Harness, XDP_DROP, XDP_PASS, moved, only},
};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

fn advert(priority: u8) -> Advert {
    Advert::v3(51, priority, 1, vec![VIP])
}

/// A frame whose VRRP bytes were changed by `edit` (checksum recomputed after the edit).
fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let group = Ipv4Addr::from(VRRP_GROUP_V4);
    let mut vrrp = advert(200).encode(SRC.into(), group.into(), ChecksumForm::PseudoHeader);
    edit(&mut vrrp);
    vrrp[6..8].copy_from_slice(&[0, 0]);
    let sum = checksum(pseudo_sum(vrrp.len()), &vrrp);
    vrrp[6..8].copy_from_slice(&sum.to_be_bytes());
    ethernet(
        ipv4_multicast_mac(group),
        MAC,
        ETH_P_IP,
        &Ipv4Header::vrrp(SRC).wrap(&vrrp),
    )
}

fn pseudo_sum(len: usize) -> u32 {
    let s = SRC.octets();
    [
        [s[0], s[1]],
        [s[2], s[3]],
        [224, 0],
        [0, 18],
        [0, 112],
        (len as u16).to_be_bytes(),
    ]
    .iter()
    .map(|w| u32::from(u16::from_be_bytes(*w)))
    .sum()
}

/// Rewrites the IPv4 header of a frame, then its checksum (over the IHL the edit leaves).
fn with_ip(mut frame: Vec<u8>, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    edit(&mut frame[14..34]);
    let end = 14 + usize::from(frame[14] & 0x0f) * 4;
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum(0, &frame[14..end]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

#[test]
fn each_rule_of_the_ladder_gives_its_action_and_counter() {
    if !require_root("each_rule_of_the_ladder_gives_its_action_and_counter") {
        return;
    }
    // A master does not arm timers or raise events for losers, so only counters move.
    let mut h = Harness::new(state::MASTER, 255);
    let cases: Vec<(&str, Vec<u8>, u32, u32)> = vec![
        (
            "TTL 254",
            advert_frame(MAC, SRC, &advert(200), Flaw::Ttl254),
            XDP_DROP,
            counters::IP_TTL_ERRORS,
        ),
        (
            "bad checksum",
            advert_frame(MAC, SRC, &advert(200), Flaw::BadChecksum),
            XDP_DROP,
            counters::CHECKSUM_ERRORS,
        ),
        (
            "IP length cuts the address list",
            advert_frame(MAC, SRC, &advert(200), Flaw::TooShort),
            XDP_DROP,
            counters::PACKET_LENGTH_ERRORS,
        ),
        (
            "version 2",
            edited(|v| v[0] = 0x21),
            XDP_DROP,
            counters::VERSION_ERRORS,
        ),
        (
            "type 2",
            edited(|v| v[0] = 0x32),
            XDP_DROP,
            counters::INVALID_TYPE,
        ),
        (
            "count 0 (erratum 8299)",
            edited(|v| {
                v[3] = 0;
                v.truncate(8)
            }),
            XDP_DROP,
            counters::ADDRESS_LIST_ERRORS,
        ),
        (
            "count says 2, one address",
            edited(|v| v[3] = 2),
            XDP_DROP,
            counters::PACKET_LENGTH_ERRORS,
        ),
        (
            "interval 0 (erratum 8301)",
            edited(|v| {
                v[4] = 0;
                v[5] = 0
            }),
            XDP_DROP,
            counters::INTERVAL_ERRORS,
        ),
        (
            "VRID not configured here",
            edited(|v| v[1] = 52),
            XDP_PASS,
            counters::VRID_ERRORS,
        ),
        (
            "IPv4 fragment",
            with_ip(advert_frame(MAC, SRC, &advert(200), Flaw::None), |ip| {
                ip[6] = 0x20
            }),
            XDP_PASS,
            counters::FRAGMENTS,
        ),
    ];
    h.expect_each(cases);
}

#[test]
fn a_master_reasserts_against_lower_priority_once_per_interval() {
    if !require_root("a_master_reasserts_against_lower_priority_once_per_interval") {
        return;
    }
    let mut h = Harness::new(state::MASTER, 255);
    let mut events = h.dp.take_events().unwrap();
    let lower = advert_frame(MAC, SRC, &advert(200), Flaw::None);
    let (action, delta) = h.run(&lower);
    assert_eq!(action, XDP_DROP);
    assert_eq!(delta[counters::VALID_ADVERTS as usize], 1);
    assert_eq!(
        delta[counters::REASSERTS as usize],
        1,
        "{:?}",
        moved(&delta)
    );
    let batch = h
        .rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(2), events.next_batch()).await })
        .expect("no event")
        .unwrap();
    assert_eq!(batch[0].kind, event::LOWER_PRIORITY);
    // A flood within the 10 ms interval is counted, not answered.
    let mut limited = 0;
    for _ in 0..20 {
        let (_, delta) = h.run(&lower);
        limited += delta[counters::REASSERTS_RATE_LIMITED as usize];
    }
    assert!(limited >= 15, "only {limited} of 20 rate-limited");
    std::thread::sleep(Duration::from_millis(20));
    let (_, delta) = h.run(&lower);
    assert_eq!(
        delta[counters::REASSERTS as usize],
        1,
        "a new interval answers again"
    );
}

#[test]
fn frames_that_are_not_ours_pass_untouched() {
    if !require_root("frames_that_are_not_ours_pass_untouched") {
        return;
    }
    let mut h = Harness::new(state::BACKUP, 100);
    // UDP is none of our business: no counter at all.
    let udp = with_ip(advert_frame(MAC, SRC, &advert(200), Flaw::None), |ip| {
        ip[9] = 17
    });
    let (action, delta) = h.run(&udp);
    assert_eq!((action, delta.iter().sum::<u64>()), (XDP_PASS, 0));
    // An 802.1Q-tagged advert belongs to a VLAN interface's own speaker.
    let plain = advert_frame(MAC, SRC, &advert(200), Flaw::None);
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&plain[12..]);
    let (action, delta) = h.run(&tagged);
    assert_eq!(action, XDP_PASS);
    assert!(only(&delta, counters::VLAN_TAGGED), "{:?}", moved(&delta));
}

#[test]
fn valid_forms_are_accepted_and_recorded_with_a_kernel_timestamp() {
    if !require_root("valid_forms_are_accepted_and_recorded_with_a_kernel_timestamp") {
        return;
    }
    let mut h = Harness::new(state::BACKUP, 100);
    let group = Ipv4Addr::from(VRRP_GROUP_V4);
    // RFC 9568 form, without the pseudo-header (keepalived's v3_checksum_as_v2).
    let vrrp = advert(200).encode(SRC.into(), group.into(), ChecksumForm::VrrpOnly);
    let no_pseudo = ethernet(
        ipv4_multicast_mac(group),
        MAC,
        ETH_P_IP,
        &Ipv4Header::vrrp(SRC).wrap(&vrrp),
    );
    // A one-address advert padded to Ethernet's 60-byte minimum: lengths come from IP.
    let mut padded = advert_frame(MAC, SRC, &advert(200), Flaw::None);
    padded.resize(60, 0);
    // IPv4 options (IHL 6): never assume a 20-byte header.
    let plain = advert_frame(MAC, SRC, &advert(200), Flaw::None);
    let mut ip = plain[14..34].to_vec();
    ip[0] = 0x46;
    let total = u16::from_be_bytes([ip[2], ip[3]]) + 4;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[1, 1, 1, 0]); // NOP, NOP, NOP, EOL
    ip.extend_from_slice(&plain[34..]);
    let with_options = with_ip([plain[..14].to_vec(), ip].concat(), |_| {});
    for (name, frame) in [
        ("no pseudo-header", no_pseudo),
        ("padded", padded),
        ("IPv4 options", with_options),
    ] {
        let (action, delta) = h.run(&frame);
        assert_eq!(action, XDP_DROP, "{name}: a valid advert is absorbed");
        assert_eq!(
            delta[counters::VALID_ADVERTS as usize],
            1,
            "{name}: {:?}",
            moved(&delta)
        );
    }
    let seen = h.dp.seen(&h.key).expect("SEEN recorded");
    assert_eq!(
        (seen.priority, seen.interval_cs, seen.generation),
        (200, 1, 7)
    );
    assert_eq!(&seen.src[..4], &SRC.octets());
    assert!(seen.at_ns > 0);
}

#[test]
fn a_counted_advert_arms_the_kernel_master_down_timer_which_wakes_the_agent() {
    if !require_root("a_counted_advert_arms_the_kernel_master_down_timer_which_wakes_the_agent") {
        return;
    }
    let mut h = Harness::new(state::BACKUP, 100);
    let mut events = h.dp.take_events().unwrap();
    let (action, _) = h.run(&advert_frame(MAC, SRC, &advert(200), Flaw::None));
    assert_eq!(action, XDP_DROP);
    let first = h.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), events.next_batch()).await
    });
    let first = first.expect("no event").unwrap();
    assert_eq!(first[0].kind, event::NEW_MASTER);
    assert_eq!(first[0].advert.generation, 7);
    // 3 x 10 ms + skew: the kernel timer fires and raises MASTER_DOWN on its own.
    let md = Duration::from_nanos(timers::master_down_ns(3, 100, 1));
    let next = h.rt.block_on(async {
        let mut all = first;
        while !all.iter().any(|e| e.kind == event::MASTER_DOWN) {
            match tokio::time::timeout(md * 20, events.next_batch()).await {
                Ok(Ok(batch)) => all.extend(batch),
                _ => break,
            }
        }
        all
    });
    let down = next
        .iter()
        .find(|e| e.kind == event::MASTER_DOWN)
        .expect("the timer never fired");
    assert_eq!(down.key, h.key);
    assert_eq!(h.dp.counters()[counters::MASTER_DOWN_TIMERS as usize], 1);
    // The same advert again, same master: counted, no event, timer re-armed.
    let (_, delta) = h.run(&advert_frame(MAC, SRC, &advert(200), Flaw::None));
    assert_eq!(
        delta[counters::EVENTS_SENT as usize],
        0,
        "no event for an unchanged master"
    );
    // A lower priority with preempt on does not count (RFC 9568 6.4.2).
    let (_, delta) = h.run(&advert_frame(MAC, SRC, &advert(50), Flaw::None));
    assert_eq!(delta[counters::IGNORED_ADVERTS as usize], 1);
}

/// A VRRPv2 frame from SRC; `edit` changes the VRRP bytes before the checksum, which covers
/// the VRRP message only (`pseudo`: wrongly, the IPv4 pseudo-header too).
fn v2_frame(
    interval_s: u8,
    auth: Option<&[u8; 8]>,
    pseudo: bool,
    edit: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut advert = Advert::v3(51, 200, u16::from(interval_s) * 100, vec![VIP]);
    advert.version = 2;
    advert.auth = auth.copied();
    let group = Ipv4Addr::from(VRRP_GROUP_V4);
    let mut vrrp = advert.encode(SRC.into(), group.into(), ChecksumForm::VrrpOnly);
    edit(&mut vrrp);
    vrrp[6..8].copy_from_slice(&[0, 0]);
    let seed = if pseudo { pseudo_sum(vrrp.len()) } else { 0 };
    let sum = checksum(seed, &vrrp);
    vrrp[6..8].copy_from_slice(&sum.to_be_bytes());
    ethernet(
        ipv4_multicast_mac(group),
        MAC,
        ETH_P_IP,
        &Ipv4Header::vrrp(SRC).wrap(&vrrp),
    )
}

#[test]
fn vrrpv2_rules_auth_interval_checksum_and_carp() {
    if !require_root("vrrpv2_rules_auth_interval_checksum_and_carp") {
        return;
    }
    let mut h = Harness::v2_pass();
    let secret = *b"secret\0\0";
    let (action, delta) = h.run(&v2_frame(1, Some(&secret), false, |_| {}));
    assert_eq!(
        (action, delta[counters::VALID_ADVERTS as usize]),
        (XDP_DROP, 1),
        "{:?}",
        moved(&delta)
    );
    assert_eq!(h.dp.seen(&h.key).unwrap().interval_cs, 100);

    // A v2 advert with 5 addresses is 36 bytes, the length of a CARP packet: still VRRP.
    let five = v2_frame(1, Some(&secret), false, |v| {
        v[3] = 5;
        let auth: Vec<u8> = v.drain(12..).collect();
        v.extend_from_slice(&[10, 0, 0, 101, 10, 0, 0, 102, 10, 0, 0, 103, 10, 0, 0, 104]);
        v.extend_from_slice(&auth);
    });
    assert_eq!(five.len() - 34, 36);
    let (_, delta) = h.run(&five);
    assert_eq!(
        delta[counters::VALID_ADVERTS as usize],
        1,
        "{:?}",
        moved(&delta)
    );

    let cases: Vec<(&str, Vec<u8>, u32, u32)> = vec![
        (
            "wrong password",
            v2_frame(1, Some(b"guess\0\0\0"), false, |_| {}),
            XDP_DROP,
            counters::AUTH_FAILURES,
        ),
        (
            "no authentication",
            v2_frame(1, None, false, |_| {}),
            XDP_DROP,
            counters::AUTH_TYPE_MISMATCH,
        ),
        (
            "interval 2 s, ours 1 s",
            v2_frame(2, Some(&secret), false, |_| {}),
            XDP_DROP,
            counters::INTERVAL_ERRORS,
        ),
        (
            "v3 advert to a v2 instance",
            advert_frame(MAC, SRC, &advert(200), Flaw::None),
            XDP_DROP,
            counters::VERSION_ERRORS,
        ),
        (
            "v2 checksum over a pseudo-header",
            v2_frame(1, Some(&secret), true, |_| {}),
            XDP_DROP,
            counters::CHECKSUM_ERRORS,
        ),
        (
            "CARP (36 bytes, authlen 7)",
            v2_frame(1, Some(&secret), false, |v| {
                v[3] = 7;
                v.resize(36, 0);
            }),
            XDP_PASS,
            counters::CARP_PACKETS,
        ),
    ];
    h.expect_each(cases);
}

#[test]
fn ipv6_adverts_hop_limit_and_pseudo_header_checksum() {
    if !require_root("ipv6_adverts_hop_limit_and_pseudo_header_checksum") {
        return;
    }
    let mut h = Harness::v6();
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let vip: Ipv6Addr = "fd00::100".parse().unwrap();
    let advert = Advert::v3(51, 200, 1, [vip]);
    let (action, delta) = h.run(&advert_frame_v6(MAC, src, &advert, Flaw::None));
    assert_eq!(
        (action, delta[counters::VALID_ADVERTS as usize]),
        (XDP_DROP, 1),
        "{:?}",
        moved(&delta)
    );
    let seen = h.dp.seen(&h.key).expect("recorded under the IPv6 key");
    assert_eq!(seen.src, src.octets());
    // The same VRID over IPv4 is a different instance: not configured here.
    let (action, delta) = h.run(&advert_frame(MAC, SRC, &advert_v4(), Flaw::None));
    assert_eq!(action, XDP_PASS);
    assert!(only(&delta, counters::VRID_ERRORS), "{:?}", moved(&delta));

    let plain = {
        // Checksummed without the pseudo-header: valid for v3/IPv4 only, never for IPv6.
        let mut f = advert_frame_v6(MAC, src, &advert, Flaw::None);
        let vrrp = &mut f[54..];
        vrrp[6..8].copy_from_slice(&[0, 0]);
        let sum = checksum(0, vrrp);
        vrrp[6..8].copy_from_slice(&sum.to_be_bytes());
        f
    };
    let cases = [
        (
            "hop limit 254",
            advert_frame_v6(MAC, src, &advert, Flaw::Ttl254),
            counters::IP_TTL_ERRORS,
        ),
        (
            "bad checksum",
            advert_frame_v6(MAC, src, &advert, Flaw::BadChecksum),
            counters::CHECKSUM_ERRORS,
        ),
        ("no pseudo-header", plain, counters::CHECKSUM_ERRORS),
        (
            "payload length cuts the address",
            advert_frame_v6(MAC, src, &advert, Flaw::TooShort),
            counters::PACKET_LENGTH_ERRORS,
        ),
    ];
    for (name, frame, counter) in cases {
        let (action, delta) = h.run(&frame);
        assert_eq!(action, XDP_DROP, "{name}");
        assert!(
            only(&delta, counter),
            "{name}: counters moved {:?}",
            moved(&delta)
        );
    }
}

#[test]
fn address_lists_v3_mismatch_counted_v2_mismatch_dropped_v6_link_local_first() {
    if !require_root("address_lists_v3_mismatch_counted_v2_mismatch_dropped_v6_link_local_first") {
        return;
    }
    let ours = |addresses: &[[u8; 16]]| {
        let mut list = AddressList {
            count: addresses.len() as u8,
            ..AddressList::default()
        };
        list.addresses[..addresses.len()].copy_from_slice(addresses);
        list
    };
    let vip16 = vrrp_common::advert_rule::v4(VIP.octets());
    let other = Ipv4Addr::new(10, 0, 0, 99);

    // v3: a different list counts (RFC 9568) and is flagged for the log.
    let mut h = Harness::new(state::BACKUP, 100);
    h.dp.set_address_list(h.key, ours(&[vip16])).unwrap();
    let (action, delta) = h.run(&advert_frame(MAC, SRC, &advert(200), Flaw::None));
    assert_eq!(
        (action, delta[counters::ADDRESS_LIST_MISMATCH as usize]),
        (XDP_DROP, 0)
    );
    let (action, delta) = h.run(&advert_frame(
        MAC,
        SRC,
        &Advert::v3(51, 200, 1, [other]),
        Flaw::None,
    ));
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        delta[counters::ADDRESS_LIST_MISMATCH as usize],
        1,
        "{:?}",
        moved(&delta)
    );
    assert_eq!(delta[counters::VALID_ADVERTS as usize], 1);
    assert_eq!(
        h.dp.seen(&h.key).unwrap().flags & seen_flags::LIST_MISMATCH,
        seen_flags::LIST_MISMATCH
    );
    let (_, delta) = h.run(&advert_frame(
        MAC,
        SRC,
        &Advert::v3(51, 200, 1, [VIP, other]),
        Flaw::None,
    ));
    assert_eq!(
        delta[counters::ADDRESS_LIST_MISMATCH as usize],
        1,
        "a longer list differs too"
    );

    // v2: a different list is dropped (RFC 3768 7.1) unless it comes from the owner.
    let mut h = Harness::v2_pass();
    h.dp.set_address_list(h.key, ours(&[vip16])).unwrap();
    let secret = *b"secret\0\0";
    let wrong_list = |priority| {
        let mut a = Advert::v3(51, priority, 100, [other]);
        a.version = 2;
        a.auth = Some(secret);
        advert_frame(MAC, SRC, &a, Flaw::None)
    };
    let (_, delta) = h.run(&wrong_list(200));
    assert!(
        only(&delta, counters::ADDRESS_LIST_ERRORS),
        "{:?}",
        moved(&delta)
    );
    let (_, delta) = h.run(&wrong_list(255));
    assert_eq!(
        delta[counters::VALID_ADVERTS as usize],
        1,
        "the owner's list is accepted: {:?}",
        moved(&delta)
    );

    // IPv6: a list that does not start with a link-local address is counted, not dropped.
    let mut h = Harness::v6();
    let vip6: Ipv6Addr = "fd00::100".parse().unwrap();
    h.dp.set_address_list(h.key, ours(&[vip6.octets()]))
        .unwrap();
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let (_, delta) = h.run(&advert_frame_v6(
        MAC,
        src,
        &Advert::v3(51, 200, 1, [vip6]),
        Flaw::None,
    ));
    assert_eq!(
        delta[counters::NOT_LINK_LOCAL_FIRST as usize],
        1,
        "{:?}",
        moved(&delta)
    );
    assert_eq!(delta[counters::ADDRESS_LIST_MISMATCH as usize], 0);
    assert_eq!(delta[counters::VALID_ADVERTS as usize], 1);
}

fn advert_v4() -> Advert {
    advert(200)
}

#[test]
fn unicast_instances_sharing_a_vrid_are_told_apart_by_the_advert_source() {
    if !require_root("unicast_instances_sharing_a_vrid_are_told_apart_by_the_advert_source") {
        return;
    }
    let mut h = Harness::new(state::BACKUP, 100);
    // Two instances with VRID 51 on the interface: peer set 1 talks to 10.0.0.1, set 2 to
    // 10.0.0.3.
    let (first, second) = (h.key.with_peer_set(1), h.key.with_peer_set(2));
    h.dp.remove_instance(&h.key);
    for (key, peer) in [(first, [10, 0, 0, 1]), (second, [10, 0, 0, 3])] {
        h.dp.set_instance(key, h.config).unwrap();
        h.dp.set_peer(key, vrrp_common::advert_rule::v4(peer))
            .unwrap();
    }
    let from = |src: Ipv4Addr| advert_frame(MAC, src, &advert(200), Flaw::None);
    let (action, _) = h.run(&from(Ipv4Addr::new(10, 0, 0, 3)));
    assert_eq!(action, XDP_DROP);
    assert_eq!(h.dp.seen(&first), None, "recorded under the wrong peer set");
    assert_eq!(
        h.dp.seen(&second).map(|s| s.src[..4].to_vec()),
        Some(vec![10, 0, 0, 3])
    );
    let (action, _) = h.run(&from(SRC));
    assert_eq!(action, XDP_DROP);
    assert_eq!(h.dp.seen(&first).map(|s| s.src[3]), Some(1));
    // A source in neither set finds no instance (peer set 0 is not configured): passed on.
    let (action, delta) = h.run(&from(Ipv4Addr::new(10, 0, 0, 9)));
    assert_eq!(action, XDP_PASS);
    assert!(only(&delta, counters::VRID_ERRORS), "{:?}", moved(&delta));
}
