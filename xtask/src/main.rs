//! `cargo xtask setup | build | run | test | demo | lint | install | bench` — the only entry
//! points people need.
//!
//! Every command that needs the toolchain runs `setup` first (it is idempotent and fast when
//! everything is in place), so a fresh machine needs nothing installed by hand.

mod fuzz;
mod install;
mod setup;

use std::{
    env,
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

/// An error message for the person at the terminal.
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

/// Result of an xtask step.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error`].
pub fn fail(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

const USAGE: &str = "\
usage: cargo xtask <command> [args]

  setup            install what building and testing need (nightly rust-src, bpf-linker,
                   Debian packages for the lab); idempotent
  build [--release]
                   build the kernel programs and the agent (which embeds them)
  run [-- ARGS]    build, then run target/debug/vrrp-agent ARGS (as root)
  test [ARGS]      build, then run every test (unit, kernel, lab); lab tests need root
  demo             a three-router lab: elections and failovers as they happen
  lint             cargo fmt --check and clippy -D warnings, host and kernel crates
  fuzz [--time SECS] [TARGET...]
                   run the cargo-fuzz targets (config, vrrp_codec, control_request,
                   checker_responses) for SECS each (default 30) from their seed corpora
  bench [--quick] [--out DIR]
                   release build, then every benchmark scenario with vrrp-agent and
                   keepalived side by side (as root; not part of CI); the report goes to
                   target/bench/REPORT.md (--quick: under 5 minutes)
  install [--prefix DIR] [--destdir DIR]
                   release build into PREFIX/sbin (default /usr/local) and the systemd unit
                   into /etc/systemd/system (both under DESTDIR when given)
";

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let command = args.next().map(|a| a.to_string_lossy().into_owned());
    let rest: Vec<OsString> = args.collect();
    let result = match command.as_deref() {
        Some("setup") => setup::setup(),
        Some("build") => build(rest.iter().any(|a| a == "--release")),
        Some("run") => run_agent(&rest),
        Some("test") => test(&rest),
        Some("demo") => demo(),
        Some("lint") => lint(),
        Some("bench") => bench(&rest),
        Some("fuzz") => fuzz::fuzz(&rest),
        Some("install") => install::install(&rest),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A cargo command at the workspace root with the cached tools on PATH.
fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.env("PATH", tool_path()).current_dir(root());
    cmd
}

/// PATH with the cached tools (bpf-linker) first.
fn tool_path() -> OsString {
    let mut paths = vec![setup::tool_cache().join("bin")];
    paths.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    env::join_paths(paths).unwrap_or_default()
}

fn build(release: bool) -> Result<()> {
    setup::setup()?;
    step("building the kernel programs and the agent");
    let mut cmd = cargo();
    cmd.args(["build", "--package", "vrrp-agent", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    let profile = if release { "release" } else { "debug" };
    step(&format!(
        "built target/{profile}/vrrp-agent (kernel object embedded)"
    ));
    Ok(())
}

fn bench(args: &[OsString]) -> Result<()> {
    build(true)?;
    if !is_root() {
        return Err(fail("the bench builds network namespaces: run it as root"));
    }
    step("running the benchmarks (vrrp-agent and keepalived side by side)");
    run(cargo()
        .args([
            "run",
            "--release",
            "--package",
            "vrrp-lab",
            "--bin",
            "bench",
            "--",
        ])
        .args(args)
        .env("VRRP_AGENT_BIN", root().join("target/release/vrrp-agent")))
}

fn run_agent(args: &[OsString]) -> Result<()> {
    build(false)?;
    let args = args.iter().skip_while(|a| *a == "--");
    run(Command::new(root().join("target/debug/vrrp-agent")).args(args))
}

fn test(args: &[OsString]) -> Result<()> {
    build(false)?;
    if !is_root() {
        eprintln!("xtask: note: not root: lab tests will report themselves skipped");
    }
    step("running the tests");
    // The fault scenarios record what the lab looked like after each fault; summed below.
    let faults = root().join("target/faults");
    let _ = std::fs::remove_dir_all(&faults);
    let outcome = run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .env("VRRP_AGENT_BIN", root().join("target/debug/vrrp-agent"))
        .env("VRRP_FAULTS_DIR", &faults));
    fault_summary(&faults);
    outcome
}

/// Prints the fault suite's line: how many scenarios ran and, summed over them, the VIPs
/// nobody answered for, those answered by two nodes, and those left on a node that was not
/// master once the lab should have settled.
fn fault_summary(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let (mut scenarios, mut lost, mut dual, mut stray) = (0, 0, 0, 0);
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let fields: Vec<u64> = text
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        if let [l, d, s] = fields[..] {
            scenarios += 1;
            lost += l;
            dual += d;
            stray += s;
        }
    }
    eprintln!(
        "faults: {scenarios} scenarios, {lost} lost VIPs, {dual} dual answerers at steady state, {stray} VIPs left on a non-master"
    );
}

fn lint() -> Result<()> {
    setup::setup()?;
    step("checking formatting");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo()
        .args(["fmt", "--", "--check"])
        .current_dir(root().join("vrrp-ebpf")))?;
    step("running clippy on the host crates");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("running clippy on the kernel crate");
    // The kernel crate builds with nightly (its rust-toolchain.toml), not the host's toolchain.
    run(Command::new("rustup")
        .args([
            "run",
            "nightly",
            "cargo",
            "clippy",
            "--release",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(root().join("vrrp-ebpf"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env("PATH", tool_path()))
}

fn demo() -> Result<()> {
    build(false)?;
    if !is_root() {
        return Err(fail("the demo builds network namespaces: run it as root"));
    }
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "vrrp-lab",
            "--bin",
            "vrrp-lab-demo",
        ])
        .env("VRRP_AGENT_BIN", root().join("target/debug/vrrp-agent")))
}

/// Prints a progress line.
pub fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

/// Runs a command, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| fail(format!("cannot run {:?}: {e}", cmd.get_program())))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{:?} failed with {status}",
            cmd.get_program()
        )))
    }
}

/// Runs a command and returns its stdout.
pub fn run_quiet(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| fail(format!("cannot run {:?}: {e}", cmd.get_program())))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether we run as root.
pub fn is_root() -> bool {
    // The uid is the first number on /proc/self/status' Uid line; avoids a libc dependency.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
