//! keepalived's signal-triggered dumps: SIGUSR1 (DATA) writes the running state as a table,
//! SIGUSR2 (STATS) per-instance statistics, SIGRTMIN+2 (JSON) the state as JSON, each to a
//! file in the dump directory (`/tmp` by default, as keepalived's `/tmp/keepalived.*`).
//! `vrrp-agent --signum=DATA|STATS|JSON|RELOAD|STOP` prints the numbers, so
//! `kill -s $(vrrp-agent --signum=DATA) PID` works as it does with keepalived.
//!
//! Files are written whole and renamed into place: a reader never sees half a dump.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

use crate::control::Status;

/// What a signal asks to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dump {
    /// SIGUSR1: the status table and configuration summary.
    Data,
    /// SIGUSR2: per-instance statistics.
    Stats,
    /// SIGRTMIN+2 (keepalived's JSON signal): the status as JSON.
    Json,
}

impl Dump {
    /// The file name in the dump directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Dump::Data => "vrrp-agent.data",
            Dump::Stats => "vrrp-agent.stats",
            Dump::Json => "vrrp-agent.json",
        }
    }

    /// The signal that asks for it.
    pub fn signal(self) -> i32 {
        match self {
            Dump::Data => libc::SIGUSR1,
            Dump::Stats => libc::SIGUSR2,
            Dump::Json => libc::SIGRTMIN() + 2,
        }
    }
}

/// keepalived's `--signum` names and the signals they mean here.
pub fn signum(name: &str) -> Option<i32> {
    Some(match name.to_ascii_uppercase().as_str() {
        "STOP" => libc::SIGTERM,
        "RELOAD" => libc::SIGHUP,
        "DATA" => Dump::Data.signal(),
        "STATS" => Dump::Stats.signal(),
        "JSON" => Dump::Json.signal(),
        _ => return None,
    })
}

/// Writes one dump of `status` into `dir`.
pub fn write(dir: &Path, dump: Dump, status: &Status, config_path: &Path) -> Result<()> {
    let text = match dump {
        Dump::Data => format!(
            "vrrp-agent data dump\nconfiguration {}\n{}{}",
            config_path.display(),
            status.render(),
            waiting(status)
        ),
        Dump::Stats => stats(status),
        Dump::Json => serde_json::to_string_pretty(status)? + "\n",
    };
    let path = dir.join(dump.file_name());
    let partial = dir.join(format!(".{}.{}", dump.file_name(), std::process::id()));
    std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))
}

fn waiting(status: &Status) -> String {
    if status.waiting.is_empty() {
        return String::new();
    }
    format!(
        "waiting for their interface: {}\n",
        status.waiting.join(", ")
    )
}

/// keepalived's stats layout (one block per instance), with every counter by name.
fn stats(status: &Status) -> String {
    let mut out = String::new();
    for i in &status.instances {
        let _ = writeln!(out, "VRRP Instance: {}", i.name);
        let _ = writeln!(out, "  State: {:?}", i.state);
        let _ = writeln!(out, "  Transitions: {}", i.transitions);
        for (name, value) in &i.counters {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    let _ = writeln!(out, "Dataplane (all interfaces):");
    for (name, value) in &status.counters {
        let _ = writeln!(out, "  {name}: {value}");
    }
    let _ = writeln!(out, "Notify:");
    if let Ok(serde_json::Value::Object(counters)) = serde_json::to_value(status.notify) {
        for (name, value) in counters {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    out
}
