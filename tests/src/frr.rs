//! FRR's vrrpd (Debian `frr`) as an interop peer in a lab namespace: zebra and vrrpd with
//! their own config, pid and vty paths, and the macvlan FRR's documentation requires (named
//! by the instance, carrying the virtual MAC and the virtual address).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{IFNAME, Node, netns::ip, wait_for};

const ZEBRA: &str = "/usr/lib/frr/zebra";
const VRRPD: &str = "/usr/lib/frr/vrrpd";

/// Whether FRR's vrrpd is installed; prints why a test is skipped when not.
pub fn available(test: &str) -> bool {
    let ok = Path::new(VRRPD).exists() && Command::new("vtysh").arg("--version").output().is_ok();
    if !ok {
        eprintln!("SKIPPED {test}: FRR is not installed (`cargo xtask setup` installs it as root)");
    }
    ok
}

/// One FRR VRRP router (zebra + vrrpd), stopped when dropped.
pub struct Frr {
    dir: PathBuf,
    /// The namespace it runs in.
    pub ns: String,
}

impl Frr {
    /// Starts FRR in `node`'s namespace with one VRRPv3 router `vrid` for `vip` (with prefix
    /// length), advertising every `interval_ms`.
    pub fn spawn(
        dir: &Path,
        node: &Node,
        vrid: u8,
        priority: u8,
        interval_ms: u32,
        vip: (IpAddr, u8),
    ) -> Result<Self> {
        let tag = node.ns.rsplit('-').next().unwrap_or("frr");
        let dir = dir.join(format!("frr-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let (keyword, family_byte, name) = match vip.0 {
            IpAddr::V4(_) => ("ip", 1, format!("vrrp4-{vrid}")),
            IpAddr::V6(_) => ("ipv6", 2, format!("vrrp6-{vrid}")),
        };
        // FRR finds its macvlan by the virtual MAC 00:00:5e:00:0{1,2}:VRID.
        let vmac = format!("00:00:5e:00:{family_byte:02x}:{vrid:02x}");
        ip(
            &node.ns,
            &[
                "link", "add", &name, "link", IFNAME, "type", "macvlan", "mode", "bridge",
            ],
        )?;
        ip(&node.ns, &["link", "set", "dev", &name, "address", &vmac])?;
        ip(
            &node.ns,
            &["addr", "add", &format!("{}/{}", vip.0, vip.1), "dev", &name],
        )?;
        ip(&node.ns, &["link", "set", &name, "up"])?;
        std::fs::write(dir.join("zebra.conf"), "hostname lab\n")?;
        std::fs::write(
            dir.join("vrrpd.conf"),
            format!(
                "interface {IFNAME}\n vrrp {vrid} version 3\n vrrp {vrid} priority {priority}\n \
                 vrrp {vrid} advertisement-interval {interval_ms}\n vrrp {vrid} {keyword} {}\n!\n",
                vip.0
            ),
        )?;
        // The daemons drop to the frr user: it must own their directory.
        let status = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(&dir)
            .status()?;
        if !status.success() {
            bail!("chown frr:frr {} failed", dir.display());
        }
        let frr = Self {
            dir,
            ns: node.ns.clone(),
        };
        frr.daemon(ZEBRA, "zebra")?;
        frr.daemon(VRRPD, "vrrpd")?;
        if wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            frr.show().ok()
        })
        .is_none()
        {
            bail!("FRR vrrpd did not answer; its log:\n{}", frr.log());
        }
        Ok(frr)
    }

    fn daemon(&self, bin: &str, name: &str) -> Result<()> {
        let d = &self.dir;
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, bin, "-d", "-u", "frr", "-g", "frr", "-f",
            ])
            .arg(d.join(format!("{name}.conf")))
            .arg("-i")
            .arg(d.join(format!("{name}.pid")))
            .arg("-z")
            .arg(d.join("zserv.api"))
            .arg("--vty_socket")
            .arg(d)
            .arg("--log")
            .arg(format!("file:{}", d.join(format!("{name}.log")).display()))
            .output()
            .with_context(|| format!("starting {bin}"))?;
        if !out.status.success() {
            bail!("{bin} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn show(&self) -> Result<Value> {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(&self.dir)
            .args(["-c", "show vrrp json"])
            .output()?;
        let v: Value = serde_json::from_slice(&out.stdout).context("vtysh output")?;
        if v.as_array().is_none_or(|a| a.is_empty()) {
            bail!("no VRRP router yet");
        }
        Ok(v)
    }

    /// The router's state ("Master", "Backup", ...) and its received-advert count, for the
    /// family of its virtual address.
    pub fn state(&self, v6: bool) -> Option<(String, u64)> {
        let v = self.show().ok()?;
        let f = &v[0][if v6 { "v6" } else { "v4" }];
        Some((
            f["status"].as_str()?.to_string(),
            f["stats"]["adverRx"].as_u64()?,
        ))
    }

    /// Waits for `status`.
    pub fn wait_state(&self, v6: bool, status: &str, timeout: Duration) -> bool {
        wait_for(timeout, Duration::from_millis(10), || {
            (self.state(v6)?.0 == status).then_some(())
        })
        .is_some()
    }

    /// vrrpd's log lines that complain about received packets.
    pub fn receive_errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                [
                    "discard",
                    "invalid",
                    "malformed",
                    "bad checksum",
                    "mismatch",
                ]
                .iter()
                .any(|w| l.contains(w))
            })
            .map(str::to_string)
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vrrpd.log")).unwrap_or_default()
    }

    /// Stops vrrpd (SIGKILL: no priority-0 goodbye).
    pub fn kill_vrrpd(&self) {
        self.signal("vrrpd", libc::SIGKILL);
    }

    fn signal(&self, name: &str, sig: i32) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{name}.pid")));
        if let Some(pid) = pid.ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.signal("vrrpd", libc::SIGKILL);
        self.signal("zebra", libc::SIGKILL);
        if std::thread::panicking() {
            eprintln!("---- FRR vrrpd log in {} ----\n{}", self.ns, self.log());
        }
    }
}
