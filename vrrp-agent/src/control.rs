//! The control socket: one JSON request per connection, one JSON reply.
//!
//! A unix stream socket (mode 0600) so only root can ask. Requests are a single line such as
//! `{"command":"status"}`; anything else gets `{"error": "..."}` back, never a crash.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use crate::{config::VirtualAddress, dataplane::XdpMode, election::State};

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/vrrp-agent/control.sock";

/// Largest request accepted, so a misbehaving client cannot make us buffer without bound.
const MAX_REQUEST: u64 = 4096;
/// Control connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request, or to read its reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request from `vrrp-agent status` and friends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// Everything `status` prints.
    Status,
    /// Read the configuration again and apply it (as SIGHUP does).
    Reload,
    /// An operator's action on one instance.
    Instance {
        /// The `vrrp_instance` name.
        name: String,
        /// What to do.
        action: InstanceAction,
    },
}

/// What an operator can do to one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceAction {
    /// Enter FAULT (a master hands over at once with priority 0) and stay there.
    Fault,
    /// Leave an operator's FAULT (if the interface is up), back to the election.
    Resume,
    /// Send the gratuitous ARPs / unsolicited NAs again (a master only).
    SendGarp,
}

/// The daemon's state, as `vrrp-agent status --json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `router_id` (or the host name).
    pub router_id: String,
    /// The daemon's process id.
    pub pid: u32,
    /// One entry per `vrrp_instance`.
    pub instances: Vec<InstanceStatus>,
    /// The XDP program's counters for all instances and interfaces, by RFC 8347 name where
    /// there is one.
    pub counters: BTreeMap<String, u64>,
    /// Notify scripts run and FIFO lines written or dropped.
    #[serde(default)]
    pub notify: crate::notify::NotifyCounters,
    /// Instances waiting for their interface to appear (`dynamic_interfaces`).
    #[serde(default)]
    pub waiting: Vec<String>,
    /// The `vrrp_script`s that run, with their counters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_scripts: Vec<crate::track::ScriptStatus>,
    /// Virtual servers: their real servers' health and the quorum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_servers: Vec<crate::checker::VirtualServerStatus>,
}

/// One instance in [`Status`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The `vrrp_instance` name.
    pub name: String,
    /// Its interface.
    pub interface: String,
    /// How XDP is attached there.
    pub xdp_mode: XdpMode,
    /// The virtual MAC it answers with under `use_vmac`.
    #[serde(default)]
    pub vmac: Option<String>,
    /// Its VRID.
    pub vrid: u8,
    /// RFC state.
    pub state: State,
    /// The priority it advertises now.
    pub effective_priority: u8,
    /// The configured priority, before tracking weights.
    #[serde(default)]
    pub base_priority: u8,
    /// Its tracked scripts, interfaces, files and processes, and what each does now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<crate::track::TrackStatus>,
    /// Local primary address (the advert source).
    pub primary_address: IpAddr,
    /// The master heard since the last state change, if any.
    pub master: Option<MasterStatus>,
    /// The virtual addresses.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// State changes since the daemon started.
    #[serde(default)]
    pub transitions: u64,
    /// This instance's dataplane counters (everything counted after the VRID lookup).
    pub counters: BTreeMap<String, u64>,
}

/// The master a backup listens to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterStatus {
    /// Its source address.
    pub address: IpAddr,
    /// Its advertised priority.
    pub priority: u8,
    /// Its advertised interval, centiseconds.
    pub interval_cs: u16,
}

/// A reply on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// The status.
    Status(Status),
    /// A command was carried out.
    Done {
        /// What happened.
        message: String,
    },
    /// What was wrong with the request.
    Error {
        /// The message.
        error: String,
    },
}

/// A request waiting for the daemon's main loop to answer.
pub type Pending = (Request, oneshot::Sender<Reply>);

impl Status {
    /// The human-readable table `vrrp-agent status` prints (and SIGUSR1 writes).
    pub fn render(&self) -> String {
        let status = self;
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "router_id {}  pid {}", status.router_id, status.pid);
        for i in &status.instances {
            let master = i.master.as_ref().map_or("-".to_string(), |m| {
                format!("{} (prio {})", m.address, m.priority)
            });
            let vips: Vec<String> = i
                .virtual_addresses
                .iter()
                .map(|v| format!("{}/{}", v.address, v.prefix_len))
                .collect();
            let _ = writeln!(
                out,
                "{:<16} {:<10} vrid {:<3} {:<7} prio {:<3} master {:<24} vips {}",
                i.name,
                i.interface,
                i.vrid,
                format!("{:?}", i.state).to_uppercase(),
                i.effective_priority,
                master,
                vips.join(",")
            );
            let vmac = i
                .vmac
                .as_ref()
                .map_or(String::new(), |m| format!("  vmac {m}"));
            let _ = writeln!(
                out,
                "    xdp {}{vmac}",
                format!("{:?}", i.xdp_mode).to_lowercase()
            );
            for t in &i.tracking {
                let (kind, name) = t.what.parts();
                let value = t.value.map_or(String::new(), |v| format!(" value {v}"));
                let _ = writeln!(
                    out,
                    "    track {kind} {name}: {}{value} ({})",
                    if t.up { "up" } else { "down" },
                    t.effect
                );
            }
            render_counters(&mut out, &i.counters);
        }
        for s in &status.vrrp_scripts {
            let _ = writeln!(
                out,
                "vrrp_script {}: {} (runs {}, failures {}, timeouts {})",
                s.name,
                if s.up { "up" } else { "down" },
                s.runs,
                s.failures,
                s.timeouts
            );
        }
        for vs in &status.virtual_servers {
            let _ = writeln!(
                out,
                "virtual_server {}: live weight {}, quorum {}{}, {}",
                vs.service,
                vs.live_weight,
                if vs.quorum_up { "up" } else { "down" },
                if vs.sorry_server_active {
                    ", sorry server in use"
                } else {
                    ""
                },
                vs.forwarded
            );
            for rs in &vs.real_servers {
                let _ = writeln!(
                    out,
                    "    real_server {:<22} {:<4} weight {}, {}",
                    rs.server,
                    if rs.up { "UP" } else { "DOWN" },
                    rs.weight,
                    rs.forwarded
                );
                for c in &rs.checkers {
                    let why = c
                        .last_failure
                        .as_ref()
                        .filter(|_| !c.up)
                        .map_or(String::new(), |w| format!(": {w}"));
                    let _ = writeln!(
                        out,
                        "        {} {} ({} attempts, {} failed){why}",
                        c.check,
                        if c.up { "up" } else { "down" },
                        c.attempts,
                        c.failures
                    );
                }
            }
        }
        out.push_str("dataplane (all interfaces):\n");
        render_counters(&mut out, &status.counters);
        out
    }
}

fn render_counters(out: &mut String, counters: &std::collections::BTreeMap<String, u64>) {
    use std::fmt::Write as _;
    for (name, value) in counters.iter().filter(|(_, v)| **v > 0) {
        let _ = writeln!(out, "    {name:<24} {value}");
    }
}

/// Names counter values (indexed by `vrrp_common::counters`).
pub fn named_counters(values: [u64; vrrp_common::counters::COUNT]) -> BTreeMap<String, u64> {
    vrrp_common::counters::NAMES
        .iter()
        .zip(values)
        .map(|(name, v)| ((*name).to_string(), v))
        .collect()
}

/// Binds the socket and serves it, handing requests to the main loop over `tx`.
pub fn serve(path: &Path, tx: mpsc::Sender<Pending>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A stale socket from a previous run would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    // A client that opens connections and never finishes them must not use up the daemon's
    // descriptors or memory: beyond this many at once, a connection is told so and closed.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((mut stream, _)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tokio::spawn(async move {
                            let busy = Reply::Error {
                                error: format!(
                                    "the daemon is serving {MAX_CONNECTIONS} control connections already; try again"
                                ),
                            };
                            let _ = send_reply(&mut stream, &busy).await;
                        });
                        continue;
                    };
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, tx).await {
                            tracing::debug!(error = %e, "control connection failed");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn answer(mut stream: UnixStream, tx: mpsc::Sender<Pending>) -> Result<()> {
    let mut line = String::new();
    let read = tokio::time::timeout(
        CLIENT_TIMEOUT,
        BufReader::new((&mut stream).take(MAX_REQUEST)).read_line(&mut line),
    )
    .await;
    let reply = match read {
        Err(_) => Reply::Error {
            error: "timed out waiting for a request".into(),
        },
        Ok(Err(e)) => Reply::Error {
            error: format!("reading the request: {e}"),
        },
        Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
            Err(e) => Reply::Error {
                error: format!(
                    "bad request: {e}; send one line such as {{\"command\":\"status\"}}"
                ),
            },
            Ok(request) => {
                let (reply_tx, reply_rx) = oneshot::channel();
                tx.send((request, reply_tx)).await?;
                reply_rx.await?
            }
        },
    };
    send_reply(&mut stream, &reply).await
}

/// Writes a reply line, giving up on a client that does not read it.
async fn send_reply(stream: &mut UnixStream, reply: &Reply) -> Result<()> {
    let mut out = serde_json::to_vec(reply)?;
    out.push(b'\n');
    tokio::time::timeout(CLIENT_TIMEOUT, stream.write_all(&out))
        .await
        .context("the client did not read its reply")??;
    Ok(())
}

/// Sends one request to a running daemon and returns its reply.
pub async fn request(path: &Path, request: &Request) -> Result<Reply> {
    let stream = UnixStream::connect(path).await.with_context(|| {
        format!(
            "cannot reach the daemon at {} (is vrrp-agent running? see --control-socket)",
            path.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await?;
    if reply.is_empty() {
        bail!("the daemon closed the connection without replying");
    }
    Ok(serde_json::from_str(&reply)?)
}

/// The default socket path as a `PathBuf`.
pub fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}
