//! The daemon: wires the election state machines to the dataplane, the sockets and netlink.
//!
//! One task owns everything. It sleeps until the earliest election deadline, a kernel event,
//! a control request or a signal; a backup listening to a healthy master therefore sleeps
//! until the kernel's master-down timer fires.

mod actions;
pub mod dumps;
mod notifications;
mod reload;
mod setup;
mod signals;
mod sync;
mod timers;
mod tracking;
mod train;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;
use vrrp_common::{
    FAMILY_IPV6, InstanceConfig, InstanceKey, auth, event, instance_flags, seen_flags, virtual_mac,
};

use crate::{
    config::{self, Config, VirtualAddress, VirtualRoute},
    control::{self, InstanceStatus, MasterStatus, Reply, Request, Status},
    dataplane::{Dataplane, XdpMode},
    election::{Action, AdvertSeen, Election, Input, Nanos, State},
    net::{
        keeper::{AddressKeeper, Announcement, Holdings},
        link::{Interface, Netlink},
        monitor::LinkMonitor,
        sockets::{AdvertSender, Announcer, FrameBatch},
    },
    notify::Notifier,
    packet::bytes16,
};

/// Reads CLOCK_MONOTONIC, the clock of the kernel's advert timestamps.
pub fn now_ns() -> Nanos {
    // SAFETY: clock_gettime writes into the timespec we own.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One running `vrrp_instance`.
struct Instance {
    config: config::Instance,
    iface: Interface,
    key: InstanceKey,
    election: Election,
    generation: u32,
    xdp_mode: XdpMode,
    /// `global_defs { vrrp_agent_observe }`.
    observe: bool,
    /// Whether its own interface is up (a sync group can hold it in FAULT regardless).
    link_up: bool,
    /// A tracked script, interface, file or process holds it in FAULT.
    tracker_fault: bool,
    /// Its interface was deleted: FAULT until one of that name appears again (with
    /// `dynamic_interfaces`, as keepalived), when the instance is set up on it afresh.
    iface_gone: bool,
    /// State changes so far.
    transitions: u64,
    /// Held in FAULT by `vrrp-agent instance NAME fault` until `resume`.
    forced_fault: bool,
    /// Being removed by a reload: its stop is reported as FAULT, or DELETED with
    /// `notify_deleted`, as keepalived does.
    deleting: bool,
    adverts: AdvertSender,
    /// Every held address with the interface it goes on (`dev`, else the instance's).
    held: Vec<Held>,
    /// `virtual_routes` with their resolved `dev`.
    routes: Vec<(VirtualRoute, Option<u32>)>,
    /// One announcer per interface that holds an address of this instance.
    announcers: BTreeMap<u32, Arc<Announcer>>,
}

/// A `vrrp_sync_group` at run time.
struct Group {
    name: String,
    /// Member instance indexes.
    members: Vec<usize>,
    notify: config::Notify,
    /// The state the group was last notified in.
    notified: Option<State>,
}

/// A virtual address an instance holds while master.
#[derive(PartialEq)]
struct Held {
    vip: VirtualAddress,
    /// The interface it goes on: `dev`, else the instance's.
    ifindex: u32,
}

/// Everything the main loop owns.
struct Daemon {
    router_id: String,
    dataplane: Dataplane,
    netlink: Netlink,
    /// Installs, renews and removes addresses and announces them, off this loop.
    keeper: AddressKeeper,
    /// Multicast adverts due in this pass of the loop, per interface (sent together).
    batches: BTreeMap<u32, Option<FrameBatch>>,
    /// Each instance's next deadline (`Election::next_wakeup`), densely: a timer pass checks
    /// and sleeps on these without walking every instance's state. Kept by `step` during a
    /// timer pass and recomputed whole after any other event.
    deadlines: Vec<Option<Nanos>>,
    /// The advert trains and their sender thread (`train.rs`).
    trains: train::Trains,
    instances: Vec<Instance>,
    /// Sync groups, members as instance indexes.
    groups: Vec<Group>,
    /// Notify scripts and FIFOs.
    notifier: Notifier,
    /// The script settings the notifier was made with (a reload changing them makes a new one).
    scripts: config::ScriptGlobals,
    /// Instances whose interface does not exist yet (`dynamic_interfaces`).
    waiting: Vec<config::Instance>,
    /// The configuration running now.
    config: Config,
    /// Where the configuration comes from, for reloads.
    config_path: PathBuf,
    config_options: config::Options,
    /// Where SIGUSR1/SIGUSR2/JSON dumps go.
    dump_dir: PathBuf,
    /// Tracked scripts, interfaces, files and processes.
    tracking: crate::track::Tracking,
    /// Real-server health checks.
    checkers: crate::checker::Checkers,
    /// Where the checkers report (kept for the set a reload starts).
    verdicts: mpsc::UnboundedSender<crate::checker::Verdict>,
    /// The XDP load balancer's services, driven by the checkers.
    balancer: crate::lb::Balancer,
}

/// How the daemon runs, from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the control socket listens.
    pub control_socket: PathBuf,
    /// A forced XDP mode (`None`: native, else generic).
    pub xdp_mode: Option<XdpMode>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The configuration file, read again on reload.
    pub config_path: PathBuf,
    /// How it is read (config id).
    pub config_options: config::Options,
    /// Where SIGUSR1/SIGUSR2/JSON dumps are written (keepalived: /tmp).
    pub dump_dir: PathBuf,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config, options: Options) -> Result<()> {
    let control_socket = options.control_socket;
    let mut dataplane = Dataplane::load()?;
    dataplane.force_mode(options.xdp_mode);
    // The two steps that need CAP_SYS_ADMIN (mounting bpffs where there is none, listing
    // loaded programs), then the capabilities go: instance set-up and every reload run with
    // the kept set only, which proves it is enough.
    dataplane.pin_maps();
    dataplane.note_loaded_programs();
    match crate::privileges::drop_to_needed() {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => tracing::warn!(
            missing = %missing.join(","),
            "started without some capabilities the daemon uses; what needs them will fail"
        ),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot drop capabilities"),
    }
    dataplane.set_rate_limits(config.rate_limit)?;
    let netlink = Netlink::connect()?;
    let mut instances = Vec::new();
    let mut waiting = Vec::new();
    for ic in &config.instances {
        if setup::waits_for_interface(&netlink, &config, ic).await {
            waiting.push(ic.clone());
            continue;
        }
        instances.push(setup::instance(&mut dataplane, &netlink, &config, ic).await?);
    }
    let mut events = dataplane
        .take_events()
        .context("the event ring buffer is already in use")?;
    let (control_tx, mut control_rx) = mpsc::channel(16);
    if let Some(addr) = options.metrics_listen {
        crate::metrics::serve(addr, control_tx.clone()).await?;
    }
    control::serve(&control_socket, control_tx)?;

    let groups = setup::groups(&config, &instances);
    let (tracking, mut tracker_updates) = crate::track::Tracking::new();
    let (verdicts, mut verdict_rx) = mpsc::unbounded_channel();
    let checkers = crate::checker::Checkers::start(
        &config.virtual_servers,
        crate::exec::default_user(config.scripts.script_user.as_ref()),
        &verdicts,
        0,
        None,
    );
    let mut daemon = Daemon {
        router_id: config.router_id.clone().unwrap_or_else(host_name),
        dataplane,
        netlink,
        keeper: AddressKeeper::start()?,
        batches: BTreeMap::new(),
        deadlines: Vec::new(),
        trains: train::Trains::start(),
        instances,
        groups,
        notifier: Notifier::new(
            &config.scripts,
            config.router_id.as_deref().unwrap_or(&host_name()),
        ),
        scripts: config.scripts.clone(),
        waiting,
        config: config.clone(),
        config_path: options.config_path,
        config_options: options.config_options,
        dump_dir: options.dump_dir,
        tracking,
        checkers,
        verdicts,
        balancer: crate::lb::Balancer::default(),
    };
    daemon.tracking.configure(&daemon.config);
    daemon.refresh_tracked_interfaces().await;
    let mut links = LinkMonitor::open()?;
    for i in 0..daemon.instances.len() {
        daemon.start(i).await;
    }

    daemon.sync_balancer().await;
    // Real servers whose MAC was unknown are looked for again; nothing else runs on it.
    let mut balancer_tick = tokio::time::interval(Duration::from_secs(1));
    let mut kernel_timer_watch = tokio::time::interval(timers::KERNEL_TIMER_WATCH);
    kernel_timer_watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signals = signals::listen()?;
    crate::sd_notify::notify("READY=1");
    let mut after_timers = false;
    loop {
        if !std::mem::take(&mut after_timers) {
            daemon.refresh_deadlines();
        }
        let next = daemon.deadlines.iter().flatten().copied().min();
        let sleep = match next.into_iter().chain(daemon.trains.next_end()).min() {
            Some(at) => Duration::from_nanos(at.saturating_sub(now_ns())),
            None => Duration::from_secs(3600),
        };
        // A wake-up that may change instances wholesale (a link, a reload, an operator's
        // action) first hands the advert trains' members back to their own timers
        // (`train.rs`). The others (kernel events, status, checkers, trackers, the watchdog)
        // change at most one instance at a time, through `step`, a priority change or an
        // advert send, each of which dissolves that instance's train first: a backup's events
        // on a node that is also master elsewhere leave the masters' train running.
        tokio::select! {
            batch = events.next_batch() => {
                for ev in batch? {
                    daemon.kernel_event(&ev).await;
                }
            }
            () = tokio::time::sleep(sleep) => {
                daemon.timers_due().await;
                after_timers = true;
            }
            Some(update) = tracker_updates.recv() => {
                daemon.tracker_update(update).await;
            }
            Some(verdict) = verdict_rx.recv() => {
                for n in daemon.checkers.update(verdict) {
                    daemon.notifier.run_script(&n.queue, &n.script);
                }
                daemon.sync_balancer().await;
            }
            _ = kernel_timer_watch.tick(), if !daemon.instances.is_empty() => {
                daemon.watch_kernel_timers().await;
            }
            _ = balancer_tick.tick(), if !daemon.config.virtual_servers.is_empty() || !daemon.balancer.is_idle() => {
                daemon.sync_balancer().await;
            }
            Some(change) = links.next() => {
                daemon.dissolve_trains();
                daemon.tracked_link_change(&change).await;
                daemon.link_change(change).await;
                daemon.adopt_waiting().await;
            }
            Some((request, reply)) = control_rx.recv() => {
                if !matches!(request, Request::Status) {
                    daemon.dissolve_trains();
                }
                let _ = reply.send(daemon.answer(request).await);
            }
            Some(asked) = signals.recv() => {
                daemon.dissolve_trains();
                match asked {
                    signals::Asked::Stop => break,
                    signals::Asked::Reload => {
                        crate::sd_notify::notify("RELOADING=1");
                        daemon.reload_reply().await;
                        crate::sd_notify::notify("READY=1");
                    }
                    signals::Asked::Dump(dump) => daemon.dump(dump),
                }
            }
        }
        daemon.flush_adverts();
    }
    tracing::info!("shutting down");
    crate::sd_notify::notify("STOPPING=1");
    for i in 0..daemon.instances.len() {
        daemon.handle(i, Input::Shutdown).await;
        daemon.flush_adverts();
        daemon.forget(i).await;
    }
    daemon.tracking.stop();
    for n in daemon.checkers.shutdown() {
        daemon.notifier.run_script(&n.queue, &n.script);
    }
    daemon.keeper.flush().await;
    daemon.dataplane.detach(&daemon.netlink).await;
    daemon.notifier.drain(NOTIFY_DRAIN).await;
    let _ = std::fs::remove_file(&control_socket);
    Ok(())
}

/// How long a clean stop waits for queued notify scripts (notify_stop among them).
const NOTIFY_DRAIN: Duration = Duration::from_secs(5);

impl Instance {
    /// The gratuitous ARPs / unsolicited NAs announcing some of its addresses.
    fn announcements<'a>(&self, held: impl IntoIterator<Item = &'a Held>) -> Vec<Announcement> {
        held.into_iter()
            .filter_map(|h| {
                let announcer = self.announcers.get(&h.ifindex)?;
                Some((announcer.clone(), h.vip.address))
            })
            .collect()
    }

    /// Everything it holds while master.
    fn holdings(&self) -> Holdings {
        Holdings {
            addresses: self
                .held
                .iter()
                .map(|h| (h.ifindex, h.vip.clone()))
                .collect(),
            rules: self.config.virtual_rules.clone(),
            routes: self.routes.clone(),
        }
    }

    /// Whether it may leave FAULT: its link is up, no tracked item and no operator holds it
    /// there.
    fn usable(&self) -> bool {
        self.link_up && !self.forced_fault && !self.tracker_fault
    }

    fn kernel_config(&self) -> InstanceConfig {
        let params = self.election.params();
        InstanceConfig {
            state: self.election.state().kernel(),
            priority: params.priority,
            preempt: u8::from(params.preempt),
            version: self.config.version,
            primary: bytes16(params.primary),
            generation: self.generation,
            interval_cs: params.advert_int_cs,
            auth_type: if self.config.auth_pass.is_some() {
                auth::PASS
            } else {
                auth::NONE
            },
            flags: self.kernel_flags(),
            auth_pass: self.config.auth_pass.unwrap_or_default(),
            preempt_delay_ms: self.config.preempt_delay_ms,
            pad2: 0,
            preempt_hold_until_ns: self.election.preempt_hold_until(),
        }
    }

    fn kernel_flags(&self) -> u8 {
        let mut flags = 0;
        if !self.config.accept {
            flags |= instance_flags::NO_ACCEPT;
        }
        if self.observe {
            flags |= instance_flags::OBSERVE;
        }
        if self.config.use_vmac {
            flags |= instance_flags::USE_VMAC;
        }
        if self.config.vmac_xmit_base {
            flags |= instance_flags::VMAC_XMIT_BASE;
        }
        if self.config.check_unicast_src {
            flags |= instance_flags::CHECK_UNICAST_SRC;
        }
        flags
    }

    fn status(&self, dataplane: &Dataplane, tracking: &crate::track::Tracking) -> InstanceStatus {
        InstanceStatus {
            name: self.config.name.clone(),
            interface: self.iface.name.clone(),
            xdp_mode: self.xdp_mode,
            vmac: self.config.use_vmac.then(|| {
                let m = virtual_mac(self.key.family, self.key.vrid);
                format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                )
            }),
            vrid: self.config.vrid,
            state: self.election.state(),
            effective_priority: self.election.params().priority,
            base_priority: self.config.priority,
            tracking: tracking.describe(&self.config.tracks),
            primary_address: self.election.params().primary,
            master: self.election.master().map(|m| MasterStatus {
                address: m.src,
                priority: m.priority,
                interval_cs: m.interval_cs,
            }),
            virtual_addresses: self.config.virtual_addresses.clone(),
            transitions: self.transitions,
            counters: control::named_counters(dataplane.instance_counters(&self.key)),
        }
    }
}

impl Daemon {
    async fn kernel_event(&mut self, ev: &vrrp_common::Event) {
        let Some(index) = self.instances.iter().position(|i| i.key == ev.key) else {
            return;
        };
        let instance = &self.instances[index];
        if ev.advert.generation != instance.generation {
            return; // about a state we have left already
        }
        if ev.kind == event::MASTER_DOWN {
            self.timer(index).await;
        } else {
            tracing::debug!(instance = %instance.config.name, kind = ev.kind, "kernel event");
            log_list_oddities(&instance.config.name, &ev.advert, &ev.key);
            self.handle(index, Input::Advert(advert_seen(&ev.advert, &ev.key)))
                .await;
        }
    }

    async fn apply(&mut self, index: usize, action: Action) {
        if let Action::SendAdvert { priority } = action {
            // The one action of every interval: no clone of anything.
            return self.send_advert(index, priority);
        }
        // Whatever follows an advert (addresses, announcements, notifications) follows it
        // on the wire too.
        self.flush_adverts();
        let instance = &mut self.instances[index];
        let name = instance.config.name.clone();
        match action {
            Action::StateChanged { from, to } => {
                instance.generation = instance.generation.wrapping_add(1);
                instance.transitions += 1;
                let kernel = instance.kernel_config();
                if let Err(e) = self.dataplane.set_instance(instance.key, kernel) {
                    tracing::error!(instance = %name, error = %e, "cannot update the dataplane");
                }
                tracing::info!(instance = %name, from = ?from, to = ?to, "state change");
                self.notify_instance(index, from, to);
            }
            Action::SendAdvert { .. } => {}
            Action::AddAddresses | Action::RemoveAddresses => {
                // A transition: the advert is out already (flushed above); the state is
                // reported once the addresses are in place (or gone), as before the keeper.
                let add = action == Action::AddAddresses;
                self.keeper.install(&name, add, instance.holdings());
                self.keeper.flush().await;
            }
            Action::RenewAddresses => self.keeper.install(&name, true, instance.holdings()),
            Action::SendGratuitousArp => {
                let announcements = instance.announcements(&instance.held);
                self.keeper.announce(&name, announcements);
            }
        }
    }

    /// Starts a set-up instance with the priority its trackers give it (FAULT at once when its
    /// interface is down or a tracked item fails).
    async fn start(&mut self, i: usize) {
        let instance = &self.instances[i];
        match self.tracked_priority(instance.config.priority, &instance.config.tracks) {
            None => self.instances[i].tracker_fault = true,
            // Not started yet: the election asks for nothing.
            Some(priority) => drop(self.retune_priority(i, priority)),
        }
        self.handle(i, Input::Startup).await;
        if !self.instances[i].iface.up {
            tracing::warn!(interface = %self.instances[i].iface.name, "interface is down");
            self.instances[i].link_up = false;
            self.handle(i, Input::Fault).await;
        } else if !self.instances[i].usable() {
            if self.instances[i].tracker_fault {
                tracing::warn!(instance = %self.instances[i].config.name, "a tracked item is down: starting in FAULT");
            }
            self.handle(i, Input::Fault).await;
        }
        self.clear_left_over_addresses(i);
    }

    /// A starting instance that is not master holds none of its addresses: any a previous run
    /// left on the interfaces (a crash of an older daemon, keepalived's) are removed, except
    /// those another of our instances holds as master.
    fn clear_left_over_addresses(&mut self, i: usize) {
        if self.instances[i].election.state() == State::Master {
            return;
        }
        let held_elsewhere: Vec<(u32, IpAddr)> = self
            .instances
            .iter()
            .filter(|other| other.election.state() == State::Master)
            .flat_map(|other| other.held.iter().map(|h| (h.ifindex, h.vip.address)))
            .collect();
        let instance = &self.instances[i];
        let mut holdings = instance.holdings();
        holdings
            .addresses
            .retain(|(ifindex, vip)| !held_elsewhere.contains(&(*ifindex, vip.address)));
        holdings.rules.clear();
        holdings.routes.clear();
        if !holdings.addresses.is_empty() {
            self.keeper.install(&instance.config.name, false, holdings);
        }
    }

    /// Sets up and starts the waiting instances whose interface has appeared, and (with
    /// `dynamic_interfaces`) sets up afresh the instances whose deleted interface is back.
    async fn adopt_waiting(&mut self) {
        for i in 0..self.instances.len() {
            self.readopt(i).await;
        }
        let mut still = Vec::new();
        for ic in std::mem::take(&mut self.waiting) {
            if self.netlink.interface(&ic.interface).await.is_err() {
                still.push(ic);
                continue;
            }
            match setup::instance(&mut self.dataplane, &self.netlink, &self.config, &ic).await {
                Ok(instance) => {
                    tracing::info!(instance = %ic.name, interface = %ic.interface, "interface appeared: instance starts");
                    self.instances.push(instance);
                    self.groups = setup::groups(&self.config, &self.instances);
                    self.start(self.instances.len() - 1).await;
                }
                Err(e) => {
                    tracing::warn!(instance = %ic.name, error = %format!("{e:#}"), "interface appeared but the instance cannot start yet");
                    still.push(ic);
                }
            }
        }
        self.waiting = still;
    }

    /// Sets an instance whose interface was deleted up again on a re-created interface of the
    /// same name (a new index, so new sockets, XDP attachment and kernel keys).
    async fn readopt(&mut self, i: usize) {
        let old = &self.instances[i];
        if !old.iface_gone
            || !self.config.dynamic_interfaces
            || self.netlink.interface(&old.iface.name).await.is_err()
        {
            return;
        }
        let ic = old.config.clone();
        match setup::instance(&mut self.dataplane, &self.netlink, &self.config, &ic).await {
            Ok(mut fresh) => {
                tracing::info!(instance = %ic.name, interface = %ic.interface, "interface re-created: instance starts on it");
                fresh.transitions = old.transitions;
                fresh.forced_fault = old.forced_fault;
                self.dataplane.remove_instance(&old.key);
                let gone = std::mem::replace(&mut self.instances[i], fresh);
                drop(gone);
                self.start(i).await;
            }
            Err(e) => {
                tracing::warn!(instance = %ic.name, error = %format!("{e:#}"), "interface re-created but the instance cannot start yet");
            }
        }
    }

    /// Removes a stopped instance from the dataplane (and its VMAC from the filter).
    async fn forget(&mut self, i: usize) {
        let instance = &self.instances[i];
        self.dataplane.remove_instance(&instance.key);
        if instance.config.use_vmac {
            let vmac = virtual_mac(instance.key.family, instance.key.vrid);
            if let Err(e) = self
                .netlink
                .remove_unicast_filter(instance.iface.index, vmac)
                .await
            {
                tracing::warn!(instance = %instance.config.name, error = %e, "VMAC filter");
            }
        }
    }

    /// Reloads, logging the outcome, and answers as the control socket does.
    async fn reload_reply(&mut self) -> Reply {
        match self.reload().await {
            Ok(message) => {
                tracing::info!("{message}");
                Reply::Done { message }
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!("reload refused: {error}");
                Reply::Error { error }
            }
        }
    }

    /// Answers a control request (status, reload, an operator action).
    async fn answer(&mut self, request: Request) -> Reply {
        match request {
            Request::Reload => self.reload_reply().await,
            Request::Instance { name, action } => self.instance_action(&name, action).await,
            Request::Status => Reply::Status(self.status()),
        }
    }

    /// Everything `status` reports.
    fn status(&self) -> Status {
        Status {
            router_id: self.router_id.clone(),
            pid: std::process::id(),
            instances: self
                .instances
                .iter()
                .map(|i| i.status(&self.dataplane, &self.tracking))
                .collect(),
            counters: control::named_counters(self.dataplane.counters()),
            notify: self.notifier.counters(),
            waiting: self.waiting.iter().map(|i| i.name.clone()).collect(),
            vrrp_scripts: self.tracking.scripts(),
            virtual_servers: {
                let mut servers = self.checkers.status();
                self.balancer.annotate(&self.dataplane, &mut servers);
                servers
            },
        }
    }

    /// Brings the load balancer in line with the checkers (cheap when nothing changed: the
    /// kernel is written only on a difference).
    async fn sync_balancer(&mut self) {
        let servers = self.checkers.configs();
        let status = self.checkers.status();
        let gates: Vec<(IpAddr, InstanceKey)> = self
            .instances
            .iter()
            .flat_map(|i| {
                i.config
                    .virtual_addresses
                    .iter()
                    .map(|v| (v.address, i.key))
            })
            .collect();
        let gate = |a: IpAddr| gates.iter().find(|(v, _)| *v == a).map(|(_, k)| *k);
        self.balancer
            .sync(&mut self.dataplane, &self.netlink, &servers, &status, gate)
            .await;
    }

    /// Writes a dump a signal asked for (SIGUSR1, SIGUSR2, the JSON signal).
    fn dump(&self, dump: dumps::Dump) {
        match dumps::write(&self.dump_dir, dump, &self.status(), &self.config_path) {
            Ok(()) => tracing::info!("wrote {}", self.dump_dir.join(dump.file_name()).display()),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "dump"),
        }
    }
}

/// The election's view of a kernel record; the instance key's family says how to read `src`.
fn advert_seen(seen: &vrrp_common::AdvertSeen, key: &InstanceKey) -> AdvertSeen {
    let s = seen.src;
    AdvertSeen {
        src: if key.family == FAMILY_IPV6 {
            IpAddr::V6(Ipv6Addr::from(s))
        } else {
            IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
        },
        priority: seen.priority,
        interval_cs: seen.interval_cs,
        at: seen.at_ns,
    }
}

/// Logs what the kernel noticed about a (counted) advert's address list. Events come only on
/// change, so a misconfigured peer is logged once, not per advert.
fn log_list_oddities(name: &str, seen: &vrrp_common::AdvertSeen, key: &InstanceKey) {
    let from = advert_seen(seen, key).src;
    if seen.flags & seen_flags::LIST_MISMATCH != 0 {
        tracing::warn!(
            instance = %name,
            %from,
            "advert lists other addresses than our virtual_ipaddress (counted as address-list-mismatch); keepalived peers discard such adverts"
        );
    }
    if seen.flags & seen_flags::NOT_LINK_LOCAL_FIRST != 0 {
        tracing::info!(instance = %name, %from, "IPv6 advert whose address list does not start with a link-local address");
    }
}

/// The host name (keepalived's default router_id and SMTP HELO name).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "vrrp-agent".into())
}
