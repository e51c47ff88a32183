//! Real-server health checks (`virtual_server` / `real_server` / `*_CHECK`), as keepalived's
//! checker runs them, without IPVS: each checker is a tokio task that probes every
//! `delay_loop`, retries a failing up server `retry` times `delay_before_retry` apart before
//! calling it down, and calls a down server up on its first success. The results feed the
//! virtual-server model here (which real servers are up, with which weight, whether the quorum
//! holds, whether the sorry server stands in), which `status`, the metrics, the
//! `notify_up`/`notify_down`/`quorum_up`/`quorum_down` scripts and the load balancer read.

mod ping;
mod probe;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};

pub use probe::{Probe, dns_query, dns_verdict, hex, parse_response, smtp_line};

use crate::config::{CheckKind, Checker, Script, VirtualServer};

/// A checker's verdict changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Which set of checkers sent it (a reload starts a new set).
    pub generation: u32,
    /// Virtual server index.
    pub vs: usize,
    /// Real server index within it.
    pub rs: usize,
    /// Checker index within it.
    pub checker: usize,
    /// Up or down (with the last failure's reason).
    pub probe: Probe,
}

/// A checker's attempt counters, shared by its task and the status output.
#[derive(Debug, Default)]
struct Counts {
    attempts: AtomicU64,
    failures: AtomicU64,
}

/// One checker's task: probe, retry, report changes.
async fn run(
    generation: u32,
    key: (usize, usize, usize),
    checker: Checker,
    default_user: Option<(String, Option<String>)>,
    counts: Arc<Counts>,
    (mut up, mut weight): (bool, Option<u32>),
    tx: mpsc::UnboundedSender<Verdict>,
) {
    let ms = |n: u32| Duration::from_millis(u64::from(n));
    // Spread the first checks over `warmup` so a thousand servers are not probed at once.
    if checker.warmup_ms > 0 {
        let jitter = u64::from(random_u32()) % u64::from(checker.warmup_ms);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
    }
    let what = describe(&checker);
    loop {
        let mut probe = probe::probe(&checker, default_user.as_ref()).await;
        counts.attempts.fetch_add(1, Ordering::Relaxed);
        // An up server gets `retry` more chances before it is called down.
        let mut left = if up { checker.retry } else { 0 };
        while let Probe::Down(reason) = &probe {
            counts.failures.fetch_add(1, Ordering::Relaxed);
            if checker.log_all_failures || left == 0 {
                tracing::info!(check = %what, %reason, retries_left = left, "check failed");
            }
            if left == 0 {
                break;
            }
            left -= 1;
            tokio::time::sleep(ms(checker.delay_before_retry_ms)).await;
            probe = probe::probe(&checker, default_user.as_ref()).await;
            counts.attempts.fetch_add(1, Ordering::Relaxed);
        }
        let now_up = matches!(probe, Probe::Up(_));
        let now_weight = match probe {
            Probe::Up(w) => w,
            Probe::Down(_) => weight,
        };
        if now_up != up || now_weight != weight {
            up = now_up;
            weight = now_weight;
            let verdict = Verdict {
                generation,
                vs: key.0,
                rs: key.1,
                checker: key.2,
                probe,
            };
            if tx.send(verdict).is_err() {
                return;
            }
        }
        tokio::time::sleep(ms(checker.delay_loop_ms)).await;
    }
}

/// "HTTP_GET 10.0.0.5:80" and the like, for logs and status.
pub fn describe(checker: &Checker) -> String {
    let kind = match &checker.kind {
        CheckKind::Tcp => "TCP_CHECK",
        CheckKind::Http { tls: false, .. } => "HTTP_GET",
        CheckKind::Http { tls: true, .. } => "SSL_GET",
        CheckKind::Smtp { .. } => "SMTP_CHECK",
        CheckKind::Dns { .. } => "DNS_CHECK",
        CheckKind::Misc { .. } => "MISC_CHECK",
        CheckKind::Udp { .. } => "UDP_CHECK",
        CheckKind::Ping => "PING_CHECK",
    };
    match &checker.kind {
        CheckKind::Misc { script, .. } => format!("{kind} {}", script.command),
        CheckKind::Ping => format!("{kind} {}", checker.connect_ip),
        _ => format!(
            "{kind} {}",
            std::net::SocketAddr::new(checker.connect_ip, checker.connect_port)
        ),
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most the buffer's length.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
    u32::from_ne_bytes(b)
}

/// One checker's state, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckerStatus {
    /// "TCP_CHECK 10.0.0.5:80" and the like.
    pub check: String,
    /// Whether it passes.
    pub up: bool,
    /// Attempts made.
    pub attempts: u64,
    /// Failed attempts among them.
    pub failures: u64,
    /// Why it last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// A real server's state, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RealServerStatus {
    /// "IP:PORT".
    pub server: String,
    /// All its checkers pass.
    pub up: bool,
    /// The weight it has in the pool now (0 while down with `inhibit_on_failure`).
    pub weight: u32,
    /// Whether it is in the pool (up, or down but inhibited).
    pub in_pool: bool,
    /// Its checkers.
    pub checkers: Vec<CheckerStatus>,
    /// What the load balancer forwarded to it.
    #[serde(flatten, default)]
    pub forwarded: Forwarded,
}

/// What the XDP load balancer forwarded (to a real server, or for a whole virtual server).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Forwarded {
    /// Packets.
    #[serde(default)]
    pub packets: u64,
    /// Bytes (IP length).
    #[serde(default)]
    pub bytes: u64,
    /// New flows (connections) placed.
    #[serde(default)]
    pub flows: u64,
}

impl std::fmt::Display for Forwarded {
    /// As `status` prints it: "forwarded F flows, P packets, B bytes".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "forwarded {} flows, {} packets, {} bytes",
            self.flows, self.packets, self.bytes
        )
    }
}

impl std::ops::AddAssign for Forwarded {
    fn add_assign(&mut self, other: Self) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.flows += other.flows;
    }
}

/// A virtual server's state, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualServerStatus {
    /// "IP:PORT/PROTO".
    pub service: String,
    /// The total weight of the live real servers.
    pub live_weight: u64,
    /// Whether the quorum holds.
    pub quorum_up: bool,
    /// Whether the sorry server stands in (quorum lost).
    pub sorry_server_active: bool,
    /// What the load balancer forwarded for it (its real servers and sorry server).
    #[serde(flatten, default)]
    pub forwarded: Forwarded,
    /// Its real servers.
    pub real_servers: Vec<RealServerStatus>,
}

struct RealServerState {
    checkers: Vec<CheckerStatus>,
    counts: Vec<Arc<Counts>>,
    /// `misc_dynamic`'s weight, when a MISC_CHECK set one.
    dynamic_weight: Option<u32>,
    up: bool,
}

struct VirtualServerState {
    config: VirtualServer,
    real_servers: Vec<RealServerState>,
    quorum_up: bool,
}

/// A script to run because something changed (the daemon queues it in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Which queue keeps it in order (the real or virtual server).
    pub queue: String,
    /// What to run.
    pub script: Script,
}

/// Every virtual server's checkers and state.
pub struct Checkers {
    generation: u32,
    servers: Vec<VirtualServerState>,
    tasks: Vec<JoinHandle<()>>,
}

impl Checkers {
    /// Starts a task per checker, reporting to `tx` under `generation`. A checker that
    /// `previous` (the set a reload replaces) ran unchanged, for the same real server of the
    /// same service, starts from what it knew, as keepalived's reload keeps real servers'
    /// state: a server that was down stays out of the table until it passes again, and one
    /// that was up is not taken out.
    pub fn start(
        config: &[VirtualServer],
        default_user: Option<(String, Option<String>)>,
        tx: &mpsc::UnboundedSender<Verdict>,
        generation: u32,
        previous: Option<&Checkers>,
    ) -> Self {
        let mut tasks = Vec::new();
        let mut servers = Vec::new();
        for (v, vs) in config.iter().enumerate() {
            let mut real_servers = Vec::new();
            for (r, rs) in vs.real_servers.iter().enumerate() {
                let mut checkers = Vec::new();
                let mut counts = Vec::new();
                let mut dynamic_weight = None;
                for (c, checker) in rs.checkers.iter().enumerate() {
                    let carried = previous.and_then(|p| p.carried(vs, rs, checker));
                    let (status, count) = match carried {
                        Some((status, count, weight)) => {
                            dynamic_weight = dynamic_weight.or(weight);
                            (status, count)
                        }
                        None => (
                            CheckerStatus {
                                check: describe(checker),
                                up: !checker.alpha,
                                attempts: 0,
                                failures: 0,
                                last_failure: None,
                            },
                            Arc::new(Counts::default()),
                        ),
                    };
                    tasks.push(tokio::spawn(run(
                        generation,
                        (v, r, c),
                        checker.clone(),
                        default_user.clone(),
                        count.clone(),
                        (status.up, dynamic_weight),
                        tx.clone(),
                    )));
                    counts.push(count);
                    checkers.push(status);
                }
                let up = checkers.iter().all(|c| c.up);
                real_servers.push(RealServerState {
                    checkers,
                    counts,
                    dynamic_weight,
                    up,
                });
            }
            let mut state = VirtualServerState {
                config: vs.clone(),
                real_servers,
                quorum_up: false,
            };
            state.quorum_up = state.live_weight() >= u64::from(vs.quorum);
            servers.push(state);
        }
        Self {
            generation,
            servers,
            tasks,
        }
    }

    /// What this set knows of `checker` on real server `rs` of `vs`, when it runs exactly
    /// that check there: its status, its attempt counts and the real server's dynamic weight.
    fn carried(
        &self,
        vs: &VirtualServer,
        rs: &crate::config::RealServer,
        checker: &Checker,
    ) -> Option<(CheckerStatus, Arc<Counts>, Option<u32>)> {
        let old_vs = self.servers.iter().find(|s| {
            s.config.address == vs.address
                && s.config.port == vs.port
                && s.config.protocol == vs.protocol
                && s.config.group == vs.group
        })?;
        let (old_rs, old_config) = old_vs
            .real_servers
            .iter()
            .zip(&old_vs.config.real_servers)
            .find(|(_, c)| c.address == rs.address && c.port == rs.port)?;
        let c = old_config.checkers.iter().position(|c| c == checker)?;
        Some((
            old_rs.checkers.get(c)?.clone(),
            old_rs.counts.get(c)?.clone(),
            old_rs.dynamic_weight,
        ))
    }

    /// Which set of checkers this is.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The configuration they check.
    pub fn config(&self) -> Vec<VirtualServer> {
        self.servers.iter().map(|s| s.config.clone()).collect()
    }

    /// The configuration the checkers run with, borrowed (what `status` reports, in order).
    pub fn configs(&self) -> Vec<&VirtualServer> {
        self.servers.iter().map(|s| &s.config).collect()
    }

    /// Takes a verdict in; returns the scripts to run because of it, in order.
    pub fn update(&mut self, verdict: Verdict) -> Vec<Notification> {
        let mut out = Vec::new();
        if verdict.generation != self.generation {
            return out;
        }
        let Some(vs) = self.servers.get_mut(verdict.vs) else {
            return out;
        };
        let Some(rs) = vs.real_servers.get_mut(verdict.rs) else {
            return out;
        };
        let Some(status) = rs.checkers.get_mut(verdict.checker) else {
            return out;
        };
        match &verdict.probe {
            Probe::Up(weight) => {
                status.up = true;
                if weight.is_some() {
                    rs.dynamic_weight = *weight;
                }
            }
            Probe::Down(reason) => {
                status.up = false;
                status.last_failure = Some(reason.clone());
            }
        }
        let config = &vs.config.real_servers[verdict.rs];
        let name = format!("{}", std::net::SocketAddr::new(config.address, config.port));
        let up = rs.checkers.iter().all(|c| c.up);
        if up != rs.up {
            rs.up = up;
            tracing::info!(
                "{} server {name} for VS {}",
                if up { "Adding" } else { "Removing" },
                service(&vs.config)
            );
            let script = if up {
                &config.notify_up
            } else {
                &config.notify_down
            };
            if let Some(script) = script {
                out.push(Notification {
                    queue: name.clone(),
                    script: script.clone(),
                });
            }
        }
        let live = vs.live_weight();
        let quorum = u64::from(vs.config.quorum);
        let hysteresis = u64::from(vs.config.hysteresis);
        let gained = !vs.quorum_up && live >= quorum + hysteresis;
        let lost = vs.quorum_up && live + hysteresis < quorum;
        if gained || lost {
            vs.quorum_up = gained;
            tracing::info!(
                "{} the quorum of VS {} (live weight {live}, quorum {quorum})",
                if gained { "Gained" } else { "Lost" },
                service(&vs.config)
            );
            let script = if gained {
                &vs.config.quorum_up
            } else {
                &vs.config.quorum_down
            };
            if let Some(script) = script {
                out.push(Notification {
                    queue: service(&vs.config),
                    script: script.clone(),
                });
            }
        }
        out
    }

    /// `omega`: the scripts a shutdown runs (notify_down of live servers, quorum_down).
    pub fn shutdown(&mut self) -> Vec<Notification> {
        for task in &self.tasks {
            task.abort();
        }
        let mut out = Vec::new();
        for vs in self.servers.iter().filter(|vs| vs.config.omega) {
            for (rs, config) in vs.real_servers.iter().zip(&vs.config.real_servers) {
                if let (true, Some(script)) = (rs.up, &config.notify_down) {
                    out.push(Notification {
                        queue: format!(
                            "{}",
                            std::net::SocketAddr::new(config.address, config.port)
                        ),
                        script: script.clone(),
                    });
                }
            }
            if let (true, Some(script)) = (vs.quorum_up, &vs.config.quorum_down) {
                out.push(Notification {
                    queue: service(&vs.config),
                    script: script.clone(),
                });
            }
        }
        out
    }

    /// Every virtual server's state.
    pub fn status(&self) -> Vec<VirtualServerStatus> {
        self.servers
            .iter()
            .map(|vs| VirtualServerStatus {
                service: service(&vs.config),
                live_weight: vs.live_weight(),
                quorum_up: vs.quorum_up,
                sorry_server_active: vs.config.sorry_server.is_some() && !vs.quorum_up,
                forwarded: Forwarded::default(),
                real_servers: vs
                    .real_servers
                    .iter()
                    .zip(&vs.config.real_servers)
                    .map(|(rs, config)| RealServerStatus {
                        server: format!(
                            "{}",
                            std::net::SocketAddr::new(config.address, config.port)
                        ),
                        up: rs.up,
                        weight: if rs.up {
                            rs.dynamic_weight.unwrap_or(config.weight)
                        } else {
                            0
                        },
                        in_pool: rs.up || config.inhibit_on_failure,
                        forwarded: Forwarded::default(),
                        checkers: rs
                            .checkers
                            .iter()
                            .zip(&rs.counts)
                            .map(|(c, n)| CheckerStatus {
                                attempts: n.attempts.load(Ordering::Relaxed),
                                failures: n.failures.load(Ordering::Relaxed),
                                ..c.clone()
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl VirtualServerState {
    /// The total weight of the real servers that are up.
    fn live_weight(&self) -> u64 {
        self.real_servers
            .iter()
            .zip(&self.config.real_servers)
            .filter(|(rs, _)| rs.up)
            .map(|(rs, config)| u64::from(rs.dynamic_weight.unwrap_or(config.weight)))
            .sum()
    }
}

/// "IP:PORT/TCP".
fn service(vs: &VirtualServer) -> String {
    format!(
        "{}/{:?}",
        std::net::SocketAddr::new(vs.address, vs.port),
        vs.protocol
    )
    .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Protocol, RealServer};

    fn real_server(last: u8, weight: u32) -> RealServer {
        let address = std::net::IpAddr::from([192, 0, 2, last]);
        RealServer {
            address,
            port: 80,
            weight,
            inhibit_on_failure: false,
            method: None,
            notify_up: None,
            notify_down: Some(script(&format!("down {last}"))),
            thresholds: (None, None),
            checkers: vec![Checker {
                kind: CheckKind::Tcp,
                connect_ip: address,
                connect_port: 80,
                bindto: None,
                bind_port: None,
                bind_if: None,
                fwmark: None,
                connect_timeout_ms: 1000,
                retry: 0,
                delay_before_retry_ms: 1000,
                // Never probes during the test: verdicts are fed by hand.
                warmup_ms: u32::MAX,
                delay_loop_ms: 1000,
                alpha: false,
                log_all_failures: false,
            }],
        }
    }

    fn script(command: &str) -> Script {
        Script::new(command)
    }

    fn verdict(rs: usize, up: bool) -> Verdict {
        Verdict {
            generation: 0,
            vs: 0,
            rs,
            checker: 0,
            probe: if up {
                Probe::Up(None)
            } else {
                Probe::Down("refused".into())
            },
        }
    }

    fn service(real_servers: Vec<RealServer>) -> VirtualServer {
        VirtualServer {
            address: std::net::IpAddr::from([192, 0, 2, 100]),
            port: 80,
            protocol: Protocol::Tcp,
            scheduler: "rr".into(),
            method: "DR".into(),
            flags: Vec::new(),
            persistence_timeout: None,
            persistence_granularity: None,
            quorum: 4,
            hysteresis: 1,
            quorum_up: Some(script("quorum up")),
            quorum_down: Some(script("quorum down")),
            omega: true,
            sorry_server: Some((std::net::IpAddr::from([192, 0, 2, 200]), 80)),
            sorry_server_inhibit: false,
            group: Vec::new(),
            real_servers,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_reload_keeps_what_unchanged_checks_knew() {
        runtime().block_on(async {
            let (tx, _rx) = mpsc::unbounded_channel();
            let before = service(vec![real_server(1, 2), real_server(2, 2)]);
            let mut old = Checkers::start(std::slice::from_ref(&before), None, &tx, 0, None);
            old.update(verdict(1, false));
            // The reload adds a server in front and changes the first one's check.
            let mut changed = real_server(1, 2);
            changed.checkers[0].connect_timeout_ms = 2000;
            let after = service(vec![real_server(3, 1), changed, real_server(2, 2)]);
            let new = Checkers::start(&[after], None, &tx, 1, Some(&old));
            let up: Vec<bool> = new.status()[0].real_servers.iter().map(|r| r.up).collect();
            // 192.0.2.2 was down and its check is the same: still down, not back in the
            // table until it passes. The new server and the changed check start afresh.
            assert_eq!(up, [true, true, false]);
            assert_eq!(
                new.status()[0].real_servers[2].checkers[0]
                    .last_failure
                    .as_deref(),
                Some("refused")
            );
        });
    }

    #[test]
    fn quorum_with_hysteresis_and_notifications() {
        runtime().block_on(async {
            let vs = service(vec![
                real_server(1, 2),
                real_server(2, 2),
                real_server(3, 1),
            ]);
            let (tx, _rx) = mpsc::unbounded_channel();
            let mut checkers = Checkers::start(&[vs], None, &tx, 0, None);
            let status = &checkers.status()[0];
            assert!(status.quorum_up && !status.sorry_server_active);
            assert_eq!(status.live_weight, 5);
            // 5 -> 3: within the hysteresis (4 - 1), the quorum holds.
            let scripts = checkers.update(verdict(0, false));
            assert_eq!(scripts.len(), 1, "notify_down only: {scripts:?}");
            assert_eq!(scripts[0].script.command, "down 1");
            assert!(checkers.status()[0].quorum_up);
            // 3 -> 1: lost; the sorry server stands in.
            let scripts = checkers.update(verdict(1, false));
            assert_eq!(scripts.last().unwrap().script.command, "quorum down");
            assert!(checkers.status()[0].sorry_server_active);
            // 1 -> 3: not yet 4 + 1.
            assert!(checkers.update(verdict(0, true)).is_empty());
            assert!(!checkers.status()[0].quorum_up);
            // 3 -> 5: gained.
            let scripts = checkers.update(verdict(1, true));
            assert_eq!(scripts.last().unwrap().script.command, "quorum up");
            // A stale verdict from an older set of checkers changes nothing.
            let mut stale = verdict(2, false);
            stale.generation = 7;
            assert!(checkers.update(stale).is_empty());
            assert!(checkers.status()[0].real_servers[2].up);
            // omega: every live server's notify_down, then quorum_down.
            let at_exit: Vec<String> = checkers
                .shutdown()
                .into_iter()
                .map(|n| n.script.command)
                .collect();
            assert_eq!(at_exit, ["down 1", "down 2", "down 3", "quorum down"]);
        });
    }
}
