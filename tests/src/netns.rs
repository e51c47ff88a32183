//! Namespaces and what is inside them, through iproute2 (`ip -j` for parseable answers) and
//! `setns(2)` for sockets that must live in a namespace.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
    process::Command,
};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

/// Creates a network namespace.
pub fn add(ns: &str) -> Result<()> {
    run(Command::new("ip").args(["netns", "add", ns]))
}

/// Deletes a network namespace.
pub fn del(ns: &str) -> Result<()> {
    run(Command::new("ip").args(["netns", "del", ns]))
}

/// Runs `ip -n NS ARGS...`.
pub fn ip(ns: &str, args: &[&str]) -> Result<()> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

fn ip_json(ns: &str, args: &[&str]) -> Result<Value> {
    let out = Command::new("ip")
        .args(["-j", "-n", ns])
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "ip -n {ns} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    bytes.try_into().ok()
}

/// The MAC of an interface in a namespace.
pub fn mac(ns: &str, ifname: &str) -> Result<[u8; 6]> {
    let v = ip_json(ns, &["link", "show", "dev", ifname])?;
    v[0]["address"]
        .as_str()
        .and_then(parse_mac)
        .ok_or_else(|| anyhow!("no MAC for {ifname} in {ns}"))
}

/// The index of an interface in a namespace.
pub fn ifindex(ns: &str, ifname: &str) -> Result<u32> {
    let v = ip_json(ns, &["link", "show", "dev", ifname])?;
    v[0]["ifindex"]
        .as_u64()
        .map(|i| i as u32)
        .ok_or_else(|| anyhow!("no index for {ifname} in {ns}"))
}

/// The name of the XDP program an interface runs, if any.
pub fn xdp_program_name(ns: &str, ifname: &str) -> Result<Option<String>> {
    let v = ip_json(ns, &["link", "show", "dev", ifname])?;
    Ok(v[0]["xdp"]["prog"]["name"].as_str().map(str::to_string))
}

/// IPv4 addresses on an interface in a namespace.
pub fn ipv4_addresses(ns: &str, ifname: &str) -> Result<Vec<Ipv4Addr>> {
    addresses(ns, ifname, "-4")
}

/// IPv6 addresses on an interface in a namespace.
pub fn ipv6_addresses(ns: &str, ifname: &str) -> Result<Vec<Ipv6Addr>> {
    addresses(ns, ifname, "-6")
}

fn addresses<A: std::str::FromStr>(ns: &str, ifname: &str, family: &str) -> Result<Vec<A>> {
    let v = ip_json(ns, &[family, "addr", "show", "dev", ifname])?;
    let mut out = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(addr) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// The link-layer address of a neighbour entry, if the entry has one.
pub fn neighbour(ns: &str, ifname: &str, addr: Ipv4Addr) -> Result<Option<[u8; 6]>> {
    let v = ip_json(ns, &["neigh", "show", &addr.to_string(), "dev", ifname])?;
    Ok(v.as_array()
        .and_then(|a| a.first())
        .and_then(|e| e["lladdr"].as_str())
        .and_then(parse_mac))
}

/// Turns off IPv6 duplicate address detection for interfaces created in `ns` from now on, so
/// link-local addresses are usable at once (DAD would delay the lab by seconds).
pub fn no_dad(ns: &str) -> Result<()> {
    for conf in ["default", "all"] {
        run(Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw"])
            .arg(format!("net.ipv6.conf.{conf}.accept_dad=0")))?;
    }
    Ok(())
}

/// SIGKILLs every process inside a namespace (best effort, for cleanup).
pub fn kill_all_in(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets it creates stay in `ns`.
pub fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::spawn(move || -> Result<T> {
        // SAFETY: setns on this thread only; the fd is valid for the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setns");
        }
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow!("thread in {ns} panicked"))?
}
