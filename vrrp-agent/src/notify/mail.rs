//! keepalived's e-mail alerts: one short SMTP conversation per state change, on its own task,
//! with the configured connect timeout, so a slow or absent mail server never holds anything
//! up. Subjects and bodies follow keepalived's wording.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
};

use super::Subject;
use crate::config::MailSettings;

/// Sends the alerts.
pub struct Mailer {
    settings: MailSettings,
    router_id: String,
    host: String,
    /// Mails handed to the server, and mails that could not be.
    pub sent: Arc<AtomicU64>,
    /// See `sent`.
    pub failed: Arc<AtomicU64>,
}

impl Mailer {
    /// A mailer for these settings, naming this node `router_id` in subjects.
    pub fn new(settings: MailSettings, router_id: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            settings,
            router_id: router_id.to_string(),
            host,
            sent: Arc::default(),
            failed: Arc::default(),
        }
    }

    /// Mails a state change if `own` (the instance's or group's `smtp_alert`) or the global
    /// default says so.
    pub fn state_change(&self, subject: Subject, name: &str, state: &str, own: Option<bool>) {
        if !self.settings.enabled(own)
            || state == "STOP"
            || (state == "FAULT" && self.settings.no_faults)
        {
            return;
        }
        let what = match subject {
            Subject::Instance => "Instance",
            Subject::Group => "Group",
            // Checker alerts are not mailed (smtp_alert in virtual_server is warned about).
            Subject::Server => return,
        };
        let title = format!(
            "[{}] VRRP {what} {name} - Entering {state} state",
            self.router_id
        );
        let body = match (subject, state) {
            (Subject::Instance, "MASTER") => "=> VRRP Instance is now owning VRRP VIPs <=",
            (Subject::Instance, "BACKUP") => "=> VRRP Instance is nolonger owning VRRP VIPs <=",
            (Subject::Instance, _) => "=> VRRP Instance is in FAULT state <=",
            (Subject::Group | Subject::Server, _) => {
                "=> All VRRP group instances are now in the same state <="
            }
        };
        let Some((server, port)) = self.settings.server.clone() else {
            return;
        };
        let from = self
            .settings
            .from
            .clone()
            .unwrap_or_else(|| format!("keepalived@{}", self.host));
        let helo = self
            .settings
            .helo
            .clone()
            .unwrap_or_else(|| self.host.clone());
        let to = self.settings.to.clone();
        let timeout = Duration::from_secs(u64::from(self.settings.connect_timeout_s));
        let (sent, failed) = (self.sent.clone(), self.failed.clone());
        let message = Message {
            helo,
            from,
            to,
            title,
            body: body.to_string(),
        };
        tokio::spawn(async move {
            let delivery = tokio::time::timeout(timeout, deliver(&server, port, &message)).await;
            match delivery {
                Ok(Ok(())) => {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(server = %server, error = %format!("{e:#}"), "alert mail not sent");
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(server = %server, ?timeout, "alert mail not sent: the SMTP server took too long");
                }
            }
        });
    }
}

struct Message {
    helo: String,
    from: String,
    to: Vec<String>,
    title: String,
    body: String,
}

/// One SMTP conversation (RFC 5321): HELO, MAIL FROM, RCPT TO each, DATA, QUIT.
async fn deliver(server: &str, port: u16, m: &Message) -> Result<()> {
    let stream = TcpStream::connect((server, port))
        .await
        .with_context(|| format!("connecting to {server}:{port}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, "220").await?;
    let mut say = async |line: String, code: &str| -> Result<()> {
        write.write_all(format!("{line}\r\n").as_bytes()).await?;
        expect(&mut read, code).await
    };
    say(format!("HELO {}", m.helo), "250").await?;
    say(format!("MAIL FROM:<{}>", m.from), "250").await?;
    for rcpt in &m.to {
        say(format!("RCPT TO:<{rcpt}>"), "25").await?;
    }
    say("DATA".into(), "354").await?;
    let to = m.to.join(", ");
    // A line of only "." would end the message early: dot-stuff (none of ours starts so).
    let text = format!(
        "From: {}\r\nTo: {to}\r\nSubject: {}\r\nX-Mailer: vrrp-agent\r\n\r\n{}\r\n.",
        m.from, m.title, m.body
    );
    say(text, "250").await?;
    say("QUIT".into(), "221").await
}

/// Reads one (possibly multi-line) reply and checks its code starts with `code`.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R, code: &str) -> Result<()> {
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            bail!("the SMTP server closed the connection");
        }
        // "250-..." continues a multi-line reply, "250 ..." ends it.
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        if !line.starts_with(code) {
            bail!("the SMTP server said `{}`", line.trim_end());
        }
        return Ok(());
    }
}
