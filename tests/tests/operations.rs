//! Seeing the running daemon: `vrrp-agent status --json` and the Prometheus endpoint report
//! what the lab shows.

use std::{
    io::{Read as _, Write as _},
    process::Command,
    time::Duration,
};

use vrrp_agent::election::State;
use vrrp_lab::{Lab, agent::agent_binary, require_root, run_in, single_instance_config};

const SEC: Duration = Duration::from_secs(1);

/// GET /metrics from inside a namespace.
fn scrape(ns: &str, port: u16) -> String {
    run_in(ns, move || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(5 * SEC))?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })
    .unwrap()
    .unwrap()
}

/// The value of the sample whose name and labels start with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn status_json_and_metrics_report_the_lab() {
    if !require_root("status_json_and_metrics_report_the_lab") {
        return;
    }
    let lab = Lab::new("ops", 2).expect("lab");
    let args = ["--metrics-listen", "127.0.0.1:9650"];
    let dump_dir = lab.dir.to_str().unwrap();
    let master = lab
        .spawn_agent_with(
            lab.router(0),
            &single_instance_config(200, "0.1"),
            &[&args[..], &["--dump-dir", dump_dir]].concat(),
        )
        .unwrap();
    let backup = lab
        .spawn_agent_with(lab.router(1), &single_instance_config(100, "0.1"), &args)
        .unwrap();
    assert!(master.wait_state(State::Master, 5 * SEC).is_some());
    assert!(
        backup
            .wait_backup_of(Some(lab.router(0).addr.into()), 3 * SEC)
            .is_some()
    );
    std::thread::sleep(SEC / 2);

    // The CLI's JSON, through the control socket.
    let out = Command::new(agent_binary())
        .args(["status", "--json", "--control-socket"])
        .arg(&master.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["instances"][0]["state"], "MASTER");
    assert_eq!(
        json["instances"][0]["transitions"], 2,
        "INIT -> BACKUP -> MASTER"
    );
    assert!(
        json["instances"][0]["counters"]["adverts-sent"]
            .as_u64()
            .unwrap()
            > 0
    );

    let labels = "{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\"}";
    let m = scrape(&lab.router(0).ns, 9650);
    assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
    assert_eq!(
        sample(&m, &format!("vrrp_instance_state{labels}")),
        Some(2),
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("vrrp_instance_priority{labels}")),
        Some(200)
    );
    assert_eq!(
        sample(&m, &format!("vrrp_instance_transitions_total{labels}")),
        Some(2)
    );
    assert!(sample(&m, &format!("vrrp_adverts_sent_total{labels}")).unwrap() > 0);
    let b = scrape(&lab.router(1).ns, 9650);
    assert_eq!(
        sample(&b, &format!("vrrp_instance_state{labels}")),
        Some(1),
        "{b}"
    );
    assert!(sample(&b, &format!("vrrp_adverts_received_total{labels}")).unwrap() > 0);
    assert_eq!(
        sample(
            &b,
            "vrrp_rx_errors_total{instance=\"VI_1\",interface=\"eth0\",vrid=\"51\",reason=\"checksum-errors\"}"
        ),
        Some(0)
    );
    // Anything else is a 404, and the daemon carries on.
    let other = run_in(&lab.router(0).ns, || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", 9650))?;
        s.write_all(b"GET /nope HTTP/1.1\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .unwrap()
    .unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    assert_eq!(master.state(), Some(State::Master));

    // keepalived's signal dumps, signalled by the numbers `--signum` gives.
    for (sigfunc, file, expected) in [
        (
            "DATA",
            "vrrp-agent.data",
            "VI_1             eth0       vrid 51  MASTER",
        ),
        ("STATS", "vrrp-agent.stats", "VRRP Instance: VI_1"),
        ("JSON", "vrrp-agent.json", "\"state\": \"MASTER\""),
    ] {
        let out = Command::new(agent_binary())
            .arg(format!("--signum={sigfunc}"))
            .output()
            .unwrap();
        let signal: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        master.signal(signal);
        let path = lab.dir.join(file);
        let text = vrrp_lab::wait_for(3 * SEC, Duration::from_millis(20), || {
            std::fs::read_to_string(&path).ok()
        })
        .unwrap_or_else(|| panic!("{sigfunc} wrote no {file}: {}", master.log_text()));
        assert!(text.contains(expected), "{file}:\n{text}");
        if sigfunc == "STATS" {
            let sent = text
                .lines()
                .find_map(|l| l.strip_prefix("  adverts-sent: "))
                .and_then(|v| v.parse::<u64>().ok());
            assert!(sent.is_some_and(|n| n > 0), "{text}");
        }
    }
    assert_eq!(
        master.state(),
        Some(State::Master),
        "a dump signal is not fatal"
    );
}

#[test]
fn sighup_with_the_same_configuration_changes_nothing() {
    if !require_root("sighup_with_the_same_configuration_changes_nothing") {
        return;
    }
    let lab = Lab::new("sighup", 1).expect("lab");
    let mut agent = lab
        .spawn_agent(lab.router(0), &single_instance_config(255, "0.1"))
        .unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    agent.signal(libc::SIGHUP);
    std::thread::sleep(SEC / 2);
    assert!(
        agent.wait_exit(Duration::ZERO).is_none(),
        "SIGHUP killed the daemon"
    );
    assert_eq!(agent.state(), Some(State::Master));
    assert!(
        lab.addresses(lab.router(0))
            .unwrap()
            .contains(&vrrp_lab::VIP)
    );
    assert!(
        agent.log_text().contains(
            "configuration reloaded: 1 instance(s) kept as they were, 0 retuned in place, 0 started, 0 stopped"
        ),
        "{}",
        agent.log_text()
    );
}

#[test]
fn an_operator_can_fault_resume_and_reannounce_an_instance() {
    if !require_root("an_operator_can_fault_resume_and_reannounce_an_instance") {
        return;
    }
    let lab = Lab::new("opaction", 2).expect("lab");
    let (master, backup) = lab.elected_pair("0.1");
    let cli = |args: &[&str]| {
        let out = Command::new(agent_binary())
            .args(args)
            .arg("--control-socket")
            .arg(&master.socket)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Fault: the master hands over at once (priority 0, so within skew time) and stays out.
    let (ok, said) = cli(&["instance", "VI_1", "fault"]);
    assert!(ok, "{said}");
    assert!(
        backup.wait_state(State::Master, SEC).is_some(),
        "no handover"
    );
    assert_eq!(master.state(), Some(State::Fault));
    std::thread::sleep(SEC / 2);
    assert_eq!(master.state(), Some(State::Fault), "it must stay in FAULT");
    // Resume: back to the election, where r1's higher priority wins again.
    let (ok, said) = cli(&["instance", "VI_1", "resume"]);
    assert!(ok, "{said}");
    assert!(master.wait_state(State::Master, 3 * SEC).is_some());
    // send-garp: a master announces its VIP again.
    let client = lab.capture(&lab.client).unwrap();
    let (ok, said) = cli(&["instance", "VI_1", "send-garp"]);
    assert!(ok, "{said}");
    let garp = client.wait_incoming(SEC, |f| {
        vrrp_agent::packet::Arp::parse_frame(f)
            .is_some_and(|a| a.spa == vrrp_lab::VIP && a.tpa == vrrp_lab::VIP)
    });
    assert!(garp.is_some(), "no gratuitous ARP after send-garp");
    // Mistakes get an error reply, not a crash.
    let (ok, said) = cli(&["instance", "NOPE", "fault"]);
    assert!(
        !ok && said.contains("no vrrp_instance named NOPE"),
        "{said}"
    );
    let (ok, said) = cli(&["instance", "VI_1", "resume"]);
    assert!(!ok && said.contains("not held in FAULT"), "{said}");
    assert_eq!(master.state(), Some(State::Master));
}

#[test]
fn with_dynamic_interfaces_an_instance_waits_for_its_interface() {
    if !require_root("with_dynamic_interfaces_an_instance_waits_for_its_interface") {
        return;
    }
    let lab = Lab::new("dynif", 1).expect("lab");
    let ns = lab.router(0).ns.clone();
    let config = "global_defs {\n    vrrp_version 3\n    dynamic_interfaces\n}\n\
        vrrp_instance LATE {\n    state MASTER\n    interface late0\n    virtual_router_id 9\n    priority 255\n    advert_int 0.1\n    virtual_ipaddress {\n        10.9.9.100/24\n    }\n}\n";
    let agent = lab.spawn_agent(lab.router(0), config).unwrap();
    let status = agent.status().unwrap();
    assert!(status.instances.is_empty());
    assert_eq!(status.waiting, vec!["LATE".to_string()]);

    // The interface appears (with an address to advertise from): the instance starts.
    let create = || {
        for args in [
            &[
                "link", "add", "late0", "type", "veth", "peer", "name", "late1",
            ][..],
            &["addr", "add", "10.9.9.1/24", "dev", "late0"],
            &["link", "set", "late1", "up"],
            &["link", "set", "late0", "up"],
        ] {
            vrrp_lab::ip(&ns, args).unwrap();
        }
    };
    let master_with_vip = || {
        let up = vrrp_lab::wait_for(5 * SEC, Duration::from_millis(20), || {
            (agent.instance_state("LATE") == Some(State::Master)).then_some(())
        });
        assert!(up.is_some(), "{}", agent.log_text());
        assert!(agent.status().unwrap().waiting.is_empty());
        let held = vrrp_lab::netns::ipv4_addresses(&ns, "late0").unwrap();
        assert!(held.contains(&"10.9.9.100".parse().unwrap()), "{held:?}");
        assert_eq!(
            vrrp_lab::netns::xdp_program_name(&ns, "late0").unwrap(),
            Some("vrrp_xdp".to_string()),
            "the dataplane runs on the interface"
        );
    };
    create();
    master_with_vip();
    let first_index = vrrp_lab::netns::ifindex(&ns, "late0").unwrap();

    // Deleted: FAULT (still listed), and back as master when re-created under a new index.
    vrrp_lab::ip(&ns, &["link", "del", "late0"]).unwrap();
    let fault = vrrp_lab::wait_for(5 * SEC, Duration::from_millis(20), || {
        (agent.instance_state("LATE") == Some(State::Fault)).then_some(())
    });
    assert!(fault.is_some(), "{}", agent.log_text());
    create();
    assert_ne!(vrrp_lab::netns::ifindex(&ns, "late0").unwrap(), first_index);
    master_with_vip();
}
