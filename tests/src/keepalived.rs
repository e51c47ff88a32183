//! Debian's keepalived as the interop peer, running in a lab namespace.
//!
//! keepalived writes its statistics (SIGUSR2) to the fixed path `/tmp/keepalived.stats`, so
//! tests that read them hold [`stats_lock`] for their whole run.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{Node, wait_for};

/// Where keepalived 2.2.7 dumps its statistics on SIGUSR2.
const STATS_FILE: &str = "/tmp/keepalived.stats";

/// Serialises the tests that read keepalived's statistics file.
pub fn stats_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether keepalived is installed; prints why a test is skipped when not.
pub fn available(test: &str) -> bool {
    let ok = Command::new("keepalived").arg("--version").output().is_ok();
    if !ok {
        eprintln!(
            "SKIPPED {test}: keepalived is not installed (`cargo xtask setup` installs it as root)"
        );
    }
    ok
}

/// A keepalived (VRRP subsystem only) in a namespace; killed when dropped.
pub struct Keepalived {
    child: Child,
    pidfile: PathBuf,
    vrrp_pidfile: PathBuf,
    /// Its log (console output with -l -D).
    pub log: PathBuf,
    /// The namespace it runs in.
    pub ns: String,
}

/// keepalived's VRRP state as its log reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KaState {
    /// "Entering MASTER STATE".
    Master,
    /// "Entering BACKUP STATE".
    Backup,
    /// "Entering FAULT STATE".
    Fault,
}

impl Keepalived {
    /// Writes `config` and starts keepalived on it in `node`'s namespace.
    pub fn spawn(dir: &Path, node: &Node, config: &str) -> Result<Self> {
        let tag = node.ns.rsplit('-').next().unwrap_or("ka");
        let conf = dir.join(format!("keepalived-{tag}.conf"));
        std::fs::write(&conf, config)?;
        let pidfile = dir.join(format!("keepalived-{tag}.pid"));
        let vrrp_pidfile = dir.join(format!("keepalived-vrrp-{tag}.pid"));
        let log = dir.join(format!("keepalived-{tag}.log"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &node.ns,
                "keepalived",
                "--dont-fork",
                "--log-console",
            ])
            .args(["--log-detail", "--no-syslog", "--vrrp", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(&pidfile)
            .arg("-r")
            .arg(&vrrp_pidfile)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting keepalived")?;
        let ka = Self {
            child,
            pidfile,
            vrrp_pidfile,
            log,
            ns: node.ns.clone(),
        };
        let started = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            ka.log_text().contains("Startup complete").then_some(())
        });
        if started.is_none() {
            bail!("keepalived did not start; its log:\n{}", ka.log_text());
        }
        Ok(ka)
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last state its log entered.
    pub fn state(&self) -> Option<KaState> {
        let log = self.log_text();
        log.lines().rev().find_map(|l| {
            if l.contains("Entering MASTER STATE") {
                Some(KaState::Master)
            } else if l.contains("Entering BACKUP STATE") {
                Some(KaState::Backup)
            } else if l.contains("Entering FAULT STATE") {
                Some(KaState::Fault)
            } else {
                None
            }
        })
    }

    /// Waits for `state`; returns how long it took.
    pub fn wait_state(&self, state: KaState, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        wait_for(timeout, Duration::from_millis(5), || {
            (self.state() == Some(state)).then(|| start.elapsed())
        })
    }

    /// Log lines in which keepalived complains about a packet it received.
    pub fn receive_errors(&self) -> Vec<String> {
        const COMPLAINTS: &[&str] = &[
            "invalid",
            "incorrect",
            "mismatch",
            "wrong",
            "bad ",
            "error",
            "unknown",
            "malformed",
        ];
        self.log_text()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                COMPLAINTS.iter().any(|c| l.contains(c))
            })
            .map(str::to_string)
            .collect()
    }

    /// Dumps and parses keepalived's statistics (hold [`stats_lock`]).
    pub fn stats(&self) -> Result<KaStats> {
        let _ = std::fs::remove_file(STATS_FILE);
        let pid = read_pid(&self.pidfile)?;
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, libc::SIGUSR2) };
        let text = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
            std::fs::read_to_string(STATS_FILE)
                .ok()
                .filter(|t| t.contains("Priority Zero"))
        })
        .context("keepalived wrote no statistics")?;
        Ok(KaStats::parse(&text))
    }

    /// The parent's and the VRRP child's process ids (what its CPU and memory are summed over).
    pub fn pids(&self) -> Vec<i32> {
        [&self.pidfile, &self.vrrp_pidfile]
            .iter()
            .filter_map(|f| read_pid(f).ok())
            .collect()
    }

    /// SIGKILLs keepalived's parent and VRRP child (the parent would restart the child).
    pub fn kill(&mut self) {
        for file in [&self.pidfile, &self.vrrp_pidfile] {
            if let Ok(pid) = read_pid(file) {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A restarted keepalived refuses to start while a pid file names a process that has
        // not been reaped yet (its VRRP child, orphaned by the parent's death).
        for file in [&self.pidfile, &self.vrrp_pidfile] {
            let _ = std::fs::remove_file(file);
        }
    }

    /// Asks keepalived to stop (it sends priority 0 as master).
    pub fn terminate(&self) {
        if let Ok(pid) = read_pid(&self.pidfile) {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- log of keepalived in {} ----\n{}",
                self.ns,
                self.log_text()
            );
        }
    }
}

fn read_pid(file: &Path) -> Result<i32> {
    Ok(std::fs::read_to_string(file)?.trim().parse()?)
}

/// The receive-side figures of keepalived's statistics dump, summed over instances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KaStats {
    /// "Advertisements: Received".
    pub adverts_received: u64,
    /// Every number under "Packet Errors" and "Authentication Errors", by name.
    pub errors: Vec<(String, u64)>,
    /// "Priority Zero: Received".
    pub priority_zero_received: u64,
}

impl KaStats {
    fn parse(text: &str) -> Self {
        let mut stats = KaStats::default();
        let mut section = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.ends_with(':') {
                section = trimmed.trim_end_matches(':').to_string();
                continue;
            }
            let Some((name, value)) = trimmed.split_once(':') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<u64>() else {
                continue;
            };
            match (section.as_str(), name) {
                ("Advertisements", "Received") => stats.adverts_received += value,
                ("Priority Zero", "Received") => stats.priority_zero_received += value,
                ("Packet Errors" | "Authentication Errors", _) => {
                    stats.errors.push((format!("{section}/{name}"), value));
                }
                _ => {}
            }
        }
        stats
    }

    /// The error counters that are not zero.
    pub fn nonzero_errors(&self) -> Vec<&(String, u64)> {
        self.errors.iter().filter(|(_, v)| *v > 0).collect()
    }
}
