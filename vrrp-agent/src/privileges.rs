//! Least privilege: the daemon keeps only the capabilities its own work needs.
//!
//! It stays uid 0 (its files, pins and sockets are root's) but drops every other capability
//! from its effective and permitted sets at start, before any instance is set up, so start-up
//! and every reload run with exactly this set. The bounding set is left whole on purpose:
//! scripts that run as root (no `script_user`) get root's full capabilities back at exec,
//! exactly as under keepalived, while the daemon itself cannot load kernel modules, trace
//! processes, change files it does not own, and so on.

use anyhow::{Result, bail};

/// A capability the daemon keeps, and what for.
pub struct Kept {
    /// Its number (`linux/capability.h`).
    pub number: u32,
    /// Its name.
    pub name: &'static str,
    /// What needs it.
    pub why: &'static str,
}

/// The capabilities kept, and why (the list docs/security.md shows).
pub const KEPT: &[Kept] = &[
    Kept {
        number: 12,
        name: "CAP_NET_ADMIN",
        why: "addresses, routes and rules over netlink; attaching XDP and TC programs",
    },
    Kept {
        number: 13,
        name: "CAP_NET_RAW",
        why: "raw sockets for adverts, packet sockets for frames and GARPs, ICMP checks, SO_BINDTODEVICE",
    },
    Kept {
        number: 39,
        name: "CAP_BPF",
        why: "loading the XDP/TC programs and creating and reading their maps",
    },
    Kept {
        number: 38,
        name: "CAP_PERFMON",
        why: "the verifier's pointer arithmetic on packets and maps (with CAP_BPF)",
    },
    Kept {
        number: 6,
        name: "CAP_SETGID",
        why: "running scripts as script_user (setgroups, setgid)",
    },
    Kept {
        number: 7,
        name: "CAP_SETUID",
        why: "running scripts as script_user (setuid)",
    },
    Kept {
        number: 5,
        name: "CAP_KILL",
        why: "killing a script_user's script that overran its timeout",
    },
    Kept {
        number: 2,
        name: "CAP_DAC_READ_SEARCH",
        why: "reading configuration, include and track files whatever their mode, at start and on reload",
    },
    Kept {
        number: 10,
        name: "CAP_NET_BIND_SERVICE",
        why: "a --metrics-listen port below 1024",
    },
];

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The set as the kernel's two 32-bit words (bits 0-31, 32-63), as `CapEff` shows them.
pub fn mask() -> [u32; 2] {
    let mut words = [0u32; 2];
    for cap in KEPT {
        words[(cap.number / 32) as usize] |= 1 << (cap.number % 32);
    }
    words
}

/// Drops every capability but [`KEPT`] from the effective and permitted sets (and clears the
/// inheritable set). Capabilities the process does not have are not asked for: an agent
/// started with fewer (a systemd unit's `CapabilityBoundingSet`) keeps what it was given of
/// the list. Returns the names of the kept capabilities the process lacks.
pub fn drop_to_needed() -> Result<Vec<&'static str>> {
    let mut header = Header {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two Data structs for version 3, which `data` holds.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        bail!("capget: {}", std::io::Error::last_os_error());
    }
    let wanted = mask();
    let mut missing = Vec::new();
    for cap in KEPT {
        let (word, bit) = ((cap.number / 32) as usize, 1 << (cap.number % 32));
        if data[word].permitted & bit == 0 {
            missing.push(cap.name);
        }
    }
    for (d, want) in data.iter_mut().zip(wanted) {
        d.permitted &= want;
        d.effective = d.permitted;
        d.inheritable = 0;
    }
    // SAFETY: capset reads the header and two Data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        bail!("capset: {}", std::io::Error::last_os_error());
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_holds_exactly_the_kept_capabilities() {
        let m = mask();
        let bits = m[0].count_ones() + m[1].count_ones();
        assert_eq!(bits as usize, KEPT.len());
        // CAP_BPF (39) and CAP_PERFMON (38) live in the second word.
        assert_eq!(m[1], (1 << 7) | (1 << 6));
    }
}
