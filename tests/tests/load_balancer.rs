//! The XDP load balancer on real packets: a director (r1) holding the VIP with VRRP, three
//! real servers (r3-r5) running a tiny TCP service that answers with its own name, a sorry
//! server (r6), and the client. Connections from the client to VIP:80 are spread by the
//! scheduler, follow the checkers (a stopped service is avoided, all stopped means the sorry
//! server), and only the VRRP master forwards.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream},
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
        Self::serve_on(ns, Ipv4Addr::UNSPECIFIED.into(), name, echo)
    }

    fn serve_on(ns: &str, addr: IpAddr, name: &str, echo: bool) -> Self {
        let listener = vrrp_lab::netns::run_in(ns, move || TcpListener::bind((addr, 80)))
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
    spread_over(lab, VIP.into(), port, n)
}

/// Opens `n` connections from the client to `vip`:`port` and counts who answered.
fn spread_over(lab: &Lab, vip: IpAddr, port: u16, n: usize) -> BTreeMap<String, usize> {
    vrrp_lab::netns::run_in(&lab.client.ns, move || {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let answer = TcpStream::connect_timeout(&(vip, port).into(), SEC)
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
        .map(|rs| rs.forwarded.flows)
        .sum();
    assert!(flows >= 40, "flows counted: {flows}");
    assert_eq!(
        status.virtual_servers[0].forwarded.flows, flows,
        "the virtual server's total is its real servers' sum"
    );

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
    // The sorry server's flows count in the virtual server's total.
    let vs = &director.status().expect("status").virtual_servers[0];
    let by_real_servers: u64 = vs.real_servers.iter().map(|rs| rs.forwarded.flows).sum();
    assert!(vs.forwarded.flows >= by_real_servers + 3, "{vs:?}");
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

/// Client source addresses for the per-source schedulers: 10.0.0.200 and up, added to the
/// client's interface.
fn client_sources(lab: &Lab, n: u8) -> Vec<Ipv4Addr> {
    (0..n)
        .map(|i| {
            let addr = Ipv4Addr::new(10, 0, 0, 200 + i);
            vrrp_lab::netns::ip(
                &lab.client.ns,
                &["addr", "add", &format!("{addr}/24"), "dev", "eth0"],
            )
            .expect("client source address");
            addr
        })
        .collect()
}

/// A connection from the client's `source` to VIP:80 (the caller is in the client's
/// namespace) and the name it was greeted with.
fn connect_from(source: Ipv4Addr) -> std::io::Result<(TcpStream, String)> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: plain socket calls on a descriptor owned by the TcpStream right away.
    let mut stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        TcpStream::from_raw_fd(fd)
    };
    // SO_SNDTIMEO bounds connect() too.
    stream.set_write_timeout(Some(SEC))?;
    stream.set_read_timeout(Some(SEC))?;
    let sockaddr = |addr: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
    use std::os::fd::AsRawFd as _;
    let fd = stream.as_raw_fd();
    // SAFETY: valid sockaddr_in values of the given length.
    unsafe {
        if libc::bind(
            fd,
            (&sockaddr(source, 0) as *const libc::sockaddr_in).cast(),
            len,
        ) != 0
            || libc::connect(
                fd,
                (&sockaddr(VIP, 80) as *const libc::sockaddr_in).cast(),
                len,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok((stream, String::from_utf8_lossy(&buf[..n]).into_owned()))
}

/// Who greets each source on a fresh connection (an error's text where none does).
fn greeted_by(lab: &Lab, sources: &[Ipv4Addr]) -> Vec<String> {
    let sources = sources.to_vec();
    vrrp_lab::netns::run_in(&lab.client.ns, move || {
        sources
            .iter()
            .map(|&s| connect_from(s).map_or_else(|e| format!("error: {e}"), |(_, name)| name))
            .collect()
    })
    .expect("enter the client namespace")
}

/// A director with one scheduler in front of r3-r5 (echo services); waits until every real
/// server is up and reachable through the VIP.
fn per_source_lab(name: &str, scheduler: &str) -> (Lab, Vec<NameService>, Agent) {
    let lab = Lab::new(name, 5).expect("lab");
    let services: Vec<NameService> = (2..5)
        .map(|i| {
            dr_host(&lab, i);
            NameService::serve(&lab.router(i).ns, &format!("rs{}", i + 1), true)
        })
        .collect();
    let director = lab
        .spawn_agent(lab.router(0), &director_config(scheduler, "DR", ""))
        .expect("director");
    for i in 3..=5 {
        wait_server(&director, &format!("10.0.0.{i}:80"), true);
    }
    (lab, services, director)
}

#[test]
fn sh_keeps_each_client_on_one_server() {
    if !require_root("sh_keeps_each_client_on_one_server") {
        return;
    }
    let (lab, _services, _director) = per_source_lab("lbsh", "sh");
    let sources = client_sources(&lab, 24);
    // Until every real server's MAC is known the table may still change.
    let first = wait_for(10 * SEC, Duration::from_millis(300), || {
        let seen = greeted_by(&lab, &sources);
        let servers: std::collections::BTreeSet<_> = seen.iter().collect();
        (servers.len() == 3 && servers.iter().all(|s| s.starts_with("rs"))).then_some(seen)
    })
    .expect("24 clients spread over the three real servers");
    for round in 0..3 {
        assert_eq!(
            greeted_by(&lab, &sources),
            first,
            "round {round}: a client changed server"
        );
    }
}

#[test]
fn mh_moves_only_a_failed_servers_clients_and_keeps_established_connections() {
    if !require_root("mh_moves_only_a_failed_servers_clients…") {
        return;
    }
    let (lab, services, director) = per_source_lab("lbmhfail", "mh");
    let sources = client_sources(&lab, 24);
    wait_for(10 * SEC, Duration::from_millis(300), || {
        let seen = greeted_by(&lab, &sources);
        let servers: std::collections::BTreeSet<_> = seen.iter().collect();
        (servers.len() == 3 && servers.iter().all(|s| s.starts_with("rs"))).then_some(())
    })
    .expect("24 clients spread over the three real servers");

    // One long-lived connection per client, and who holds it.
    let ns = lab.client.ns.clone();
    let held = sources.clone();
    let (ask, asked) = std::sync::mpsc::channel::<()>();
    let (tell, told) = std::sync::mpsc::channel::<Vec<(String, bool)>>();
    let client = std::thread::spawn(move || {
        vrrp_lab::netns::run_in(&ns, move || {
            let mut conns: Vec<(TcpStream, String)> = held
                .iter()
                .map(|&s| connect_from(s).expect("a long-lived connection"))
                .collect();
            let _ = tell.send(conns.iter().map(|(_, n)| (n.clone(), true)).collect());
            // Asked again: does each connection still echo?
            while asked.recv().is_ok() {
                let alive = conns
                    .iter_mut()
                    .map(|(s, name)| {
                        let mut buf = [0u8; 16];
                        let ok = s.write_all(b"ping").is_ok()
                            && s.read(&mut buf).is_ok_and(|n| &buf[..n] == b"ping");
                        (name.clone(), ok)
                    })
                    .collect();
                let _ = tell.send(alive);
            }
        })
    });
    let before = told.recv_timeout(10 * SEC).expect("connections opened");
    let placed: Vec<String> = before.into_iter().map(|(n, _)| n).collect();
    assert_eq!(greeted_by(&lab, &sources), placed, "mh is not stable");

    services[1].stop();
    wait_server(&director, "10.0.0.4:80", false);

    // Established connections to the other servers are untouched (rs4's own may live on
    // too: its process still serves them, as with IPVS).
    ask.send(()).expect("client");
    let alive = told.recv_timeout(30 * SEC).expect("echo round");
    for (name, ok) in &alive {
        assert!(
            *ok || name == "rs4",
            "a connection to {name} broke: {alive:?}"
        );
    }
    drop(ask);
    let _ = client.join();

    // New connections: only rs4's clients move.
    let after = greeted_by(&lab, &sources);
    let mut moved = 0;
    for ((source, was), now) in sources.iter().zip(&placed).zip(&after) {
        if was == "rs4" {
            moved += 1;
            assert!(
                now == "rs3" || now == "rs5",
                "{source} was on rs4, now {now}"
            );
        } else {
            assert_eq!(
                now, was,
                "{source} moved from {was} though its server is up"
            );
        }
    }
    assert!(moved > 0, "no client was on rs4: {placed:?}");
}

const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);

/// `fd00::N/64` on a node's interface (the lab has IPv4 only; DAD is off in its namespaces).
fn add_v6(ns: &str, n: u16) -> Ipv6Addr {
    let addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n);
    vrrp_lab::netns::ip(
        ns,
        &["addr", "add", &format!("{addr}/64"), "dev", "eth0", "nodad"],
    )
    .expect("IPv6 address");
    addr
}

#[test]
fn ipv6_virtual_servers_forward_by_dr_and_nat() {
    if !require_root("ipv6_virtual_servers_forward_by_dr_and_nat") {
        return;
    }
    let lab = Lab::new("lbv6", 5).expect("lab");
    let director = lab.router(0).ns.clone();
    add_v6(&director, 1);
    add_v6(&lab.client.ns, 0x50);
    // NAT replies reach the client through the director, which routes them.
    sysctl(&director, "net.ipv6.conf.all.forwarding", "1");
    // r3 and r4 are DR real servers: the VIP on lo (Linux answers neighbour solicitations
    // only for addresses of the interface they arrive on, so eth0 stays quiet about it).
    let mut services = Vec::new();
    for i in [2, 3] {
        let ns = &lab.router(i).ns;
        add_v6(ns, i as u16 + 1);
        vrrp_lab::netns::ip(ns, &["addr", "add", &format!("{VIP6}/128"), "dev", "lo"])
            .expect("VIP on lo");
        services.push(NameService::serve_on(
            ns,
            Ipv6Addr::UNSPECIFIED.into(),
            &format!("rs{}", i + 1),
            false,
        ));
    }
    // r5 is the NAT real server: its route to the client goes through the director, and it
    // must not take the director's redirect to the client (that would bypass the NAT).
    let nat_ns = &lab.router(4).ns;
    add_v6(nat_ns, 5);
    sysctl(nat_ns, "net.ipv6.conf.all.accept_redirects", "0");
    sysctl(nat_ns, "net.ipv6.conf.eth0.accept_redirects", "0");
    vrrp_lab::netns::ip(
        nat_ns,
        &["-6", "route", "add", "fd00::50/128", "via", "fd00::1"],
    )
    .expect("route to the client via the director");
    let _nat_service = NameService::serve_on(nat_ns, Ipv6Addr::UNSPECIFIED.into(), "rs5", false);

    // The checks leave from the director's own address: the VIP shares its /64, so Linux may
    // pick the VIP as their source, and DR real servers (which hold the VIP) would answer
    // themselves (docs/load-balancing.md).
    let check = "TCP_CHECK {\n            connect_timeout 1\n            bindto fd00::1\n        }";
    let config = format!(
        "global_defs {{\n    vrrp_version 3\n}}\n\
         vrrp_instance VI_6 {{\n    state MASTER\n    interface eth0\n    virtual_router_id 52\n    priority 255\n    advert_int 0.1\n    virtual_ipaddress {{\n        {VIP6}/64\n    }}\n}}\n\
         virtual_server {VIP6} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\
             real_server fd00::3 80 {{\n        {check}\n    }}\n\
             real_server fd00::4 80 {{\n        {check}\n    }}\n}}\n\
         virtual_server {VIP6} 8080 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n\
             real_server fd00::5 80 {{\n        {check}\n    }}\n}}\n"
    );
    let agent = lab.spawn_agent(lab.router(0), &config).expect("director");
    for server in ["[fd00::3]:80", "[fd00::4]:80", "[fd00::5]:80"] {
        wait_server(&agent, server, true);
    }
    let vip: IpAddr = VIP6.into();
    // DR: the real servers' MACs come from neighbour discovery within a second or two.
    wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        (spread_over(&lab, vip, 80, 6)
            .keys()
            .filter(|k| k.starts_with("rs"))
            .count()
            == 2)
            .then_some(())
    })
    .expect("both DR real servers answer through the IPv6 VIP");
    let seen = spread_over(&lab, vip, 80, 20);
    assert_eq!(count_prefix(&seen, "rs"), 20, "{seen:?}");
    for rs in ["rs3", "rs4"] {
        let n = seen.get(rs).copied().unwrap_or(0);
        assert!((5..=15).contains(&n), "rr over two servers: {seen:?}");
    }
    // NAT: the client connected to [VIP]:8080 and was answered from there, so the director
    // rewrote the destination on the way in and the source on the way back.
    let seen = spread_over(&lab, vip, 8080, 5);
    assert_eq!(seen.get("rs5"), Some(&5), "NAT over IPv6: {seen:?}");

    let status = agent.status().expect("status");
    assert!(
        status.virtual_servers[0].forwarded.flows >= 20,
        "{status:?}"
    );
    assert!(status.virtual_servers[1].forwarded.flows >= 5, "{status:?}");

    // A failed DR real server is avoided.
    services[0].stop();
    wait_server(&agent, "[fd00::3]:80", false);
    let seen = spread_over(&lab, vip, 80, 6);
    assert_eq!(seen.get("rs4"), Some(&6), "{seen:?}");
}
