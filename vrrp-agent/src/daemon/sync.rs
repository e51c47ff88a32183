//! Driving the elections: one input at a time, then what it means for the instance's sync
//! group (keepalived's `vrrp_sync_group`), and link changes.
//!
//! keepalived's group rules: a member becoming master takes the others to master; a master
//! stepping down takes the others to backup; a member in FAULT holds the whole group in FAULT
//! until every member's interface is up; and a backup whose timer expires does not take over
//! while another member still hears a live master, so the group never splits.

use super::{Daemon, now_ns};
use crate::{
    election::{Action, Input, State},
    net::monitor::LinkChange,
};

impl Daemon {
    /// Feeds one input to an instance, carries out its actions and applies the sync-group
    /// rules to the other members.
    pub(super) async fn handle(&mut self, index: usize, input: Input) {
        let Some((from, to)) = self.step(index, input).await else {
            return;
        };
        let Some(group) = self.group_of(index) else {
            return;
        };
        self.follow_group(index, &group, from, to).await;
        self.notify_groups();
    }

    /// Takes the other members of `index`'s group where its move from `from` to `to` says.
    async fn follow_group(&mut self, index: usize, group: &[usize], from: State, to: State) {
        let follow = match (from, to) {
            (_, State::Master) => Some(Input::GroupMaster),
            (State::Master, State::Backup) => Some(Input::GroupBackup),
            (_, State::Fault) => Some(Input::Fault),
            (State::Fault, State::Backup) => Some(Input::Recover),
            _ => None,
        };
        let Some(follow) = follow else { return };
        tracing::info!(
            instance = %self.instances[index].config.name,
            to = ?to,
            "sync group follows"
        );
        for &member in group.iter().filter(|m| **m != index) {
            // A member whose own link is down stays in FAULT.
            if follow == Input::Recover && !self.instances[member].usable() {
                continue;
            }
            self.step(member, follow).await;
        }
    }

    /// Feeds one input to one instance and carries out its actions; returns the state change.
    async fn step(&mut self, index: usize, input: Input) -> Option<(State, State)> {
        // Its adverts go back to its own timer before anything else happens to it.
        self.dissolve_train_of(index);
        let now = now_ns();
        if input == Input::Timer && self.takeover_vetoed(index, now) {
            self.instances[index].election.defer_master_down(now);
        }
        let actions = self.instances[index].election.handle(input, now);
        self.note_deadline(index);
        let mut change = None;
        for action in actions {
            if let Action::StateChanged { from, to } = action {
                change = Some((from, to));
            }
            self.apply(index, action).await;
        }
        change
    }

    /// Whether a sync-group peer still hears a live master, so this backup must not take over.
    fn takeover_vetoed(&self, index: usize, now: u64) -> bool {
        if !self.instances[index].election.master_down_due(now) {
            return false;
        }
        self.group_of(index).is_some_and(|group| {
            group.iter().any(|&m| {
                let e = &self.instances[m].election;
                m != index && e.state() == State::Backup && e.master().is_some()
            })
        })
    }

    fn group_of(&self, index: usize) -> Option<Vec<usize>> {
        self.groups
            .iter()
            .find(|g| g.members.contains(&index))
            .map(|g| g.members.clone())
    }

    /// An interface went up or down.
    pub(super) async fn link_change(&mut self, change: LinkChange) {
        for i in 0..self.instances.len() {
            let instance = &mut self.instances[i];
            if instance.iface.index != change.index {
                continue;
            }
            if change.removed && !instance.iface_gone {
                instance.iface_gone = true;
                if !self.config.dynamic_interfaces {
                    tracing::warn!(instance = %instance.config.name, interface = %instance.iface.name, "interface deleted: the instance stays in FAULT (set dynamic_interfaces to follow an interface that is re-created)");
                }
            }
            if instance.link_up == change.up {
                continue;
            }
            instance.link_up = change.up;
            let name = instance.iface.name.clone();
            if change.up {
                tracing::info!(interface = %name, "interface up");
                if self.instances[i].forced_fault || self.group_link_down(i) {
                    // Held in FAULT by the operator, or the group stays in FAULT until every
                    // member's link is up.
                    continue;
                }
                self.handle(i, Input::Recover).await;
            } else {
                tracing::warn!(interface = %name, "interface down");
                self.handle(i, Input::Fault).await;
            }
        }
    }

    pub(super) fn group_link_down(&self, index: usize) -> bool {
        self.group_of(index).is_some_and(|group| {
            group
                .iter()
                .any(|&m| m != index && !self.instances[m].usable())
        })
    }
}
