//! Advert trains: the masters of one advertisement interval, sent as one prepared batch by a
//! thread of their own.
//!
//! Between its other timers (the address renewal once a second, the gratuitous ARP refresh)
//! a master's timer only ever sends the same advert on the grid of its interval
//! ([`Election::advert_run`](crate::election::Election::advert_run)). A train takes those
//! masters off the main loop: their frames are queued once, and a small sender thread sends
//! them with one `sendmmsg` per interface at each grid point. The main loop is not woken for
//! them at all (as on a backup, where the kernel follows the master), and no instance is
//! visited: walking 255 instances every 10 ms, each a few cache misses after the send had
//! evicted them, plus the runtime's wake-up, was most of a master's user CPU.
//!
//! The main loop still owns the elections. It wakes at the members' next other timer (the
//! train's `until`) and dissolves the train, handing each member back to its own timer with
//! [`Election::adverts_sent_until`](crate::election::Election::adverts_sent_until); it does
//! the same before anything else reaches a member (a kernel event, a tracker, a control
//! request, a reload, a link change, or any input to a member). A pass of the timers then
//! forms the train again, usually at the next grid point.

use std::{
    collections::BTreeMap,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use super::{Daemon, now_ns};
use crate::{
    election::{Nanos, grid_after},
    net::sockets::FrameBatch,
};

/// How far past the timer pass that formed it a train may run at most. A master's address
/// renewal (once a second) ends it sooner anyway; the bound makes sure that if the main loop
/// ever stopped coming back (its elections, trackers and address renewals dead), the adverts
/// stop within a second too, and a backup takes over, as it would from a hung keepalived.
const MAX_RUN_NS: Nanos = 1_000_000_000;

/// The masters of one interval on the same grid point, their frames queued per interface.
struct Train {
    interval: Nanos,
    /// The next grid point to send at (not sent yet).
    next: Nanos,
    /// The members' earliest other timer: nothing is sent at or after it.
    until: Nanos,
    members: Vec<usize>,
    /// Per interface; kept (with their sockets) while the train is dissolved, emptied.
    batches: BTreeMap<u32, Option<FrameBatch>>,
}

impl Train {
    fn running(&self) -> bool {
        !self.members.is_empty()
    }

    /// When the sender thread must act for it next, if it must.
    fn due(&self) -> Option<Nanos> {
        (self.running() && self.next < self.until).then_some(self.next)
    }
}

/// What the main loop and the sender thread share.
#[derive(Default)]
struct Shared {
    /// One train per advertisement interval.
    trains: BTreeMap<Nanos, Train>,
    stop: bool,
}

/// The trains and their sender thread.
pub(super) struct Trains {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    sender: Option<JoinHandle<()>>,
    /// Whether each instance is carried by a train (then its deadline is `None`).
    carried: Vec<bool>,
}

impl Trains {
    /// Starts the sender thread (it sleeps until a train is formed).
    pub(super) fn start() -> Self {
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let theirs = shared.clone();
        let sender = std::thread::Builder::new()
            .name("advert-trains".into())
            .spawn(move || send_loop(&theirs))
            .inspect_err(|e| tracing::warn!(error = %e, "no advert trains: adverts go out from the main loop"))
            .ok();
        Self {
            shared,
            sender,
            carried: Vec::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // The sender never panics holding the lock, and the state stays consistent if it did.
        self.shared.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether instance `index` is carried by a train.
    pub(super) fn carries(&self, index: usize) -> bool {
        self.carried.get(index).copied().unwrap_or(false)
    }

    /// The intervals of the running trains that `pick` chooses.
    fn running(&self, pick: impl Fn(&Train) -> bool) -> Vec<Nanos> {
        self.lock()
            .trains
            .iter()
            .filter(|(_, t)| t.running() && pick(t))
            .map(|(&i, _)| i)
            .collect()
    }

    /// When the main loop must next dissolve a train: its members' next other timer.
    pub(super) fn next_end(&self) -> Option<Nanos> {
        self.lock()
            .trains
            .values()
            .filter(|t| t.running())
            .map(|t| t.until)
            .min()
    }
}

impl Drop for Trains {
    fn drop(&mut self) {
        self.lock().stop = true;
        self.shared.1.notify_all();
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

/// The sender thread: sends each running train at its grid points until told to stop.
fn send_loop(shared: &(Mutex<Shared>, Condvar)) {
    let (lock, wake) = shared;
    let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
    while !state.stop {
        let now = now_ns();
        for train in state.trains.values_mut() {
            if train.due().is_none_or(|at| at > now) {
                continue;
            }
            for (ifindex, batch) in &mut train.batches {
                if let Some(Err((lost, e))) = batch.as_mut().map(FrameBatch::send_again) {
                    tracing::warn!(ifindex, lost, error = %e, "sending adverts failed");
                }
            }
            // The next grid point, skipping any this thread slept through (as the election
            // itself does).
            train.next = grid_after(now, train.interval);
        }
        let next = state.trains.values().filter_map(Train::due).min();
        state = match next {
            Some(at) => {
                let timeout = Duration::from_nanos(at.saturating_sub(now_ns()));
                wake.wait_timeout(state, timeout)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => wake.wait(state).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// A master that may join a train, as the formation pass found it.
struct Candidate {
    index: usize,
    next: Nanos,
    until: Nanos,
    priority: u8,
}

impl Daemon {
    /// Dissolves the trains whose members' other timers have come, so the timer pass that
    /// follows serves those members itself.
    pub(super) fn end_due_trains(&mut self, now: Nanos) {
        for interval in self.trains.running(|t| t.until <= now) {
            self.dissolve_train(interval);
        }
    }

    /// Hands every train's members back to their own timers.
    pub(super) fn dissolve_trains(&mut self) {
        for interval in self.trains.running(|_| true) {
            self.dissolve_train(interval);
        }
    }

    /// Hands the train of member `index` back to its members' own timers, if it has one.
    pub(super) fn dissolve_train_of(&mut self, index: usize) {
        if !self.trains.carries(index) {
            return;
        }
        for interval in self.trains.running(|t| t.members.contains(&index)) {
            self.dissolve_train(interval);
        }
    }

    fn dissolve_train(&mut self, interval: Nanos) {
        let (members, next) = {
            let mut shared = self.trains.lock();
            let Some(train) = shared.trains.get_mut(&interval) else {
                return;
            };
            for batch in train.batches.values_mut().flatten() {
                batch.clear();
            }
            (std::mem::take(&mut train.members), train.next)
        };
        for index in members {
            if let Some(flag) = self.trains.carried.get_mut(index) {
                *flag = false;
            }
            if let Some(instance) = self.instances.get_mut(index) {
                instance.election.adverts_sent_until(next);
            }
            self.note_deadline(index);
        }
    }

    /// After a timer pass at `now`: gathers the masters whose next timer is only their advert
    /// into one train per interval (those of an interval that already has one stay out until
    /// it dissolves). Instances whose adverts are not plain multicast frames (unicast peers),
    /// or whose interface's heartbeat is not stamped by the kernel's egress program, are
    /// left to their timers.
    pub(super) fn form_trains(&mut self, now: Nanos) {
        if self.trains.sender.is_none() {
            return;
        }
        if self.trains.carried.len() != self.instances.len() {
            self.dissolve_trains();
            self.trains.carried = vec![false; self.instances.len()];
        }
        let running = self.trains.running(|_| true);
        let mut groups: BTreeMap<(Nanos, Nanos), Vec<Candidate>> = BTreeMap::new();
        for (index, instance) in self.instances.iter().enumerate() {
            if self.trains.carried[index] {
                continue;
            }
            let Some(run) = instance.election.advert_run() else {
                continue;
            };
            if run.next <= now
                || running.contains(&run.interval)
                || !self.dataplane.stamps_in_kernel(instance.adverts.ifindex())
                || instance.adverts.standing_frame(run.priority).is_none()
            {
                continue;
            }
            groups
                .entry((run.interval, run.next))
                .or_default()
                .push(Candidate {
                    index,
                    next: run.next,
                    until: run.until.min(now.saturating_add(MAX_RUN_NS)),
                    priority: run.priority,
                });
        }
        // One train per interval: the largest group of it (normally the only one).
        let mut chosen: BTreeMap<Nanos, Vec<Candidate>> = BTreeMap::new();
        for ((interval, _), group) in groups {
            if chosen.get(&interval).is_none_or(|c| c.len() < group.len()) {
                chosen.insert(interval, group);
            }
        }
        for (interval, group) in chosen {
            self.start_train(interval, &group);
        }
    }

    fn start_train(&mut self, interval: Nanos, group: &[Candidate]) {
        let Some(first) = group.first() else {
            return;
        };
        let mut shared = self
            .trains
            .shared
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let train = shared.trains.entry(interval).or_insert_with(|| Train {
            interval,
            next: 0,
            until: 0,
            members: Vec::new(),
            batches: BTreeMap::new(),
        });
        train.next = first.next;
        train.until = group.iter().map(|c| c.until).min().unwrap_or(first.next);
        for c in group {
            let adverts = &self.instances[c.index].adverts;
            let ifindex = adverts.ifindex();
            let Some(frame) = adverts.standing_frame(c.priority) else {
                continue;
            };
            let batch = train.batches.entry(ifindex).or_insert_with(|| {
                FrameBatch::open(ifindex)
                    .inspect_err(|e| {
                        tracing::warn!(ifindex, error = %format!("{e:#}"), "no advert train on this interface")
                    })
                    .ok()
            });
            let Some(batch) = batch else { continue };
            batch.push(frame);
            train.members.push(c.index);
            self.trains.carried[c.index] = true;
            if let Some(deadline) = self.deadlines.get_mut(c.index) {
                *deadline = None;
            }
        }
        tracing::trace!(
            members = train.members.len(),
            interval_ns = interval,
            "advert train formed"
        );
        drop(shared);
        self.trains.shared.1.notify_all();
    }
}
