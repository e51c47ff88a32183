//! The aya adapter: loads the embedded XDP program, attaches it, and exposes its maps.
//!
//! The agent writes each instance's state into `CONFIG`; the kernel validates adverts, keeps
//! the latest counted one in `SEEN`, runs the master-down timers and sends [`Event`]s over the
//! `EVENTS` ring buffer only when something changed.

use std::mem::size_of;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{TestRun as _, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
use tokio::io::unix::AsyncFd;
use vrrp_common::{AddressList, AdvertSeen, Event, InstanceConfig, InstanceKey, counters};

/// The kernel object, built by build.rs from vrrp-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vrrp-ebpf.o"));

/// Name of the XDP program in the object.
pub const PROGRAM: &str = "vrrp_xdp";

/// How the program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// In the driver (native XDP).
    Native,
    /// In the generic path, after native mode was refused.
    Generic,
}

/// The loaded program and its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    links: Vec<(u32, XdpLinkId)>,
    config: HashMap<MapData, InstanceKey, InstanceConfig>,
    seen: HashMap<MapData, InstanceKey, AdvertSeen>,
    address_lists: HashMap<MapData, InstanceKey, AddressList>,
    counters: PerCpuArray<MapData, u64>,
    instance_counters: PerCpuHashMap<MapData, InstanceKey, [u64; counters::COUNT]>,
    events: Option<Events>,
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
    /// Loads the embedded object and verifies the program (nothing is attached yet).
    pub fn load() -> Result<Self> {
        Self::load_object(OBJECT)
    }

    /// Loads a given object (tests use the embedded one through [`Dataplane::load`]).
    pub fn load_object(object: &[u8]) -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .load(object)
            .context("loading the kernel object (is this kernel built with BPF and BTF?)")?;
        let program: &mut Xdp = program_mut(&mut ebpf)?;
        program
            .load()
            .context("the verifier refused the XDP program")?;
        let config = HashMap::try_from(take(&mut ebpf, "CONFIG")?)?;
        let seen = HashMap::try_from(take(&mut ebpf, "SEEN")?)?;
        let address_lists = HashMap::try_from(take(&mut ebpf, "ADDRESS_LISTS")?)?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?)?;
        let instance_counters = PerCpuHashMap::try_from(take(&mut ebpf, "INSTANCE_COUNTERS")?)?;
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?)?;
        // SAFETY: the ring buffer owns its descriptor and is moved into the AsyncFd, which
        // deregisters it before dropping it, so the descriptor outlives the registration.
        let events = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow!("registering the event ring buffer: {e}"))?;
        Ok(Self {
            ebpf,
            links: Vec::new(),
            config,
            seen,
            address_lists,
            counters,
            instance_counters,
            events: Some(Events(events)),
        })
    }

    /// Attaches to an interface in native mode, falling back to generic mode.
    pub fn attach(&mut self, ifindex: u32, ifname: &str) -> Result<AttachMode> {
        if self.links.iter().any(|(i, _)| *i == ifindex) {
            return Ok(AttachMode::Native);
        }
        let program = program_mut(&mut self.ebpf)?;
        let (link, mode) = match program.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(link) => (link, AttachMode::Native),
            Err(native) => {
                tracing::info!(
                    interface = ifname,
                    error = %native,
                    "native XDP refused, attaching in generic mode"
                );
                let link = program
                    .attach_to_if_index(ifindex, XdpMode::Skb)
                    .with_context(|| format!("attaching XDP to {ifname}"))?;
                (link, AttachMode::Generic)
            }
        };
        self.links.push((ifindex, link));
        Ok(mode)
    }

    /// Writes an instance's state for the kernel.
    pub fn set_instance(&mut self, key: InstanceKey, config: InstanceConfig) -> Result<()> {
        self.config
            .insert(key, config, 0)
            .context("writing the instance map")
    }

    /// Writes the address list the kernel compares adverts with.
    pub fn set_address_list(&mut self, key: InstanceKey, list: AddressList) -> Result<()> {
        self.address_lists
            .insert(key, list, 0)
            .context("writing the address list map")
    }

    /// Forgets an instance (adverts for it are then passed on as unknown VRIDs).
    pub fn remove_instance(&mut self, key: &InstanceKey) {
        let _ = self.config.remove(key);
        let _ = self.address_lists.remove(key);
        let _ = self.instance_counters.remove(key);
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

    /// Runs the XDP program once on `frame` as if it arrived on `ifindex` (BPF_PROG_TEST_RUN),
    /// returning the XDP action. The maps are the live ones, so counters, `SEEN`, timers and
    /// events behave exactly as for a frame from the wire. `ifindex` must exist (use 1, `lo`).
    pub fn run_frame(&mut self, frame: &[u8], ifindex: u32) -> Result<u32> {
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
        let result = program_mut(&mut self.ebpf)?
            .test_run(opts)
            .context("BPF_PROG_TEST_RUN")?;
        Ok(result.return_value)
    }

    /// Takes the event stream (once).
    pub fn take_events(&mut self) -> Option<Events> {
        self.events.take()
    }
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("the kernel object has no program {PROGRAM}"))?
        .try_into()
        .context("program type")
}

fn take(ebpf: &mut Ebpf, name: &str) -> Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("the kernel object has no map {name}"))
}
