//! Scenario 1: failover latency. A master (priority 200) and a backup (100) on one VIP; the
//! client asks for the VIP's MAC every millisecond and records what it sees. The master is
//! SIGKILLed (every process of the daemon) or SIGTERMed; latencies run from the master's last
//! advert on the wire to the backup's first advert, first gratuitous ARP, and first ARP reply
//! with its MAC, and are compared with the RFC bound (3 x interval + skew; skew for a clean
//! stop's priority 0).

use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vrrp_lab::{Lab, Node, Spec, VIP, frames::arp_request, wait_for};

use crate::daemon::{Daemon, Impl};

/// One failover.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sample {
    /// Which implementation.
    pub imp: Impl,
    /// advert_int in centiseconds.
    pub interval_cs: u16,
    /// "SIGKILL" or "SIGTERM".
    pub mode: &'static str,
    /// The RFC bound from the last advert, ms.
    pub bound_ms: f64,
    /// To the backup's first advert, ms.
    pub advert_ms: Option<f64>,
    /// To its first gratuitous ARP, ms.
    pub garp_ms: Option<f64>,
    /// To the first ARP reply to the client with its MAC, ms.
    pub arp_ms: Option<f64>,
}

/// What the client saw, with times.
#[derive(Default)]
struct Seen {
    /// The old master's adverts.
    master_adverts: Vec<Instant>,
    backup_advert: Option<Instant>,
    garp: Option<Instant>,
    arp_reply: Option<Instant>,
    /// The backup advertised in the 100 ms before the master was stopped: the pair had not
    /// settled, and the run measures nothing.
    unsettled: bool,
}

/// The RFC 9568 bound for a backup of priority 100: Master_Down_Interval, or Skew_Time after
/// a priority-0 advert.
fn bound_ms(interval_cs: u16, kill: bool) -> f64 {
    let interval = f64::from(interval_cs) * 10.0;
    let skew = (256.0 - 100.0) / 256.0 * interval;
    if kill { 3.0 * interval + skew } else { skew }
}

/// Runs `reps` failovers of each mode for `imp` at `advert_int` (seconds, as written).
pub fn run(imp: Impl, advert_int: &str, interval_cs: u16, reps: usize) -> Result<Vec<Sample>> {
    let lab = Lab::new(&format!("bf{}{interval_cs}", imp.name().len()), 2)?;
    let master_config = Spec::v3(200, advert_int)
        .config()
        .replace("state MASTER", "state BACKUP");
    let backup_config = Spec::v3(100, advert_int).config();
    let mut backup = Daemon::start(imp, &lab, lab.router(1), &backup_config)?;
    let mut samples = Vec::new();
    for rep in 0..reps * 2 {
        let kill = rep % 2 == 0;
        let mut master = Daemon::start(imp, &lab, lab.router(0), &master_config)?;
        let settled = wait_for(Duration::from_secs(10), Duration::from_millis(10), || {
            (master.count("MASTER") == 1 && backup.count("BACKUP") == 1).then_some(())
        });
        settled.with_context(|| format!("{} did not elect r1", imp.name()))?;
        std::thread::sleep(
            Duration::from_millis(u64::from(interval_cs) * 40).max(Duration::from_millis(300)),
        );
        // Watch at least one and a half intervals before the stop, so the master's last
        // advert is on record.
        let lead =
            Duration::from_millis(u64::from(interval_cs) * 15).max(Duration::from_millis(200));
        let seen = watch(
            &lab,
            lead,
            |_| {
                if kill {
                    master.kill()
                } else {
                    master.terminate()
                }
            },
            lead + Duration::from_millis(u64::from(interval_cs) * 10 * 4 + 2000),
        )?;
        if seen.unsettled {
            eprintln!(
                "bench: {} at {advert_int}: the backup was advertising before the stop; run discarded",
                imp.name()
            );
            master.kill();
            continue;
        }
        let last = seen.master_adverts.last().copied();
        let ms =
            |t: Option<Instant>| Some((t?.checked_duration_since(last?)?).as_secs_f64() * 1000.0);
        samples.push(Sample {
            imp,
            interval_cs,
            mode: if kill { "SIGKILL" } else { "SIGTERM" },
            bound_ms: bound_ms(interval_cs, kill),
            advert_ms: ms(seen.backup_advert),
            garp_ms: ms(seen.garp),
            arp_ms: ms(seen.arp_reply),
        });
        master.kill();
        drop(master);
        // The backup has taken over before r1 starts again (and preempts it back).
        let _ = wait_for(Duration::from_secs(10), Duration::from_millis(10), || {
            (backup.count("MASTER") == 1).then_some(())
        });
    }
    backup.kill();
    Ok(samples)
}

/// Records the client's view while `act` runs, until the backup's MAC answers for the VIP or
/// `limit` passes.
fn watch(lab: &Lab, lead: Duration, act: impl FnOnce(()), limit: Duration) -> Result<Seen> {
    let client = lab.client.clone();
    let (r1, r2) = (lab.router(0).clone(), lab.router(1).clone());
    let capture = lab.capture(&client)?;
    let prober = lab.capture(&client)?;
    let stop = Arc::new(AtomicBool::new(false));
    let probing = {
        let stop = stop.clone();
        let request = arp_request(client.mac, client.addr, VIP);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = prober.send(&request);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let started = Instant::now();
    let mut seen = Seen::default();
    let mut act = Some(act);
    // Until the backup's MAC answers and its gratuitous ARP was seen (or the limit).
    while started.elapsed() < limit && (seen.arp_reply.is_none() || seen.garp.is_none()) {
        if started.elapsed() > lead
            && let Some(act) = act.take()
        {
            act(());
        }
        let Some(frame) = capture.recv(Duration::from_millis(5)) else {
            continue;
        };
        if frame.outgoing {
            continue;
        }
        let acted = act.is_none();
        if !acted
            && frame.data.len() >= 34
            && frame.data[23] == 112
            && frame.data[26..30] == r2.addr.octets()
            && started.elapsed() + Duration::from_millis(100) > lead
        {
            seen.unsettled = true;
        }
        classify(&frame.data, frame.at, &r1, &r2, &client, &mut seen, acted);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = probing.join();
    Ok(seen)
}

fn classify(
    f: &[u8],
    at: Instant,
    r1: &Node,
    r2: &Node,
    client: &Node,
    seen: &mut Seen,
    acted: bool,
) {
    let ip = |o: usize| Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3]);
    if f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 112 {
        let src = ip(26);
        if src == r1.addr {
            seen.master_adverts.push(at);
        } else if src == r2.addr && acted && seen.backup_advert.is_none() {
            seen.backup_advert = Some(at);
        }
    } else if f.len() >= 42 && f[12..14] == [0x08, 0x06] && acted {
        let (op, sender_mac, sender, target) = (f[21], &f[22..28], ip(28), ip(38));
        if sender != VIP || sender_mac != r2.mac {
            return;
        }
        if target == VIP && seen.garp.is_none() {
            seen.garp = Some(at);
        } else if op == 2 && target == client.addr && seen.arp_reply.is_none() {
            seen.arp_reply = Some(at);
        }
    }
}
