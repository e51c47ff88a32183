//! vrrp-agent's kernel side: an XDP program that validates every VRRP advert, records the
//! latest counted one per instance with a kernel timestamp, runs the master-down timer with
//! `bpf_timer`, and wakes the agent over a ring buffer only when something changed.
#![no_std]
#![no_main]

mod csum;
mod egress;
mod frame;
mod lb;
mod packet;
mod rate;
mod vip;

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, bpf_timer},
    btf_maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_redirect, bpf_timer_init, bpf_timer_set_callback, bpf_timer_start},
    },
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
};
use vrrp_common::{
    AddressList, AdvertSeen, Event, InstanceConfig, InstanceKey, PeerKey, VipEntry, VipKey,
    VmacEntry, VmacKey,
    advert_rule::{self, Local, Verdict},
    counters, event, instance_flags, rate_kind, seen_flags, state, timers,
};

use crate::{
    frame::{Ingress, verdict},
    packet::{Advert, Parsed},
};

/// Instances configured on this host, written by the agent.
#[btf_map]
pub(crate) static CONFIG: HashMap<InstanceKey, InstanceConfig, 1024> = HashMap::new();

/// The latest counted advert per instance, read by the agent.
#[btf_map]
static SEEN: HashMap<InstanceKey, AdvertSeen, 1024> = HashMap::new();

/// Kernel-private per-instance state: the master-down timer and the reassert rate limit.
#[btf_map]
static KERNEL_STATE: HashMap<InstanceKey, KernelState, 1024> = HashMap::new();

/// Global per-CPU counters, indexed by `vrrp_common::counters`.
#[btf_map]
static COUNTERS: PerCpuArray<u64, { counters::COUNT }> = PerCpuArray::new();

/// Each instance's configured address list, written by the agent.
#[btf_map]
static ADDRESS_LISTS: HashMap<InstanceKey, AddressList, 1024> = HashMap::new();

/// Never written: the zeroes a new instance's counter row starts from (kept off the stack).
#[btf_map]
static ZERO_COUNTERS: PerCpuArray<[u64; counters::COUNT], 1> = PerCpuArray::new();

/// Per-instance per-CPU counters (same indices), created by the kernel on first use.
#[btf_map]
static INSTANCE_COUNTERS: PerCpuHashMap<InstanceKey, [u64; counters::COUNT], 1024> =
    PerCpuHashMap::new();

/// Every VIP of every instance, on the interface it lives on, written by the agent.
#[btf_map]
pub(crate) static VIPS: HashMap<VipKey, VipEntry, 8192> = HashMap::new();

/// Unicast peers of VRIDs that several instances on one interface share, written by the
/// agent: the value is the instance's `peer_set`.
#[btf_map]
pub(crate) static PEERS: HashMap<PeerKey, u8, 4096> = HashMap::new();

/// 1 while any instance uses `use_vmac`: only then must the egress program look up the source
/// of every outgoing frame, so hosts without VMACs pay nothing for it. Written by the agent.
#[btf_map]
pub(crate) static VMAC_IN_USE: Array<u32, 1> = Array::new();

/// The virtual MACs of `use_vmac` instances, written by the agent.
#[btf_map]
pub(crate) static VMACS: HashMap<VmacKey, VmacEntry, 1024> = HashMap::new();

/// When each instance's latest advert left this host (CLOCK_MONOTONIC ns), stamped by the
/// egress program (or by the agent where it cannot attach). A master whose heartbeat is older
/// than three intervals stops answering for its VIPs.
#[btf_map]
pub(crate) static HEARTBEAT: HashMap<InstanceKey, u64, 1024> = HashMap::new();

/// State-relevant events for the agent.
#[btf_map]
static EVENTS: RingBuf<Event, { 64 * 1024 }> = RingBuf::new();

/// Value of [`KERNEL_STATE`].
#[repr(C)]
struct KernelState {
    /// The master-down timer.
    timer: bpf_timer,
    /// The agent generation the timer was armed for.
    generation: u32,
    /// 1 once the timer is initialised and has its callback.
    timer_ready: u32,
    /// When we last raised LOWER_PRIORITY for this instance.
    last_reassert_ns: u64,
    /// When `preempt_delay` started (first lower-priority advert of `lower_generation`).
    lower_since_ns: u64,
    lower_generation: u32,
    pad2: u32,
    /// When the timer was last set to fire: what the agent (and the tests) can read back.
    master_down_at_ns: u64,
    /// When a PRIORITY_CHANGE / INTERVAL_CHANGE event was last raised.
    last_news_ns: u64,
    /// When one was last held back by [`news_allowed`].
    news_held_ns: u64,
}

// The agent reads KERNEL_STATE through `KernelStateView`: same size, same layout.
const _: () = assert!(
    core::mem::size_of::<KernelState>() == core::mem::size_of::<vrrp_common::KernelStateView>()
);

const CLOCK_MONOTONIC: u64 = 1;

#[xdp]
pub fn vrrp_xdp(ctx: XdpContext) -> u32 {
    receive(&ctx)
}

/// The same receive paths as a TC (tcx or cls_bpf) ingress classifier, for interfaces where
/// XDP cannot attach. Replies leave by redirecting the rewritten frame to the interface's
/// egress.
#[classifier]
pub fn vrrp_tc_ingress(ctx: TcContext) -> i32 {
    match receive(&ctx) {
        verdict::DROP => TC_ACT_SHOT,
        verdict::REDIRECT => TC_ACT_REDIRECT,
        verdict::TX => {
            // SAFETY: helper without memory arguments.
            unsafe { bpf_redirect(ctx.ifindex(), 0) as i32 }
        }
        _ => TC_ACT_OK,
    }
}

/// Every received frame, whichever hook: VMAC ingress, then the advert path, then the VIPs'.
#[inline(always)]
fn receive<C: Ingress>(ctx: &C) -> u32 {
    if vip::vmac_ingress(ctx) == verdict::DROP {
        return verdict::DROP;
    }
    match vrrp(ctx) {
        // Virtual services and NAT replies first (a service on a VIP forwards only while
        // that instance is the active master), then ARP/ND and traffic to the VIPs. Three
        // calls from here, so their stack frames do not add up.
        NOT_VRRP => match lb::receive(ctx) {
            lb::NOT_OURS => vip::handle(ctx, vip::arp_budget(ctx)),
            action => action,
        },
        action => action,
    }
}

/// What [`vrrp`] returns for a frame that is not protocol 112 (not a verdict).
const NOT_VRRP: u32 = u32::MAX;

/// The advert path. Not inlined: BPF calls get their own stack frames, so this path and the
/// VIP path ([`vip::handle`]) do not add up on the 512-byte stack.
#[inline(never)]
fn vrrp<C: Ingress>(ctx: &C) -> u32 {
    match packet::parse(ctx) {
        Parsed::NotVrrp => NOT_VRRP,
        Parsed::Pass(counter) => {
            count(counters::VRRP_RX);
            count(counter);
            verdict::PASS
        }
        Parsed::Vrrp(advert) => {
            count(counters::VRRP_RX);
            if !vrrp_budget(ctx, &advert) {
                return verdict::DROP;
            }
            absorb_or_observe(ctx, &advert, handle_advert(ctx, &advert))
        }
    }
}

/// In observe mode an instance's adverts, once accounted, go on to the stack (so tcpdump on
/// the host still sees them) instead of being absorbed.
#[inline(always)]
fn absorb_or_observe<C: Ingress>(ctx: &C, advert: &Advert, action: u32) -> u32 {
    if action != verdict::DROP {
        return action;
    }
    let key = instance_key(ctx.ifindex(), advert, &advert.src);
    match CONFIG.get_ptr(key) {
        // SAFETY: map value pointer valid for this run.
        Some(cfg) if unsafe { (*cfg).flags } & instance_flags::OBSERVE != 0 => verdict::PASS,
        _ => action,
    }
}

/// TC egress: stamps the heartbeat when our own adverts leave and gives `use_vmac`
/// instances' frames their virtual MAC as source. See [`egress`].
#[classifier]
pub fn vrrp_tc_egress(ctx: TcContext) -> i32 {
    egress::handle(&ctx);
    TC_ACT_OK
}

/// Validates an advert against its instance and applies it. Everything after the VRID lookup
/// that fails validation is counted and dropped; unknown VRIDs are counted and passed on.
#[inline(always)]
fn handle_advert<C: Ingress>(ctx: &C, advert: &Advert) -> u32 {
    let key = instance_key(ctx.ifindex(), advert, &advert.src);
    let Some(cfg) = CONFIG.get_ptr(key) else {
        count(counters::VRID_ERRORS);
        return verdict::PASS;
    };
    // SAFETY: a map value pointer returned by lookup is valid for this program run.
    let cfg = unsafe { *cfg };
    if cfg.flags & instance_flags::CHECK_UNICAST_SRC != 0 && !is_peer(&key, &advert.src) {
        count_for(&key, counters::UNICAST_SOURCE_ERRORS);
        return verdict::DROP;
    }
    if let Err(counter) = packet::validate(ctx, advert, &cfg) {
        count_for(&key, counter);
        return verdict::DROP;
    }
    // The address list: a v2 list that differs from ours is dropped unless it comes from the
    // owner (RFC 3768 7.1); in v3 a mismatch is counted and logged but counts (RFC 9568).
    let flags = match ADDRESS_LISTS.get_ptr(key) {
        // SAFETY: map value pointer valid for this run.
        Some(list) => packet::list_flags(ctx, advert, unsafe { &*list }),
        None => 0,
    };
    if flags & seen_flags::LIST_MISMATCH != 0 {
        if cfg.version == 2 && advert.priority != 255 {
            count_for(&key, counters::ADDRESS_LIST_ERRORS);
            return verdict::DROP;
        }
        count_for(&key, counters::ADDRESS_LIST_MISMATCH);
    }
    if flags & seen_flags::NOT_LINK_LOCAL_FIRST != 0 {
        count_for(&key, counters::NOT_LINK_LOCAL_FIRST);
    }
    count_for(&key, counters::VALID_ADVERTS);

    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let lower = advert.priority != 0 && advert.priority < cfg.priority;
    let local = Local {
        state: cfg.state,
        priority: cfg.priority,
        preempt: cfg.preempt != 0,
        preempt_hold: lower && cfg.state == state::BACKUP && preempt_hold(&key, &cfg, now),
        primary: cfg.primary,
    };
    let verdict = advert_rule::classify(&local, advert.priority, &advert.src);
    if verdict == Verdict::Ignore {
        count_for(&key, counters::IGNORED_ADVERTS);
        return verdict::DROP;
    }
    let seen = AdvertSeen {
        at_ns: now,
        generation: cfg.generation,
        src: advert.src,
        priority: advert.priority,
        flags,
        interval_cs: advert.interval_cs,
    };
    if verdict == Verdict::Reassert {
        reassert(&key, &cfg, seen);
        return verdict::DROP;
    }
    // What this advert is news for, judged against the previous record before replacing it.
    let news = match SEEN.get_ptr(key) {
        // SAFETY: map value pointer valid for this run.
        Some(previous) => changed(unsafe { &*previous }, &seen),
        None => event::NEW_MASTER,
    };
    let _ = SEEN.insert(key, seen, BPF_ANY as u64);

    match verdict {
        Verdict::ResetTimer => arm_master_down(
            &key,
            cfg.generation,
            now,
            timers::master_down_ns(cfg.version, cfg.priority, advert.interval_cs),
        ),
        Verdict::SkewTimer => arm_master_down(
            &key,
            cfg.generation,
            now,
            timers::skew_ns(cfg.version, cfg.priority, advert.interval_cs),
        ),
        _ => {}
    }

    let kind = match verdict {
        Verdict::StepDown if news != NO_NEWS => event::PREEMPTED,
        Verdict::AdvertiseNow => event::PRIORITY_ZERO,
        _ => news,
    };
    let routine = kind == event::PRIORITY_CHANGE || kind == event::INTERVAL_CHANGE;
    if routine && !news_allowed(&key, advert.interval_cs, now) {
        count_for(&key, counters::NEWS_RATE_LIMITED);
        return verdict::DROP;
    }
    if kind != NO_NEWS {
        send_event(Event {
            key,
            kind,
            advert: seen,
        });
    }
    verdict::DROP
}

/// The instance an advert belongs to: (interface, family, VRID), and where several unicast
/// instances share those, the one whose peer set holds `peer` (the advert's source on the way
/// in, its destination on the way out).
#[inline(always)]
pub(crate) fn instance_key(ifindex: u32, advert: &Advert, peer: &[u8; 16]) -> InstanceKey {
    let key = InstanceKey::new(ifindex, advert.family, advert.vrid);
    let peer = PeerKey {
        instance: key,
        addr: *peer,
    };
    match PEERS.get_ptr(peer) {
        // SAFETY: a map value pointer returned by lookup is valid for this program run.
        Some(set) => key.with_peer_set(unsafe { *set }),
        None => key,
    }
}

/// `vrrp_agent_rate_limit vrrp`: whether an advert is within its interface's budget
/// (counted as `vrrp-rate-limited` and to be dropped when not). Adverts from the master an
/// instance follows are never limited: a flood must not silence it. Its own BPF function,
/// so the budget's branches do not multiply the verifier's work on the validation after it.
#[inline(never)]
fn vrrp_budget<C: Ingress>(ctx: &C, advert: &Advert) -> bool {
    if !rate::limits(rate_kind::VRRP) {
        return true;
    }
    let key = instance_key(ctx.ifindex(), advert, &advert.src);
    let followed = match SEEN.get_ptr(key) {
        // SAFETY: map value pointer valid for this run.
        Some(seen) => unsafe { (*seen).src == advert.src },
        None => false,
    };
    if followed || rate::allow(ctx.ifindex(), rate_kind::VRRP) {
        return true;
    }
    count_for(&key, counters::VRRP_RATE_LIMITED);
    false
}

/// Whether `src` is one of the instance's unicast peers (`check_unicast_src`).
#[inline(always)]
fn is_peer(key: &InstanceKey, src: &[u8; 16]) -> bool {
    let peer = PeerKey {
        instance: key.with_peer_set(0),
        addr: *src,
    };
    PEERS.get_ptr(peer).is_some()
}

/// "No event": the advert told us nothing new.
const NO_NEWS: u32 = 0;

/// Which event, if any ([`NO_NEWS`]), a counted advert is news for. A plain integer rather
/// than an `Option`: LLVM folds `Option` checks into pointer arithmetic the verifier refuses.
fn changed(prev: &AdvertSeen, seen: &AdvertSeen) -> u32 {
    if prev.generation != seen.generation || prev.src != seen.src {
        event::NEW_MASTER
    } else if seen.priority == 0 {
        event::PRIORITY_ZERO
    } else if prev.priority != seen.priority {
        event::PRIORITY_CHANGE
    } else if prev.interval_cs != seen.interval_cs {
        event::INTERVAL_CHANGE
    } else {
        NO_NEWS
    }
}

/// Whether a followed master's priority or interval change may be raised as an event: at
/// most one per its advertisement interval. The timers do not need these events (the kernel
/// re-arms its own from `SEEN`); they keep the agent's view current, and a master whose
/// adverts alternate (a spoofer with its address, which `vrrp_agent_rate_limit` does not
/// limit) must not wake the agent per packet. A held-back change is stamped, and the agent's
/// once-a-second watchdog reads it from `SEEN`. Its own BPF function.
#[inline(never)]
fn news_allowed(key: &InstanceKey, interval_cs: u16, now: u64) -> bool {
    let Some(state) = kernel_state(key) else {
        return true;
    };
    let interval_ns = (interval_cs.max(1) as u64) * timers::NS_PER_CS;
    // SAFETY: `state` points into KERNEL_STATE's value for `key`, valid for this run.
    unsafe {
        let last = (*state).last_news_ns;
        if last != 0 && now.saturating_sub(last) < interval_ns {
            (*state).news_held_ns = now;
            return false;
        }
        (*state).last_news_ns = now;
    }
    true
}

/// A lower-priority peer advertised while we are master: wake the agent to advertise at
/// once, but at most once per advertisement interval, so a flood of valid lower-priority
/// adverts can neither wake us nor make us transmit at line rate.
fn reassert(key: &InstanceKey, cfg: &InstanceConfig, seen: AdvertSeen) {
    let Some(state) = kernel_state(key) else {
        return;
    };
    let interval_ns = cfg.interval_cs as u64 * timers::NS_PER_CS;
    // SAFETY: `state` points into KERNEL_STATE's value for `key`, valid for this run.
    let last = unsafe { (*state).last_reassert_ns };
    if last != 0 && seen.at_ns.saturating_sub(last) < interval_ns {
        count_for(key, counters::REASSERTS_RATE_LIMITED);
        return;
    }
    // SAFETY: as above.
    unsafe { (*state).last_reassert_ns = seen.at_ns };
    count_for(key, counters::REASSERTS);
    send_event(Event {
        key: *key,
        kind: event::LOWER_PRIORITY,
        advert: seen,
    });
}

/// Whether keepalived's `preempt_delay` still holds a backup behind a lower-priority master:
/// until the startup hold ends, and for the delay after the first lower-priority advert of the
/// current generation.
fn preempt_hold(key: &InstanceKey, cfg: &InstanceConfig, now: u64) -> bool {
    if cfg.preempt_delay_ms == 0 {
        return false;
    }
    let Some(state) = kernel_state(key) else {
        return now < cfg.preempt_hold_until_ns;
    };
    // SAFETY: `state` points into KERNEL_STATE's value for `key`, valid for this run.
    unsafe {
        if (*state).lower_generation != cfg.generation || (*state).lower_since_ns == 0 {
            (*state).lower_generation = cfg.generation;
            (*state).lower_since_ns = now;
        }
        now < cfg.preempt_hold_until_ns
            || now < (*state).lower_since_ns + cfg.preempt_delay_ms as u64 * 1_000_000
    }
}

/// The instance's kernel-private state, created on first use.
fn kernel_state(key: &InstanceKey) -> Option<*mut KernelState> {
    // Looked up first: this runs for every counted advert, and the entry almost always exists.
    if let Some(state) = KERNEL_STATE.get_ptr_mut(key) {
        return Some(state);
    }
    let fresh = KernelState {
        timer: bpf_timer { __opaque: [0; 2] },
        generation: 0,
        timer_ready: 0,
        last_reassert_ns: 0,
        lower_since_ns: 0,
        lower_generation: 0,
        pad2: 0,
        master_down_at_ns: 0,
        last_news_ns: 0,
        news_held_ns: 0,
    };
    // Creating the entry fails harmlessly when it exists already.
    let _ = KERNEL_STATE.insert(key, &fresh, BPF_NOEXIST as u64);
    KERNEL_STATE.get_ptr_mut(key)
}

/// (Re)arms the instance's master-down timer to fire `after_ns` after `now` (the advert's
/// timestamp).
fn arm_master_down(key: &InstanceKey, generation: u32, now: u64, after_ns: u64) {
    let Some(slot) = kernel_state(key) else {
        return;
    };
    // SAFETY: `slot` points into KERNEL_STATE's value for `key`, valid for this run. The
    // timer is initialised and given its callback once (init returns -EBUSY if another CPU got
    // there first, which is fine); every counted advert only restarts it.
    unsafe {
        (*slot).generation = generation;
        (*slot).master_down_at_ns = now + after_ns;
        let timer = &raw mut (*slot).timer;
        if (*slot).timer_ready == 0 {
            bpf_timer_init(
                timer,
                (&raw const KERNEL_STATE).cast_mut().cast(),
                CLOCK_MONOTONIC,
            );
            if bpf_timer_set_callback(timer, master_down_expired as *mut c_void) == 0 {
                (*slot).timer_ready = 1;
            }
        }
        bpf_timer_start(timer, after_ns, 0);
    }
}

/// Timer callback: the master went quiet. Wakes the agent if the instance is still a backup
/// of the generation the timer was armed for.
unsafe extern "C" fn master_down_expired(
    _map: *mut c_void,
    key: *mut InstanceKey,
    slot: *mut KernelState,
) -> i32 {
    // SAFETY: the kernel passes valid key and value pointers of KERNEL_STATE.
    let (key, generation) = unsafe { (*key, (*slot).generation) };
    let Some(cfg) = CONFIG.get_ptr(key) else {
        return 0;
    };
    // SAFETY: map value pointer valid for this run.
    let cfg = unsafe { *cfg };
    if cfg.state == state::BACKUP && cfg.generation == generation {
        count_for(&key, counters::MASTER_DOWN_TIMERS);
        send_event(Event {
            key,
            kind: event::MASTER_DOWN,
            advert: AdvertSeen {
                // SAFETY: helper without preconditions.
                at_ns: unsafe { bpf_ktime_get_ns() },
                generation,
                ..AdvertSeen::default()
            },
        });
    }
    0
}

fn send_event(event: Event) {
    if EVENTS.output(event, 0).is_ok() {
        count(counters::EVENTS_SENT);
    } else {
        count(counters::EVENTS_LOST);
    }
}

/// Counts for one instance, and globally.
pub(crate) fn count_for(key: &InstanceKey, index: u32) {
    count(index);
    let slot = match INSTANCE_COUNTERS.get_ptr_mut(key) {
        Some(slot) => slot,
        None => {
            let Some(zero) = ZERO_COUNTERS.get_ptr(0) else {
                return;
            };
            // SAFETY: a map value pointer, valid for this run. Passed by reference on purpose:
            // by value the row would be copied onto the 512-byte BPF stack.
            #[expect(
                clippy::needless_borrows_for_generic_args,
                reason = "keeps the row off the stack"
            )]
            let _ = INSTANCE_COUNTERS.insert(key, unsafe { &*zero }, BPF_NOEXIST as u64);
            match INSTANCE_COUNTERS.get_ptr_mut(key) {
                Some(slot) => slot,
                None => return,
            }
        }
    };
    let index = index as usize;
    if index < counters::COUNT {
        // SAFETY: per-CPU slot of this instance, no concurrent writer on this CPU.
        unsafe { (*slot)[index] += 1 };
    }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *counter += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
