//! Builds the kernel programs (vrrp-ebpf) with nightly for bpfel-unknown-none and embeds the
//! object in the agent, so one binary is all a host needs.
//!
//! Needs `bpf-linker` and nightly's rust-src: `cargo xtask setup` installs both; this script
//! also looks in the xtask's cache so a plain `cargo build` works after setup.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ebpf_dir = manifest_dir.join("../vrrp-ebpf");
    let common_dir = manifest_dir.join("../vrrp-common");
    for p in [
        ebpf_dir.join("src"),
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join(".cargo/config.toml"),
        common_dir.join("src"),
    ] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-env-changed=VRRP_EBPF_OBJECT");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let object = out_dir.join("vrrp-ebpf.o");
    if let Some(prebuilt) = env::var_os("VRRP_EBPF_OBJECT") {
        std::fs::copy(&prebuilt, &object).expect("copy VRRP_EBPF_OBJECT");
        return;
    }

    let target_dir = out_dir.join("ebpf-target");
    let mut path = env::var_os("PATH").unwrap_or_default();
    if let Some(cache) = tool_cache() {
        let mut dirs = vec![cache.join("bin")];
        dirs.extend(env::split_paths(&path));
        path = env::join_paths(dirs).expect("PATH entries are valid");
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--release"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&ebpf_dir)
        .env("PATH", path);
    // Settings cargo gives this build script are for the host build, not the BPF one.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run `rustup run nightly cargo` for vrrp-ebpf: {e}; run `cargo xtask setup`")
    });
    if !status.success() {
        panic!(
            "building the kernel programs failed; if bpf-linker or nightly rust-src is missing, \
             run `cargo xtask setup`"
        );
    }
    let built = target_dir.join("bpfel-unknown-none/release/vrrp-ebpf");
    std::fs::copy(&built, &object)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), object.display()));
}

/// Where `cargo xtask setup` caches bpf-linker (keep in sync with xtask/src/setup.rs).
fn tool_cache() -> Option<PathBuf> {
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("vrrp-agent/tools"))
}
