//! The shipped examples/ configurations: each parses to the committed model (or the committed
//! located errors), and `vrrp-agent -t` gives the committed exit code. Set UPDATE_GOLDEN=1 to
//! rewrite examples/expected/ after an intended change, then review the diff.

use std::{path::Path, process::Command};

use vrrp_agent::config;

/// (file, config id, `-t` exit code).
const EXAMPLES: [(&str, &str, i32); 5] = [
    ("keepalived.conf", "lb1", 0),
    ("redis-pair.conf", "redis-a", 0),
    ("nginx-active-active.conf", "web1", 0),
    ("mysql-dual-master.conf", "db1", 0),
    ("lvs-director.conf", "lvs1", 0),
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn examples_parse_to_their_committed_model_or_errors() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (file, id, _) in EXAMPLES {
        let relative = Path::new("examples").join(file);
        let text = std::fs::read_to_string(root().join(&relative)).unwrap();
        let options = config::Options {
            config_id: id.into(),
            includes_within: None,
        };
        let rendered = match config::parse_with(&relative, &text, &options) {
            Ok(c) => format!("{c:#?}\n"),
            Err(errors) => format!("{errors}\n"),
        };
        let golden = root().join("examples/expected").join(format!("{file}.txt"));
        if update {
            std::fs::write(&golden, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
        assert_eq!(rendered, expected, "{file} no longer parses as committed");
    }
}

#[test]
fn examples_check_with_their_committed_exit_codes() {
    for (file, id, code) in EXAMPLES {
        let out = Command::new(vrrp_lab::agent::agent_binary())
            .args(["-t", "-i", id, "-f"])
            .arg(root().join("examples").join(file))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
