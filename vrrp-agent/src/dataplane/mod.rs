//! The aya adapter: loads the embedded kernel programs, attaches them, and exposes their maps.
//!
//! The agent writes each instance's state into `CONFIG` and its VIPs into `VIPS`; the kernel
//! validates adverts, keeps the latest counted one in `SEEN`, runs the master-down timers,
//! answers ARP/ND for the VIPs of active masters, and sends [`Event`]s over the `EVENTS` ring
//! buffer only when something changed. The egress program stamps `HEARTBEAT` when our own
//! adverts leave.

mod lb;
mod pin;

pub use lb::LbMaps;

use std::{
    mem::size_of,
    os::fd::{AsFd as _, AsRawFd as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, IterableMap as _, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{
        SchedClassifier, TcAttachType, TestRun as _, TestRunOptions, Xdp, loaded_programs,
        tc::{NlOptions, TcAttachOptions},
    },
};
use tokio::io::unix::AsyncFd;
use vrrp_common::{
    AddressList, AdvertSeen, Event, InstanceConfig, InstanceKey, KernelStateView, PeerKey,
    RateLimits, VipEntry, VipKey, VmacEntry, VmacKey, counters,
};

use crate::net::link::Netlink;
pub use crate::net::xdp::XdpMode;

/// The kernel object, built by build.rs from vrrp-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vrrp-ebpf.o"));

/// Name of the XDP program in the object (and in the kernel, which is how a restarted agent
/// recognises its predecessor's program on an interface).
pub const PROGRAM: &str = "vrrp_xdp";
/// Name of the TC egress program in the object.
pub const EGRESS_PROGRAM: &str = "vrrp_tc_egress";
/// Name of the TC ingress program (the XDP program's receive paths) in the object.
pub const TC_INGRESS_PROGRAM: &str = "vrrp_tc_ingress";

/// The loaded programs and their maps.
pub struct Dataplane {
    ebpf: Ebpf,
    /// Interfaces running our receive program, how, and their names.
    xdp: Vec<(u32, XdpMode, String)>,
    /// Interfaces whose outgoing adverts the egress program stamps.
    egress: Vec<u32>,
    /// A mode forced from the command line.
    forced_mode: Option<XdpMode>,
    /// The programs loaded when we started, by id and name: a crashed predecessor's (which
    /// we replace) and any other (which we name when we refuse to replace it). Learnt while
    /// the daemon still may list programs (CAP_SYS_ADMIN); after the capabilities are dropped
    /// a program's name cannot be read any more.
    loaded_at_start: Vec<(u32, String)>,
    pin_dir: Option<PathBuf>,
    config: HashMap<MapData, InstanceKey, InstanceConfig>,
    seen: HashMap<MapData, InstanceKey, AdvertSeen>,
    address_lists: HashMap<MapData, InstanceKey, AddressList>,
    vips: HashMap<MapData, VipKey, VipEntry>,
    vmacs: HashMap<MapData, VmacKey, VmacEntry>,
    vmac_in_use: Array<MapData, u32>,
    rate_limits: Array<MapData, RateLimits>,
    peers: HashMap<MapData, PeerKey, u8>,
    heartbeat: HashMap<MapData, InstanceKey, u64>,
    counters: PerCpuArray<MapData, u64>,
    instance_counters: PerCpuHashMap<MapData, InstanceKey, [u64; counters::COUNT]>,
    events: Option<Events>,
    /// The load balancer's maps.
    pub lb: LbMaps,
}

/// The output of one BPF_PROG_TEST_RUN.
#[derive(Debug)]
pub struct TestRunOutput {
    /// The XDP action the program returned.
    pub action: u32,
    /// The frame as the program left it (a reply, for XDP_TX).
    pub frame: Vec<u8>,
}

/// The kernel's event stream, separate from [`Dataplane`] so the daemon can wait on it while
/// it uses the maps.
pub struct Events(AsyncFd<RingBuf<MapData>>);

impl Events {
    /// Waits for the next batch of events from the kernel.
    pub async fn next_batch(&mut self) -> Result<Vec<Event>> {
        let mut guard = self.0.readable_mut().await?;
        let ring = guard.get_inner_mut();
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            if item.len() >= size_of::<Event>() {
                // SAFETY: Event is plain data and the item holds at least one of it.
                out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
            }
        }
        guard.clear_ready();
        Ok(out)
    }
}

impl Dataplane {
    /// Loads the embedded object and verifies the programs (nothing is attached yet).
    pub fn load() -> Result<Self> {
        Self::load_object(OBJECT)
    }

    /// Loads a given object (tests use the embedded one through [`Dataplane::load`]).
    pub fn load_object(object: &[u8]) -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .load(object)
            .context("loading the kernel object (is this kernel built with BPF and BTF?)")?;
        xdp_program(&mut ebpf)?
            .load()
            .context("the verifier refused the XDP program")?;
        classifier(&mut ebpf, EGRESS_PROGRAM)?
            .load()
            .context("the verifier refused the TC egress program")?;
        // The TC ingress program (the same receive path, for interfaces where XDP cannot
        // attach) is loaded when first needed: verifying it costs as long as the XDP
        // program's verification, and most hosts never need it.
        let config = HashMap::try_from(take(&mut ebpf, "CONFIG")?)?;
        let seen = HashMap::try_from(take(&mut ebpf, "SEEN")?)?;
        let address_lists = HashMap::try_from(take(&mut ebpf, "ADDRESS_LISTS")?)?;
        let vips = HashMap::try_from(take(&mut ebpf, "VIPS")?)?;
        let vmacs = HashMap::try_from(take(&mut ebpf, "VMACS")?)?;
        let vmac_in_use = Array::try_from(take(&mut ebpf, "VMAC_IN_USE")?)?;
        let rate_limits = Array::try_from(take(&mut ebpf, "RATE_LIMITS")?)?;
        let peers = HashMap::try_from(take(&mut ebpf, "PEERS")?)?;
        let heartbeat = HashMap::try_from(take(&mut ebpf, "HEARTBEAT")?)?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?)?;
        let instance_counters = PerCpuHashMap::try_from(take(&mut ebpf, "INSTANCE_COUNTERS")?)?;
        let lb = LbMaps::take(&mut ebpf)?;
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?)?;
        // SAFETY: the ring buffer owns its descriptor and is moved into the AsyncFd, which
        // deregisters it before dropping it, so the descriptor outlives the registration.
        let events = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow!("registering the event ring buffer: {e}"))?;
        Ok(Self {
            ebpf,
            xdp: Vec::new(),
            egress: Vec::new(),
            forced_mode: None,
            loaded_at_start: Vec::new(),
            pin_dir: None,
            config,
            seen,
            address_lists,
            vips,
            vmacs,
            vmac_in_use,
            rate_limits,
            peers,
            heartbeat,
            counters,
            instance_counters,
            events: Some(Events(events)),
            lb,
        })
    }

    /// Remembers the programs loaded now, by id and name: [`Dataplane::attach`] replaces a
    /// crashed predecessor's and names any other it finds. Call before the capabilities are
    /// dropped.
    pub fn note_loaded_programs(&mut self) {
        self.loaded_at_start = loaded_programs()
            .filter_map(|p| p.ok())
            .filter_map(|p| Some((p.id(), p.name_as_str()?.to_string())))
            .collect();
    }

    /// Forces an XDP mode instead of native-then-generic.
    pub fn force_mode(&mut self, mode: Option<XdpMode>) {
        self.forced_mode = mode;
    }

    /// Pins the maps under `/sys/fs/bpf/vrrp-agent/net<inode>/`, replacing a previous run's
    /// pins. Failure is reported, not fatal: nothing depends on the pins but inspection.
    pub fn pin_maps(&mut self) {
        let dir = match pin::directory() {
            Ok(dir) => dir,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "maps not pinned");
                return;
            }
        };
        pin::clear(&dir);
        let maps: [(&str, &MapData); 8] = [
            ("CONFIG", self.config.map()),
            ("SEEN", self.seen.map()),
            ("VIPS", self.vips.map()),
            ("VMACS", self.vmacs.map()),
            ("PEERS", self.peers.map()),
            ("HEARTBEAT", self.heartbeat.map()),
            ("ADDRESS_LISTS", self.address_lists.map()),
            ("INSTANCE_COUNTERS", self.instance_counters.map()),
        ];
        for (name, map) in maps {
            if let Err(e) = map.pin(dir.join(name)) {
                tracing::warn!(map = name, error = %e, "map not pinned");
            }
        }
        tracing::debug!(dir = %dir.display(), "maps pinned");
        self.pin_dir = Some(dir);
    }

    /// Attaches the receive program to an interface: XDP natively, else in generic mode, else
    /// as a TC ingress classifier. XDP goes through netlink and TC through a cls_bpf filter,
    /// both held by the interface, so the program outlives the agent (see `net::xdp`). A
    /// program left by a previous vrrp-agent is replaced; any other XDP program is reported
    /// and left alone.
    pub async fn attach(
        &mut self,
        netlink: &Netlink,
        ifindex: u32,
        ifname: &str,
    ) -> Result<XdpMode> {
        if let Some((_, mode, _)) = self.xdp.iter().find(|(i, _, _)| *i == ifindex) {
            return Ok(*mode);
        }
        let facts = netlink.xdp_facts(ifindex).await?;
        let mut replace = None;
        if let Some(found) = facts.attached {
            let name = self
                .loaded_at_start
                .iter()
                .find(|(id, _)| *id == found.id)
                .map(|(_, name)| name.clone())
                .or_else(|| program_name(found.id));
            if name.as_deref() != Some(PROGRAM) {
                bail!(
                    "interface {ifname} already runs another XDP program ({}, id {}); vrrp-agent does not replace it. Detach it first (`ip link set dev {ifname} xdp off`) if it is not needed",
                    name.unwrap_or_else(|| "unnamed".into()),
                    found.id
                );
            }
            tracing::info!(
                interface = ifname,
                id = found.id,
                "replacing the XDP program a previous vrrp-agent left attached"
            );
            replace = Some(found.mode);
        }
        // A TC filter a previous run left: ours is replaced whichever mode we end up in.
        if aya::programs::tc::qdisc_detach_program(
            ifname,
            TcAttachType::Ingress,
            TC_INGRESS_PROGRAM,
        )
        .is_ok()
        {
            tracing::info!(
                interface = ifname,
                "removed the TC program a previous vrrp-agent left"
            );
        }
        // On veth a native XDP_TX frame is lost unless the peer (usually in another namespace,
        // out of our sight) runs an XDP program as well, so the ARP/ND replies would vanish;
        // generic XDP transmits them through the normal path.
        let modes: &[XdpMode] = match (self.forced_mode, facts.veth) {
            (Some(XdpMode::Tc), _) => &[XdpMode::Tc],
            (Some(mode), _) => match mode {
                XdpMode::Native => &[XdpMode::Native],
                _ => &[XdpMode::Generic],
            },
            (None, true) => &[XdpMode::Generic, XdpMode::Tc],
            (None, false) => &[XdpMode::Native, XdpMode::Generic, XdpMode::Tc],
        };
        let mut refusal = None;
        for &mode in modes {
            let attached = if mode == XdpMode::Tc {
                if let Some(old) = replace.take() {
                    netlink.detach_xdp(ifindex, old).await?;
                }
                self.attach_tc_ingress(ifname)
            } else {
                let fd = xdp_program(&mut self.ebpf)?.fd()?.as_fd().as_raw_fd();
                // Replacing works within the mode the old program runs in; in another mode
                // the old one goes first.
                if let Some(old) = replace.filter(|old| *old != mode) {
                    netlink.detach_xdp(ifindex, old).await?;
                    replace = None;
                }
                netlink
                    .attach_xdp(ifindex, fd, mode, replace.is_some())
                    .await
            };
            match attached {
                Ok(()) => {
                    self.xdp.push((ifindex, mode, ifname.to_string()));
                    return Ok(mode);
                }
                Err(e) => {
                    tracing::info!(interface = ifname, ?mode, error = %format!("{e:#}"), "attach refused");
                    refusal = Some(e);
                }
            }
        }
        Err(refusal.unwrap_or_else(|| anyhow!("no mode to try")))
            .with_context(|| format!("attaching the receive program to {ifname}"))
    }

    /// The TC fallback: a cls_bpf filter on the clsact qdisc's ingress, created over netlink
    /// so that, like the XDP attachment, it stays when the agent dies.
    fn attach_tc_ingress(&mut self, ifname: &str) -> Result<()> {
        match aya::programs::tc::qdisc_add_clsact(ifname) {
            Ok(()) | Err(aya::programs::tc::TcError::AlreadyAttached) => {}
            Err(aya::programs::tc::TcError::NetlinkError(e))
                if e.to_string().contains("exists") => {}
            Err(e) => return Err(anyhow!("adding the clsact qdisc to {ifname}: {e}")),
        }
        let program = classifier(&mut self.ebpf, TC_INGRESS_PROGRAM)?;
        if program.fd().is_err() {
            program
                .load()
                .context("the verifier refused the TC ingress program")?;
        }
        let link = program.attach_with_options(
            ifname,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(NlOptions::default()),
        )?;
        // Owned by the interface from now on: dropping the link must not detach it when the
        // agent exits (a clean stop detaches by name, see `detach`).
        std::mem::forget(program.take_link(link)?);
        Ok(())
    }

    /// Attaches the egress program (tcx) to an interface, so the kernel stamps the heartbeat
    /// of each advert that leaves. Returns false, logged, where that is impossible: the agent
    /// then stamps the heartbeat itself when it sends ([`Dataplane::stamp_heartbeat`]).
    pub fn attach_egress(&mut self, ifindex: u32, ifname: &str) -> bool {
        if self.egress.contains(&ifindex) {
            return true;
        }
        let attached = classifier(&mut self.ebpf, EGRESS_PROGRAM)
            .and_then(|p| Ok(p.attach(ifname, TcAttachType::Egress)?));
        match attached {
            Ok(_) => {
                self.egress.push(ifindex);
                true
            }
            Err(e) => {
                tracing::warn!(interface = ifname, error = %format!("{e:#}"), "TC egress not attached; the agent stamps the heartbeat itself");
                false
            }
        }
    }

    /// Whether the egress program stamps heartbeats on this interface.
    pub fn stamps_in_kernel(&self, ifindex: u32) -> bool {
        self.egress.contains(&ifindex)
    }

    /// Records that an advert of `key` just left (where the egress program cannot).
    pub fn stamp_heartbeat(&mut self, key: InstanceKey, now_ns: u64) {
        let _ = self.heartbeat.insert(key, now_ns, 0);
    }

    /// The time (CLOCK_MONOTONIC ns) of an instance's latest advert sent.
    pub fn heartbeat(&self, key: &InstanceKey) -> Option<u64> {
        self.heartbeat.get(key, 0).ok()
    }

    /// Detaches XDP from every interface and removes the pins (a clean stop). The egress
    /// links go with the process.
    pub async fn detach(&mut self, netlink: &Netlink) {
        for (ifindex, mode, ifname) in std::mem::take(&mut self.xdp) {
            let detached = if mode == XdpMode::Tc {
                aya::programs::tc::qdisc_detach_program(
                    &ifname,
                    TcAttachType::Ingress,
                    TC_INGRESS_PROGRAM,
                )
                .map_err(|e| anyhow!("{e}"))
            } else {
                netlink.detach_xdp(ifindex, mode).await
            };
            if let Err(e) = detached {
                tracing::warn!(interface = ifname, error = %e, "detaching the receive program");
            }
        }
        if let Some(dir) = self.pin_dir.take() {
            pin::remove(&dir);
        }
    }

    /// Writes an instance's state for the kernel.
    pub fn set_instance(&mut self, key: InstanceKey, config: InstanceConfig) -> Result<()> {
        self.config
            .insert(key, config, 0)
            .context("writing the instance map")
    }

    /// Sets the per-interface packet-rate limits (`vrrp_agent_rate_limit`; 0 is none).
    pub fn set_rate_limits(&mut self, limits: crate::config::RateLimit) -> Result<()> {
        let limits = RateLimits {
            vrrp_per_s: limits.vrrp,
            arp_per_s: limits.arp,
        };
        self.rate_limits
            .set(0, limits, 0)
            .context("writing the rate limits")
    }

    /// Writes the address list the kernel compares adverts with.
    pub fn set_address_list(&mut self, key: InstanceKey, list: AddressList) -> Result<()> {
        self.address_lists
            .insert(key, list, 0)
            .context("writing the address list map")
    }

    /// Registers a VIP the kernel answers ARP/ND for while its instance is active.
    pub fn set_vip(&mut self, key: VipKey, entry: VipEntry) -> Result<()> {
        self.vips
            .insert(key, entry, 0)
            .context("writing the VIP map")
    }

    /// Forgets a VIP (a reload took it from its instance).
    pub fn remove_vip(&mut self, key: &VipKey) {
        let _ = self.vips.remove(key);
    }

    /// Registers a `use_vmac` instance's virtual MAC on an interface.
    pub fn set_vmac(&mut self, key: VmacKey, entry: VmacEntry) -> Result<()> {
        self.vmacs
            .insert(key, entry, 0)
            .context("writing the VMAC map")?;
        self.vmac_in_use
            .set(0, 1, 0)
            .context("writing the VMAC flag")
    }

    /// Registers a unicast peer of an instance that shares its VRID with others on the
    /// interface: adverts from (and to) `addr` belong to `key.peer_set`.
    pub fn set_peer(&mut self, key: InstanceKey, addr: [u8; 16]) -> Result<()> {
        let peer = PeerKey {
            instance: key.with_peer_set(0),
            addr,
        };
        self.peers
            .insert(peer, key.peer_set, 0)
            .context("writing the peer map")
    }

    /// Forgets an instance (adverts for it are then passed on as unknown VRIDs) and its VIPs.
    pub fn remove_instance(&mut self, key: &InstanceKey) {
        let _ = self.config.remove(key);
        let _ = self.address_lists.remove(key);
        let _ = self.instance_counters.remove(key);
        let _ = self.heartbeat.remove(key);
        remove_where(&mut self.vips, |_, v| v.instance == *key);
        remove_where(&mut self.vmacs, |_, v| v.instance == *key);
        if self.vmacs.keys().next().is_none() {
            let _ = self.vmac_in_use.set(0, 0, 0);
        }
        let shared = key.with_peer_set(0);
        remove_where(&mut self.peers, |k, set| {
            k.instance == shared && *set == key.peer_set
        });
    }

    /// When the kernel's master-down timer of an instance was last set to fire.
    pub fn master_down_at(&self, key: &InstanceKey) -> Option<u64> {
        self.kernel_timer(key).map(|s| s.master_down_at_ns)
    }

    /// The kernel's private state of an instance once its master-down timer was armed: the
    /// generation it was armed for, when it was last set to fire, and when a change of the
    /// master was last held back from the events.
    pub fn kernel_timer(&self, key: &InstanceKey) -> Option<KernelStateView> {
        let map = self.ebpf.map("KERNEL_STATE")?;
        let state: HashMap<&MapData, InstanceKey, KernelStateView> = HashMap::try_from(map).ok()?;
        state.get(key, 0).ok().filter(|s| s.master_down_at_ns != 0)
    }

    /// The latest counted advert of an instance.
    pub fn seen(&self, key: &InstanceKey) -> Option<AdvertSeen> {
        self.seen.get(key, 0).ok()
    }

    /// Global counters, summed over CPUs, indexed by `vrrp_common::counters`.
    pub fn counters(&self) -> [u64; counters::COUNT] {
        let mut out = [0u64; counters::COUNT];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = self.counters.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        out
    }

    /// One instance's counters (those counted after the VRID lookup), summed over CPUs.
    pub fn instance_counters(&self, key: &InstanceKey) -> [u64; counters::COUNT] {
        let mut out = [0u64; counters::COUNT];
        if let Ok(per_cpu) = self.instance_counters.get(key, 0) {
            for values in per_cpu.iter() {
                for (sum, v) in out.iter_mut().zip(values) {
                    *sum += v;
                }
            }
        }
        out
    }

    /// Runs the XDP program once on `frame` as if it arrived on `ifindex` (BPF_PROG_TEST_RUN).
    /// The maps are the live ones, so counters, `SEEN`, timers and events behave exactly as
    /// for a frame from the wire. `ifindex` must exist (use 1, `lo`).
    pub fn run_frame(&mut self, frame: &[u8], ifindex: u32) -> Result<TestRunOutput> {
        // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex }, all u32.
        let md: Vec<u8> = [0, frame.len() as u32, 0, ifindex, 0, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&md),
            ..TestRunOptions::default()
        };
        let result = xdp_program(&mut self.ebpf)?
            .test_run(opts)
            .context("BPF_PROG_TEST_RUN")?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutput {
            action: result.return_value,
            frame: out,
        })
    }

    /// Takes the event stream (once).
    pub fn take_events(&mut self) -> Option<Events> {
        self.events.take()
    }
}

/// Removes every entry whose value matches.
fn remove_where<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    matches: impl Fn(&K, &V) -> bool,
) {
    let doomed: Vec<K> = map
        .iter()
        .filter_map(|entry| entry.ok())
        .filter(|(k, v)| matches(k, v))
        .map(|(k, _)| k)
        .collect();
    for key in doomed {
        let _ = map.remove(&key);
    }
}

/// The kernel name of a loaded program, by id.
fn program_name(id: u32) -> Option<String> {
    loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_string))
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("the kernel object has no program {PROGRAM}"))?
        .try_into()
        .context("program type")
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("the kernel object has no program {name}"))?
        .try_into()
        .context("program type")
}

fn take(ebpf: &mut Ebpf, name: &str) -> Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("the kernel object has no map {name}"))
}
