//! Golden tests of `vrrp-agent -t` on broken configurations (tests/configs/broken/): the exit
//! code and every located message must match the committed `.expected` file, so a change in
//! what a person is told shows up in review. Set UPDATE_GOLDEN=1 to rewrite them.

use std::{path::Path, process::Command};

use vrrp_lab::agent::agent_binary;

#[test]
fn broken_configurations_are_reported_as_committed() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/broken"));
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "the corpus shrank: {names:?}");
    for name in names {
        let out = Command::new(agent_binary())
            .args(["-t", "-f", &name])
            .current_dir(dir)
            .output()
            .unwrap();
        let got = format!(
            "exit {}\n{}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr)
        );
        let expected_path = dir.join(name.replace(".conf", ".expected"));
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        assert_eq!(got, expected, "{name}");
    }
}
