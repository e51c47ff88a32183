//! Scenario 4: answering ARP for a VIP. The client asks the master for the VIP's MAC: one
//! request at a time for the reply latency, then as fast as it can send for the replies per
//! second. vrrp-agent answers in XDP; keepalived leaves it to the kernel's ARP code.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vrrp_lab::{Lab, Spec, VIP, frames::arp_request, wait_for};

use crate::daemon::{Daemon, Impl};

/// One implementation's ARP figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sample {
    /// Which implementation.
    pub imp: Impl,
    /// Request-to-reply latency, microseconds: min, median, max over the samples.
    pub latency_us: [f64; 3],
    /// Latency samples taken.
    pub samples: usize,
    /// Requests sent per second during the flood.
    pub requests_per_s: f64,
    /// Replies received per second during the flood.
    pub replies_per_s: f64,
}

fn is_reply(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[21] == 2 && f[28..32] == VIP.octets()
}

/// Measures `imp`'s master answering ARP for its VIP.
pub fn run(imp: Impl, window: Duration, samples: usize) -> Result<Sample> {
    let lab = Lab::new(&format!("barp{}", imp.name().len()), 1)?;
    let daemon = Daemon::start(imp, &lab, lab.router(0), &Spec::v3(200, "0.1").config())?;
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        (daemon.count("MASTER") == 1).then_some(())
    })
    .context("no master")?;
    std::thread::sleep(Duration::from_millis(500));
    let client = lab.client.clone();
    let capture = lab.capture(&client)?;
    let request = arp_request(client.mac, client.addr, VIP);
    let mut latencies = Vec::new();
    for _ in 0..samples {
        while capture.recv(Duration::ZERO).is_some() {}
        let sent = Instant::now();
        capture.send(&request)?;
        if let Some(reply) = capture.wait_incoming(Duration::from_millis(200), is_reply) {
            latencies.push(reply.at.duration_since(sent).as_secs_f64() * 1e6);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };

    // The flood: one thread sends, this one counts replies.
    let sender = lab.capture(&client)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent, request) = (stop.clone(), sent.clone(), request.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if sender.send(&request).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Replies counted by the client's interface (a capture socket would drop some at this
    // rate); the master's adverts add about ten a second.
    let received = || -> u64 {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &client.ns, "ip", "-j", "-s", "link", "show", "dev", "eth0",
            ])
            .output();
        out.ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v[0]["stats64"]["rx"]["packets"].as_u64())
            .unwrap_or(0)
    };
    let (start, before) = (Instant::now(), received());
    let sent_before = sent.load(Ordering::Relaxed);
    std::thread::sleep(window);
    let replies = received().saturating_sub(before);
    let sent_in_window = sent.load(Ordering::Relaxed) - sent_before;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = flood.join();
    drop(daemon);
    Ok(Sample {
        imp,
        latency_us: [pick(0.0), pick(0.5), pick(1.0)],
        samples: latencies.len(),
        requests_per_s: sent_in_window as f64 / elapsed,
        replies_per_s: replies as f64 / elapsed,
    })
}
