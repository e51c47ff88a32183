//! Scenarios 5 and 6: health checks and memory. keepalived's checker cannot run here (no
//! IPVS), so checks are measured for vrrp-agent alone: N TCP_CHECK real servers at a 1 s
//! delay_loop against N listeners, and the same checks as N fork/exec `vrrp_script`s. Memory
//! is each daemon's resident set with 1, 255 and 1000 instances.

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vrrp_lab::{Lab, single_instance_config, wait_for};

use crate::{
    daemon::{self, Daemon, Impl},
    sys::{self, System, Usage},
};

/// One checker measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckSample {
    /// "TCP_CHECK" or "vrrp_script".
    pub how: &'static str,
    /// Real servers checked once a second.
    pub servers: usize,
    /// Window, s.
    pub window_s: f64,
    /// The agent's own user CPU, s.
    pub agent_user_s: f64,
    /// Its system CPU, s (on veth this includes both ends' TCP work for its connections).
    pub agent_system_s: f64,
    /// Its scripts' CPU, s.
    pub children_cpu_s: f64,
    /// Whole-system busy time, s.
    pub system_busy_s: f64,
    /// Real servers (or scripts) up at the end.
    pub up: usize,
}

/// Checks `n` listeners once a second, as TCP_CHECKs or as vrrp_scripts.
pub fn checks(n: usize, scripts: bool, window: Duration) -> Result<CheckSample> {
    let lab = Lab::new(&format!("bc{n}{}", u8::from(scripts)), 1)?;
    let client = lab.client.clone();
    let listeners: Vec<TcpListener> = vrrp_lab::run_in(&client.ns, move || {
        (0..n)
            .map(|i| TcpListener::bind(("0.0.0.0", 20_000 + i as u16)))
            .collect::<std::io::Result<Vec<_>>>()
    })??;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = stop.clone();
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for l in &listeners {
                    while l.accept().is_ok() {}
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let c = client.addr;
    let mut config = single_instance_config(200, "1");
    if scripts {
        let mut tracks = String::new();
        for i in 0..n {
            config.push_str(&format!(
                "vrrp_script chk_{i} {{\n    script \"/bin/bash -c 'echo > /dev/tcp/{c}/{}'\"\n    interval 1\n    timeout 1\n}}\n",
                20_000 + i
            ));
            tracks.push_str(&format!("        chk_{i}\n"));
        }
        config = config.replace(
            "    advert_int 1\n",
            &format!("    advert_int 1\n    track_script {{\n{tracks}    }}\n"),
        );
    } else {
        config.push_str("virtual_server 10.0.0.100 80 {\n    delay_loop 1\n    protocol TCP\n");
        for i in 0..n {
            config.push_str(&format!(
                "    real_server {c} {} {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
                20_000 + i
            ));
        }
        config.push_str("}\n");
    }
    let agent = lab.spawn_agent(lab.router(0), &config)?;
    // Warm up: every server checked once (warmup spreads the first checks over a second).
    std::thread::sleep(Duration::from_secs(3));
    let pids = [agent.pid() as i32];
    let (u0, s0, t0) = (Usage::of(&pids), System::now(), Instant::now());
    std::thread::sleep(window);
    let (u1, s1) = (Usage::of(&pids), System::now());
    let u = u0.until(&u1);
    let status = agent.status()?;
    let up = if scripts {
        status.vrrp_scripts.iter().filter(|s| s.up).count()
    } else {
        status
            .virtual_servers
            .iter()
            .flat_map(|v| &v.real_servers)
            .filter(|r| r.up)
            .count()
    };
    stop.store(true, Ordering::Relaxed);
    let _ = acceptor.join();
    Ok(CheckSample {
        how: if scripts {
            "vrrp_script (fork/exec)"
        } else {
            "TCP_CHECK"
        },
        servers: n,
        window_s: t0.elapsed().as_secs_f64(),
        agent_user_s: u.user,
        agent_system_s: u.system,
        children_cpu_s: u.children,
        system_busy_s: s0.until(&s1).busy,
        up,
    })
}

/// One memory measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemorySample {
    /// Which implementation.
    pub imp: Impl,
    /// Instances.
    pub instances: usize,
    /// Resident set of all the daemon's processes, KiB.
    pub rss_kib: u64,
}

/// The resident memory of `imp` with `k` instances (over four interfaces beyond 255).
pub fn memory(imp: Impl, k: usize) -> Result<MemorySample> {
    let ifaces = k.div_ceil(255);
    let lab = Lab::new(&format!("bmem{k}"), 2)?;
    crate::load::extra_links(&lab, ifaces)?;
    let daemon = Daemon::start(
        imp,
        &lab,
        lab.router(0),
        &daemon::config(k, 200, "1", ifaces),
    )?;
    wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        (daemon.count("MASTER") == k).then_some(())
    })
    .with_context(|| format!("{} did not start {k} instances", imp.name()))?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(MemorySample {
        imp,
        instances: k,
        rss_kib: sys::rss_kib(&daemon.pids()),
    })
}
