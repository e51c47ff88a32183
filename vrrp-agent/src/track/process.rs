//! One `vrrp_track_process`: how many running (not zombie) processes match, checked against
//! the quorum with keepalived's fork and terminate delays.
//!
//! The kernel's process-events connector says when processes start, exec, change name or exit,
//! and each burst of events triggers one scan of /proc (at most every `MIN_SCAN`). Where the
//! connector is not available (it works only in the initial network namespace) /proc is
//! scanned every `POLL`: a bounded cost either way, and no scan at all while nothing happens.

use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle, time::Instant};

use super::Update;
use crate::config::{ParamMatch, TrackProcess};

/// Scan period without the connector.
const POLL: Duration = Duration::from_millis(500);
/// Least time between two scans triggered by events (a fork storm costs one scan per this).
const MIN_SCAN: Duration = Duration::from_millis(50);

/// Counts matching processes now and starts the watcher; returns whether quorum holds now.
pub(super) fn spawn(
    def: TrackProcess,
    tx: mpsc::UnboundedSender<Update>,
) -> (bool, JoinHandle<()>) {
    let count = count(&def);
    let up = within_quorum(&def, count);
    let task = tokio::spawn(watch(def, up, tx));
    (up, task)
}

fn within_quorum(def: &TrackProcess, count: u32) -> bool {
    (def.quorum..=def.quorum_max).contains(&count)
}

async fn watch(def: TrackProcess, mut up: bool, tx: mpsc::UnboundedSender<Update>) {
    let connector = Connector::open();
    if connector.is_none() {
        tracing::debug!(process = %def.name, "no process-events connector here: scanning /proc every {POLL:?}");
    }
    // A quorum change waiting out its delay: the state it would go to, and since when.
    let mut pending: Option<(bool, Instant)> = None;
    loop {
        let deadline = pending.map(|(to, since)| since + delay(&def, to));
        let wake = match &connector {
            Some(c) => {
                let event = c.event();
                match deadline {
                    Some(at) => tokio::select! {
                        r = event => r.is_ok(),
                        () = tokio::time::sleep_until(at) => true,
                    },
                    None => event.await.is_ok(),
                }
            }
            None => {
                let at = deadline.map_or(Instant::now() + POLL, |d| d.min(Instant::now() + POLL));
                tokio::time::sleep_until(at).await;
                true
            }
        };
        if !wake {
            return;
        }
        if connector.is_some() {
            tokio::time::sleep(MIN_SCAN).await;
            if let Some(c) = &connector {
                c.drain();
            }
        }
        let n = count(&def);
        let now_up = within_quorum(&def, n);
        let now = Instant::now();
        if now_up == up {
            pending = None;
            continue;
        }
        let since = match pending {
            Some((to, since)) if to == now_up => since,
            _ => now,
        };
        if now.duration_since(since) >= delay(&def, now_up) {
            up = now_up;
            pending = None;
            let update = Update::Process {
                name: def.name.clone(),
                up,
                count: n,
            };
            if tx.send(update).is_err() {
                return;
            }
        } else {
            pending = Some((now_up, since));
        }
    }
}

/// How long a change to `to` must hold: `fork_delay` to come up, `terminate_delay` to go down.
fn delay(def: &TrackProcess, to: bool) -> Duration {
    Duration::from_millis(u64::from(if to {
        def.fork_delay_ms
    } else {
        def.terminate_delay_ms
    }))
}

/// How many running processes match.
fn count(def: &TrackProcess) -> u32 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let by_command = def.full_command || !def.params.is_empty() || def.param_match.is_some();
    let mut n = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((comm, state)) = parse_stat(&stat) else {
            continue;
        };
        if state == 'Z' {
            continue;
        }
        let matched = if by_command {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| command_matches(def, &cmdline))
        } else {
            name_matches(&def.process, comm)
        };
        n += u32::from(matched);
    }
    n
}

/// The name and state of `/proc/PID/stat` ("PID (NAME) S ..."; NAME may hold parentheses).
fn parse_stat(stat: &str) -> Option<(&str, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
}

/// The kernel keeps 15 bytes of a process name: a longer configured name matches its start.
fn name_matches(configured: &str, comm: &str) -> bool {
    if configured.len() > 15 {
        configured.as_bytes().get(..15) == Some(comm.as_bytes())
    } else {
        configured == comm
    }
}

/// Whether a NUL-separated command line matches the configured process and parameters.
fn command_matches(def: &TrackProcess, cmdline: &[u8]) -> bool {
    let args: Vec<&[u8]> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(cmdline)
        .split(|b| *b == 0)
        .collect();
    let Some((first, rest)) = args.split_first() else {
        return false;
    };
    if *first != def.process.as_bytes() {
        return false;
    }
    if def.params.is_empty() && !def.full_command && def.param_match.is_none() {
        return true;
    }
    let want: Vec<&[u8]> = def.params.iter().map(|p| p.as_bytes()).collect();
    match def.param_match.unwrap_or(ParamMatch::Exact) {
        ParamMatch::Exact => rest == want.as_slice(),
        ParamMatch::Partial => rest.len() >= want.len() && rest[..want.len()] == want[..],
        ParamMatch::Initial => {
            let Some((last, init)) = want.split_last() else {
                return true;
            };
            rest.len() >= want.len()
                && rest[..init.len()] == *init
                && rest[init.len()].starts_with(last)
        }
    }
}

/// The process-events connector (NETLINK_CONNECTOR, CN_IDX_PROC).
struct Connector {
    fd: AsyncFd<OwnedFd>,
}

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;

impl Connector {
    fn open() -> Option<Self> {
        // SAFETY: plain syscalls on a descriptor owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            return None;
        }
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is valid; fields set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = CN_IDX_PROC;
        // SAFETY: addr is a valid sockaddr_nl of the given size.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if bound != 0 {
            return None;
        }
        // nlmsghdr (16) + cn_msg (20) + the operation (4).
        let mut msg = Vec::with_capacity(40);
        msg.extend_from_slice(&40u32.to_ne_bytes());
        msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&std::process::id().to_ne_bytes());
        msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&4u16.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
        // SAFETY: sending our own buffer.
        let sent = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent != msg.len() as isize {
            return None;
        }
        // SAFETY: the descriptor is moved into the AsyncFd, which deregisters it before
        // dropping it.
        Some(Self {
            fd: unsafe { AsyncFd::register(fd) }.ok()?,
        })
    }

    /// Waits until at least one process event is there.
    async fn event(&self) -> std::io::Result<()> {
        let mut guard = self.fd.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Reads away everything queued (one scan covers it all).
    fn drain(&self) {
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reading into our own buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(process: &str, params: &[&str], m: Option<ParamMatch>) -> TrackProcess {
        TrackProcess {
            params: params.iter().map(|s| s.to_string()).collect(),
            param_match: m,
            ..TrackProcess::new("t", process)
        }
    }

    #[test]
    fn stat_names_may_hold_parentheses() {
        assert_eq!(parse_stat("42 (a (b)) S 1 2"), Some(("a (b)", 'S')));
        assert_eq!(
            parse_stat("7 (redis-server) Z 1"),
            Some(("redis-server", 'Z'))
        );
    }

    #[test]
    fn names_are_exact_up_to_the_kernels_fifteen_bytes() {
        assert!(name_matches("nginx", "nginx"));
        assert!(!name_matches("ssh", "sshd"));
        assert!(name_matches("a-very-long-process-name", "a-very-long-pro"));
    }

    #[test]
    fn parameters_match_exactly_partially_or_initially() {
        let line = b"/usr/bin/redis-server\0--port\x006379\0";
        assert!(command_matches(
            &def("/usr/bin/redis-server", &["--port", "6379"], None),
            line
        ));
        assert!(!command_matches(
            &def("/usr/bin/redis-server", &["--port"], None),
            line
        ));
        assert!(command_matches(
            &def(
                "/usr/bin/redis-server",
                &["--port"],
                Some(ParamMatch::Partial)
            ),
            line
        ));
        assert!(command_matches(
            &def(
                "/usr/bin/redis-server",
                &["--port", "63"],
                Some(ParamMatch::Initial)
            ),
            line
        ));
        assert!(!command_matches(
            &def("redis-server", &["--port", "6379"], None),
            line
        ));
    }
}
