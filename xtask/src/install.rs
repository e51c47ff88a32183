//! `cargo xtask install [--prefix DIR] [--destdir DIR]`: the release binary into
//! `PREFIX/sbin` and the systemd unit into `/etc/systemd/system`, its `ExecStart` pointing at
//! where the binary went. `--destdir` stages everything under another root (for packaging).

use std::{ffi::OsString, path::PathBuf};

use crate::{Result, build, fail, root, step};

/// Where things go unless told otherwise.
const DEFAULT_PREFIX: &str = "/usr/local";

pub fn install(args: &[OsString]) -> Result<()> {
    let mut prefix = PathBuf::from(DEFAULT_PREFIX);
    let mut destdir = PathBuf::from("/");
    for pair in args.chunks(2) {
        let [option, value] = pair else {
            return Err(fail(
                "install options are `--prefix DIR` and `--destdir DIR`",
            ));
        };
        match option.to_str() {
            Some("--prefix") => prefix = PathBuf::from(value),
            Some("--destdir") => destdir = PathBuf::from(value),
            _ => {
                let option = option.to_string_lossy();
                return Err(fail(format!("unknown install option {option}")));
            }
        }
    }
    build(true)?;
    let staged = |path: &std::path::Path| destdir.join(path.strip_prefix("/").unwrap_or(path));
    let sbin = prefix.join("sbin");
    let binary = sbin.join("vrrp-agent");
    std::fs::create_dir_all(staged(&sbin))?;
    std::fs::copy(root().join("target/release/vrrp-agent"), staged(&binary))?;
    let unit_dir = PathBuf::from("/etc/systemd/system");
    std::fs::create_dir_all(staged(&unit_dir))?;
    let unit = std::fs::read_to_string(root().join("packaging/vrrp-agent.service"))?
        .replace("/usr/local/sbin/vrrp-agent", &binary.display().to_string());
    std::fs::write(staged(&unit_dir.join("vrrp-agent.service")), unit)?;
    step(&format!(
        "installed {} and {}; then: systemctl daemon-reload && systemctl enable --now vrrp-agent",
        staged(&binary).display(),
        staged(&unit_dir.join("vrrp-agent.service")).display()
    ));
    Ok(())
}
