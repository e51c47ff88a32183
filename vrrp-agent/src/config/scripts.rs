//! Scripts and notifications: `notify*` in `vrrp_instance` and `vrrp_sync_group`, and
//! `script_user`, `enable_script_security`, `notify_fifo`, `vrrp_notify_fifo` in `global_defs`.

use std::{os::unix::fs::MetadataExt as _, path::Path};

use super::{Diagnostic, Location, Statement, builder::Builder};

/// A script as configured: the command line (split later, keepalived's way) and the user and
/// group it runs as, when given.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Script {
    /// The command line: a program and its arguments, single quotes keeping spaces.
    pub command: String,
    /// `username` after the command, else `script_user`, else keepalived's default.
    pub user: Option<String>,
    /// `groupname` after the user.
    pub group: Option<String>,
    /// Where it was configured.
    #[serde(skip, default = "nowhere")]
    pub location: Option<Location>,
}

fn nowhere() -> Option<Location> {
    None
}

impl Script {
    /// A command line with no user or group of its own, configured nowhere in particular.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            user: None,
            group: None,
            location: None,
        }
    }

    /// The program and arguments: split on unquoted whitespace; single or double quotes keep
    /// spaces (keepalived.conf(5), "Quoted strings").
    pub fn argv(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        let mut quote = None;
        let mut started = false;
        for c in self.command.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    started = true;
                }
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => {
                    if started {
                        out.push(std::mem::take(&mut current));
                        started = false;
                    }
                }
                (_, c) => {
                    current.push(c);
                    started = true;
                }
            }
        }
        if started {
            out.push(current);
        }
        out
    }
}

/// The notify scripts of an instance or a sync group.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notify {
    /// `notify_master`.
    pub master: Option<Script>,
    /// `notify_backup`.
    pub backup: Option<Script>,
    /// `notify_fault`.
    pub fault: Option<Script>,
    /// `notify_stop`.
    pub stop: Option<Script>,
    /// `notify`: gets `INSTANCE|GROUP name STATE priority` appended.
    pub generic: Option<Script>,
    /// `smtp_alert`: mail on state changes (`None`: the global default).
    pub smtp_alert: Option<bool>,
    /// `notify_deleted [SCRIPT]`: an instance a reload removes is reported DELETED (and this
    /// script runs) instead of keepalived's default FAULT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub report_deleted: bool,
    /// The script of `notify_deleted SCRIPT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Script>,
    /// `notify_priority_changes`: FIFO lines when the priority changes (`None`: the global
    /// `vrrp_notify_priority_changes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_changes: Option<bool>,
}

impl Notify {
    /// Whether any script is configured.
    pub fn any(&self) -> bool {
        [
            &self.master,
            &self.backup,
            &self.fault,
            &self.stop,
            &self.generic,
            &self.deleted,
        ]
        .iter()
        .any(|s| s.is_some())
    }
}

/// `global_defs` settings for scripts and the notify FIFOs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptGlobals {
    /// `script_user USER [GROUP]`.
    pub script_user: Option<(String, Option<String>)>,
    /// `enable_script_security`.
    pub script_security: bool,
    /// `notify_fifo PATH` and `vrrp_notify_fifo PATH` (both receive VRRP lines here).
    pub fifos: Vec<String>,
    /// E-mail alerts.
    pub mail: super::MailSettings,
    /// `vrrp_notify_priority_changes`: the default of `notify_priority_changes`.
    pub priority_changes: bool,
}

impl Builder {
    /// Handles a `notify*` keyword of an instance or sync group; false if `s` is none.
    pub(super) fn notify_keyword(&mut self, s: &Statement, notify: &mut Notify) -> bool {
        let slot = match s.keyword.text.as_str() {
            "notify_master" => &mut notify.master,
            "notify_backup" => &mut notify.backup,
            "notify_fault" => &mut notify.fault,
            "notify_stop" => &mut notify.stop,
            "notify" => &mut notify.generic,
            "smtp_alert" => {
                notify.smtp_alert = Some(self.flag(s));
                return true;
            }
            "notify_deleted" => {
                notify.report_deleted = true;
                if !s.args.is_empty() {
                    notify.deleted = self.script(s);
                }
                return true;
            }
            "notify_priority_changes" => {
                notify.priority_changes = Some(self.flag(s));
                return true;
            }
            _ => return false,
        };
        *slot = self.script(s);
        true
    }

    /// `KEYWORD COMMAND [username [groupname]]`.
    pub(super) fn script(&mut self, s: &Statement) -> Option<Script> {
        let Some(command) = s.args.first() else {
            self.errors.push(
                Diagnostic::new(&s.keyword.location, format!("`{}` needs a script", s.keyword.text))
                    .hint("quote a command with arguments: notify_master \"/etc/keepalived/master.sh arg\""),
            );
            return None;
        };
        if let Some(extra) = s.args.get(3) {
            self.errors.push(
                Diagnostic::new(
                    &extra.location,
                    "a script takes at most a user and a group after it",
                )
                .hint("quote the command if it has arguments"),
            );
        }
        Some(Script {
            command: command.text.clone(),
            user: s.args.get(1).map(|w| w.text.clone()),
            group: s.args.get(2).map(|w| w.text.clone()),
            location: Some(s.keyword.location.clone()),
        })
    }

    /// The `global_defs` keywords of scripts and FIFOs; false if `s` is none of them.
    pub(super) fn script_global(&mut self, s: &Statement) -> bool {
        match s.keyword.text.as_str() {
            "script_user" => match s.args.as_slice() {
                [user] => self.scripts.script_user = Some((user.text.clone(), None)),
                [user, group] => {
                    self.scripts.script_user = Some((user.text.clone(), Some(group.text.clone())))
                }
                _ => self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    "`script_user` takes a user and optionally a group",
                )),
            },
            "enable_script_security" => {
                self.no_args(s);
                self.scripts.script_security = true;
            }
            "vrrp_notify_priority_changes" => {
                self.scripts.priority_changes = self.flag(s);
            }
            "notify_fifo" | "vrrp_notify_fifo" => {
                if let Some(path) = s.args.first() {
                    self.scripts.fifos.push(path.text.clone());
                } else {
                    self.errors.push(Diagnostic::new(
                        &s.keyword.location,
                        format!("`{}` needs a path", s.keyword.text),
                    ));
                }
            }
            _ => return false,
        }
        true
    }

    /// With `enable_script_security`, a script run as root must not be replaceable by anyone
    /// else: the file and every directory above it owned by root and not writable by group or
    /// others (a sticky directory is fine, as for /tmp). keepalived disables such scripts; a
    /// notification that silently never runs is worse, so they are refused here.
    pub(super) fn check_script_security(&mut self, script: &Script) {
        let Some(program) = script.argv().into_iter().next() else {
            return;
        };
        let at = script.location.clone().unwrap_or_else(|| Location {
            file: std::sync::Arc::new("?".into()),
            line: 1,
            col: 1,
        });
        let mut path = Path::new(&program);
        let mut first = true;
        loop {
            match std::fs::metadata(path) {
                Ok(meta) => {
                    let writable_by_others = meta.mode() & 0o022 != 0;
                    // A sticky directory (like /tmp) lets nobody replace root's files.
                    let sticky_dir = !first && meta.is_dir() && meta.mode() & 0o1000 != 0;
                    if meta.uid() != 0 || (writable_by_others && !sticky_dir) {
                        self.errors.push(
                            Diagnostic::new(&at, format!("script {program} is unsafe to run as root: {} can be changed by another user", path.display()))
                                .hint("make it and its directories owned by root and writable only by root, or run it as another user (script_user / USER after the script)"),
                        );
                        return;
                    }
                }
                Err(e) if first => {
                    self.errors.push(
                        Diagnostic::new(&at, format!("script {program}: {e}"))
                            .hint("give the script's full path"),
                    );
                    return;
                }
                Err(_) => {}
            }
            first = false;
            match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => path = parent,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(command: &str) -> Script {
        Script::new(command)
    }

    #[test]
    fn arguments_split_on_unquoted_spaces_quotes_keep_them() {
        assert_eq!(
            script("/bin/x.sh a  'b c' \"d e\" f'g h'").argv(),
            ["/bin/x.sh", "a", "b c", "d e", "fg h"]
        );
        assert_eq!(script("  ").argv(), Vec::<String>::new());
        assert_eq!(script("x ''").argv(), ["x", ""]);
    }
}
