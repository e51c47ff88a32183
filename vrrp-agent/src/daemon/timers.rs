//! The timer pass and advert sending: which instances are due (a dense deadline array), a
//! backup's election brought up to date from the kernel before it acts on time, and adverts
//! queued per interface and flushed with one `sendmmsg` each.

use super::{Daemon, advert_seen, now_ns};
use crate::{election::Input, net::sockets::FrameBatch, packet::Advert};

/// How long past the kernel's master-down deadline its event may still be on its way before
/// the watchdog acts on the deadline itself.
const KERNEL_TIMER_GRACE_NS: u64 = 200_000_000;

/// How often the watchdog looks at the kernel's master-down timers.
pub(super) const KERNEL_TIMER_WATCH: std::time::Duration = std::time::Duration::from_secs(1);

impl Daemon {
    /// Runs the timers of the instances whose deadline has come (on the advert grid, every
    /// master with one interval at once); the others are not touched, so a wake-up costs
    /// what is due, not one pass over every instance.
    pub(super) async fn timers_due(&mut self) {
        if self.deadlines.len() != self.instances.len() {
            self.refresh_deadlines();
        }
        let now = now_ns();
        self.end_due_trains(now);
        for i in 0..self.instances.len() {
            if self.deadlines[i].is_some_and(|at| at <= now) {
                self.timer(i).await;
            }
        }
        self.form_trains(now);
    }

    /// Recomputes every instance's next deadline (`None` for those a train carries).
    pub(super) fn refresh_deadlines(&mut self) {
        self.deadlines.clear();
        for (i, instance) in self.instances.iter().enumerate() {
            let carried = self.trains.carries(i);
            self.deadlines.push(
                (!carried)
                    .then(|| instance.election.next_wakeup())
                    .flatten(),
            );
        }
    }

    /// Records an instance's next deadline after its election moved.
    pub(super) fn note_deadline(&mut self, index: usize) {
        let carried = self.trains.carries(index);
        if let Some(slot) = self.deadlines.get_mut(index) {
            *slot = (!carried)
                .then(|| self.instances[index].election.next_wakeup())
                .flatten();
        }
    }

    /// Time passed for an instance (its own deadline, another instance's, or the kernel's
    /// master-down timer). A backup's election first learns the last advert the kernel
    /// counted: events come only on change, so its own copy of the master-down deadline is
    /// stale while a healthy master keeps advertising, and acting on it would take over from
    /// a live master whenever anything else wakes the daemon.
    /// The map is read only when the stale deadline has passed (`master_down_due`), the one
    /// case where it matters: a wake-up per master advert must not cost a syscall per backup.
    pub(super) async fn timer(&mut self, index: usize) {
        let instance = &self.instances[index];
        if instance.election.master_down_due(now_ns())
            && let Some(seen) = self.dataplane.seen(&instance.key)
            && seen.generation == instance.generation
            && instance.election.master().is_none_or(|m| m.at < seen.at_ns)
        {
            let advert = advert_seen(&seen, &instance.key);
            self.handle(index, Input::Advert(advert)).await;
        }
        self.handle(index, Input::Timer).await;
    }

    /// The safety net under the kernel's master-down timers, run once a second: a backup whose
    /// kernel timer expired more than [`KERNEL_TIMER_GRACE_NS`] ago without its event reaching
    /// us (a ring buffer filled by a flood drops events; `events_lost` counts them) acts on it
    /// now instead of following a dead master forever; and a change of the master the kernel
    /// rate-limited out of the events is read from `SEEN`. One map read per such backup per
    /// second (two when a change was held back).
    pub(super) async fn watch_kernel_timers(&mut self) {
        let now = now_ns();
        for i in 0..self.instances.len() {
            let instance = &self.instances[i];
            if !instance.election.kernel_timed() {
                continue;
            }
            let Some(state) = self.dataplane.kernel_timer(&instance.key) else {
                continue;
            };
            if state.generation != instance.generation {
                continue;
            }
            // A change of the master the kernel held back from the events (more than one an
            // interval): learnt from its latest advert now.
            if instance
                .election
                .master()
                .is_some_and(|m| m.at < state.news_held_ns)
                && let Some(seen) = self.dataplane.seen(&instance.key)
                && seen.generation == instance.generation
            {
                let advert = advert_seen(&seen, &instance.key);
                self.handle(i, Input::Advert(advert)).await;
            }
            let at = state.master_down_at_ns;
            if at.saturating_add(KERNEL_TIMER_GRACE_NS) > now {
                continue;
            }
            self.timer(i).await;
            let instance = &self.instances[i];
            if !instance.election.kernel_timed() {
                tracing::warn!(
                    instance = %instance.config.name,
                    late_ms = now.saturating_sub(at) / 1_000_000,
                    "the kernel's master-down timer expired without its event reaching the agent: acted on it late"
                );
            }
        }
    }

    /// Sends one advert (re-sending the encoded one while nothing changed). Without the
    /// kernel's egress stamp the heartbeat that keeps the XDP fence open is stamped here.
    pub(super) fn send_advert(&mut self, index: usize, priority: u8) {
        // Sent from here, it is no longer the train's advert.
        self.dissolve_train_of(index);
        let instance = &mut self.instances[index];
        let ifindex = instance.adverts.ifindex();
        // Opened once per interface; a failure is remembered (and logged once), and that
        // interface's adverts go out one by one on the raw socket.
        let mut batch = self
            .batches
            .entry(ifindex)
            .or_insert_with(|| {
                FrameBatch::open(ifindex)
                    .inspect_err(|e| {
                        tracing::warn!(ifindex, error = %format!("{e:#}"), "adverts go out one by one")
                    })
                    .ok()
            })
            .as_mut();
        let sent = match instance.adverts.resend(priority, batch.as_deref_mut()) {
            Some(sent) => sent,
            None => {
                let advert = Advert {
                    version: instance.config.version,
                    auth: instance.config.auth_pass,
                    vrid: instance.config.vrid,
                    priority,
                    interval_cs: instance.config.advert_int_cs,
                    addresses: instance
                        .config
                        .virtual_addresses
                        .iter()
                        .map(|v| v.address)
                        .collect(),
                };
                instance.adverts.send(&advert, batch)
            }
        };
        match sent {
            Ok(()) if !self.dataplane.stamps_in_kernel(instance.iface.index) => {
                self.dataplane.stamp_heartbeat(instance.key, now_ns());
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(instance = %instance.config.name, error = %e, "sending an advert failed")
            }
        }
    }

    /// Sends the multicast adverts queued in this pass, one system call per interface.
    pub(super) fn flush_adverts(&mut self) {
        for (ifindex, batch) in &mut self.batches {
            if let Some(Err((lost, e))) = batch.as_mut().map(FrameBatch::flush) {
                tracing::warn!(ifindex, lost, error = %e, "sending adverts failed");
            }
        }
    }
}
