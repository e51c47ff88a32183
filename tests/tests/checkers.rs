//! Real-server checkers against real services the test runs in the client namespace: a TCP
//! listener, an HTTP server (200 with a known body, 500, another body), the same over TLS with
//! a generated certificate, an SMTP and a DNS responder, a UDP echo, ICMP echo, and a MISC
//! script. Each goes down when its service breaks (after exactly 1 + `retry` attempts) and up
//! on the first success, in `status`, the metrics and the notify scripts.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket},
    os::unix::fs::PermissionsExt as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering},
    },
    time::Duration,
};

use md5::{Digest as _, Md5};
use vrrp_lab::{Lab, agent::Agent, require_root, single_instance_config, wait_for};

const SEC: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);

/// A service's behaviour (0: healthy; others per service) and how often it was asked.
#[derive(Clone, Default)]
struct Knob {
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl Knob {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
    fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Knob {
    fn drop(&mut self) {
        if Arc::strong_count(&self.stop) == 2 {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Serves TCP connections on `port` in `ns` with `handle(mode, stream)` on a thread.
fn tcp_service(ns: &str, port: u16, handle: impl Fn(u8, TcpStream) + Send + 'static) -> Knob {
    let listener =
        vrrp_lab::netns::run_in(ns, move || TcpListener::bind(("0.0.0.0", port)).unwrap()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let knob = Knob::default();
    let k = knob.clone();
    std::thread::spawn(move || {
        while !k.stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    k.hits.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(SEC));
                    handle(k.mode.load(Ordering::SeqCst), stream);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    knob
}

/// Reads an HTTP request's head.
fn read_request(stream: &mut impl std::io::Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// mode 0: 200 "hello"; 1: 500; 2: 200 with another body.
fn http_answer(mode: u8) -> Vec<u8> {
    let (status, body) = match mode {
        0 => ("200 OK", "hello"),
        1 => ("500 Internal Server Error", "oops"),
        _ => ("200 OK", "changed"),
    };
    format!(
        "HTTP/1.0 {status}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["lab.example".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap(),
    )
}

/// Answers UDP datagrams on `port` in `ns` with `answer(mode, query)`.
fn udp_service(
    ns: &str,
    port: u16,
    answer: impl Fn(u8, &[u8]) -> Vec<u8> + Send + 'static,
) -> Knob {
    let socket =
        vrrp_lab::netns::run_in(ns, move || UdpSocket::bind(("0.0.0.0", port)).unwrap()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let knob = Knob::default();
    let k = knob.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !k.stop.load(Ordering::SeqCst) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            k.hits.fetch_add(1, Ordering::SeqCst);
            let _ = socket.send_to(&answer(k.mode.load(Ordering::SeqCst), &buf[..n]), from);
        }
    });
    knob
}

/// A DNS answer: mode 0 one A record, 1 SERVFAIL.
fn dns_answer(mode: u8, query: &[u8]) -> Vec<u8> {
    let mut reply = query[..2].to_vec();
    if mode == 0 {
        reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        reply.extend_from_slice(&query[12..]);
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 9]);
    } else {
        reply.extend_from_slice(&[0x81, 0x82, 0, 1, 0, 0, 0, 0, 0, 0]);
        reply.extend_from_slice(&query[12..]);
    }
    reply
}

/// A real server's state in `status`, by "IP:PORT".
fn real_server_up(agent: &Agent, server: &str) -> Option<bool> {
    let status = agent.status().ok()?;
    status
        .virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .find(|rs| rs.server == server)
        .map(|rs| rs.up)
}

fn wait_up(agent: &Agent, server: &str, up: bool, within: Duration) -> bool {
    wait_for(within, POLL, || {
        (real_server_up(agent, server) == Some(up)).then_some(())
    })
    .is_some()
}

fn checker(kind: &str, body: &str) -> String {
    format!(
        "        {kind} {{\n            connect_timeout 0.5\n            retry 0\n{body}        }}\n"
    )
}

#[test]
fn every_checker_goes_down_with_its_service_and_up_again() {
    if !require_root("every_checker_goes_down_with_its_service_and_up_again") {
        return;
    }
    let lab = Lab::new("checkers", 1).expect("lab");
    let ns = lab.client.ns.clone();
    let c: Ipv4Addr = lab.client.addr;
    let digest: String = Md5::digest(b"hello")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let tcp = tcp_service(&ns, 8001, |_, _| {});
    let http = tcp_service(&ns, 8080, |mode, mut s| {
        read_request(&mut s);
        let _ = s.write_all(&http_answer(mode));
    });
    let tls = {
        let config = tls_config();
        tcp_service(&ns, 8443, move |mode, s| {
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(conn, s);
            read_request(&mut tls);
            let _ = tls.write_all(&http_answer(mode));
            tls.conn.send_close_notify();
            let _ = tls.flush();
        })
    };
    let smtp = tcp_service(&ns, 2525, |mode, mut s| {
        if mode != 0 {
            let _ = s.write_all(b"554 go away\r\n");
            return;
        }
        let _ = s.write_all(b"220-lab.example ESMTP\r\n220 ready\r\n");
        let mut line = String::new();
        let mut r = BufReader::new(s.try_clone().unwrap());
        if r.read_line(&mut line).is_ok() && line.starts_with("HELO ") {
            let _ = s.write_all(b"250 lab.example\r\n");
            line.clear();
            let _ = r.read_line(&mut line);
            let _ = s.write_all(b"221 bye\r\n");
        }
    });
    let dns = udp_service(&ns, 5353, dns_answer);
    // An echo; broken, it answers with other bytes.
    let udp = udp_service(&ns, 7007, |mode, query| {
        if mode == 0 {
            query.to_vec()
        } else {
            vec![0xff; query.len()]
        }
    });
    let flag = lab.dir.join("misc-broken");
    let misc = lab.dir.join("misc.sh");
    std::fs::write(&misc, format!("#!/bin/sh\ntest ! -e {}\n", flag.display())).unwrap();
    std::fs::set_permissions(&misc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let notify = lab.dir.join("rs-notify.sh");
    let notify_log = lab.dir.join("rs-notify.log");
    std::fs::write(
        &notify,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", notify_log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755)).unwrap();

    let vs = format!(
        "virtual_server 10.0.0.100 80 {{\n    delay_loop 0.3\n    warmup 0\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\
         real_server {c} 8001 {{\n        notify_up \"{n} tcp up\"\n        notify_down \"{n} tcp down\"\n{}    }}\n\
         real_server {c} 8080 {{\n        HTTP_GET {{\n            url {{\n                path /health\n                digest {digest}\n                status_code 200\n            }}\n            connect_timeout 0.5\n            retry 2\n            delay_before_retry 0.1\n        }}\n    }}\n\
         real_server {c} 8443 {{\n{}    }}\n\
         real_server {c} 2525 {{\n{}    }}\n\
         real_server {c} 5353 {{\n{}    }}\n\
         real_server {c} 7007 {{\n{}    }}\n\
         real_server {c} 1 {{\n{}    }}\n\
         real_server {c} 9 {{\n        MISC_CHECK {{\n            misc_path \"{}\"\n            misc_timeout 1\n        }}\n    }}\n\
         }}\n",
        checker(
            "TCP_CHECK",
            "            retry 1\n            delay_before_retry 0.1\n"
        ),
        checker(
            "SSL_GET",
            "            url {\n                path /\n            }\n"
        ),
        checker("SMTP_CHECK", "            helo_name lab.example\n"),
        checker(
            "DNS_CHECK",
            "            type A\n            name service.lab.example\n"
        ),
        checker(
            "UDP_CHECK",
            "            payload 01 02 03\n            require_reply 01 02 03\n"
        ),
        checker("PING_CHECK", ""),
        misc.display(),
        n = notify.display(),
    );
    let config = format!("{}{vs}", single_instance_config(200, "0.1")).replace(
        "    router_id lab\n",
        "    router_id lab\n    script_user root\n",
    );
    let agent = lab.spawn_agent(lab.router(0), &config).unwrap();
    let servers: Vec<String> = [8001, 8080, 8443, 2525, 5353, 7007, 1, 9]
        .iter()
        .map(|p| format!("{c}:{p}"))
        .collect();
    for server in &servers {
        assert!(
            wait_up(&agent, server, true, 3 * SEC),
            "{server}: {:#?}",
            agent.status()
        );
    }
    let all_up = agent.status().unwrap().virtual_servers[0].clone();
    assert!(all_up.quorum_up);
    assert_eq!(all_up.live_weight, 8);

    // HTTP: a 500 takes it down after 1 + retry (2) attempts, 0.1 s apart.
    let before = http.hits();
    http.set(1);
    assert!(wait_up(&agent, &servers[1], false, 3 * SEC));
    assert_eq!(
        http.hits() - before,
        3,
        "down after exactly 1 + retry attempts"
    );
    http.set(0);
    assert!(
        wait_up(&agent, &servers[1], true, 2 * SEC),
        "up on the first success"
    );
    // A 200 with a body of another MD5 is a failure too.
    http.set(2);
    assert!(wait_up(&agent, &servers[1], false, 3 * SEC));
    let status = agent.status().unwrap();
    let failure = status.virtual_servers[0].real_servers[1].checkers[0]
        .last_failure
        .clone()
        .unwrap();
    assert!(failure.contains("MD5"), "{failure}");
    http.set(0);
    assert!(wait_up(&agent, &servers[1], true, 2 * SEC));

    // The others: broken, down; fixed, up.
    type Breaker<'a> = Box<dyn Fn(bool) + 'a>;
    let cases: Vec<(usize, Breaker)> = vec![
        (2, Box::new(|b| tls.set(u8::from(b)))),
        (3, Box::new(|b| smtp.set(u8::from(b)))),
        (4, Box::new(|b| dns.set(u8::from(b)))),
        (5, Box::new(|b| udp.set(u8::from(b)))),
        (
            6,
            Box::new(|b| {
                let value = if b { "1" } else { "0" };
                vrrp_lab::netns::run_in(&lab.client.ns, move || {
                    std::fs::write("/proc/sys/net/ipv4/icmp_echo_ignore_all", value)
                })
                .unwrap()
                .unwrap();
            }),
        ),
        (
            7,
            Box::new(|b| {
                if b {
                    std::fs::write(&flag, "").unwrap()
                } else {
                    std::fs::remove_file(&flag).unwrap()
                }
            }),
        ),
    ];
    for (i, breaks) in &cases {
        breaks(true);
        assert!(
            wait_up(&agent, &servers[*i], false, 3 * SEC),
            "{} stayed up: {:#?}",
            servers[*i],
            agent.status()
        );
        breaks(false);
        assert!(
            wait_up(&agent, &servers[*i], true, 3 * SEC),
            "{} stayed down: {:#?}",
            servers[*i],
            agent.status()
        );
    }

    // TCP: the listener goes away; down after 1 + retry (1) refused connections, as the
    // checker's own failure count says in the first status that shows it down; notify_down,
    // then notify_up when it is back.
    let tcp_failures = |status: &vrrp_agent::control::Status| {
        status.virtual_servers[0].real_servers[0].checkers[0].failures
    };
    let before = tcp_failures(&agent.status().unwrap());
    drop(tcp);
    let down = wait_for(3 * SEC, POLL, || {
        let status = agent.status().ok()?;
        (!status.virtual_servers[0].real_servers[0].up).then_some(status)
    })
    .expect("TCP_CHECK stayed up");
    assert_eq!(
        tcp_failures(&down) - before,
        2,
        "down after exactly 1 + retry attempts"
    );
    let _tcp = tcp_service(&ns, 8001, |_, _| {});
    assert!(wait_up(&agent, &servers[0], true, 3 * SEC));
    let logged = wait_for(2 * SEC, POLL, || {
        let log = std::fs::read_to_string(&notify_log).ok()?;
        (log == "tcp down\ntcp up\n").then_some(())
    });
    assert!(
        logged.is_some(),
        "{:?}",
        std::fs::read_to_string(&notify_log)
    );
    let metrics = agent.status().unwrap();
    assert!(metrics.virtual_servers[0].real_servers[1].checkers[0].failures >= 3);
}
