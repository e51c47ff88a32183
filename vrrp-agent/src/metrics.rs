//! An opt-in Prometheus endpoint (`--metrics-listen ADDR`): `GET /metrics` answers with each
//! instance's state, priority, transitions, adverts sent and received, per-reason receive
//! errors, and the notification counters, in the text exposition format.
//!
//! It asks the main loop for the same [`Status`] the control socket serves, so both always
//! agree.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use crate::checker::VirtualServerStatus;
use anyhow::{Context as _, Result};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};
use vrrp_common::counters;

use crate::{
    control::{Pending, Reply, Request, Status},
    election::State,
};

/// Receive counters that mean a discarded advert, reported as `vrrp_rx_errors_total{reason}`.
const RX_ERRORS: [u32; 12] = [
    counters::IP_TTL_ERRORS,
    counters::VERSION_ERRORS,
    counters::CHECKSUM_ERRORS,
    counters::PACKET_LENGTH_ERRORS,
    counters::INVALID_TYPE,
    counters::ADDRESS_LIST_ERRORS,
    counters::INTERVAL_ERRORS,
    counters::AUTH_TYPE_MISMATCH,
    counters::AUTH_FAILURES,
    counters::VRID_ERRORS,
    counters::FRAGMENTS,
    counters::VLAN_TAGGED,
];

/// Binds `addr` and serves the endpoint on the runtime.
pub async fn serve(addr: SocketAddr, tx: mpsc::Sender<Pending>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint on {addr}"))?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, tx).await {
                    tracing::debug!(error = %e, "metrics connection failed");
                }
            });
        }
    });
    Ok(())
}

async fn answer(mut stream: TcpStream, tx: mpsc::Sender<Pending>) -> Result<()> {
    let mut request = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await??;
    let head = String::from_utf8_lossy(&request[..n]);
    let (status, body) = if head.starts_with("GET /metrics ") || head.starts_with("GET / ") {
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send((Request::Status, reply_tx)).await?;
        match reply_rx.await? {
            Reply::Status(s) => ("200 OK", render(&s)),
            Reply::Error { error } => ("500 Internal Server Error", error + "\n"),
            Reply::Done { message } => ("500 Internal Server Error", message + "\n"),
        }
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(())
}

/// The status in Prometheus' text format.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let labels = |i: &crate::control::InstanceStatus| {
        format!(
            "instance=\"{}\",interface=\"{}\",vrid=\"{}\"",
            escape(&i.name),
            escape(&i.interface),
            i.vrid
        )
    };
    let per = |f: &dyn Fn(&crate::control::InstanceStatus) -> u64| -> Vec<(String, u64)> {
        status.instances.iter().map(|i| (labels(i), f(i))).collect()
    };
    let counter = |i: &crate::control::InstanceStatus, index: u32| {
        i.counters
            .get(counters::NAMES[index as usize])
            .copied()
            .unwrap_or(0)
    };
    family(
        "vrrp_instance_state",
        "gauge",
        "RFC state: 0 initialize, 1 backup, 2 master, 3 fault.",
        &per(&|i| match i.state {
            State::Initialize => 0,
            State::Backup => 1,
            State::Master => 2,
            State::Fault => 3,
        }),
    );
    family(
        "vrrp_instance_priority",
        "gauge",
        "The priority the instance advertises now.",
        &per(&|i| u64::from(i.effective_priority)),
    );
    family(
        "vrrp_instance_transitions_total",
        "counter",
        "State changes since the daemon started.",
        &per(&|i| i.transitions),
    );
    family(
        "vrrp_adverts_sent_total",
        "counter",
        "Our adverts seen leaving (stamped by the egress program).",
        &per(&|i| counter(i, counters::ADVERTS_SENT)),
    );
    family(
        "vrrp_adverts_received_total",
        "counter",
        "Valid adverts received for the instance (absorbed in the kernel).",
        &per(&|i| counter(i, counters::VALID_ADVERTS)),
    );
    let mut errors = Vec::new();
    for i in &status.instances {
        for &index in &RX_ERRORS {
            let reason = counters::NAMES[index as usize];
            errors.push((
                format!("{},reason=\"{reason}\"", labels(i)),
                counter(i, index),
            ));
        }
    }
    family(
        "vrrp_rx_errors_total",
        "counter",
        "Adverts discarded, by reason (RFC 8347 names where there is one).",
        &errors,
    );
    let script = |f: &dyn Fn(&crate::track::ScriptStatus) -> u64| -> Vec<(String, u64)> {
        status
            .vrrp_scripts
            .iter()
            .map(|s| (format!("script=\"{}\"", escape(&s.name)), f(s)))
            .collect()
    };
    family(
        "vrrp_script_up",
        "gauge",
        "Whether a vrrp_script counts as good (after rise/fall).",
        &script(&|s| u64::from(s.up)),
    );
    family(
        "vrrp_script_runs_total",
        "counter",
        "vrrp_script runs.",
        &script(&|s| s.runs),
    );
    family(
        "vrrp_script_failures_total",
        "counter",
        "vrrp_script runs that failed (timeouts included).",
        &script(&|s| s.failures),
    );
    family(
        "vrrp_script_timeouts_total",
        "counter",
        "vrrp_script runs killed at their timeout.",
        &script(&|s| s.timeouts),
    );
    let mut rs_up = Vec::new();
    let mut rs_weight = Vec::new();
    let mut checks = Vec::new();
    let mut failed = Vec::new();
    let (mut packets, mut bytes, mut flows) = (Vec::new(), Vec::new(), Vec::new());
    for vs in &status.virtual_servers {
        for rs in &vs.real_servers {
            let labels = format!(
                "virtual_server=\"{}\",real_server=\"{}\"",
                escape(&vs.service),
                escape(&rs.server)
            );
            rs_up.push((labels.clone(), u64::from(rs.up)));
            rs_weight.push((labels.clone(), u64::from(rs.weight)));
            packets.push((labels.clone(), rs.forwarded.packets));
            bytes.push((labels.clone(), rs.forwarded.bytes));
            flows.push((labels.clone(), rs.forwarded.flows));
            for c in &rs.checkers {
                let labels = format!("{labels},check=\"{}\"", escape(&c.check));
                checks.push((labels.clone(), c.attempts));
                failed.push((labels, c.failures));
            }
        }
    }
    family(
        "lvs_real_server_up",
        "gauge",
        "Whether every checker of a real server passes.",
        &rs_up,
    );
    family(
        "lvs_real_server_weight",
        "gauge",
        "A real server's weight in its pool now (0 while down).",
        &rs_weight,
    );
    for (name, help, values) in [
        (
            "lvs_forwarded_packets_total",
            "Packets the XDP load balancer forwarded to a real server.",
            &packets,
        ),
        (
            "lvs_forwarded_bytes_total",
            "Bytes (IP length) the XDP load balancer forwarded to a real server.",
            &bytes,
        ),
        (
            "lvs_flows_total",
            "New flows (connections) the XDP load balancer placed on a real server.",
            &flows,
        ),
    ] {
        family(name, "counter", help, values);
    }
    family(
        "lvs_checks_total",
        "counter",
        "Health-check attempts.",
        &checks,
    );
    family(
        "lvs_check_failures_total",
        "counter",
        "Failed health-check attempts.",
        &failed,
    );
    let per_vs = |value: &dyn Fn(&VirtualServerStatus) -> u64| {
        status
            .virtual_servers
            .iter()
            .map(|vs| {
                (
                    format!("virtual_server=\"{}\"", escape(&vs.service)),
                    value(vs),
                )
            })
            .collect::<Vec<(String, u64)>>()
    };
    family(
        "lvs_virtual_server_quorum_up",
        "gauge",
        "Whether a virtual server's live weight meets its quorum.",
        &per_vs(&|vs| u64::from(vs.quorum_up)),
    );
    for (name, help, value) in [
        (
            "lvs_virtual_server_packets_total",
            "Packets the XDP load balancer forwarded for a virtual server (sorry server included).",
            (|vs| vs.forwarded.packets) as fn(&VirtualServerStatus) -> u64,
        ),
        (
            "lvs_virtual_server_bytes_total",
            "Bytes (IP length) the XDP load balancer forwarded for a virtual server.",
            |vs| vs.forwarded.bytes,
        ),
        (
            "lvs_virtual_server_flows_total",
            "New flows the XDP load balancer placed for a virtual server.",
            |vs| vs.forwarded.flows,
        ),
    ] {
        family(name, "counter", help, &per_vs(&value));
    }
    family(
        "vrrp_instance_base_priority",
        "gauge",
        "The configured priority, before tracking weights.",
        &per(&|i| u64::from(i.base_priority)),
    );
    let n = &status.notify;
    for (name, help, value) in [
        (
            "vrrp_notify_scripts_started_total",
            "Notify scripts started.",
            n.scripts_started,
        ),
        (
            "vrrp_notify_scripts_failed_total",
            "Notify scripts that failed.",
            n.scripts_failed,
        ),
        (
            "vrrp_notify_scripts_timed_out_total",
            "Notify scripts killed for taking too long.",
            n.scripts_timed_out,
        ),
        (
            "vrrp_notify_fifo_lines_total",
            "Lines written to the notify FIFOs.",
            n.fifo_lines,
        ),
        (
            "vrrp_notify_fifo_lines_dropped_total",
            "Notify FIFO lines dropped (no reader, or not reading).",
            n.fifo_lines_dropped,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
