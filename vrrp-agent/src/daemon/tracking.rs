//! What the trackers mean for the instances: a tracked item that changes re-evaluates every
//! instance tracking it, which may move it into or out of FAULT or change its priority (a
//! master advertises the new priority at once; a backup's kernel copy learns it, so a
//! preempting backup that now outranks the master takes over on its next advert).

use super::{Daemon, now_ns};
use crate::{
    config::{Track, Tracked},
    election::{Action, Input, State},
    net::monitor::LinkChange,
    track::{Effect, Update, effective_priority},
};

impl Daemon {
    /// FAULT, or the priority an instance with base priority `base` and these tracks has now.
    pub(super) fn tracked_priority(&self, base: u8, tracks: &[Track]) -> Option<u8> {
        match self.tracking.evaluate(tracks) {
            Effect::Fault => None,
            Effect::Add(n) => Some(effective_priority(base, n)),
        }
    }

    /// A tracker task's report.
    pub(super) async fn tracker_update(&mut self, update: Update) {
        if let Some(changed) = self.tracking.update(update) {
            self.reevaluate_tracking(&changed).await;
        }
    }

    /// Re-evaluates every instance that tracks `what`.
    async fn reevaluate_tracking(&mut self, what: &Tracked) {
        for i in 0..self.instances.len() {
            if self.instances[i]
                .config
                .tracks
                .iter()
                .any(|t| &t.what == what)
            {
                self.reevaluate(i).await;
            }
        }
    }

    /// Brings an instance in line with its trackers: priority first, then FAULT in or out.
    pub(super) async fn reevaluate(&mut self, i: usize) {
        let instance = &self.instances[i];
        let verdict = self.tracked_priority(instance.config.priority, &instance.config.tracks);
        let was_fault = instance.tracker_fault;
        self.instances[i].tracker_fault = verdict.is_none();
        if let Some(priority) = verdict
            && priority != self.instances[i].election.params().priority
        {
            self.set_priority(i, priority).await;
        }
        let instance = &self.instances[i];
        let name = instance.config.name.clone();
        let state = instance.election.state();
        if verdict.is_none() && !was_fault {
            tracing::warn!(instance = %name, "a tracked item failed: entering FAULT");
        }
        if !instance.usable() {
            if state != State::Fault && state != State::Initialize {
                self.handle(i, Input::Fault).await;
            }
        } else if state == State::Fault && !self.group_link_down(i) {
            tracing::info!(instance = %name, "tracked items are good again: leaving FAULT");
            self.handle(i, Input::Recover).await;
        }
    }

    /// Gives an instance a new effective priority in place (announced at once by a master).
    async fn set_priority(&mut self, i: usize, priority: u8) {
        let instance = &self.instances[i];
        tracing::info!(
            instance = %instance.config.name,
            from = instance.election.params().priority,
            to = priority,
            "effective priority changed"
        );
        for action in self.retune_priority(i, priority) {
            self.apply(i, action).await;
        }
        self.notify_priority(i);
    }

    /// Sets the election's priority and the kernel's copy; returns what the election wants
    /// done (nothing before the instance starts).
    pub(super) fn retune_priority(&mut self, i: usize, priority: u8) -> Vec<Action> {
        self.dissolve_train_of(i);
        let instance = &mut self.instances[i];
        let params = instance.election.params().clone();
        let actions = instance.election.retune(
            priority,
            params.preempt,
            params.preempt_delay_ns,
            params.advert_int_cs,
            now_ns(),
        );
        let kernel = instance.kernel_config();
        if let Err(e) = self.dataplane.set_instance(instance.key, kernel) {
            tracing::error!(instance = %instance.config.name, error = %e, "cannot update the dataplane");
        }
        actions
    }

    /// Learns the state of every tracked interface (at start and after a reload).
    pub(super) async fn refresh_tracked_interfaces(&mut self) {
        for name in self.tracking.interface_names() {
            let (index, up) = match self.netlink.interface(&name).await {
                Ok(iface) => (Some(iface.index), iface.up),
                Err(_) => (None, false),
            };
            self.tracking.set_interface(&name, index, up);
        }
    }

    /// A link change for a tracked interface (including one re-created under a new index).
    pub(super) async fn tracked_link_change(&mut self, change: &LinkChange) {
        let name = match self.tracking.interface_with_index(change.index) {
            Some(name) => Some(name),
            None if !change.removed => {
                // Perhaps a tracked interface that did not exist: look it up by name.
                let mut found = None;
                for name in self.tracking.interface_names() {
                    if let Ok(iface) = self.netlink.interface(&name).await
                        && iface.index == change.index
                    {
                        found = Some(name);
                    }
                }
                found
            }
            None => None,
        };
        let Some(name) = name else { return };
        let index = (!change.removed).then_some(change.index);
        if self.tracking.set_interface(&name, index, change.up) {
            tracing::info!(interface = %name, up = change.up, "tracked interface changed");
            self.reevaluate_tracking(&Tracked::Interface(name)).await;
        }
    }
}
