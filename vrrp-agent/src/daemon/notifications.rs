//! State changes as keepalived reports them: per instance (`INSTANCE name STATE priority`)
//! and per sync group once all its members agree (`GROUP name STATE 0`). STATE is MASTER,
//! BACKUP, FAULT, STOP (the daemon stops) or, for an instance a reload removed, FAULT or with
//! `notify_deleted` DELETED (keepalived's rule).

use super::Daemon;
use crate::{election::State, notify::Subject};

/// keepalived's word for a state in notifications; leaving for Initialize is a stop.
fn word(from: State, to: State) -> Option<&'static str> {
    Some(match to {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize if from != State::Initialize => "STOP",
        State::Initialize => return None,
    })
}

impl Daemon {
    /// Notifies an instance's state change.
    pub(super) fn notify_instance(&mut self, index: usize, from: State, to: State) {
        let Some(mut state) = word(from, to) else {
            return;
        };
        let instance = &self.instances[index];
        if state == "STOP" && instance.deleting {
            // keepalived reports a deleted instance as FAULT unless `notify_deleted` says so.
            state = if instance.config.notify.report_deleted {
                "DELETED"
            } else {
                "FAULT"
            };
        }
        // keepalived's wording, which log watchers grep for.
        tracing::info!("({}) Entering {state} STATE", instance.config.name);
        let priority = instance.election.params().priority;
        self.notifier.notify(
            Subject::Instance,
            &instance.config.name,
            state,
            priority,
            &instance.config.notify,
        );
    }

    /// Reports a new effective priority on the FIFOs as `MASTER_PRIORITY` / `BACKUP_PRIORITY`
    /// when `notify_priority_changes` is on (the instance's, else its sync group's, else
    /// `vrrp_notify_priority_changes`).
    pub(super) fn notify_priority(&mut self, index: usize) {
        let instance = &self.instances[index];
        let group = self
            .groups
            .iter()
            .find(|g| g.members.contains(&index))
            .and_then(|g| g.notify.priority_changes);
        let wanted = instance
            .config
            .notify
            .priority_changes
            .or(group)
            .unwrap_or(self.scripts.priority_changes);
        let state = match instance.election.state() {
            State::Master => "MASTER_PRIORITY",
            State::Backup => "BACKUP_PRIORITY",
            State::Fault | State::Initialize => return,
        };
        if wanted {
            let priority = instance.election.params().priority;
            let name = instance.config.name.clone();
            self.notifier
                .fifo_line(Subject::Instance, &name, state, priority);
        }
    }

    /// Notifies each sync group whose members now all share a state it was not notified in.
    pub(super) fn notify_groups(&mut self) {
        for g in 0..self.groups.len() {
            let group = &self.groups[g];
            let mut states = group
                .members
                .iter()
                .map(|&m| self.instances[m].election.state());
            let Some(first) = states.next() else { continue };
            if states.any(|s| s != first) || group.notified == Some(first) {
                continue;
            }
            let from = group.notified.unwrap_or(State::Initialize);
            if let Some(state) = word(from, first) {
                let (name, notify) = (group.name.clone(), group.notify.clone());
                self.notifier
                    .notify(Subject::Group, &name, state, 0, &notify);
            }
            self.groups[g].notified = Some(first);
        }
    }
}
