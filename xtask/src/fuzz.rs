//! `cargo xtask fuzz [--time SECS] [TARGET...]`: runs the cargo-fuzz targets in `fuzz/`, each
//! for a bounded time, starting from its committed seed corpus (`fuzz/corpus/TARGET`, read
//! only; what the fuzzer finds goes to `target/fuzz-corpus/TARGET`). A crash fails the run;
//! its input is in `fuzz/artifacts/TARGET/` and, once fixed, belongs in the seed corpus as a
//! regression case.

use std::{ffi::OsString, process::Command};

use crate::{Result, fail, root, run, step, tool_path};

/// Every target, in the order they run.
const TARGETS: &[&str] = &[
    "config",
    "vrrp_codec",
    "control_request",
    "checker_responses",
];

/// cargo-fuzz release known to work with the nightly here.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn fuzz(args: &[OsString]) -> Result<()> {
    let mut seconds = 30u32;
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--time" {
            seconds = args
                .next()
                .and_then(|s| s.to_str()?.parse().ok())
                .ok_or_else(|| fail("--time takes a number of seconds"))?;
        } else {
            let name = arg.to_string_lossy().into_owned();
            if !TARGETS.contains(&name.as_str()) {
                return Err(fail(format!(
                    "no fuzz target {name}; the targets are {}",
                    TARGETS.join(", ")
                )));
            }
            chosen.push(name);
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().map(|t| (*t).to_string()).collect();
    }
    // The agent's build embeds the kernel object; the fuzz build reuses that object
    // instead of building the kernel programs again under the sanitizer's flags.
    crate::build(false)?;
    let object = kernel_object()?;
    install_cargo_fuzz()?;
    for target in &chosen {
        step(&format!("fuzzing {target} for {seconds} s"));
        let found = root().join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&found)?;
        run(nightly_cargo()
            .args(["fuzz", "run", target])
            .arg(&found)
            .arg(root().join("fuzz/corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .current_dir(root().join("fuzz"))
            .env("VRRP_EBPF_OBJECT", &object))
        .map_err(|e| {
            fail(format!(
                "fuzz target {target} failed ({e}); the input is under fuzz/artifacts/{target}/"
            ))
        })?;
    }
    Ok(())
}

fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTFLAGS")
        .env("PATH", tool_path());
    cmd
}

/// The kernel object the last debug build of the agent embedded.
fn kernel_object() -> Result<std::path::PathBuf> {
    let build = root().join("target/debug/build");
    std::fs::read_dir(&build)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vrrp-agent-"))
        .map(|e| e.path().join("out/vrrp-ebpf.o"))
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .ok_or_else(|| fail("no kernel object under target/debug/build: run cargo xtask build"))
}

/// Installs cargo-fuzz once (it is a cargo subcommand; about a minute to build).
fn install_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .env("PATH", tool_path())
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    step(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} (about a minute, once)"
    ));
    run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}
