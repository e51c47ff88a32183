//! What the kernel says about processes and the machine: CPU time (user and system, from
//! /proc/PID/task/*/stat), voluntary context switches, resident memory, and whole-system busy
//! time from /proc/stat (softirq included, where XDP's work is charged).

use std::time::Duration;

/// Clock ticks per second for /proc's tick counters.
fn hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU and scheduling figures summed over processes' threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User time.
    pub user: f64,
    /// System time.
    pub system: f64,
    /// Voluntary context switches.
    pub voluntary: u64,
    /// CPU of waited-for children (scripts), user + system.
    pub children: f64,
}

impl Usage {
    /// Now, for `pids` (a pid that went away counts 0).
    pub fn of(pids: &[i32]) -> Self {
        let mut u = Usage::default();
        for pid in pids {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
            {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // cutime(13) cstime(14) after the name.
                u.children += (13..15)
                    .filter_map(|i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
                    .sum::<f64>()
                    / hz();
            }
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                if let Ok(stat) = std::fs::read_to_string(task.path().join("stat"))
                    && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
                {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    // After the name: state(0) ... utime(11) stime(12).
                    let tick =
                        |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                    u.user += tick(11) / hz();
                    u.system += tick(12) / hz();
                }
                if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                    u.voluntary += status
                        .lines()
                        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        u
    }

    /// What happened between `self` and `later`.
    pub fn until(&self, later: &Usage) -> Usage {
        Usage {
            user: later.user - self.user,
            system: later.system - self.system,
            voluntary: later.voluntary.saturating_sub(self.voluntary),
            children: later.children - self.children,
        }
    }
}

/// Resident memory of `pids`, in KiB.
pub fn rss_kib(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// Whole-system CPU counters (seconds): busy (everything but idle and iowait) and total.
#[derive(Clone, Copy, Debug, Default)]
pub struct System {
    /// Busy time summed over CPUs, softirq included.
    pub busy: f64,
    /// Of which softirq.
    pub softirq: f64,
}

impl System {
    /// Now.
    pub fn now() -> Self {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
            return Self::default();
        };
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let get = |i: usize| v.get(i).copied().unwrap_or(0.0) / hz();
        // user nice system idle iowait irq softirq steal
        let total: f64 = (0..8).map(get).sum();
        Self {
            busy: total - get(3) - get(4),
            softirq: get(6),
        }
    }

    /// What happened between `self` and `later`.
    pub fn until(&self, later: &System) -> System {
        System {
            busy: later.busy - self.busy,
            softirq: later.softirq - self.softirq,
        }
    }
}

/// This thread's CPU time (for the load generator, whose work is not the daemon's).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
