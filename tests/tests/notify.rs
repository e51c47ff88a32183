//! Notify scripts and the notify FIFO across a failover: the right scripts with the right
//! arguments, in the order the transitions happened; the FIFO gets keepalived's lines.

use std::{io::Read as _, os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use vrrp_agent::election::State;
use vrrp_lab::{Lab, Spec, require_root, wait_for};

const SEC: Duration = Duration::from_secs(1);

/// A notify script that appends its arguments to `log`.
fn write_script(dir: &Path, log: &Path) -> std::path::PathBuf {
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn config(priority: u8, script: &Path, fifo: &Path) -> String {
    let s = script.display();
    let mut spec = Spec::v3(priority, "0.1");
    spec.extra = format!(
        "    notify_master \"{s} master\"\n    notify_backup \"{s} backup\"\n    notify_stop \"{s} stop\"\n    notify \"{s} generic\"\n"
    );
    spec.config().replace(
        "    router_id lab\n",
        &format!(
            "    router_id lab\n    script_user root\n    notify_fifo {}\n",
            fifo.display()
        ),
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn notify_scripts_and_fifo_follow_a_failover_in_order() {
    if !require_root("notify_scripts_and_fifo_follow_a_failover_in_order") {
        return;
    }
    let lab = Lab::new("notify", 2).expect("lab");
    let (log1, log2) = (lab.dir.join("notify-r1.txt"), lab.dir.join("notify-r2.txt"));
    let dir1 = lab.dir.join("r1");
    let dir2 = lab.dir.join("r2");
    std::fs::create_dir_all(&dir1).unwrap();
    std::fs::create_dir_all(&dir2).unwrap();
    let (script1, script2) = (write_script(&dir1, &log1), write_script(&dir2, &log2));
    // The FIFO exists and has a reader before the agent starts, so no line is dropped.
    let (fifo, mut reader) = lab.fifo_reader("r1.fifo").unwrap();

    let mut r1 = lab
        .spawn_agent(lab.router(0), &config(200, &script1, &fifo))
        .unwrap();
    let r2 = lab
        .spawn_agent(
            lab.router(1),
            &config(100, &script2, &lab.dir.join("r2.fifo")),
        )
        .unwrap();
    assert!(r1.wait_state(State::Master, 5 * SEC).is_some());
    assert!(
        r2.wait_backup_of(Some(lab.router(0).addr.into()), 3 * SEC)
            .is_some()
    );
    r1.signal(libc::SIGTERM);
    assert!(r1.wait_exit(10 * SEC).is_some(), "r1 did not stop");
    assert!(r2.wait_state(State::Master, 3 * SEC).is_some());

    let r1_expected = [
        "backup",
        "generic INSTANCE VI_1 BACKUP 200",
        "master",
        "generic INSTANCE VI_1 MASTER 200",
        "stop",
        "generic INSTANCE VI_1 STOP 200",
    ];
    let r2_expected = [
        "backup",
        "generic INSTANCE VI_1 BACKUP 100",
        "master",
        "generic INSTANCE VI_1 MASTER 100",
    ];
    let done = wait_for(5 * SEC, Duration::from_millis(50), || {
        (lines(&log1).len() >= r1_expected.len() && lines(&log2).len() >= r2_expected.len())
            .then_some(())
    });
    assert!(
        done.is_some(),
        "r1 {:?}, r2 {:?}",
        lines(&log1),
        lines(&log2)
    );
    assert_eq!(lines(&log1), r1_expected, "r1's scripts, in order");
    assert_eq!(lines(&log2), r2_expected, "r2's scripts, in order");

    let mut fifo_text = String::new();
    reader.read_to_string(&mut fifo_text).ok();
    assert_eq!(
        fifo_text,
        "INSTANCE \"VI_1\" BACKUP 200\nINSTANCE \"VI_1\" MASTER 200\nINSTANCE \"VI_1\" STOP 200\n"
    );
    assert!(
        r1.log_text().contains("(VI_1) Entering MASTER STATE"),
        "keepalived-style log line"
    );
    let status = r2.status().unwrap();
    assert_eq!(status.notify.scripts_started, 4);
    assert_eq!(status.notify.scripts_failed, 0);
    assert_eq!(
        status.notify.fifo_lines_dropped, 2,
        "nobody reads r2's FIFO: lines dropped, never blocking"
    );
}

/// A one-message SMTP sink: answers like a server, returns everything the client said.
fn smtp_sink(listener: std::net::TcpListener) -> std::thread::JoinHandle<String> {
    use std::io::{BufRead as _, BufReader, Write as _};
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(5 * SEC)).unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut said = String::new();
        out.write_all(b"220 sink ESMTP\r\n").unwrap();
        let mut lines = BufReader::new(stream);
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            said.push_str(&line);
            let reply: &[u8] = if in_data {
                if line != ".\r\n" {
                    continue;
                }
                in_data = false;
                b"250 queued\r\n"
            } else if line.starts_with("DATA") {
                in_data = true;
                b"354 go on\r\n"
            } else if line.starts_with("QUIT") {
                out.write_all(b"221 bye\r\n").unwrap();
                break;
            } else {
                b"250 ok\r\n"
            };
            out.write_all(reply).unwrap();
        }
        said
    })
}

#[test]
fn smtp_alert_mails_the_state_change() {
    if !require_root("smtp_alert_mails_the_state_change") {
        return;
    }
    let lab = Lab::new("smtp", 1).expect("lab");
    // The sink listens inside the router's namespace, where the agent will connect.
    let listener = vrrp_lab::run_in(&lab.router(0).ns, || {
        std::net::TcpListener::bind("127.0.0.1:2525")
    })
    .unwrap()
    .unwrap();
    let sink = smtp_sink(listener);
    let config = Spec::v3(255, "0.1").config().replace(
        "    router_id lab\n",
        "    router_id lab\n    notification_email {\n        ops@example.com\n    }\n    notification_email_from vrrp@example.com\n    smtp_server 127.0.0.1 2525\n    smtp_alert\n",
    );
    let agent = lab.spawn_agent(lab.router(0), &config).unwrap();
    assert!(agent.wait_state(State::Master, 5 * SEC).is_some());
    let said = sink.join().unwrap();
    assert!(said.contains("MAIL FROM:<vrrp@example.com>"), "{said}");
    assert!(said.contains("RCPT TO:<ops@example.com>"), "{said}");
    assert!(
        said.contains("Subject: [lab] VRRP Instance VI_1 - Entering MASTER state"),
        "{said}"
    );
    assert!(
        said.contains("=> VRRP Instance is now owning VRRP VIPs <="),
        "{said}"
    );
    let sent = wait_for(3 * SEC, Duration::from_millis(20), || {
        (agent.status().ok()?.notify.mails_sent == 1).then_some(())
    });
    assert!(sent.is_some(), "{:?}", agent.status().unwrap().notify);
}
