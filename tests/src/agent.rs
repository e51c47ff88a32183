//! A `vrrp-agent` process running in a lab namespace.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::IpAddr,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use vrrp_agent::{
    control::{Reply, Request, Status},
    election::State,
};

use crate::{Node, wait_for};

/// The agent binary: `$VRRP_AGENT_BIN`, else the workspace's debug build.
pub fn agent_binary() -> PathBuf {
    std::env::var_os("VRRP_AGENT_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/vrrp-agent"),
        PathBuf::from,
    )
}

/// A running agent; killed (SIGKILL) when dropped. Its log is printed if a test panics.
pub struct Agent {
    child: Child,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its log file (stderr).
    pub log: PathBuf,
    /// The config file it runs.
    pub config: PathBuf,
    /// Namespace it runs in.
    pub ns: String,
}

impl Agent {
    /// Writes `config` and starts the agent on it in `node`'s namespace, with `args` added to
    /// its command line.
    pub fn spawn(dir: &Path, node: &Node, config: &str, args: &[&str]) -> Result<Self> {
        let bin = agent_binary();
        if !bin.exists() {
            bail!(
                "{} does not exist: run `cargo xtask build` first",
                bin.display()
            );
        }
        let tag = node.ns.rsplit('-').next().unwrap_or("agent");
        let config_path = dir.join(format!("{tag}.conf"));
        std::fs::write(&config_path, config)?;
        let socket = dir.join(format!("{tag}.sock"));
        let log = dir.join(format!("{tag}.log"));
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("ip")
            .args(["netns", "exec", &node.ns])
            .arg(&bin)
            .arg("-f")
            .arg(&config_path)
            .arg("--control-socket")
            .arg(&socket)
            .arg("-D")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting vrrp-agent")?;
        let agent = Self {
            child,
            socket,
            log,
            config: config_path,
            ns: node.ns.clone(),
        };
        // Ready when the control socket answers.
        if wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            agent.status().ok()
        })
        .is_none()
        {
            bail!("the agent did not come up; its log:\n{}", agent.log_text());
        }
        Ok(agent)
    }

    /// The process id (`ip netns exec` execs the agent, so this is the agent itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the agent for its status over the control socket.
    pub fn status(&self) -> Result<Status> {
        match request(&self.socket, &Request::Status)? {
            Reply::Status(s) => Ok(s),
            Reply::Error { error } => bail!("status refused: {error}"),
            Reply::Done { message } => bail!("unexpected reply to status: {message}"),
        }
    }

    /// Rewrites the agent's configuration file (for a reload to pick up).
    pub fn rewrite_config(&self, config: &str) -> Result<()> {
        std::fs::write(&self.config, config)?;
        Ok(())
    }

    /// Asks the agent to reload its configuration; the daemon's message, or its refusal.
    pub fn reload(&self) -> Result<String> {
        match request(&self.socket, &Request::Reload)? {
            Reply::Done { message } => Ok(message),
            Reply::Error { error } => bail!("{error}"),
            Reply::Status(_) => bail!("unexpected reply to reload"),
        }
    }

    /// The state of the first instance.
    pub fn state(&self) -> Option<State> {
        self.status().ok()?.instances.first().map(|i| i.state)
    }

    /// The state of the instance called `name`.
    pub fn instance_state(&self, name: &str) -> Option<State> {
        let status = self.status().ok()?;
        status
            .instances
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.state)
    }

    /// Waits until the first instance is a BACKUP that has heard a master (`master`, when
    /// given); returns the master's address.
    pub fn wait_backup_of(&self, master: Option<IpAddr>, timeout: Duration) -> Option<IpAddr> {
        wait_for(timeout, Duration::from_millis(10), || {
            let s = self.status().ok()?;
            let i = s.instances.first()?;
            let heard = i.master.as_ref()?.address;
            (i.state == State::Backup && master.is_none_or(|m| m == heard)).then_some(heard)
        })
    }

    /// Waits until the first instance is in `state`; returns how long it took.
    pub fn wait_state(&self, state: State, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        wait_for(timeout, Duration::from_millis(5), || {
            (self.state() == Some(state)).then(|| start.elapsed())
        })
    }

    /// A dataplane counter by name.
    pub fn counter(&self, name: &str) -> u64 {
        self.status()
            .ok()
            .and_then(|s| s.counters.get(name).copied())
            .unwrap_or(0)
    }

    /// A counter of the first instance by name.
    pub fn instance_counter(&self, name: &str) -> u64 {
        self.status()
            .ok()
            .and_then(|s| {
                s.instances
                    .first()
                    .and_then(|i| i.counters.get(name).copied())
            })
            .unwrap_or(0)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Voluntary context switches summed over all the agent's threads, from /proc.
    pub fn voluntary_context_switches(&self) -> Result<u64> {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let status = std::fs::read_to_string(task?.path().join("status"))?;
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                    total += v.trim().parse::<u64>()?;
                }
            }
        }
        Ok(total)
    }

    /// CPU time used so far by all the agent's threads (user and system): the scheduler's
    /// `se.sum_exec_runtime` from `/proc/PID/task/*/sched` (milliseconds with nanosecond
    /// digits, where `/proc/PID/stat` only has 10 ms clock ticks).
    pub fn cpu_time(&self) -> Result<Duration> {
        let mut total = 0.0f64;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let sched = std::fs::read_to_string(task?.path().join("sched"))?;
            let runtime = sched
                .lines()
                .find_map(|l| l.strip_prefix("se.sum_exec_runtime"))
                .and_then(|rest| {
                    rest.trim_start_matches([' ', ':'])
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .context("no se.sum_exec_runtime in /proc/PID/task/TID/sched")?;
            total += runtime;
        }
        Ok(Duration::from_secs_f64(total / 1000.0))
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- log of the agent in {} ----\n{}",
                self.ns,
                self.log_text()
            );
        }
    }
}

/// One request/reply over a control socket, synchronously.
pub fn request(socket: &Path, request: &Request) -> Result<Reply> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    Ok(serde_json::from_str(&reply)?)
}
