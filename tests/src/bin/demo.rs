//! `cargo xtask demo`: three routers and a client in namespaces, elections and failovers
//! printed as they happen, then everything is removed.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vrrp_agent::election::State;
use vrrp_common::timers;
use vrrp_lab::{Agent, Lab, VIP, mac_string, single_instance_config, wait_for};

const PRIORITIES: [u8; 3] = [150, 100, 50];
const ADVERT_INT: &str = "0.1";
const ADVERT_INT_CS: u16 = 10;

fn main() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<()> {
    let start = Instant::now();
    let say = |msg: &str| println!("[{:>7.3}s] {msg}", start.elapsed().as_secs_f64());

    let lab = Lab::new("demo", 3)?;
    say(&format!(
        "lab up: bridge + r1, r2, r3 (priorities {PRIORITIES:?}) + client {}; VRRPv3 VRID 51, advert_int {ADVERT_INT} s, VIP {VIP}/24",
        lab.client.addr
    ));
    let mut agents = Vec::new();
    for (i, prio) in PRIORITIES.iter().enumerate() {
        agents.push(lab.spawn_agent(lab.router(i), &single_instance_config(*prio, ADVERT_INT))?);
        say(&format!(
            "r{} agent started (pid {}, priority {prio})",
            i + 1,
            agents[i].pid()
        ));
    }
    wait_master(&agents[0], Duration::from_secs(10))?;
    for backup in &agents[1..] {
        wait_following(backup, lab.router(0).addr)?;
    }
    say("r1 is MASTER, r2 and r3 are its BACKUPs");
    print_table(&lab, &agents);

    let before: Vec<(u64, u64)> = agents[1..]
        .iter()
        .map(|a| {
            (
                a.counter("valid-adverts"),
                a.voluntary_context_switches().unwrap_or(0),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    for (agent, (adverts, switches)) in agents[1..].iter().zip(before) {
        say(&format!(
            "{}: in 2 s its kernel validated and absorbed {} adverts; the agent was woken {} times",
            name(agent),
            agent.counter("valid-adverts") - adverts,
            agent.voluntary_context_switches().unwrap_or(0) - switches
        ));
    }
    lab.client_poke(VIP)?;
    let mac = client_neighbour(&lab, None)?;
    say(&format!(
        "client: {VIP} is at {} (r1 is {})",
        mac_string(&mac),
        mac_string(&lab.router(0).mac)
    ));

    let bound = Duration::from_nanos(timers::master_down_ns(3, PRIORITIES[1], ADVERT_INT_CS));
    say("killing r1's agent with SIGKILL (no goodbye: the backups must notice the silence)");
    agents[0].signal(libc::SIGKILL);
    let took = wait_master(&agents[1], bound + Duration::from_secs(3))?;
    say(&format!(
        "r2 took over after {} ms (RFC bound 3 x interval + skew = {} ms)",
        took.as_millis(),
        bound.as_millis()
    ));
    let mac = client_neighbour(&lab, Some(lab.router(1).mac))?;
    say(&format!(
        "client: r2's gratuitous ARPs moved {VIP} to {} (r2 is {})",
        mac_string(&mac),
        mac_string(&lab.router(1).mac)
    ));
    print_table(&lab, &agents[1..]);

    let skew = Duration::from_nanos(timers::skew_ns(3, PRIORITIES[2], ADVERT_INT_CS));
    say("stopping r2 with SIGTERM (it sends priority 0 and removes the VIP)");
    agents[1].signal(libc::SIGTERM);
    let took = wait_master(&agents[2], Duration::from_secs(3))?;
    say(&format!(
        "r3 took over after {} ms (skew time {} ms, instead of {} ms of silence)",
        took.as_millis(),
        skew.as_millis(),
        Duration::from_nanos(timers::master_down_ns(3, PRIORITIES[2], ADVERT_INT_CS)).as_millis()
    ));
    print_table(&lab, &agents[2..]);
    drop(agents);
    drop(lab);
    say("lab removed");
    Ok(())
}

fn wait_master(agent: &Agent, timeout: Duration) -> Result<Duration> {
    agent
        .wait_state(State::Master, timeout)
        .with_context(|| format!("no MASTER within {timeout:?}; log:\n{}", agent.log_text()))
}

/// Waits for the client's neighbour entry for the VIP (to be `want`, if given).
fn client_neighbour(lab: &Lab, want: Option<[u8; 6]>) -> Result<[u8; 6]> {
    wait_for(Duration::from_secs(3), Duration::from_millis(10), || {
        let mac = lab.client_neighbour(VIP).ok().flatten()?;
        want.is_none_or(|w| w == mac).then_some(mac)
    })
    .context("the client's neighbour entry for the VIP did not show up")
}

/// Waits until `agent` is a BACKUP listening to `master`.
fn wait_following(agent: &Agent, master: std::net::Ipv4Addr) -> Result<()> {
    agent
        .wait_backup_of(Some(master.into()), Duration::from_secs(10))
        .map(|_| ())
        .with_context(|| format!("{} never followed {master}", name(agent)))
}

fn name(agent: &Agent) -> &str {
    agent.ns.rsplit('-').next().unwrap_or("?")
}

fn print_table(lab: &Lab, agents: &[Agent]) {
    for agent in agents {
        let Ok(status) = agent.status() else { continue };
        for i in &status.instances {
            let node = lab.routers.iter().find(|n| n.ns == agent.ns);
            let holds = node
                .and_then(|n| lab.addresses(n).ok())
                .is_some_and(|a| a.contains(&VIP));
            println!(
                "            {:<3} {:<7} prio {:<3} master seen {:<10} holds VIP: {}",
                name(agent),
                format!("{:?}", i.state).to_uppercase(),
                i.effective_priority,
                i.master
                    .as_ref()
                    .map_or("-".to_string(), |m| m.address.to_string()),
                if holds { "yes" } else { "no" }
            );
        }
    }
}
