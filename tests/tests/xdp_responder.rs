//! The VIP side of the XDP program through BPF_PROG_TEST_RUN: ARP and Neighbor Solicitations
//! answered byte-exact while master, dropped while backup or once the heartbeat is stale,
//! traffic to the VIPs filtered (`no_accept`, backup), and observe mode.

use std::net::{Ipv4Addr, Ipv6Addr};

use vrrp_agent::{
    daemon::now_ns,
    packet::{
        Advert, ETH_P_IP, ETH_P_IPV6, Ipv4Header, NeighbourAdvert, checksum, ethernet, ipv6_header,
        pseudo_header_sum,
    },
};
use vrrp_common::{
    FAMILY_IPV4, FAMILY_IPV6, InstanceConfig, VipEntry, VipKey, VmacEntry, VmacKey, counters,
    instance_flags, state, virtual_mac,
};
use vrrp_lab::{
    frames::{Flaw, advert_frame, arp_request, neighbour_solicitation},
    require_root,
    xdp::{Harness, IFINDEX, XDP_DROP, XDP_PASS, XDP_TX, moved},
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
/// The MAC the responder answers with.
const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x50];
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x50);

/// A harness whose instance (VRRPv3 at 10 ms) owns VIP and VIP6.
fn harness(state: u8) -> Harness {
    let mut h = Harness::new(state, 100);
    for (family, addr) in [(FAMILY_IPV4, v4_key(VIP)), (FAMILY_IPV6, VIP6.octets())] {
        h.dp.set_vip(
            VipKey::new(IFINDEX, family, addr),
            VipEntry {
                instance: h.key,
                mac: OUR_MAC,
                pad: [0; 2],
            },
        )
        .unwrap();
    }
    h
}

fn v4_key(a: Ipv4Addr) -> [u8; 16] {
    let mut k = [0; 16];
    k[..4].copy_from_slice(&a.octets());
    k
}

/// An advert of ours just left.
fn beat(h: &mut Harness) {
    h.dp.stamp_heartbeat(h.key, now_ns());
}

fn reconfigure(h: &mut Harness, edit: impl FnOnce(&mut InstanceConfig)) {
    edit(&mut h.config);
    h.dp.set_instance(h.key, h.config).unwrap();
}

/// Runs a frame; returns the action, the frame the program left, and the counter deltas.
fn run(h: &mut Harness, frame: &[u8]) -> (u32, Vec<u8>, [u64; counters::COUNT]) {
    let before = h.dp.counters();
    let out = h.dp.run_frame(frame, IFINDEX).expect("test run");
    let after = h.dp.counters();
    let mut delta = [0; counters::COUNT];
    for i in 0..counters::COUNT {
        delta[i] = after[i] - before[i];
    }
    (out.action, out.frame, delta)
}

/// Asserts the action and that exactly `counter` moved (by one), nothing else.
fn expect(h: &mut Harness, name: &str, frame: &[u8], action: u32, counter: Option<u32>) -> Vec<u8> {
    let (got, out, delta) = run(h, frame);
    assert_eq!(got, action, "{name}: action");
    for (i, d) in delta.iter().enumerate() {
        let want = u64::from(Some(i as u32) == counter);
        assert_eq!(*d, want, "{name}: counters moved {:?}", moved(&delta));
    }
    if let Some(c) = counter {
        assert!(
            h.dp.instance_counters(&h.key)[c as usize] > 0,
            "{name}: per instance"
        );
    }
    out
}

#[test]
fn a_master_answers_arp_for_its_vip_byte_exact() {
    if !require_root("a_master_answers_arp_for_its_vip_byte_exact") {
        return;
    }
    let mut h = harness(state::MASTER);
    beat(&mut h);
    let request = arp_request(CLIENT_MAC, CLIENT, VIP);
    let reply = expect(
        &mut h,
        "ARP for the VIP",
        &request,
        XDP_TX,
        Some(counters::ARP_REPLIES),
    );
    let mut want = Vec::new();
    want.extend_from_slice(&CLIENT_MAC); // to the requester
    want.extend_from_slice(&OUR_MAC);
    want.extend_from_slice(&[0x08, 0x06]);
    want.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]); // Ethernet/IPv4, reply
    want.extend_from_slice(&OUR_MAC);
    want.extend_from_slice(&VIP.octets());
    want.extend_from_slice(&CLIENT_MAC);
    want.extend_from_slice(&CLIENT.octets());
    assert_eq!(reply, want);

    // Not ours to answer: another address, a gratuitous ARP, a reply.
    let other = arp_request(CLIENT_MAC, CLIENT, Ipv4Addr::new(10, 0, 0, 1));
    expect(&mut h, "ARP for another address", &other, XDP_PASS, None);
    let garp = arp_request(CLIENT_MAC, VIP, VIP);
    expect(&mut h, "gratuitous ARP for the VIP", &garp, XDP_PASS, None);
    let mut as_reply = request.clone();
    as_reply[21] = 2;
    expect(&mut h, "ARP reply about the VIP", &as_reply, XDP_PASS, None);
}

#[test]
fn a_backup_a_fault_and_a_master_with_a_stale_heartbeat_never_answer() {
    if !require_root("a_backup_a_fault_and_a_master_with_a_stale_heartbeat_never_answer") {
        return;
    }
    let request = arp_request(CLIENT_MAC, CLIENT, VIP);
    let solicit = neighbour_solicitation(CLIENT_MAC, CLIENT6, VIP6);
    for (name, st) in [
        ("backup", state::BACKUP),
        ("fault", state::FAULT),
        ("init", state::INIT),
    ] {
        let mut h = harness(st);
        beat(&mut h);
        expect(
            &mut h,
            name,
            &request,
            XDP_DROP,
            Some(counters::ARP_DROPPED),
        );
        expect(&mut h, name, &solicit, XDP_DROP, Some(counters::ND_DROPPED));
    }
    // A master whose agent has never advertised, or stopped three intervals (30 ms) ago.
    let mut h = harness(state::MASTER);
    expect(
        &mut h,
        "no heartbeat yet",
        &request,
        XDP_DROP,
        Some(counters::ARP_DROPPED),
    );
    h.dp.stamp_heartbeat(h.key, now_ns() - 31_000_000);
    expect(
        &mut h,
        "stale heartbeat",
        &request,
        XDP_DROP,
        Some(counters::ARP_DROPPED),
    );
    expect(
        &mut h,
        "stale heartbeat",
        &solicit,
        XDP_DROP,
        Some(counters::ND_DROPPED),
    );
    h.dp.stamp_heartbeat(h.key, now_ns() - 20_000_000);
    expect(
        &mut h,
        "two intervals old",
        &request,
        XDP_TX,
        Some(counters::ARP_REPLIES),
    );
}

/// The NA the responder must send, built independently of the kernel code.
fn expected_na(dst_mac: [u8; 6], dst: Ipv6Addr, flags: u8) -> Vec<u8> {
    let mut icmp = vec![136, 0, 0, 0, flags, 0, 0, 0];
    icmp.extend_from_slice(&VIP6.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&OUR_MAC);
    let sum = checksum(
        pseudo_header_sum(VIP6.into(), dst.into(), 58, icmp.len()),
        &icmp,
    );
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip = ipv6_header(VIP6, dst, 58, 255, &icmp);
    ip[0] = 0x60; // traffic class 0
    ethernet(dst_mac, OUR_MAC, ETH_P_IPV6, &ip)
}

#[test]
fn a_master_answers_neighbor_solicitations_and_dad_byte_exact() {
    if !require_root("a_master_answers_neighbor_solicitations_and_dad_byte_exact") {
        return;
    }
    let mut h = harness(state::MASTER);
    beat(&mut h);
    let solicit = neighbour_solicitation(CLIENT_MAC, CLIENT6, VIP6);
    let na = expect(
        &mut h,
        "NS for the VIP",
        &solicit,
        XDP_TX,
        Some(counters::ND_REPLIES),
    );
    assert_eq!(
        na,
        expected_na(CLIENT_MAC, CLIENT6, 0x80 | 0x40 | 0x20),
        "R, S, O"
    );
    let parsed = NeighbourAdvert::parse_frame(&na).expect("a valid NA (checksum, hop limit)");
    assert_eq!(parsed.target_mac, Some(OUR_MAC));

    // Duplicate address detection: answered to all-nodes, without S. The DAD NS is shorter
    // (no source link-layer option), so the program grows the frame.
    let dad = neighbour_solicitation(CLIENT_MAC, Ipv6Addr::UNSPECIFIED, VIP6);
    let na = expect(
        &mut h,
        "DAD NS for the VIP",
        &dad,
        XDP_TX,
        Some(counters::ND_REPLIES),
    );
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    assert_eq!(
        na,
        expected_na([0x33, 0x33, 0, 0, 0, 1], all_nodes, 0x80 | 0x20),
        "R, O"
    );

    // Invalid solicitations are left to the stack, which discards them.
    let mut bad = solicit.clone();
    bad[14 + 40 + 2] ^= 1;
    expect(&mut h, "NS with a bad checksum", &bad, XDP_PASS, None);
    let mut hop = solicit.clone();
    hop[14 + 7] = 64;
    expect(&mut h, "NS with hop limit 64", &hop, XDP_PASS, None);
    let other = neighbour_solicitation(CLIENT_MAC, CLIENT6, CLIENT6);
    expect(&mut h, "NS for another address", &other, XDP_PASS, None);
}

/// A UDP-ish IPv4 packet to `dst` (the filter looks at addresses only).
fn ipv4_to(dst: Ipv4Addr) -> Vec<u8> {
    let mut ip = Ipv4Header::vrrp(CLIENT).wrap(&[0u8; 8]);
    ip[9] = 17;
    ip[16..20].copy_from_slice(&dst.octets());
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(0, &ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ethernet(OUR_MAC, CLIENT_MAC, ETH_P_IP, &ip)
}

fn ipv6_to(dst: Ipv6Addr) -> Vec<u8> {
    ethernet(
        OUR_MAC,
        CLIENT_MAC,
        ETH_P_IPV6,
        &ipv6_header(CLIENT6, dst, 17, 64, &[0u8; 8]),
    )
}

#[test]
fn traffic_to_the_vips_is_dropped_where_it_must_not_be_accepted() {
    if !require_root("traffic_to_the_vips_is_dropped_where_it_must_not_be_accepted") {
        return;
    }
    let (to_vip, to_vip6) = (ipv4_to(VIP), ipv6_to(VIP6));
    let mut h = harness(state::BACKUP);
    // RFC 9568 6.4.2: a backup must not accept packets addressed to the VIPs.
    expect(
        &mut h,
        "backup, v4",
        &to_vip,
        XDP_DROP,
        Some(counters::VIP_TRAFFIC_DROPPED),
    );
    expect(
        &mut h,
        "backup, v6",
        &to_vip6,
        XDP_DROP,
        Some(counters::VIP_TRAFFIC_DROPPED),
    );
    expect(
        &mut h,
        "backup, not a VIP",
        &ipv4_to(CLIENT),
        XDP_PASS,
        None,
    );

    reconfigure(&mut h, |c| c.state = state::MASTER);
    beat(&mut h);
    expect(&mut h, "master", &to_vip, XDP_PASS, None);
    expect(&mut h, "master, v6", &to_vip6, XDP_PASS, None);

    // no_accept: a non-owner master drops traffic to the VIPs but still answers ARP.
    reconfigure(&mut h, |c| c.flags = instance_flags::NO_ACCEPT);
    expect(
        &mut h,
        "no_accept",
        &to_vip,
        XDP_DROP,
        Some(counters::VIP_TRAFFIC_DROPPED),
    );
    expect(
        &mut h,
        "no_accept, v6",
        &to_vip6,
        XDP_DROP,
        Some(counters::VIP_TRAFFIC_DROPPED),
    );
    let request = arp_request(CLIENT_MAC, CLIENT, VIP);
    expect(
        &mut h,
        "no_accept ARP",
        &request,
        XDP_TX,
        Some(counters::ARP_REPLIES),
    );
    // The address owner always accepts (RFC 9568 6.4.3).
    reconfigure(&mut h, |c| c.priority = 255);
    expect(&mut h, "no_accept owner", &to_vip, XDP_PASS, None);

    // ... also while not active: they are the host's own addresses.
    reconfigure(&mut h, |c| c.state = state::BACKUP);
    expect(&mut h, "owner, backup", &to_vip, XDP_PASS, None);
    expect(
        &mut h,
        "owner, backup, ARP",
        &request,
        XDP_DROP,
        Some(counters::ARP_DROPPED),
    );

    // A dead master's node drops traffic to its VIPs once the heartbeat is stale.
    reconfigure(&mut h, |c| {
        c.flags = 0;
        c.priority = 100;
        c.state = state::MASTER;
    });
    h.dp.stamp_heartbeat(h.key, now_ns() - 1_000_000_000);
    expect(
        &mut h,
        "stale master",
        &to_vip,
        XDP_DROP,
        Some(counters::VIP_TRAFFIC_DROPPED),
    );
}

#[test]
fn observe_mode_passes_counted_adverts_to_the_stack() {
    if !require_root("observe_mode_passes_counted_adverts_to_the_stack") {
        return;
    }
    let mut h = harness(state::BACKUP);
    let advert = Advert::v3(51, 200, 1, vec![VIP]);
    let frame = advert_frame(
        [2, 0, 0, 0, 0, 1],
        Ipv4Addr::new(10, 0, 0, 1),
        &advert,
        Flaw::None,
    );
    let (action, _, delta) = run(&mut h, &frame);
    assert_eq!(action, XDP_DROP, "absorbed by default");
    assert_eq!(delta[counters::VALID_ADVERTS as usize], 1);
    reconfigure(&mut h, |c| c.flags = instance_flags::OBSERVE);
    let (action, _, delta) = run(&mut h, &frame);
    assert_eq!(action, XDP_PASS, "passed on in observe mode");
    assert_eq!(
        delta[counters::VALID_ADVERTS as usize],
        1,
        "and still counted"
    );
    // Invalid ones too are passed, after counting.
    let broken = advert_frame(
        [2, 0, 0, 0, 0, 1],
        Ipv4Addr::new(10, 0, 0, 1),
        &advert,
        Flaw::BadChecksum,
    );
    let (action, _, delta) = run(&mut h, &broken);
    assert_eq!(action, XDP_PASS);
    assert_eq!(delta[counters::CHECKSUM_ERRORS as usize], 1);
}

#[test]
fn frames_to_the_vmac_are_taken_while_master_and_dropped_otherwise() {
    if !require_root("frames_to_the_vmac_are_taken_while_master_and_dropped_otherwise") {
        return;
    }
    let mut h = harness(state::MASTER);
    let vmac = virtual_mac(FAMILY_IPV4, 51);
    assert_eq!(vmac, [0, 0, 0x5e, 0, 1, 51]);
    h.dp.set_vmac(
        VmacKey {
            ifindex: IFINDEX,
            mac: vmac,
            pad: [0; 2],
        },
        VmacEntry {
            instance: h.key,
            interface_mac: OUR_MAC,
            pad: [0; 2],
        },
    )
    .unwrap();
    beat(&mut h);
    let mut to_vmac = ipv4_to(VIP);
    to_vmac[..6].copy_from_slice(&vmac);
    let taken = expect(&mut h, "to the VMAC, master", &to_vmac, XDP_PASS, None);
    assert_eq!(
        taken[..6],
        OUR_MAC,
        "rewritten to the interface's MAC for the stack"
    );
    assert_eq!(taken[6..], to_vmac[6..], "and nothing else changed");

    // Another router's VMAC is none of our business.
    let mut other = to_vmac.clone();
    other[5] = 52;
    let passed = expect(&mut h, "another VMAC", &other, XDP_PASS, None);
    assert_eq!(passed, other);

    reconfigure(&mut h, |c| c.state = state::BACKUP);
    expect(
        &mut h,
        "to the VMAC, backup",
        &to_vmac,
        XDP_DROP,
        Some(counters::VMAC_DROPPED),
    );
}
