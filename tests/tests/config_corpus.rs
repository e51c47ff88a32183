//! Golden tests of `vrrp-agent -t` on corpora of configurations: the exit code and every
//! located message must match the committed `.expected` file, so a change in what a person is
//! told shows up in review. Set UPDATE_GOLDEN=1 to rewrite them.
//!
//! - `tests/configs/broken/`: the paste damage and mistakes people make.
//! - `tests/configs/manpage/`: every configuration example block of keepalived 2.2.7's
//!   keepalived.conf(5), verbatim (placeholders and all).

use std::{path::Path, process::Command};

use vrrp_lab::agent::agent_binary;

fn check_corpus(subdir: &str, at_least: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(subdir);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    assert!(names.len() >= at_least, "the corpus shrank: {names:?}");
    for name in names {
        let out = Command::new(agent_binary())
            .args(["-t", "-f", &name])
            .current_dir(&dir)
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        assert!(
            matches!(code, 0 | 3 | 4 | 5),
            "{name}: exit {code} (a crash?)"
        );
        let got = format!("exit {code}\n{}", String::from_utf8_lossy(&out.stderr));
        let expected_path = dir.join(name.replace(".conf", ".expected"));
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        assert_eq!(got, expected, "{subdir}/{name}");
    }
}

#[test]
fn broken_configurations_are_reported_as_committed() {
    check_corpus("broken", 8);
}

#[test]
fn the_man_pages_example_blocks_are_reported_as_committed() {
    check_corpus("manpage", 17);
}
