//! `cargo xtask bench [--quick]`: vrrp-agent and Debian's keepalived side by side in the
//! namespace lab, each scenario run for both in the same run, reported as raw figures and
//! ratios in target/bench/REPORT.md and report.json, with SVG plots. Not part of CI.
//!
//! Absolute figures depend on the machine, and veth is not a physical NIC: read the ratios.

mod arp;
mod daemon;
mod failover;
mod forward;
mod load;
mod report;
mod services;
mod sys;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Result, bail};

use crate::daemon::Impl;

/// How much to run.
pub struct Plan {
    /// `--quick`: fewer repetitions, shorter windows (under 5 minutes).
    pub quick: bool,
    /// Where the report goes.
    pub out: PathBuf,
    /// `--only a,b`: just these scenarios (failover, backup, master, flood, arp, checks,
    /// memory, forward).
    pub only: Option<Vec<String>>,
}

impl Plan {
    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == scenario))
    }
}

fn main() -> ExitCode {
    let mut plan = Plan {
        quick: false,
        out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench")),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => plan.quick = true,
            "--out" => plan.out = args.next().map(PathBuf::from).unwrap_or(plan.out),
            "--only" => {
                plan.only = args
                    .next()
                    .map(|s| s.split(',').map(str::to_string).collect())
            }
            other => {
                eprintln!(
                    "bench: unknown argument {other} (use --quick, --out DIR, --only failover,backup,master,flood,arp,checks,memory,forward)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    match run(&plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn say(msg: &str) {
    eprintln!("bench: {msg}");
}

fn run(plan: &Plan) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench builds network namespaces: run it as root");
    }
    if !vrrp_lab::keepalived::available("bench") {
        bail!("keepalived is needed side by side: `cargo xtask setup` installs it");
    }
    let started = std::time::Instant::now();
    let mut r = report::Report::new(plan);
    let (reps, intervals): (usize, &[(&str, u16)]) = if plan.quick {
        (3, &[("0.1", 10), ("0.01", 1)])
    } else {
        (10, &[("1", 100), ("0.1", 10), ("0.01", 1)])
    };
    let window = Duration::from_secs(if plan.quick { 8 } else { 60 });

    for &(advert_int, cs) in intervals.iter().filter(|_| plan.wants("failover")) {
        for imp in Impl::BOTH {
            say(&format!(
                "failover, {} at advert_int {advert_int}",
                imp.name()
            ));
            r.failover.extend(failover::run(imp, advert_int, cs, reps)?);
        }
    }
    let ks: &[(usize, usize)] = if plan.quick {
        &[(10, 1), (100, 1), (255, 1)]
    } else {
        &[(10, 1), (100, 1), (255, 1), (1000, 4)]
    };
    for &(k, ifaces) in ks.iter().filter(|_| plan.wants("backup")) {
        for imp in Impl::BOTH {
            say(&format!("backup of {k} routers at 10 ms, {}", imp.name()));
            r.load.push(load::backup(imp, k, ifaces, window)?);
        }
    }
    for &(k, _) in ks.iter().filter(|(k, _)| *k <= 255 && plan.wants("master")) {
        for imp in Impl::BOTH {
            say(&format!("master of {k} routers at 10 ms, {}", imp.name()));
            r.load.push(load::master(imp, k, window)?);
        }
    }
    let flood_window = Duration::from_secs(if plan.quick { 5 } else { 30 });
    for flood in ["invalid adverts", "lower-priority adverts", "ARP requests"]
        .into_iter()
        .filter(|_| plan.wants("flood"))
    {
        for imp in Impl::BOTH {
            say(&format!("flood of {flood}, {}", imp.name()));
            r.load.push(load::flood(imp, flood, flood_window)?);
        }
    }
    if plan.wants("forward") {
        say("load balancer forwarding (vrrp-agent; keepalived would need IPVS)");
        r.forward.push(forward::run(flood_window)?);
    }
    for imp in Impl::BOTH.into_iter().filter(|_| plan.wants("arp")) {
        say(&format!("ARP responder, {}", imp.name()));
        r.arp.push(arp::run(
            imp,
            flood_window,
            if plan.quick { 300 } else { 2000 },
        )?);
    }
    let servers = if plan.quick { 200 } else { 1000 };
    for scripts in [false, true].into_iter().filter(|_| plan.wants("checks")) {
        say(&format!(
            "{servers} health checks at 1 s, scripts: {scripts}"
        ));
        r.checks.push(services::checks(servers, scripts, window)?);
    }
    for k in [1, 255, 1000].into_iter().filter(|_| plan.wants("memory")) {
        for imp in Impl::BOTH {
            say(&format!("memory with {k} instances, {}", imp.name()));
            r.memory.push(services::memory(imp, k)?);
        }
    }
    r.elapsed_s = started.elapsed().as_secs_f64();
    let written = r.write(&plan.out)?;
    say(&format!(
        "done in {:.0} s: {}",
        r.elapsed_s,
        written.display()
    ));
    Ok(())
}
