//! The configuration reader, whole: preprocessing (`@id`, `$PARAM` and `~SEQ`/`~LST`
//! expansion, includes), the block syntax and every keyword's parser. The input is split at
//! NUL bytes into a main file and up to two files it may include (`include inc1.conf`);
//! includes are confined to the fuzzer's scratch directory.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vrrp_agent::config::{self, Options};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vrrp-fuzz-config-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let main = parts.next().unwrap_or_default();
    let dir = scratch();
    for (i, include) in parts.take(2).enumerate() {
        let _ = std::fs::write(dir.join(format!("inc{}.conf", i + 1)), include);
    }
    let options = Options {
        config_id: "fuzz".into(),
        includes_within: Some(dir.clone()),
    };
    // Errors are fine; panics, hangs and runaway memory are what is looked for.
    let _ = config::parse_with(&dir.join("keepalived.conf"), main, &options);
});
