//! The XDP load balancer on real packets: a director (r1) holding the VIP with VRRP, three
//! real servers (r3-r5) running a tiny TCP service that answers with its own name, a sorry
//! server (r6), and the client. Connections from the client to VIP:80 are spread by the
//! scheduler, follow the checkers (a stopped service is avoided, all stopped means the sorry
//! server), and only the VRRP master forwards.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use vrrp_lab::{Lab, agent::Agent, require_root, wait_for};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const SEC: Duration = Duration::from_secs(1);

/// A TCP service on port 80 of `ns` that writes `name` to each connection (and with `echo`
/// then echoes what it reads until the client closes); stops when the flag is set (its
/// listener closes, so connections are refused).
struct NameService {
    stop: Arc<AtomicBool>,
}

impl NameService {
    fn start(ns: &str, name: &str) -> Self {
        Self::serve(ns, name, false)
    }

    fn serve(ns: &str, name: &str, echo: bool) -> Self {
        let listener = vrrp_lab::netns::run_in(ns, || TcpListener::bind(("0.0.0.0", 80)))
            .expect("enter the namespace")
            .expect("listen on port 80");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.write_all(name.as_bytes());
                        if echo {
                            std::thread::spawn(move || {
                                let _ = stream.set_nonblocking(false);
                                let mut buf = [0u8; 512];
                                while let Ok(n @ 1..) = stream.read(&mut buf) {
                                    let _ = stream.write_all(&buf[..n]);
                                }
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self { stop }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for NameService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A DR real server answering with `name`.
fn real_server(lab: &Lab, i: usize, name: &str) -> NameService {
    dr_host(lab, i);
    NameService::start(&lab.router(i).ns, name)
}

/// A DR real server's host: the VIP on its loopback and ARP for it left to the director.
fn dr_host(lab: &Lab, i: usize) {
    let ns = &lab.router(i).ns;
    vrrp_lab::netns::ip(ns, &["addr", "add", &format!("{VIP}/32"), "dev", "lo"])
        .expect("VIP on lo");
    for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
        for scope in ["all", "eth0"] {
            sysctl(ns, &format!("net.ipv4.conf.{scope}.{key}"), value);
        }
    }
}

fn sysctl(ns: &str, key: &str, value: &str) {
    let ok = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("{key}={value}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sysctl {key}={value} in {ns}");
}

/// Opens `n` connections from the client to VIP:80 and counts who answered.
fn spread(lab: &Lab, n: usize) -> BTreeMap<String, usize> {
    spread_to(lab, 80, n)
}

/// Opens `n` connections from the client to VIP:`port` and counts who answered.
fn spread_to(lab: &Lab, port: u16, n: usize) -> BTreeMap<String, usize> {
    vrrp_lab::netns::run_in(&lab.client.ns, move || {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let answer = TcpStream::connect_timeout(&(VIP, port).into(), SEC)
                .and_then(|mut s| {
                    s.set_read_timeout(Some(SEC))?;
                    // The greeting (the name) comes in one segment.
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf)?;
                    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
                })
                .unwrap_or_else(|e| format!("error: {e}"));
            *seen.entry(answer).or_insert(0) += 1;
        }
        seen
    })
    .expect("enter the client namespace")
}

fn director_config(scheduler: &str, kind: &str, extra: &str) -> String {
    director_pair_config(255, "MASTER", scheduler, kind, extra)
}

fn director_pair_config(
    priority: u8,
    state: &str,
    scheduler: &str,
    kind: &str,
    extra: &str,
) -> String {
    let real_servers: String = [(3, 1), (4, 1), (5, 2)]
        .iter()
        .map(|(i, weight)| {
            format!(
                "    real_server 10.0.0.{i} 80 {{\n        weight {weight}\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"
            )
        })
        .collect();
    format!(
        "global_defs {{\n    vrrp_version 3\n}}\nvrrp_instance VI_1 {{\n    state {state}\n    interface eth0\n    virtual_router_id 51\n    priority {priority}\n    advert_int 0.1\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n\
         virtual_server {VIP} 80 {{\n    delay_loop 1\n    lb_algo {scheduler}\n    lb_kind {kind}\n    protocol TCP\n{extra}{real_servers}}}\n"
    )
}

/// Waits until the director's status says `server`'s up-ness is `up`.
fn wait_server(director: &Agent, server: &str, up: bool) {
    wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        let status = director.status().ok()?;
        status.virtual_servers.iter().find_map(|vs| {
            vs.real_servers
                .iter()
                .find(|rs| rs.server == server && rs.up == up)
                .map(|_| ())
        })
    })
    .unwrap_or_else(|| panic!("{server} never became {}", if up { "up" } else { "down" }));
}

#[test]
fn dr_spreads_by_weight_avoids_a_failed_server_and_falls_back_to_the_sorry_server() {
    if !require_root("dr_spreads_by_weight…") {
        return;
    }
    let lab = Lab::new("lbdr", 6).expect("lab");
    let services: Vec<NameService> = (2..5)
        .map(|i| real_server(&lab, i, &format!("rs{}", i + 1)))
        .collect();
    let _sorry = real_server(&lab, 5, "sorry");
    let director = lab
        .spawn_agent(
            lab.router(0),
            &director_config("wrr", "DR", "    sorry_server 10.0.0.6 80\n"),
        )
        .expect("director");
    for i in 3..=5 {
        wait_server(&director, &format!("10.0.0.{i}:80"), true);
    }
    // The MACs are learnt from the checkers' connections within a second or two.
    wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        (spread(&lab, 8)
            .keys()
            .filter(|k| k.starts_with("rs"))
            .count()
            == 3)
            .then_some(())
    })
    .expect("all three real servers answer through the VIP");

    // wrr with weights 1, 1, 2: 40 connections as 10, 10, 20 (two CPUs keep their own
    // cursor, so allow a little either way).
    let seen = spread(&lab, 40);
    assert_eq!(
        seen.values().sum::<usize>(),
        40,
        "every connection answered: {seen:?}"
    );
    let count = |k: &str| seen.get(k).copied().unwrap_or(0);
    assert!((7..=13).contains(&count("rs3")), "{seen:?}");
    assert!((7..=13).contains(&count("rs4")), "{seen:?}");
    assert!((16..=24).contains(&count("rs5")), "{seen:?}");

    // The director forwarded them in XDP: its counters say so, per real server.
    let status = director.status().expect("status");
    let flows: u64 = status.virtual_servers[0]
        .real_servers
        .iter()
        .map(|rs| rs.flows)
        .sum();
    assert!(flows >= 40, "flows counted: {flows}");

    // rs4's service stops: its checker takes it out and new connections avoid it.
    services[1].stop();
    wait_server(&director, "10.0.0.4:80", false);
    let seen = spread(&lab, 20);
    assert!(!seen.contains_key("rs4"), "{seen:?}");
    assert_eq!(count_prefix(&seen, "rs"), 20, "{seen:?}");

    // All stopped: the sorry server answers.
    services[0].stop();
    services[2].stop();
    wait_server(&director, "10.0.0.3:80", false);
    wait_server(&director, "10.0.0.5:80", false);
    wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
        (spread(&lab, 3).get("sorry") == Some(&3)).then_some(())
    })
    .expect("the sorry server answers once every real server is down");
}

fn count_prefix(seen: &BTreeMap<String, usize>, prefix: &str) -> usize {
    seen.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn nat_rewrites_both_ways_and_rr_spreads_evenly_over_a_virtual_server_group() {
    if !require_root("nat_rewrites_both_ways…") {
        return;
    }
    let lab = Lab::new("lbnat", 5).expect("lab");
    // One-armed NAT: the real servers reach the client through the director, which routes.
    let director = &lab.router(0).ns;
    sysctl(director, "net.ipv4.ip_forward", "1");
    for scope in ["all", "eth0"] {
        sysctl(
            director,
            &format!("net.ipv4.conf.{scope}.send_redirects"),
            "0",
        );
    }
    let _services: Vec<NameService> = (2..5)
        .map(|i| {
            let ns = &lab.router(i).ns;
            let client = format!("{}/32", lab.client.addr);
            vrrp_lab::netns::ip(ns, &["route", "add", &client, "via", "10.0.0.1"])
                .expect("route to the client via the director");
            NameService::start(ns, &format!("rs{}", i + 1))
        })
        .collect();
    // One service on two ports (a virtual_server_group), both translated to the servers' 80.
    let config = director_config("rr", "NAT", "").replace(
        &format!("virtual_server {VIP} 80 {{"),
        &format!("virtual_server_group WEB {{\n    {VIP} 80\n    {VIP} 8080\n}}\nvirtual_server group WEB {{"),
    );
    let agent = lab.spawn_agent(lab.router(0), &config).expect("director");
    for i in 3..=5 {
        wait_server(&agent, &format!("10.0.0.{i}:80"), true);
    }
    wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        let s = spread(&lab, 6);
        (s.keys().filter(|k| k.starts_with("rs")).count() == 3).then_some(())
    })
    .expect("all three real servers answer through the VIP");
    // rr ignores the weights: 30 connections, about 10 each; every one answered from
    // VIP:80 (the client's connect to the VIP succeeded, so the replies were translated).
    let seen = spread(&lab, 30);
    assert_eq!(count_prefix(&seen, "rs"), 30, "{seen:?}");
    for rs in ["rs3", "rs4", "rs5"] {
        let n = seen.get(rs).copied().unwrap_or(0);
        assert!((6..=14).contains(&n), "{seen:?}");
    }
    // The group's other entry is the same service: same servers, same table.
    let seen = spread_to(&lab, 8080, 6);
    assert_eq!(count_prefix(&seen, "rs"), 6, "VIP:8080: {seen:?}");
}

#[test]
fn mh_dr_connections_survive_a_director_failover() {
    if !require_root("mh_dr_connections_survive…") {
        return;
    }
    let lab = Lab::new("lbmh", 5).expect("lab");
    let _services: Vec<NameService> = (2..5)
        .map(|i| {
            dr_host(&lab, i);
            NameService::serve(&lab.router(i).ns, &format!("rs{}", i + 1), true)
        })
        .collect();
    let master = lab
        .spawn_agent(
            lab.router(0),
            &director_pair_config(200, "BACKUP", "mh", "DR", ""),
        )
        .expect("director 1");
    let backup = lab
        .spawn_agent(
            lab.router(1),
            &director_pair_config(100, "BACKUP", "mh", "DR", ""),
        )
        .expect("director 2");
    assert!(
        master
            .wait_state(vrrp_agent::election::State::Master, 10 * SEC)
            .is_some()
    );
    assert!(
        backup
            .wait_state(vrrp_agent::election::State::Backup, 10 * SEC)
            .is_some()
    );
    for director in [&master, &backup] {
        for i in 3..=5 {
            wait_server(director, &format!("10.0.0.{i}:80"), true);
        }
    }
    // mh hashes the client's address: every connection of this client lands on one server.
    let first = wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        let seen = spread(&lab, 4);
        (seen.len() == 1 && seen.keys().all(|k| k.starts_with("rs")))
            .then(|| seen.into_keys().next())
            .flatten()
    })
    .expect("connections through the master director");
    // Both directors have resolved every real server (their tables are then the same).
    std::thread::sleep(2 * SEC);

    let ns = lab.client.ns.clone();
    let (to_client, from_test) = std::sync::mpsc::channel::<&'static str>();
    let (to_test, answers) = std::sync::mpsc::channel::<String>();
    let client = std::thread::spawn(move || {
        vrrp_lab::netns::run_in(&ns, move || {
            let mut s = TcpStream::connect_timeout(&(VIP, 80).into(), SEC).expect("connect");
            s.set_read_timeout(Some(5 * SEC)).expect("timeout");
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = to_test.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            while let Ok(line) = from_test.recv() {
                let echoed = s
                    .write_all(line.as_bytes())
                    .and_then(|()| s.read(&mut buf))
                    .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
                    .unwrap_or_else(|e| format!("error: {e}"));
                let _ = to_test.send(echoed);
            }
        })
    });
    let name = answers
        .recv_timeout(5 * SEC)
        .expect("the long-lived connection's greeting");
    assert_eq!(name, first);
    to_client.send("before\n").expect("client");
    assert_eq!(answers.recv_timeout(5 * SEC).as_deref(), Ok("before\n"));

    // The master director dies; the backup takes over and forwards.
    let mut master = master;
    master.signal(libc::SIGKILL);
    let _ = master.wait_exit(5 * SEC);
    assert!(
        backup
            .wait_state(vrrp_agent::election::State::Master, 5 * SEC)
            .is_some()
    );
    // The client learns the new director's MAC from its gratuitous ARPs.
    wait_for(5 * SEC, Duration::from_millis(50), || {
        (lab.client_neighbour(VIP).ok()?? == lab.router(1).mac).then_some(())
    })
    .expect("the client follows the VIP to the new director");
    to_client.send("after\n").expect("client");
    assert_eq!(
        answers.recv_timeout(6 * SEC).as_deref(),
        Ok("after\n"),
        "the established connection survived the director failover"
    );
    drop(to_client);
    let _ = client.join();
    let seen = spread(&lab, 3);
    assert_eq!(
        seen.get(&first),
        Some(&3),
        "new connections through the new director: {seen:?}"
    );
}
