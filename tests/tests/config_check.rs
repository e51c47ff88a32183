//! `vrrp-agent -t -f FILE`: located errors and keepalived's exit codes. Needs no root.

use std::process::Command;

use vrrp_lab::{agent::agent_binary, single_instance_config};

fn check(config: &str) -> (Option<i32>, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("vrrp-config-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("k{}.conf", config.len()));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(agent_binary())
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run vrrp-agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
    )
}

#[test]
fn a_good_config_passes() {
    let (code, stderr, _) = check(&single_instance_config(100, "1"));
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_typo_is_reported_at_its_line_and_column() {
    let config = single_instance_config(100, "1").replace("    priority 100", "    priorty 100");
    let (code, stderr, path) = check(&config);
    assert_eq!(code, Some(3), "{stderr}");
    let line = config.lines().position(|l| l.contains("priorty")).unwrap() + 1;
    let expected = format!(
        "{}:{line}:5: error: unknown or unsupported keyword `priorty`",
        path.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let config = single_instance_config(100, "1")
        .replace("virtual_router_id 51", "virtual_router_id 300")
        .replace("advert_int 1", "advert_int fast");
    let (code, stderr, _) = check(&config);
    assert_eq!(code, Some(3));
    assert!(stderr.contains("1 to 255"), "{stderr}");
    assert!(stderr.contains("advert_int fast"), "{stderr}");
}

#[test]
fn warnings_exit_4_and_would_run() {
    let config = single_instance_config(100, "1").replace("state BACKUP", "state backup");
    let (code, stderr, path) = check(&config);
    assert_eq!(code, Some(4), "{stderr}");
    let line = config
        .lines()
        .position(|l| l.contains("state backup"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("{}:{line}:11: warning:", path.display())),
        "{stderr}"
    );
}

#[test]
fn includes_parameters_and_config_ids_reach_the_checker_with_their_locations() {
    let dir = std::env::temp_dir().join(format!("vrrp-config-include-{}", std::process::id()));
    let conf_d = dir.join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    // The instance lives in an included file and takes its priority from a parameter the
    // main file sets per config id; a typo sits on a line only `-i main` keeps.
    std::fs::write(
        conf_d.join("vi_1.conf"),
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority $PRIO\n    @main prioritty 7\n    virtual_ipaddress {\n        ~SEQ(N, 100, 102) 10.0.0.${N}/24\n    }\n}\n",
    )
    .unwrap();
    let main = dir.join("keepalived.conf");
    std::fs::write(
        &main,
        "@main $PRIO=200\n@^main $PRIO=100\nglobal_defs {\n    router_id ${_INSTANCE}\n}\ninclude conf.d/*.conf\n",
    )
    .unwrap();
    let run = |id: &str| {
        let out = Command::new(agent_binary())
            .args(["-t", "-i", id, "-f"])
            .arg(&main)
            .output()
            .expect("run vrrp-agent");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run("backup");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run("main");
    assert_eq!(code, Some(3), "{stderr}");
    let located = format!("{}:5:11:", conf_d.join("vi_1.conf").display());
    assert!(
        stderr.contains(&located) && stderr.contains("prioritty"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reader_that_goes_away_does_not_crash_the_checker() {
    // `vrrp-agent -t -f FILE 2>&1 | head -1`: stderr closes while errors are being written.
    let (_, _, path) = check(
        &single_instance_config(100, "1")
            .replace("priority 100", "prioritty 100\n    bogus 1\n    bogus 2"),
    );
    let mut child = Command::new(agent_binary())
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "a closed stderr made it {status:?}");
}
