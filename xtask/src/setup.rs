//! `cargo xtask setup`: everything a fresh machine needs to build and test, idempotently.
//!
//! - the nightly toolchain with `rust-src` (kernel programs build `core` from source);
//! - `bpf-linker`, built against the nightly toolchain's own libLLVM and cached under
//!   `$XDG_CACHE_HOME/vrrp-agent/tools` (default `~/.cache/vrrp-agent/tools`);
//! - as root on Debian, the packages the lab uses (iproute2, ethtool, keepalived).

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{Result, fail, run_quiet, step};

/// bpf-linker release known to work with aya-ebpf 0.2 and LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages the lab needs (program, package): `ip` for namespaces, `ethtool` for GRO
/// on veth, keepalived and FRR as interop peers, tshark
/// to decode what we send.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ethtool", "ethtool"),
    ("keepalived", "keepalived"),
    ("tshark", "tshark"),
    ("vtysh", "frr"),
];

/// Where setup caches tools (keep in sync with vrrp-agent/build.rs).
pub fn tool_cache() -> PathBuf {
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("vrrp-agent/tools")
}

/// Runs every setup step.
pub fn setup() -> Result<()> {
    nightly_with_rust_src()?;
    bpf_linker()?;
    debian_packages()?;
    Ok(())
}

fn nightly_with_rust_src() -> Result<()> {
    let toolchains =
        run_quiet(Command::new("rustup").args(["toolchain", "list"])).map_err(|e| {
            fail(format!(
                "rustup is needed to manage the nightly toolchain: {e}"
            ))
        })?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        step("installing the nightly toolchain");
        crate::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = run_quiet(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        step("adding rust-src to nightly (the kernel programs build core from source)");
        crate::run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let cache = tool_cache();
    let linker = cache.join("bin/bpf-linker");
    if linker.exists() {
        let version = run_quiet(
            Command::new("rustup")
                .args(["run", "nightly"])
                .arg(&linker)
                .arg("--version"),
        );
        if version.is_ok_and(|v| v.contains(BPF_LINKER_VERSION)) {
            return Ok(());
        }
    }
    let sysroot = run_quiet(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let libdir = Path::new(sysroot.trim()).join("lib");
    let libllvm = fs::read_dir(&libdir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .ok_or_else(|| {
            fail(format!(
                "no libLLVM.so.* in {}: is the nightly toolchain complete?",
                libdir.display()
            ))
        })?;
    // libLLVM.so.22.1-rust-1.97.0-nightly -> 22
    let major = libllvm
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let prefix = cache.join("llvm");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(libdir.join(&libllvm), &link)?;
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against the toolchain's LLVM {major} (about a minute, once)"
    ));
    crate::run(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .arg("--root")
            .arg(&cache)
            .env("LLVM_PREFIX", &prefix),
    )
    .map_err(|e| {
        fail(format!(
            "building bpf-linker failed ({e}); it needs crates.io and a C++ toolchain"
        ))
    })?;
    Ok(())
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !crate::is_root() {
        eprintln!(
            "xtask: note: {} missing; the lab needs them (install as root)",
            missing.join(", ")
        );
        return Ok(());
    }
    step(&format!("installing {}", missing.join(" ")));
    crate::run(Command::new("apt-get").arg("update").arg("-q"))?;
    crate::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn on_path(bin: &str) -> bool {
    env::var_os("PATH")
        .map(|p| env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(bin).is_file()
        || Path::new("/sbin").join(bin).is_file()
}
