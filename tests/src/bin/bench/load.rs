//! Scenarios 2 and 3: advert load and floods. A backup follows K virtual routers whose
//! adverts come from a generator at 10 ms (K x 100 adverts/s, sent in 1 ms batches so they are
//! spread over the interval); a master sends K instances' adverts itself; and a master is
//! flooded with invalid adverts, valid lower-priority adverts and ARP requests. Measured over a
//! window: the daemon's user and system CPU and voluntary context switches, whole-system busy
//! time (softirq included: XDP's work is not charged to any process) less the generator's own
//! CPU (reported, not subtracted: on veth the receiver's softirq work is often charged to the
//! sender), and flaps.

use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vrrp_agent::packet::Advert;
use vrrp_lab::{
    Capture, Lab, VIP,
    frames::{Flaw, advert_frame, arp_request},
    ip, wait_for,
};

use crate::{
    daemon::{self, Daemon, Impl},
    sys::{System, Usage, thread_cpu},
};

/// One measured window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sample {
    /// Which implementation.
    pub imp: Impl,
    /// What ran: "backup", "master", or a flood's name.
    pub scenario: String,
    /// Virtual routers.
    pub k: usize,
    /// Adverts per second on the wire for them.
    pub adverts_per_s: f64,
    /// Window length, s.
    pub window_s: f64,
    /// The daemon's user CPU, s.
    pub user_s: f64,
    /// The daemon's system CPU, s.
    pub system_s: f64,
    /// Its voluntary context switches.
    pub voluntary: u64,
    /// Whole-system busy time, s (the generator's included: it is the same for both).
    pub system_busy_s: f64,
    /// The generator thread's own CPU, s (on veth the receiver's softirq work often runs in
    /// the sender's context, so part of the daemon side's kernel work lands here).
    pub generator_s: f64,
    /// Of the whole system, softirq, s.
    pub softirq_s: f64,
    /// Frames the generator sent per second.
    pub generated_per_s: f64,
    /// State changes during the window (any is a flap: nothing should move).
    pub flaps: usize,
}

/// A sender thread: `frames` out of `capture`, `per_ms` of them every millisecond (or as
/// fast as it can when `per_ms` is 0), cycling.
pub(crate) struct Generator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(u64, Duration)>>,
}

impl Generator {
    pub(crate) fn start(captures: Vec<Capture>, frames: Frames, per_ms: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let cpu0 = thread_cpu();
            let mut sent = 0u64;
            let mut next = Instant::now();
            let mut cursor = vec![0usize; captures.len()];
            while !s.load(Ordering::Relaxed) {
                for (c, capture) in captures.iter().enumerate() {
                    let list = &frames[c];
                    let n = if per_ms == 0 {
                        64
                    } else {
                        per_ms.div_ceil(captures.len())
                    };
                    for _ in 0..n.min(list.len()) {
                        if capture.send(&list[cursor[c]]).is_ok() {
                            sent += 1;
                        }
                        cursor[c] = (cursor[c] + 1) % list.len();
                    }
                }
                if per_ms > 0 {
                    next += Duration::from_millis(1);
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    } else {
                        next = Instant::now();
                    }
                }
            }
            (sent, thread_cpu() - cpu0)
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; returns frames sent and the thread's CPU time.
    pub(crate) fn stop(mut self) -> (u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// Extra links eth1.. between r1 and r2 (veth pairs), for more than 255 instances.
pub fn extra_links(lab: &Lab, ifaces: usize) -> Result<()> {
    let (r1, r2) = (&lab.router(0).ns, &lab.router(1).ns);
    for j in 1..ifaces {
        let (a, b) = (format!("eth{j}"), format!("gen{j}"));
        ip(
            r1,
            &[
                "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", r2,
            ],
        )?;
        ip(r1, &["addr", "add", &format!("10.1.{j}.1/24"), "dev", &a])?;
        ip(r1, &["link", "set", &a, "up"])?;
        ip(r2, &["addr", "add", &format!("10.1.{j}.2/24"), "dev", &b])?;
        ip(r2, &["link", "set", &b, "up"])?;
    }
    Ok(())
}

/// The frames a generator cycles through, per interface.
pub(crate) type Frames = Vec<Vec<Vec<u8>>>;

/// Each interface's generator frames: the adverts of the instances on it, from r2 at
/// priority 200 (or `flaw`ed).
fn advert_frames(
    lab: &Lab,
    k: usize,
    ifaces: usize,
    priority: u8,
    flaw: Flaw,
) -> Result<(Vec<Capture>, Frames)> {
    let per_iface = k.div_ceil(ifaces).min(255);
    let r2 = lab.router(1);
    let mut captures = Vec::new();
    let mut frames: Frames = vec![Vec::new(); ifaces];
    for (j, list) in frames.iter_mut().enumerate() {
        let (name, src) = if j == 0 {
            ("eth0".to_string(), r2.addr)
        } else {
            (format!("gen{j}"), Ipv4Addr::new(10, 1, j as u8, 2))
        };
        captures.push(Capture::open(&r2.ns, &name)?);
        let mac = vrrp_lab::netns::mac(&r2.ns, &name)?;
        for i in (j * per_iface)..((j + 1) * per_iface).min(k) {
            let advert = Advert {
                version: 3,
                auth: None,
                vrid: (i % per_iface + 1) as u8,
                priority,
                interval_cs: 1,
                addresses: vec![daemon::vip(i).into()],
            };
            list.push(advert_frame(mac, src, &advert, flaw));
        }
    }
    Ok((captures, frames))
}

/// Measures `daemon` over `window`; the generator (if any) is stopped at the end.
fn measure(
    imp: Impl,
    scenario: &str,
    k: usize,
    daemon: &Daemon,
    window: Duration,
    generator: Option<Generator>,
) -> Sample {
    let pids = daemon.pids();
    let changes_before = daemon.changes();
    let (u0, s0, t0) = (Usage::of(&pids), System::now(), Instant::now());
    std::thread::sleep(window);
    let (u1, s1, elapsed) = (Usage::of(&pids), System::now(), t0.elapsed().as_secs_f64());
    let (sent, gen_cpu) = generator.map(Generator::stop).unwrap_or_default();
    let u = u0.until(&u1);
    let s = s0.until(&s1);
    Sample {
        imp,
        scenario: scenario.to_string(),
        k,
        adverts_per_s: k as f64 * 100.0,
        window_s: elapsed,
        user_s: u.user,
        system_s: u.system,
        voluntary: u.voluntary,
        system_busy_s: s.busy,
        generator_s: gen_cpu.as_secs_f64(),
        softirq_s: s.softirq,
        generated_per_s: sent as f64 / elapsed,
        flaps: daemon.changes() - changes_before,
    }
}

/// A backup following `k` routers at 10 ms.
pub fn backup(imp: Impl, k: usize, ifaces: usize, window: Duration) -> Result<Sample> {
    let lab = Lab::new(&format!("bb{k}"), 2)?;
    extra_links(&lab, ifaces)?;
    let (captures, frames) = advert_frames(&lab, k, ifaces, 200, Flaw::None)?;
    // The generator runs first, so the backup never sees silence and never takes over.
    let generator = Generator::start(captures, frames, k.div_ceil(10));
    let daemon = Daemon::start(
        imp,
        &lab,
        lab.router(0),
        &daemon::config(k, 100, "0.01", ifaces),
    )?;
    wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        (daemon.count("BACKUP") == k).then_some(())
    })
    .with_context(|| format!("{} did not settle as backup of {k}", imp.name()))?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(measure(imp, "backup", k, &daemon, window, Some(generator)))
}

/// A master of `k` routers at 10 ms, alone.
pub fn master(imp: Impl, k: usize, window: Duration) -> Result<Sample> {
    let lab = Lab::new(&format!("bm{k}"), 1)?;
    let daemon = Daemon::start(imp, &lab, lab.router(0), &daemon::config(k, 200, "0.01", 1))?;
    wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        (daemon.count("MASTER") == k).then_some(())
    })
    .with_context(|| format!("{} did not become master of {k}", imp.name()))?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(measure(imp, "master", k, &daemon, window, None))
}

/// A master of one router at 10 ms flooded, as fast as the generator goes, with `flood`:
/// "invalid adverts" (bad checksum), "lower-priority adverts" (valid, priority 50) or "ARP
/// requests" for its VIP.
pub fn flood(imp: Impl, flood: &str, window: Duration) -> Result<Sample> {
    let lab = Lab::new(&format!("bfl{}", flood.len()), 2)?;
    let config = vrrp_lab::Spec::v3(200, "0.01").config();
    let daemon = Daemon::start(imp, &lab, lab.router(0), &config)?;
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        (daemon.count("MASTER") == 1).then_some(())
    })
    .context("no master")?;
    let r2 = lab.router(1);
    let capture = lab.capture(r2)?;
    let frame = match flood {
        "ARP requests" => arp_request(r2.mac, r2.addr, VIP),
        _ => {
            let advert = Advert {
                version: 3,
                auth: None,
                vrid: 51,
                priority: 50,
                interval_cs: 1,
                addresses: vec![VIP.into()],
            };
            let flaw = if flood == "invalid adverts" {
                Flaw::BadChecksum
            } else {
                Flaw::None
            };
            advert_frame(r2.mac, r2.addr, &advert, flaw)
        }
    };
    let generator = Generator::start(vec![capture], vec![vec![frame]], 0);
    std::thread::sleep(Duration::from_millis(500));
    Ok(measure(imp, flood, 1, &daemon, window, Some(generator)))
}
