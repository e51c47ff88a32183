//! Pins the kernel maps under `/sys/fs/bpf/vrrp-agent/net<inode>/` so operators can inspect
//! them (`bpftool map dump pinned ...`) and a restarted agent finds what its predecessor left.
//!
//! Liveness does not depend on these pins: the XDP program is held by the interface (see
//! `net::xdp`). The network namespace's inode number keeps agents of different namespaces on
//! one host apart.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

/// Where bpffs is normally mounted.
const BPFFS: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC` from statfs(2).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// This agent's pin directory, created (and bpffs mounted) when absent.
pub fn directory() -> Result<PathBuf> {
    ensure_bpffs(Path::new(BPFFS))?;
    let netns = fs::metadata("/proc/self/ns/net")
        .context("reading this process's network namespace")?
        .ino();
    let dir = Path::new(BPFFS)
        .join("vrrp-agent")
        .join(format!("net{netns}"));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Removes every pin in `dir` (a previous run's) so the new maps can take their names.
pub fn clear(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Removes `dir` and its pins (a clean stop).
pub fn remove(dir: &Path) {
    clear(dir);
    let _ = fs::remove_dir(dir);
}

fn ensure_bpffs(path: &Path) -> Result<()> {
    if is_bpffs(path) {
        return Ok(());
    }
    fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    let target = std::ffi::CString::new(BPFFS)?;
    // SAFETY: all pointers are to NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc != 0 {
        bail!(
            "mounting bpffs on {BPFFS}: {} (mount it with `mount -t bpf bpf {BPFFS}`)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the struct we own; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}
