//! `vrrp_agent_rate_limit`: per-interface packet budgets, counted in 100 ms windows so a
//! burst cannot spend a whole second's budget at once. The windows are shared by every CPU
//! and updated without atomics: concurrent packets can each see the same count, so the limit
//! is approximate (a little over, never under).

use aya_ebpf::{
    bindings::BPF_ANY,
    btf_maps::{Array, HashMap},
    helpers::bpf_ktime_get_ns,
    macros::btf_map,
};
use vrrp_common::{RateLimits, rate_kind};

/// The limits, set by the agent (one entry; zero: no limit).
#[btf_map]
static RATE_LIMITS: Array<RateLimits, 1> = Array::new();

/// Per (interface, kind) window: when it started and how many packets it let through.
#[btf_map]
static RATE_WINDOWS: HashMap<u32, Window, 1024> = HashMap::new();

#[repr(C)]
#[derive(Clone, Copy)]
struct Window {
    start_ns: u64,
    count: u32,
    pad: u32,
}

const WINDOW_NS: u64 = 100_000_000;
const WINDOWS_PER_S: u32 = 10;

/// Whether a limit of `kind` is configured at all (the common case, none, costs one
/// lookup).
#[inline(always)]
pub fn limits(kind: u32) -> bool {
    RATE_LIMITS.get(0).is_some_and(|l| {
        if kind == rate_kind::VRRP {
            l.vrrp_per_s != 0
        } else {
            l.arp_per_s != 0
        }
    })
}

/// Whether one more packet of `kind` on `ifindex` is within its limit (and counts it).
#[inline(always)]
pub fn allow(ifindex: u32, kind: u32) -> bool {
    let Some(limits) = RATE_LIMITS.get(0) else {
        return true;
    };
    let per_s = if kind == rate_kind::VRRP {
        limits.vrrp_per_s
    } else {
        limits.arp_per_s
    };
    if per_s == 0 {
        return true;
    }
    let budget = (per_s / WINDOWS_PER_S).max(1);
    let key = (ifindex << 1) | kind;
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    match RATE_WINDOWS.get_ptr_mut(key) {
        // SAFETY: a map value pointer, valid for this run.
        Some(w) => unsafe {
            if now.wrapping_sub((*w).start_ns) >= WINDOW_NS {
                (*w).start_ns = now;
                (*w).count = 1;
                return true;
            }
            if (*w).count >= budget {
                return false;
            }
            (*w).count += 1;
            true
        },
        None => {
            let fresh = Window {
                start_ns: now,
                count: 1,
                pad: 0,
            };
            let _ = RATE_WINDOWS.insert(key, fresh, BPF_ANY as u64);
            true
        }
    }
}
