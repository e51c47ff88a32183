//! The report: raw figures and ratios as markdown, everything as JSON, and two SVG plots
//! (failover latency against the RFC bound; daemon CPU against the advert rate).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Result;

use crate::{Plan, arp, daemon::Impl, failover, load, services};

/// Everything one run measured.
#[derive(serde::Serialize)]
pub struct Report {
    /// Machine, kernel and versions.
    pub environment: Vec<(String, String)>,
    /// How it was run.
    pub command: String,
    /// Scenario 1.
    pub failover: Vec<failover::Sample>,
    /// Scenarios 2 and 3.
    pub load: Vec<load::Sample>,
    /// Scenario 4.
    pub arp: Vec<arp::Sample>,
    /// Scenario 5.
    pub checks: Vec<services::CheckSample>,
    /// Scenario 6.
    pub memory: Vec<services::MemorySample>,
    /// The load balancer's forwarding rate.
    pub forward: Vec<crate::forward::ForwardSample>,
    /// Wall time of the run, s.
    pub elapsed_s: f64,
}

fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

impl Report {
    /// An empty report with the environment filled in.
    pub fn new(plan: &Plan) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "?".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let agent = vrrp_lab::agent::agent_binary();
        Self {
            environment: vec![
                ("CPU".into(), format!("{cpu} ({cores} cores)")),
                ("kernel".into(), output("uname", &["-r"])),
                (
                    "vrrp-agent".into(),
                    format!(
                        "{} ({})",
                        output(agent.to_str().unwrap_or("vrrp-agent"), &["--version"]),
                        agent.display()
                    ),
                ),
                ("keepalived".into(), output("keepalived", &["--version"])),
                (
                    "links".into(),
                    "veth pairs on a Linux bridge, one namespace per node".into(),
                ),
            ],
            command: format!(
                "cargo xtask bench{}",
                if plan.quick { " --quick" } else { "" }
            ),
            failover: Vec::new(),
            load: Vec::new(),
            arp: Vec::new(),
            checks: Vec::new(),
            memory: Vec::new(),
            forward: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// Writes REPORT.md, report.json and the plots into `dir`; returns REPORT.md's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("failover.svg"), self.failover_svg())?;
        std::fs::write(dir.join("cpu.svg"), self.cpu_svg())?;
        let path = dir.join("REPORT.md");
        std::fs::write(&path, self.markdown())?;
        Ok(path)
    }

    fn markdown(&self) -> String {
        let mut md = String::from("# vrrp-agent and keepalived, side by side\n\n");
        let _ = writeln!(
            md,
            "`{}`, {:.0} s. Absolute figures depend on this machine, and veth is not a physical NIC: compare the two columns, not other machines.\n",
            self.command, self.elapsed_s
        );
        for (k, v) in &self.environment {
            let _ = writeln!(md, "- {k}: {v}");
        }
        md.push_str("\n## 1. Failover latency\n\nFrom the old master's last advert seen by the client to the backup's first advert, first gratuitous ARP and first ARP reply with its MAC (min / median / max, ms), against the RFC 9568 bound (Master_Down_Interval after a kill, Skew_Time after priority 0).\n\n| advert_int | stop | bound | implementation | first advert | first GARP | first ARP reply | median - bound |\n|---|---|---|---|---|---|---|---|\n");
        let mut groups: Vec<(u16, &str)> = self
            .failover
            .iter()
            .map(|s| (s.interval_cs, s.mode))
            .collect();
        groups.dedup();
        groups.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        groups.dedup();
        for (cs, mode) in &groups {
            for imp in Impl::BOTH {
                let of: Vec<&failover::Sample> = self
                    .failover
                    .iter()
                    .filter(|s| s.imp == imp && s.interval_cs == *cs && s.mode == *mode)
                    .collect();
                if of.is_empty() {
                    continue;
                }
                let bound = of[0].bound_ms;
                let adverts = stats(of.iter().filter_map(|s| s.advert_ms));
                let _ = writeln!(
                    md,
                    "| {} s | {mode} | {bound:.1} | {} | {} | {} | {} | {} |",
                    f64::from(*cs) / 100.0,
                    imp.name(),
                    fmt3(adverts),
                    fmt3(stats(of.iter().filter_map(|s| s.garp_ms))),
                    fmt3(stats(of.iter().filter_map(|s| s.arp_ms))),
                    adverts.map_or("-".into(), |a| format!("{:+.2}", a[1] - bound)),
                );
            }
        }
        md.push_str("\n![failover](failover.svg)\n");
        for (title, scenario_filter) in [
            ("2a. A backup following K routers at 10 ms", "backup"),
            ("2b. A master of K routers at 10 ms", "master"),
        ] {
            let _ = writeln!(
                md,
                "\n## {title}\n\nPer second of the window: the daemon's user and system CPU (ms/s), voluntary context switches, and the whole system's busy time (ms/s, softirq included, where XDP runs; the generator's own CPU shown apart, as on veth part of the receiver's kernel work is charged to the sender). Ratio: keepalived / vrrp-agent.\n\n| K | adverts/s | implementation | user | system | ctx switches | system busy | generator | flaps |\n|---|---|---|---|---|---|---|---|---|"
            );
            self.load_rows(&mut md, |s| s.scenario == scenario_filter);
        }
        md.push_str("\n![cpu](cpu.svg)\n\n## 3. Floods at the generator's top rate (a master of one router)\n\n| flood | frames/s | implementation | user | system | ctx switches | system busy | generator | flaps |\n|---|---|---|---|---|---|---|---|---|\n");
        self.load_rows(&mut md, |s| {
            s.scenario != "backup" && s.scenario != "master"
        });
        md.push_str("\n## 4. ARP replies for a VIP\n\n| implementation | latency min / median / max (µs) | requests/s sent | replies/s |\n|---|---|---|---|\n");
        for s in &self.arp {
            let _ = writeln!(
                md,
                "| {} | {:.0} / {:.0} / {:.0} | {:.0} | {:.0} |",
                s.imp.name(),
                s.latency_us[0],
                s.latency_us[1],
                s.latency_us[2],
                s.requests_per_s,
                s.replies_per_s
            );
        }
        md.push_str("\n## 5. Health checks once a second\n\nkeepalived's checker cannot run on this kernel (it needs IPVS), so vrrp-agent's TCP_CHECK is compared with the same checks as fork/exec `vrrp_script`s.\n\n| checks | servers | agent user (ms/s) | agent system (ms/s) | scripts' CPU (ms/s) | system busy (ms/s) | up |\n|---|---|---|---|---|---|---|\n");
        for s in &self.checks {
            let per = |v: f64| v / s.window_s * 1000.0;
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                s.how,
                s.servers,
                per(s.agent_user_s),
                per(s.agent_system_s),
                per(s.children_cpu_s),
                per(s.system_busy_s),
                s.up
            );
        }
        md.push_str("\n## 6. Memory (resident set of all the daemon's processes)\n\n| instances | vrrp-agent (MiB) | keepalived (MiB) | ratio |\n|---|---|---|---|\n");
        let mut ks: Vec<usize> = self.memory.iter().map(|m| m.instances).collect();
        ks.dedup();
        for k in ks {
            let of = |imp| {
                self.memory
                    .iter()
                    .find(|m| m.instances == k && m.imp == imp)
                    .map(|m| m.rss_kib as f64 / 1024.0)
            };
            let (a, b) = (of(Impl::Agent), of(Impl::Keepalived));
            let _ = writeln!(md, "| {k} | {} | {} | {} |", opt(a), opt(b), ratio(b, a));
        }
        md.push_str("\n## 7. Load balancer: XDP forwarding (DR, mh, UDP, 256 flows)\n\nkeepalived balances with IPVS, which this kernel lacks: vrrp-agent alone. Forwarded = the director's own per real server counter; per core = forwarded / whole-system busy (generic XDP on veth runs in softirq, and the generator shares the two CPUs).\n\n| generated/s | forwarded/s | system busy (cores) | generator (cores) | forwarded per busy core-second |\n|---|---|---|---|---|\n");
        for s in &self.forward {
            let _ = writeln!(
                md,
                "| {:.0} | {:.0} | {:.2} | {:.2} | {:.0} |",
                s.generated_per_s,
                s.forwarded_per_s,
                s.system_busy,
                s.generator,
                s.forwarded_per_s / s.system_busy.max(1e-9)
            );
        }
        md
    }

    fn load_rows(&self, md: &mut String, pick: impl Fn(&load::Sample) -> bool) {
        let rows: Vec<&load::Sample> = self.load.iter().filter(|s| pick(s)).collect();
        for pair in rows.chunks(2) {
            for s in pair {
                let per = |v: f64| v / s.window_s * 1000.0;
                let (label, rate) = if s.scenario == "backup" || s.scenario == "master" {
                    (s.k.to_string(), s.adverts_per_s)
                } else {
                    (s.scenario.clone(), s.generated_per_s)
                };
                let _ = writeln!(
                    md,
                    "| {label} | {rate:.0} | {} | {:.2} | {:.2} | {:.0}/s | {:.1} | {:.1} | {} |",
                    s.imp.name(),
                    per(s.user_s),
                    per(s.system_s),
                    s.voluntary as f64 / s.window_s,
                    per(s.system_busy_s),
                    per(s.generator_s),
                    s.flaps
                );
            }
            if let [a, b] = pair {
                let _ = writeln!(
                    md,
                    "| | | **ratio** | {} | {} | {} | {} | | |",
                    ratio(Some(b.user_s), Some(a.user_s)),
                    ratio(Some(b.system_s), Some(a.system_s)),
                    ratio(Some(b.voluntary as f64), Some(a.voluntary as f64)),
                    ratio(Some(b.system_busy_s), Some(a.system_busy_s))
                );
            }
        }
    }

    /// Median latency over the bound, per group, both implementations.
    fn failover_svg(&self) -> String {
        let mut groups: Vec<(u16, &str)> = self
            .failover
            .iter()
            .map(|s| (s.interval_cs, s.mode))
            .collect();
        groups.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        groups.dedup();
        let (w, h, left, bottom) = (
            120.0 * groups.len().max(1) as f64 + 80.0,
            320.0,
            60.0,
            260.0,
        );
        let mut svg = format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='11'>\n<text x='10' y='16' font-size='13'>Failover: median time to the backup's first advert / RFC bound (1.0 = bound)</text>\n"
        );
        let scale = 180.0 / 1.5;
        let _ = writeln!(
            svg,
            "<line x1='{left}' y1='{}' x2='{}' y2='{}' stroke='red' stroke-dasharray='4'/><text x='4' y='{}'>bound</text>",
            bottom - scale,
            w - 10.0,
            bottom - scale,
            bottom - scale + 4.0
        );
        for (g, (cs, mode)) in groups.iter().enumerate() {
            let x0 = left + g as f64 * 120.0;
            for (j, imp) in Impl::BOTH.iter().enumerate() {
                let of: Vec<&failover::Sample> = self
                    .failover
                    .iter()
                    .filter(|s| s.imp == *imp && s.interval_cs == *cs && s.mode == *mode)
                    .collect();
                let Some(m) = stats(of.iter().filter_map(|s| s.advert_ms)) else {
                    continue;
                };
                let v = (m[1] / of[0].bound_ms).min(1.5);
                let color = if *imp == Impl::Agent {
                    "#2b7bb9"
                } else {
                    "#999"
                };
                let _ = writeln!(
                    svg,
                    "<rect x='{}' y='{}' width='40' height='{}' fill='{color}'/><text x='{}' y='{}'>{:.3}</text>",
                    x0 + j as f64 * 45.0,
                    bottom - v * scale,
                    v * scale,
                    x0 + j as f64 * 45.0,
                    bottom - v * scale - 3.0,
                    m[1] / of[0].bound_ms
                );
            }
            let _ = writeln!(
                svg,
                "<text x='{x0}' y='{}'>{} s {mode}</text>",
                bottom + 16.0,
                f64::from(*cs) / 100.0
            );
        }
        let _ = writeln!(
            svg,
            "<rect x='{left}' y='{}' width='10' height='10' fill='#2b7bb9'/><text x='{}' y='{}'>vrrp-agent</text><rect x='{}' y='{}' width='10' height='10' fill='#999'/><text x='{}' y='{}'>keepalived</text></svg>",
            h - 30.0,
            left + 14.0,
            h - 21.0,
            left + 100.0,
            h - 30.0,
            left + 114.0,
            h - 21.0
        );
        svg
    }

    /// A backup's user CPU (ms/s) against the advert rate, both implementations.
    fn cpu_svg(&self) -> String {
        let series: Vec<(Impl, Vec<(f64, f64)>)> = Impl::BOTH
            .iter()
            .map(|imp| {
                (
                    *imp,
                    self.load
                        .iter()
                        .filter(|s| s.imp == *imp && s.scenario == "backup")
                        .map(|s| {
                            (
                                s.adverts_per_s,
                                (s.user_s + s.system_s) / s.window_s * 1000.0,
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let max_x = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.0))
            .fold(1.0, f64::max);
        let max_y = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(1.0, f64::max);
        let (left, bottom, width, height) = (60.0, 260.0, 420.0, 220.0);
        let mut svg = format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='520' height='320' font-family='sans-serif' font-size='11'>\n<text x='10' y='16' font-size='13'>A backup's CPU (user + system, ms/s) against adverts/s received</text>\n<line x1='{left}' y1='{bottom}' x2='{}' y2='{bottom}' stroke='black'/><line x1='{left}' y1='{bottom}' x2='{left}' y2='{}' stroke='black'/>\n<text x='{}' y='{}'>{max_x:.0}/s</text><text x='4' y='{}'>{max_y:.1}</text>\n",
            left + width,
            bottom - height,
            left + width - 40.0,
            bottom + 16.0,
            bottom - height + 4.0
        );
        for (imp, points) in &series {
            let color = if *imp == Impl::Agent {
                "#2b7bb9"
            } else {
                "#999"
            };
            let path: Vec<String> = points
                .iter()
                .map(|(x, y)| {
                    format!(
                        "{:.1},{:.1}",
                        left + x / max_x * width,
                        bottom - y / max_y * height
                    )
                })
                .collect();
            let _ = writeln!(
                svg,
                "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>",
                path.join(" ")
            );
            for (x, y) in points {
                let _ = writeln!(
                    svg,
                    "<circle cx='{:.1}' cy='{:.1}' r='3' fill='{color}'/>",
                    left + x / max_x * width,
                    bottom - y / max_y * height
                );
            }
        }
        svg.push_str("<text x='70' y='300' fill='#2b7bb9'>vrrp-agent</text><text x='170' y='300' fill='#999'>keepalived</text></svg>\n");
        svg
    }
}

/// min, median, max.
fn stats(values: impl Iterator<Item = f64>) -> Option<[f64; 3]> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some([v[0], v[v.len() / 2], v[v.len() - 1]])
}

fn fmt3(s: Option<[f64; 3]>) -> String {
    s.map_or("-".into(), |[a, b, c]| format!("{a:.1} / {b:.1} / {c:.1}"))
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// `a / b`, as "12.3x".
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        (Some(a), Some(_)) if a > 0.0 => "∞".into(),
        _ => "-".into(),
    }
}
