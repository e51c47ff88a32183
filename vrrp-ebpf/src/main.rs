//! vrrp-agent's kernel side: an XDP program that validates every VRRP advert, records the
//! latest counted one per instance with a kernel timestamp, runs the master-down timer with
//! `bpf_timer`, and wakes the agent over a ring buffer only when something changed.
#![no_std]
#![no_main]

mod packet;

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST, bpf_timer, xdp_action},
    btf_maps::{HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_timer_init, bpf_timer_set_callback, bpf_timer_start},
    },
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use vrrp_common::{
    AdvertSeen, Event, InstanceConfig, InstanceKey,
    advert_rule::{self, Local, Verdict},
    counters, event, state, timers,
};

use crate::packet::{Advert, Parsed};

/// Instances configured on this host, written by the agent.
#[btf_map]
static CONFIG: HashMap<InstanceKey, InstanceConfig, 1024> = HashMap::new();

/// The latest counted advert per instance, read by the agent.
#[btf_map]
static SEEN: HashMap<InstanceKey, AdvertSeen, 1024> = HashMap::new();

/// One master-down timer per instance (kernel-private).
#[btf_map]
static TIMERS: HashMap<InstanceKey, MasterDownTimer, 1024> = HashMap::new();

/// Global per-CPU counters, indexed by `vrrp_common::counters`.
#[btf_map]
static COUNTERS: PerCpuArray<u64, { counters::COUNT }> = PerCpuArray::new();

/// Per-instance per-CPU counters (same indices), created by the kernel on first use.
#[btf_map]
static INSTANCE_COUNTERS: PerCpuHashMap<InstanceKey, [u64; counters::COUNT], 1024> =
    PerCpuHashMap::new();

/// State-relevant events for the agent.
#[btf_map]
static EVENTS: RingBuf<Event, { 64 * 1024 }> = RingBuf::new();

/// Value of [`TIMERS`]: the timer and the agent generation it was armed for.
#[repr(C)]
struct MasterDownTimer {
    timer: bpf_timer,
    generation: u32,
    pad: u32,
}

const CLOCK_MONOTONIC: u64 = 1;

#[xdp]
pub fn vrrp_xdp(ctx: XdpContext) -> u32 {
    match packet::parse(&ctx) {
        Parsed::NotVrrp => xdp_action::XDP_PASS,
        Parsed::Pass(counter) => {
            count(counters::VRRP_RX);
            count(counter);
            xdp_action::XDP_PASS
        }
        Parsed::Vrrp(advert) => {
            count(counters::VRRP_RX);
            handle_advert(&ctx, &advert)
        }
    }
}

/// Validates an advert against its instance and applies it. Everything after the VRID lookup
/// that fails validation is counted and dropped; unknown VRIDs are counted and passed on.
fn handle_advert(ctx: &XdpContext, advert: &Advert) -> u32 {
    let key = InstanceKey::new(ctx.ingress_ifindex() as u32, advert.family, advert.vrid);
    let Some(cfg) = CONFIG.get_ptr(key) else {
        count(counters::VRID_ERRORS);
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a map value pointer returned by lookup is valid for this program run.
    let cfg = unsafe { *cfg };
    if let Err(counter) = packet::validate(ctx, advert, &cfg) {
        count_for(&key, counter);
        return xdp_action::XDP_DROP;
    }
    count_for(&key, counters::VALID_ADVERTS);

    let local = Local {
        state: cfg.state,
        priority: cfg.priority,
        preempt: cfg.preempt != 0,
        primary: cfg.primary,
    };
    let verdict = advert_rule::classify(&local, advert.priority, &advert.src);
    if verdict == Verdict::Ignore {
        count_for(&key, counters::IGNORED_ADVERTS);
        return xdp_action::XDP_DROP;
    }

    let src = advert.src;
    let seen = AdvertSeen {
        // SAFETY: helper without preconditions.
        at_ns: unsafe { bpf_ktime_get_ns() },
        generation: cfg.generation,
        src,
        priority: advert.priority,
        pad: 0,
        interval_cs: advert.interval_cs,
    };
    let previous = SEEN.get_ptr(key).map(|p| unsafe { *p });
    let _ = SEEN.insert(key, seen, BPF_ANY as u64);

    match verdict {
        Verdict::ResetTimer => arm_master_down(
            &key,
            cfg.generation,
            timers::master_down_ns(cfg.version, cfg.priority, advert.interval_cs),
        ),
        Verdict::SkewTimer => arm_master_down(
            &key,
            cfg.generation,
            timers::skew_ns(cfg.version, cfg.priority, advert.interval_cs),
        ),
        _ => {}
    }

    let kind = match verdict {
        Verdict::StepDown => changed(previous.as_ref(), &seen).map(|_| event::PREEMPTED),
        Verdict::AdvertiseNow => Some(event::PRIORITY_ZERO),
        _ => changed(previous.as_ref(), &seen),
    };
    if let Some(kind) = kind {
        send_event(Event {
            key,
            kind,
            advert: seen,
        });
    }
    xdp_action::XDP_DROP
}

/// Which event, if any, a counted advert is news for.
fn changed(previous: Option<&AdvertSeen>, seen: &AdvertSeen) -> Option<u32> {
    let Some(prev) = previous else {
        return Some(event::NEW_MASTER);
    };
    if prev.generation != seen.generation || prev.src != seen.src {
        Some(event::NEW_MASTER)
    } else if seen.priority == 0 {
        Some(event::PRIORITY_ZERO)
    } else if prev.priority != seen.priority {
        Some(event::PRIORITY_CHANGE)
    } else if prev.interval_cs != seen.interval_cs {
        Some(event::INTERVAL_CHANGE)
    } else {
        None
    }
}

/// (Re)arms the instance's master-down timer to fire `after_ns` from now.
fn arm_master_down(key: &InstanceKey, generation: u32, after_ns: u64) {
    let fresh = MasterDownTimer {
        timer: bpf_timer { __opaque: [0; 2] },
        generation,
        pad: 0,
    };
    // Creating the entry fails harmlessly when it exists already.
    let _ = TIMERS.insert(key, &fresh, BPF_NOEXIST as u64);
    let Some(slot) = TIMERS.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: `slot` points into TIMERS' value for `key`, valid for this run. bpf_timer_init
    // returns -EBUSY for an initialised timer, which is fine; set_callback and start are
    // idempotent re-arms.
    unsafe {
        (*slot).generation = generation;
        let timer = &raw mut (*slot).timer;
        bpf_timer_init(
            timer,
            (&raw const TIMERS).cast_mut().cast(),
            CLOCK_MONOTONIC,
        );
        bpf_timer_set_callback(timer, master_down_expired as *mut c_void);
        bpf_timer_start(timer, after_ns, 0);
    }
}

/// Timer callback: the master went quiet. Wakes the agent if the instance is still a backup
/// of the generation the timer was armed for.
unsafe extern "C" fn master_down_expired(
    _map: *mut c_void,
    key: *mut InstanceKey,
    slot: *mut MasterDownTimer,
) -> i32 {
    // SAFETY: the kernel passes valid key and value pointers of TIMERS.
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
fn count_for(key: &InstanceKey, index: u32) {
    count(index);
    let slot = match INSTANCE_COUNTERS.get_ptr_mut(key) {
        Some(slot) => slot,
        None => {
            let _ = INSTANCE_COUNTERS.insert(key, [0u64; counters::COUNT], BPF_NOEXIST as u64);
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
