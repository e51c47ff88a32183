use std::net::Ipv6Addr;

use super::*;

fn cfg(text: &str) -> Result<Config, Diagnostics> {
    parse(Path::new("keepalived.conf"), text)
}

fn first_error(text: &str) -> (u32, u32, String) {
    let errs = cfg(text).unwrap_err();
    let d = &errs.0[0];
    (d.location.line, d.location.col, d.message.clone())
}

const GOOD: &str = r#"
global_defs {
    router_id lab1
    vrrp_version 3
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 200
    advert_int 0.1
    virtual_ipaddress {
        10.0.0.100/24
        10.0.0.101
    }
}
"#;

#[test]
fn parses_the_foundation_subset() {
    let c = cfg(GOOD).unwrap();
    assert_eq!(c.router_id.as_deref(), Some("lab1"));
    let i = &c.instances[0];
    assert_eq!(i.name, "VI_1");
    assert_eq!(i.initial_state, InitialState::Master);
    assert_eq!(
        (i.vrid, i.priority, i.advert_int_cs, i.version),
        (51, 200, 10, 3)
    );
    assert!(i.preempt);
    assert_eq!(i.virtual_addresses[1].prefix_len, 32);
    assert_eq!(i.location.line, 7);
}

#[test]
fn typo_in_keyword_is_located() {
    let text = GOOD.replace("    priority 200", "    priorty 200");
    let (line, col, msg) = first_error(&text);
    assert_eq!((line, col), (11, 5));
    assert!(msg.contains("priorty"), "{msg}");
}

#[test]
fn out_of_range_values_are_located() {
    let (line, col, msg) =
        first_error(&GOOD.replace("virtual_router_id 51", "virtual_router_id 256"));
    assert_eq!((line, col), (10, 23));
    assert!(msg.contains("1 to 255"), "{msg}");
    let (_, _, msg) = first_error(&GOOD.replace("advert_int 0.1", "advert_int 41"));
    assert!(msg.contains("0.01 to 40.95"), "{msg}");
    // Reported in place order: the instance's own "no interface" comes first.
    let errs = cfg(&GOOD.replace("    interface eth0", "    interface")).unwrap_err();
    assert!(
        errs.0
            .iter()
            .any(|d| d.message.contains("missing its value")),
        "{errs:?}"
    );
}

#[test]
fn version_defaults_to_2_like_keepalived_and_v2_rounds_to_whole_seconds() {
    let text = GOOD.replace("    vrrp_version 3\n", "");
    let c = cfg(&text).unwrap();
    assert_eq!(c.instances[0].version, 2);
    assert_eq!(c.instances[0].advert_int_cs, 100);
    let w = &c.warnings[0];
    assert!(w.message.contains("whole seconds"), "{w}");
    assert_eq!((w.location.line, w.location.col), (11, 16));
    // The instance keyword overrides the global default.
    let text = text.replace("    state MASTER", "    state MASTER\n    version 3");
    assert_eq!(cfg(&text).unwrap().instances[0].version, 3);
}

#[test]
fn pass_authentication_for_v2_ah_refused_v3_ignored() {
    let v2 = GOOD
        .replace("    vrrp_version 3\n", "")
        .replace("advert_int 0.1", "advert_int 1\n    authentication {\n        auth_type PASS\n        auth_pass secret99x\n    }");
    let c = cfg(&v2).unwrap();
    assert_eq!(c.instances[0].auth_pass, Some(*b"secret99"));
    assert!(c.warnings[0].message.contains("longer than 8"));
    let (line, col, msg) = first_error(&v2.replace("auth_type PASS", "auth_type AH"));
    assert_eq!((line, col), (13, 19));
    assert!(msg.contains("AH"), "{msg}");
    let v3 = GOOD.replace(
        "advert_int 0.1",
        "advert_int 0.1\n    authentication {\n        auth_type PASS\n        auth_pass x\n    }",
    );
    let c = cfg(&v3).unwrap();
    assert_eq!(c.instances[0].auth_pass, None);
    assert!(
        c.warnings[0]
            .message
            .contains("VRRPv3 has no authentication")
    );
}

#[test]
fn duplicate_vrid_on_an_interface_is_refused() {
    let second = GOOD
        .split("vrrp_instance")
        .nth(1)
        .unwrap()
        .replace("VI_1", "VI_2");
    let text = format!("{GOOD}vrrp_instance{second}");
    let errs = cfg(&text).unwrap_err();
    assert!(errs.0[0].message.contains("already used"), "{}", errs);
}

/// A second instance on eth0 with VRID 51: `vips` for its addresses, `extra` added to it.
fn with_second_instance(vips: &str, extra: &str) -> String {
    format!(
        "{GOOD}vrrp_instance VI_2 {{\n interface eth0\n virtual_router_id 51\n priority 100\n advert_int 0.1\n{extra}\n virtual_ipaddress {{\n {vips}\n }}\n}}\n"
    )
}

#[test]
fn the_same_vrid_is_a_different_router_per_family_and_per_disjoint_unicast_peer_set() {
    // IPv4 and IPv6 VRID 51 on one interface are independent routers.
    assert!(cfg(&with_second_instance("fd00::100/64", "")).is_ok());
    // Unicast instances may share a VRID when their peers differ (keepalived 2.2.7 agrees).
    let first_unicast = GOOD.replace(
        "    advert_int 0.1\n",
        "    advert_int 0.1\n    unicast_peer {\n 10.0.0.2\n }\n",
    );
    assert_ne!(first_unicast, GOOD);
    let two =
        |peer: &str| {
            with_second_instance("10.0.0.200/24", &format!(" unicast_peer {{\n {peer}\n }}"))
                .replacen(GOOD, &first_unicast, 1)
        };
    assert!(
        cfg(&two("10.0.0.3")).is_ok(),
        "{:?}",
        cfg(&two("10.0.0.3")).err()
    );
    let errs = cfg(&two("10.0.0.2")).unwrap_err();
    assert!(errs.0[0].message.contains("already used"), "{errs}");
    // One unicast and one multicast instance would hear each other's adverts.
    assert!(
        cfg(&with_second_instance(
            "10.0.0.200/24",
            " unicast_peer {\n 10.0.0.3\n }"
        ))
        .is_err()
    );
}

#[test]
fn notify_scripts_for_instances_and_groups_and_script_security() {
    let text = GOOD.replace(
        "    priority 200",
        "    priority 200\n    notify_master \"/etc/keepalived/master.sh 'a b'\" nobody\n    notify /bin/true",
    ) + "vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 52\n priority 100\n virtual_ipaddress {\n 10.0.0.102\n }\n}\n"
        + "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n    notify_backup /bin/true\n}\n";
    let c = cfg(&text).unwrap();
    let master = c.instances[0].notify.master.as_ref().unwrap();
    assert_eq!(master.argv(), ["/etc/keepalived/master.sh", "a b"]);
    assert_eq!(master.user.as_deref(), Some("nobody"));
    assert!(c.instances[0].notify.generic.is_some());
    assert!(c.sync_groups[0].notify.backup.is_some());
    assert!(c.unsafe_scripts, "scripts without enable_script_security");
    // With script security, a root script must not be changeable by others: /bin/true is
    // fine, one in a world-writable place is refused with its location.
    let secured = text.replace("global_defs {", "global_defs {\n    enable_script_security");
    assert!(!cfg(&secured).unwrap().unsafe_scripts);
    let dir = std::env::temp_dir().join(format!("vrrp-unsafe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("s.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o777)).unwrap();
    let unsafe_text = secured.replace("notify /bin/true", &format!("notify {}", script.display()));
    let errs = cfg(&unsafe_text).unwrap_err();
    assert!(
        errs.0
            .iter()
            .any(|e| e.message.contains("unsafe to run as root")),
        "{errs}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lowercase_state_warns_and_nopreempt_under_master_is_cleared() {
    let text = GOOD.replace("state MASTER", "state master\n    nopreempt");
    let c = cfg(&text).unwrap();
    assert!(c.instances[0].preempt);
    assert_eq!(c.warnings.len(), 2);
}

#[test]
fn unknown_top_level_block_is_refused() {
    let (line, col, msg) = first_error("bfd_instance b1 {\n  neighbor_ip 10.0.0.2\n}\n");
    assert_eq!((line, col), (1, 1));
    assert!(msg.contains("bfd_instance"));
}

#[test]
fn unicast_source_and_peers() {
    let text = GOOD.replace(
        "    priority 200",
        "    priority 200\n    unicast_src_ip 10.0.0.1\n    unicast_peer {\n        10.0.0.2\n        10.0.0.3\n    }",
    );
    let c = cfg(&text).unwrap();
    let i = &c.instances[0];
    assert_eq!(i.unicast_src_ip, Some(Ipv4Addr::new(10, 0, 0, 1).into()));
    let peers: Vec<IpAddr> = vec![
        Ipv4Addr::new(10, 0, 0, 2).into(),
        Ipv4Addr::new(10, 0, 0, 3).into(),
    ];
    assert_eq!(i.unicast_peers, peers);
    let (_, _, msg) = first_error(&text.replace("10.0.0.3\n", "fd00::3\n"));
    assert!(msg.contains("is IPv6 but the instance is IPv4"), "{msg}");
    let (line, _, msg) = first_error(&text.replace("10.0.0.3", "10.0.0.3 min_ttl 5"));
    assert_eq!(line, 15);
    assert!(msg.contains("min_ttl"), "{msg}");
}

#[test]
fn ipv6_instances_are_v3_and_single_family() {
    let text = GOOD.replace(
        "10.0.0.100/24\n        10.0.0.101",
        "fd00::100/64\n        fd00::101",
    );
    let c = cfg(&text.replace("vrrp_version 3", "vrrp_version 2")).unwrap();
    let i = &c.instances[0];
    assert!(i.is_ipv6());
    assert_eq!(i.version, 3);
    assert_eq!(i.virtual_addresses[1].prefix_len, 128);
    assert_eq!(
        i.virtual_addresses[0].address,
        "fd00::100".parse::<Ipv6Addr>().unwrap()
    );
    let (_, _, msg) = first_error(&text.replace("fd00::101", "10.0.0.1"));
    assert!(
        msg.contains("one family") || msg.contains("is IPv4"),
        "{msg}"
    );
}

#[test]
fn virtual_address_options_and_excluded_addresses() {
    let text = GOOD.replace(
        "10.0.0.101",
        "10.0.0.101/24 brd 10.0.0.255 dev eth1 scope link label eth0:vip\n    }\n    virtual_ipaddress_excluded {\n        192.0.2.1/32",
    );
    let c = cfg(&text).unwrap();
    let i = &c.instances[0];
    let v = &i.virtual_addresses[1];
    assert_eq!(v.dev.as_deref(), Some("eth1"));
    assert_eq!(v.label.as_deref(), Some("eth0:vip"));
    assert_eq!(v.scope, Some(253));
    assert_eq!(v.broadcast, Some(Ipv4Addr::new(10, 0, 0, 255)));
    assert_eq!(i.excluded_addresses.len(), 1);
    assert_eq!(i.all_addresses().count(), 3);
    let (line, col, msg) = first_error(&GOOD.replace("10.0.0.101", "10.0.0.101 peer 10.0.0.9"));
    assert_eq!((line, col), (15, 20));
    assert!(msg.contains("`peer`"), "{msg}");
}

#[test]
fn semantics_changing_keywords_are_refused_with_a_reason() {
    let (line, col, msg) = first_error(&GOOD.replace(
        "    priority 200",
        "    priority 200\n    track_bfd {\n        b1\n    }",
    ));
    assert_eq!((line, col), (12, 5));
    assert!(msg.contains("track_bfd") && msg.contains("BFD"), "{msg}");
    let c = cfg(&GOOD.replace(
        "    priority 200",
        "    priority 200\n    use_vmac vrrp.51\n    no_accept",
    ))
    .unwrap();
    assert!(c.instances[0].use_vmac && !c.instances[0].accept);
    let c = cfg(&GOOD.replace(
        "    priority 200",
        "    priority 200\n    preempt_delay 2.5",
    ))
    .unwrap();
    assert_eq!(c.instances[0].preempt_delay_ms, 2500);
    let (_, _, msg) =
        first_error(&GOOD.replace("    vrrp_version 3", "    vrrp_version 3\n    vrrp_strict"));
    assert!(msg.contains("vrrp_strict"), "{msg}");
}

#[test]
fn sync_groups_name_existing_instances_once() {
    let second = GOOD
        .split("vrrp_instance")
        .nth(1)
        .unwrap()
        .replace("VI_1", "VI_2")
        .replace("51", "52");
    let two = format!("{GOOD}vrrp_instance{second}");
    let text = format!(
        "{two}vrrp_sync_group VG_1 {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}\n"
    );
    let c = cfg(&text).unwrap();
    assert_eq!(c.sync_groups[0].members, ["VI_1", "VI_2"]);
    let bad = text.replace("        VI_2\n    }", "        VI_3\n    }");
    let errs = cfg(&bad).unwrap_err();
    assert!(errs.0[0].message.contains("VI_3"), "{errs}");
    let single = text.replace("        VI_2\n    }", "    }");
    let c = cfg(&single).unwrap();
    assert!(c.sync_groups.is_empty());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.message.contains("fewer than two"))
    );
}

#[test]
fn v3_checksum_as_v2_globally_or_per_instance() {
    let c = cfg(&GOOD.replace(
        "    vrrp_version 3",
        "    vrrp_version 3\n    v3_checksum_as_v2",
    ))
    .unwrap();
    assert!(c.instances[0].v3_checksum_as_v2);
    let c = cfg(&GOOD.replace(
        "    priority 200",
        "    priority 200\n    v3_checksum_as_v2 false",
    ))
    .unwrap();
    assert!(!c.instances[0].v3_checksum_as_v2);
    let (_, _, msg) = first_error(&GOOD.replace(
        "    priority 200",
        "    priority 200\n    v3_checksum_as_v2 maybe",
    ));
    assert!(msg.contains("true or false"), "{msg}");
}

#[test]
fn virtual_routes_subset() {
    let text = GOOD.replace(
        "    virtual_ipaddress {",
        "    virtual_routes {\n        192.0.2.0/24 via 10.0.0.254 dev eth0 metric 10\n        blackhole 198.51.100.0/24\n        src 10.0.0.100 to 203.0.113.0/24 via 10.0.0.254 table 100\n    }\n    virtual_ipaddress {",
    );
    let c = cfg(&text).unwrap();
    let r = &c.instances[0].virtual_routes;
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[0].destination, r[0].prefix_len, r[0].metric),
        (Ipv4Addr::new(192, 0, 2, 0), 24, Some(10))
    );
    assert_eq!(r[0].gateway, Some(Ipv4Addr::new(10, 0, 0, 254)));
    assert!(r[1].blackhole);
    assert_eq!(
        (r[2].src, r[2].table),
        (Some(Ipv4Addr::new(10, 0, 0, 100)), Some(100))
    );
    let (_, _, msg) = first_error(&text.replace("metric 10", "onlink"));
    assert!(msg.contains("onlink"), "{msg}");
}

#[test]
fn virtual_rules_need_a_table() {
    let text = GOOD.replace(
        "    virtual_ipaddress {",
        "    virtual_rules {\n        from 10.0.0.100 table 100 priority 1000\n    }\n    virtual_ipaddress {",
    );
    let c = cfg(&text).unwrap();
    let r = &c.instances[0].virtual_rules[0];
    assert_eq!(
        (r.from, r.table, r.priority),
        (
            Some((Ipv4Addr::new(10, 0, 0, 100), 32)),
            Some(100),
            Some(1000)
        )
    );
    let (_, _, msg) = first_error(&text.replace(" table 100", ""));
    assert!(msg.contains("needs a table"), "{msg}");
}

#[test]
fn tracking_weights_resolve_as_keepalived_does() {
    let scripts = "vrrp_script chk {\n    script \"/bin/true\"\n    weight -20\n    rise 2\n}\n\
        vrrp_script plain {\n    script /bin/true\n}\n";
    let text = format!(
        "{scripts}{}",
        GOOD.replace(
            "    priority 200",
            "    priority 200\n    track_script {\n        chk\n        plain weight 10 reverse\n    }\n    track_interface {\n        eth1 weight -5\n        eth2\n    }",
        )
    );
    let c = cfg(&text).unwrap();
    let tracks = &c.instances[0].tracks;
    let got: Vec<(Tracked, Option<i32>, Option<bool>)> = tracks
        .iter()
        .map(|t| (t.what.clone(), t.weight, t.reverse))
        .collect();
    assert_eq!(
        got,
        vec![
            (Tracked::Script("chk".into()), Some(-20), Some(false)),
            (Tracked::Script("plain".into()), Some(10), Some(true)),
            (Tracked::Interface("eth1".into()), Some(-5), Some(false)),
            (Tracked::Interface("eth2".into()), Some(0), Some(false)),
        ]
    );
    assert_eq!(c.vrrp_scripts[0].rise, 2);
    assert_eq!(
        c.vrrp_scripts[0].timeout_ms, 1000,
        "timeout defaults to the interval"
    );
    // An address owner keeps 255: its weights become 0 (FAULT on failure), with a warning.
    let owner = cfg(&text.replace("priority 200", "priority 255")).unwrap();
    assert!(
        owner.instances[0]
            .tracks
            .iter()
            .all(|t| t.weight == Some(0))
    );
    assert!(
        owner
            .warnings
            .iter()
            .any(|w| w.message.contains("tracking weights ignored"))
    );
}

#[test]
fn a_tracked_name_must_be_defined() {
    let (line, col, msg) = first_error(&GOOD.replace(
        "    priority 200",
        "    priority 200\n    track_script {\n        chk_nginx\n    }",
    ));
    assert_eq!((line, col), (13, 9));
    assert!(msg.contains("no vrrp_script named `chk_nginx`"), "{msg}");
}

#[test]
fn rate_limits_parse_and_bad_ones_are_located() {
    let limited = GOOD.replace(
        "    vrrp_version 3\n",
        "    vrrp_version 3\n    vrrp_agent_rate_limit vrrp 2000 arp 500\n",
    );
    let c = cfg(&limited).unwrap();
    assert_eq!(
        c.rate_limit,
        RateLimit {
            vrrp: 2000,
            arp: 500
        }
    );
    let (line, col, msg) = first_error(&GOOD.replace(
        "    vrrp_version 3\n",
        "    vrrp_version 3\n    vrrp_agent_rate_limit icmp 5\n",
    ));
    assert_eq!((line, col), (5, 27));
    assert!(msg.contains("icmp"), "{msg}");
    let (_, _, msg) = first_error(&GOOD.replace(
        "    vrrp_version 3\n",
        "    vrrp_version 3\n    vrrp_agent_rate_limit arp many\n",
    ));
    assert!(msg.contains("packets per second"), "{msg}");
}

#[test]
fn ipv6_virtual_servers_are_forwarded_and_mixed_families_are_warned() {
    let vs = |vip: &str, rs: &str| {
        format!(
            "virtual_server {vip} 80 {{\n    lb_kind DR\n    real_server {rs} 80 {{\n        TCP_CHECK {{\n        }}\n    }}\n}}\n"
        )
    };
    let c = cfg(&vs("fd00::100", "fd00::3")).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = cfg(&vs("fd00::100", "10.0.0.3")).unwrap();
    let w = &c.warnings[0];
    assert_eq!(w.location.line, 1);
    assert!(
        w.message
            .contains("not of the virtual server's address family"),
        "{}",
        w.message
    );
}

#[test]
fn ipv6_dr_checks_of_a_held_vip_without_bindto_are_warned() {
    let config = |bind: &str| {
        format!(
            "vrrp_instance V6 {{\n    interface eth0\n    virtual_router_id 7\n    priority 100\n    virtual_ipaddress {{\n        fd00::100/64\n    }}\n}}\n\
             virtual_server fd00::100 80 {{\n    lb_kind DR\n    real_server fd00::3 80 {{\n        TCP_CHECK {{\n{bind}        }}\n    }}\n}}\n"
        )
    };
    let warned = |c: &Config| {
        c.warnings
            .iter()
            .find(|w| w.message.contains("source of its checks"))
            .map(|w| w.location.line)
    };
    let c = cfg(&config("")).unwrap();
    assert_eq!(warned(&c), Some(9), "{:?}", c.warnings);
    let c = cfg(&config("            bindto fd00::1\n")).unwrap();
    assert_eq!(warned(&c), None, "{:?}", c.warnings);
    // NAT is not affected (the replies come back through the director).
    let c = cfg(&config("").replace("lb_kind DR", "lb_kind NAT")).unwrap();
    assert_eq!(warned(&c), None, "{:?}", c.warnings);
}
