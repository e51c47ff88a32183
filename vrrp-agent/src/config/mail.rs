//! keepalived's e-mail alerts: `notification_email`, `notification_email_from`, `smtp_server`,
//! `smtp_helo_name`, `smtp_connect_timeout`, `smtp_alert`, `smtp_alert_vrrp` and
//! `no_email_faults` in `global_defs`, and `smtp_alert` per instance and sync group.

use super::{Diagnostic, Statement, builder::Builder};

/// The `global_defs` mail settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSettings {
    /// `notification_email { ... }`: the recipients.
    pub to: Vec<String>,
    /// `notification_email_from` (default: keepalived@HOSTNAME).
    pub from: Option<String>,
    /// `smtp_server HOST [PORT]` (default port 25).
    pub server: Option<(String, u16)>,
    /// `smtp_helo_name` (default: the host name).
    pub helo: Option<String>,
    /// `smtp_connect_timeout` in seconds (default 30).
    pub connect_timeout_s: u32,
    /// `smtp_alert` / `smtp_alert_vrrp`: the default for instances and groups that do not say.
    pub default_alert: Option<bool>,
    /// `no_email_faults`.
    pub no_faults: bool,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            to: Vec::new(),
            from: None,
            server: None,
            helo: None,
            connect_timeout_s: 30,
            default_alert: None,
            no_faults: false,
        }
    }
}

impl MailSettings {
    /// Whether an instance or group with its own `smtp_alert` setting sends mail.
    pub fn enabled(&self, own: Option<bool>) -> bool {
        own.or(self.default_alert).unwrap_or(false) && self.server.is_some() && !self.to.is_empty()
    }
}

impl Builder {
    /// The mail keywords of `global_defs`; false if `s` is none of them.
    pub(super) fn mail_global(&mut self, s: &Statement) -> bool {
        match s.keyword.text.as_str() {
            "notification_email" => {
                if let Some(block) = self.block(s) {
                    self.scripts.mail.to = block.iter().map(|a| a.keyword.text.clone()).collect();
                }
            }
            "notification_email_from" => self.scripts.mail.from = self.string(s),
            "smtp_helo_name" => self.scripts.mail.helo = self.string(s),
            "smtp_connect_timeout" => {
                if let Some(t) = self.integer(s, 1, 3600) {
                    self.scripts.mail.connect_timeout_s = t;
                }
            }
            "smtp_server" => match s.args.as_slice() {
                [host] => self.scripts.mail.server = Some((host.text.clone(), 25)),
                [host, port] => match port.text.parse::<u16>() {
                    Ok(port) => self.scripts.mail.server = Some((host.text.clone(), port)),
                    Err(_) => self.errors.push(Diagnostic::new(
                        &port.location,
                        format!("`{}` is not a port number", port.text),
                    )),
                },
                _ => self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        "`smtp_server` takes a host and optionally a port",
                    )
                    .hint("write `smtp_server 127.0.0.1 25`"),
                ),
            },
            "smtp_alert" | "smtp_alert_vrrp" => {
                // smtp_alert_vrrp wins over the general smtp_alert, wherever they stand.
                let value = self.flag(s);
                if s.keyword.text == "smtp_alert_vrrp" || !self.smtp_alert_vrrp_seen {
                    self.scripts.mail.default_alert = Some(value);
                }
                if s.keyword.text == "smtp_alert_vrrp" {
                    self.smtp_alert_vrrp_seen = true;
                }
            }
            "no_email_faults" => {
                self.no_args(s);
                self.scripts.mail.no_faults = true;
            }
            _ => return false,
        }
        true
    }
}
