//! What we put on the wire decodes cleanly in Wireshark's dissectors (tshark): adverts of every
//! form, gratuitous ARPs and unsolicited NAs, with no malformed or bad-checksum marks.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use vrrp_agent::election::State;
use vrrp_lab::{Lab, Spec, capture::Frame, pcap, require_root};

const SEC: Duration = Duration::from_secs(1);

fn tshark_available(test: &str) -> bool {
    let ok = Command::new("tshark").arg("--version").output().is_ok();
    if !ok {
        eprintln!(
            "SKIPPED {test}: tshark is not installed (`cargo xtask setup` installs it as root)"
        );
    }
    ok
}

/// Runs an owner (priority 255, master at once) on `spec` and captures what the client sees.
fn capture(name: &str, spec: Spec, window: Duration) -> (Lab, Vec<Frame>) {
    let lab = Lab::new(name, 1).expect("lab");
    let client = lab.capture(&lab.client).unwrap();
    let agent = lab.spawn_agent(lab.router(0), &spec.config()).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    let start = Instant::now();
    let mut frames = Vec::new();
    while start.elapsed() < window {
        if let Some(f) = client.recv(Duration::from_millis(50)) {
            frames.push(f);
        }
    }
    drop(agent);
    (lab, frames)
}

/// Decodes the frames with tshark; returns one line per frame:
/// protocols, malformed flag, expert severity, VRRP / ICMPv6 checksum status.
fn decode(lab: &Lab, frames: &[Frame]) -> Vec<String> {
    decode_with(lab, frames, false)
}

/// As [`decode`], telling tshark which VRRPv3/IPv4 checksum form to verify.
fn decode_with(lab: &Lab, frames: &[Frame], as_v2: bool) -> Vec<String> {
    let file = lab.dir.join("capture.pcap");
    pcap::write(&file, frames).unwrap();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args([
            "-o",
            &format!(
                "vrrp.v3_checksum_as_in_v2:{}",
                if as_v2 { "TRUE" } else { "FALSE" }
            ),
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "frame.protocols",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ])
        .args([
            "-e",
            "vrrp.checksum.status",
            "-e",
            "icmpv6.checksum.status",
            "-e",
            "vrrp.auth_string",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    eprintln!("tshark says:\n{}", lines.join("\n"));
    lines
}

fn assert_clean(lines: &[String], protocol: &str, min: usize) {
    let matching: Vec<&String> = lines.iter().filter(|l| l.contains(protocol)).collect();
    assert!(
        matching.len() >= min,
        "only {} {protocol} frames:\n{}",
        matching.len(),
        lines.join("\n")
    );
    for l in &matching {
        let f: Vec<&str> = l.split('|').collect();
        assert!(f[1].is_empty(), "malformed: {l}");
        assert!(f[2].is_empty(), "expert info: {l}");
    }
}

/// Whether tshark verified every VRRP checksum as good (status 1).
fn vrrp_checksums_good(lines: &[String]) -> bool {
    lines
        .iter()
        .filter(|l| l.contains("vrrp"))
        .all(|l| l.split('|').nth(3) == Some("1"))
}

#[test]
fn vrrpv3_ipv4_adverts_and_gratuitous_arps_decode_cleanly() {
    if !require_root("vrrpv3_ipv4_adverts_and_gratuitous_arps_decode_cleanly")
        || !tshark_available("v3")
    {
        return;
    }
    let (lab, frames) = capture("tsharkv3", Spec::v3(255, "0.1"), SEC / 2);
    let lines = decode(&lab, &frames);
    assert_clean(&lines, "vrrp", 3);
    assert_clean(&lines, "arp", 5);
    // VRRP checksum verified good (1) under the pseudo-header preference.
    assert!(vrrp_checksums_good(&lines), "{}", lines.join("\n"));
}

#[test]
fn vrrpv3_ipv6_adverts_and_neighbour_advertisements_decode_cleanly() {
    if !require_root("vrrpv3_ipv6_adverts_and_neighbour_advertisements_decode_cleanly")
        || !tshark_available("v6")
    {
        return;
    }
    let (lab, frames) = capture("tsharkv6", Spec::v6(255, "0.1"), SEC / 2);
    let lines = decode(&lab, &frames);
    assert_clean(&lines, "vrrp", 3);
    assert!(vrrp_checksums_good(&lines), "{}", lines.join("\n"));
    let nas: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("icmpv6") && !l.contains("vrrp"))
        .collect();
    assert!(!nas.is_empty(), "no NA captured");
    assert!(
        nas.iter().any(|l| l.split('|').nth(4) == Some("1")),
        "NA checksum not good: {nas:?}"
    );
}

#[test]
fn vrrpv2_with_pass_auth_decodes_cleanly() {
    if !require_root("vrrpv2_with_pass_auth_decodes_cleanly") || !tshark_available("v2") {
        return;
    }
    let (lab, frames) = capture(
        "tsharkv2",
        Spec::v2(255, 1).with_auth("s3cret"),
        SEC + SEC / 5,
    );
    let lines = decode(&lab, &frames);
    assert_clean(&lines, "vrrp", 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("vrrp") && l.ends_with("|s3cret")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn v3_checksum_as_v2_decodes_with_the_matching_preference() {
    if !require_root("v3_checksum_as_v2_decodes_with_the_matching_preference")
        || !tshark_available("csum")
    {
        return;
    }
    let mut spec = Spec::v3(255, "0.1");
    spec.extra = "    v3_checksum_as_v2\n".into();
    let (lab, frames) = capture("tsharkcsum", spec, SEC / 2);
    assert!(
        vrrp_checksums_good(&decode_with(&lab, &frames, true)),
        "not verified with v3_checksum_as_in_v2"
    );
    assert!(
        !vrrp_checksums_good(&decode_with(&lab, &frames, false)),
        "the pseudo-header form verified too: not the RFC 9568 form"
    );
}
