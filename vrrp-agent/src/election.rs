//! The RFC 9568 election for one VRRPv3 instance, as a pure state machine.
//!
//! No sockets, clocks or tasks: [`Election::handle`] takes an input and the current time
//! (CLOCK_MONOTONIC nanoseconds, the clock the kernel stamps adverts with) and returns the
//! actions the daemon must carry out. Every RFC rule is a unit test below.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::packet::bytes16;
use vrrp_common::{
    advert_rule::{self, Local, Verdict},
    state as kstate, timers,
};

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC, like `bpf_ktime_get_ns`).
pub type Nanos = u64;

/// keepalived sends this many gratuitous ARPs per burst (`garp_master_repeat`).
pub const GARP_REPEAT: u32 = 5;
/// And repeats the burst this long after becoming master (`garp_master_delay`).
pub const GARP_REFRESH_NS: Nanos = 5_000_000_000;
/// A master re-adds its addresses this often, renewing their finite lifetime, so a node whose
/// agent crashed loses them within a few seconds instead of answering for them forever.
pub const ADDRESS_REFRESH_NS: Nanos = 1_000_000_000;

/// RFC 9568 states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Not started, or stopped.
    Initialize,
    /// Listening to a master.
    Backup,
    /// Forwarding for the virtual addresses.
    Master,
    /// The interface is down: neither advertising nor listening.
    Fault,
}

impl State {
    /// The value the kernel's instance map stores for this state.
    pub fn kernel(self) -> u8 {
        match self {
            State::Initialize => kstate::INIT,
            State::Backup => kstate::BACKUP,
            State::Master => kstate::MASTER,
            State::Fault => kstate::FAULT,
        }
    }
}

/// The instance's fixed parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Protocol version, 2 or 3 (selects the Skew_Time formula).
    pub version: u8,
    /// Effective priority, 1-255 (255 = address owner).
    pub priority: u8,
    /// Preempt_Mode.
    pub preempt: bool,
    /// `state MASTER`: with priority 255 the instance starts as master (keepalived's rule).
    pub initial_master: bool,
    /// keepalived's `preempt_delay` (0: none): after startup, and after the first
    /// lower-priority advert heard in Backup, lower-priority adverts keep counting this long.
    pub preempt_delay_ns: Nanos,
    /// Configured Advertisement_Interval in centiseconds.
    pub advert_int_cs: u16,
    /// Local primary address (IPv4, or the IPv6 link-local), sent as the advert source and
    /// used in tie-breaks.
    pub primary: IpAddr,
}

/// A counted advert, as the dataplane recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertSeen {
    /// Source address.
    pub src: IpAddr,
    /// Advertised priority.
    pub priority: u8,
    /// Advertised interval in centiseconds.
    pub interval_cs: u16,
    /// Kernel timestamp of its arrival.
    pub at: Nanos,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The daemon started the instance.
    Startup,
    /// A valid advert for this instance (from the dataplane).
    Advert(AdvertSeen),
    /// Time passed: check the timers.
    Timer,
    /// A sync-group peer became master: follow it (keepalived's `vrrp_sync_group`).
    GroupMaster,
    /// A sync-group peer left master for backup: follow it.
    GroupBackup,
    /// Something makes the instance unusable: its interface lost carrier or went away, a
    /// tracked script, interface, file or process failed, an operator held it, or a
    /// sync-group peer entered FAULT.
    Fault,
    /// Whatever held it in FAULT is gone.
    Recover,
    /// The daemon is stopping.
    Shutdown,
}

/// What the daemon must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The state changed (tell the kernel, log, notify).
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
    /// Send one advert with this priority.
    SendAdvert {
        /// Priority to advertise (0 when leaving).
        priority: u8,
    },
    /// Install the virtual addresses (on becoming master: done before the state is reported).
    AddAddresses,
    /// Renew the virtual addresses' lifetime (a master, once a second: in the background).
    RenewAddresses,
    /// Remove the virtual addresses.
    RemoveAddresses,
    /// Send a burst of gratuitous ARPs for the virtual addresses.
    SendGratuitousArp,
}

/// A master's steady advertising, as [`Election::advert_run`] describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertRun {
    /// When its next advert is due (a point on the grid of `interval`).
    pub next: Nanos,
    /// When its next other timer is due: the adverts before it are all it would do.
    pub until: Nanos,
    /// Its advertisement interval.
    pub interval: Nanos,
    /// The priority its adverts carry.
    pub priority: u8,
}

/// One instance's election state.
#[derive(Clone, Debug)]
pub struct Election {
    params: Params,
    state: State,
    master_adver_interval_cs: u16,
    master_down_at: Option<Nanos>,
    adver_at: Option<Nanos>,
    garp_refresh_at: Option<Nanos>,
    address_refresh_at: Option<Nanos>,
    master: Option<AdvertSeen>,
    last_reassert: Option<Nanos>,
    preempt_hold_until: Nanos,
    lower_since: Option<Nanos>,
    /// The kernel's master-down timer covers this backup: it counted an advert (and armed
    /// its timer) since the last state change. Until then the agent keeps its own deadline,
    /// e.g. right after a master steps down: the advert that beat it was counted while it was
    /// master, and the next ones may not re-arm anything (a priority that rose meanwhile).
    kernel_timing: bool,
}

impl Election {
    /// A new instance in Initialize.
    pub fn new(params: Params) -> Self {
        let interval = params.advert_int_cs;
        Self {
            params,
            state: State::Initialize,
            master_adver_interval_cs: interval,
            master_down_at: None,
            adver_at: None,
            garp_refresh_at: None,
            address_refresh_at: None,
            master: None,
            last_reassert: None,
            preempt_hold_until: 0,
            lower_since: None,
            kernel_timing: false,
        }
    }

    /// New settings for a running instance (a reload that changed only these): priority,
    /// preemption, `preempt_delay` and the advertisement interval. The state is kept; a master
    /// advertises its new priority and interval at once, so peers learn them without waiting.
    pub fn retune(
        &mut self,
        priority: u8,
        preempt: bool,
        preempt_delay_ns: Nanos,
        advert_int_cs: u16,
        now: Nanos,
    ) -> Vec<Action> {
        self.params.priority = priority;
        self.params.preempt = preempt;
        self.params.preempt_delay_ns = preempt_delay_ns;
        self.params.advert_int_cs = advert_int_cs;
        let mut actions = Vec::new();
        if self.state == State::Master {
            self.master_adver_interval_cs = advert_int_cs;
            actions.push(Action::SendAdvert { priority });
            self.adver_at = Some(self.next_advert_after(now));
        }
        actions
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The instance's parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The master heard since the last state change (None while master or before any advert).
    pub fn master(&self) -> Option<&AdvertSeen> {
        self.master.as_ref()
    }

    /// Master_Adver_Interval in centiseconds (learned from the master in Backup).
    pub fn master_adver_interval_cs(&self) -> u16 {
        self.master_adver_interval_cs
    }

    /// When the master-down timer expires, if it runs.
    pub fn master_down_at(&self) -> Option<Nanos> {
        self.master_down_at
    }

    /// Until when `preempt_delay`'s startup hold runs (0: none), for the dataplane.
    pub fn preempt_hold_until(&self) -> Nanos {
        self.preempt_hold_until
    }

    /// Whether the master-down timer has expired (a sync group may veto the takeover).
    pub fn master_down_due(&self, now: Nanos) -> bool {
        self.state == State::Backup && self.master_down_at.is_some_and(|t| t <= now)
    }

    /// Restarts the master-down timer instead of taking over: a sync-group peer still hears
    /// a live master, so the group must not split (keepalived's rule).
    pub fn defer_master_down(&mut self, now: Nanos) {
        if self.state == State::Backup {
            self.master_down_at = Some(now + self.master_down_ns());
        }
    }

    /// Whether this backup's master-down timer runs in the kernel (a master has been heard in
    /// this state), so the daemon learns of its expiry only from a kernel event.
    pub fn kernel_timed(&self) -> bool {
        self.state == State::Backup && self.master.is_some() && self.kernel_timing
    }

    /// When the daemon must call [`Input::Timer`] next.
    ///
    /// In Backup, once an advert has been counted the dataplane's master-down timer (armed in
    /// the kernel by the same [`advert_rule`]) is authoritative and the daemon wakes on its
    /// event instead; before that, the agent's own timer covers a master that never appears.
    pub fn next_wakeup(&self) -> Option<Nanos> {
        let master_down = match (self.state, self.master) {
            _ if self.kernel_timed() => None,
            _ => self.master_down_at,
        };
        [
            master_down,
            self.adver_at,
            self.garp_refresh_at,
            self.address_refresh_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// For a master whose next timer is its advert: when that advert is due, the interval
    /// its adverts follow, the priority they carry, and when its next other timer is due
    /// (`Nanos::MAX` if none). Until then, [`Input::Timer`] would only ever send the same
    /// advert on the grid, so the daemon may send it without asking (an advert train) and
    /// report back with [`Election::adverts_sent_until`].
    pub fn advert_run(&self) -> Option<AdvertRun> {
        if self.state != State::Master {
            return None;
        }
        let next = self.adver_at?;
        let until = [self.garp_refresh_at, self.address_refresh_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Nanos::MAX);
        (next < until).then(|| AdvertRun {
            next,
            until,
            interval: self.advert_int_ns(),
            priority: self.params.priority,
        })
    }

    /// The daemon sent this master's adverts on the grid up to, not including, `next`: the
    /// next one is due then. Ignored outside Master.
    pub fn adverts_sent_until(&mut self, next: Nanos) {
        if self.state == State::Master {
            self.adver_at = Some(next);
        }
    }

    /// Applies one input at time `now`.
    pub fn handle(&mut self, input: Input, now: Nanos) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Startup => {
                if self.state == State::Initialize {
                    self.start(now, &mut actions);
                }
            }
            Input::Advert(advert) => self.advert(advert, now, &mut actions),
            Input::GroupMaster => {
                if self.state == State::Backup {
                    self.become_master(now, &mut actions);
                }
            }
            Input::GroupBackup => {
                if self.state == State::Master {
                    actions.push(Action::RemoveAddresses);
                    self.become_backup(now, &mut actions);
                }
            }
            Input::Fault => {
                if self.state == State::Master {
                    // As keepalived: a master leaving for FAULT says so with priority 0, so a
                    // backup takes over after skew time (on a dead link the send just fails).
                    actions.push(Action::SendAdvert { priority: 0 });
                    actions.push(Action::RemoveAddresses);
                }
                if self.state != State::Initialize {
                    self.transition(State::Fault, &mut actions);
                    self.stop_timers();
                }
            }
            Input::Recover => {
                if self.state == State::Fault {
                    self.start(now, &mut actions);
                }
            }
            Input::Timer => self.timers(now, &mut actions),
            Input::Shutdown => {
                if self.state == State::Master {
                    actions.push(Action::SendAdvert { priority: 0 });
                    actions.push(Action::RemoveAddresses);
                }
                self.transition(State::Initialize, &mut actions);
                self.stop_timers();
            }
        }
        actions
    }

    fn advert(&mut self, advert: AdvertSeen, now: Nanos, actions: &mut Vec<Action>) {
        let lower = advert.priority != 0 && advert.priority < self.params.priority;
        let preempt_hold = lower && self.state == State::Backup && self.preempt_hold(advert.at);
        let local = Local {
            state: self.state.kernel(),
            priority: self.params.priority,
            preempt: self.params.preempt,
            preempt_hold,
            primary: bytes16(self.params.primary),
        };
        match advert_rule::classify(&local, advert.priority, &bytes16(advert.src)) {
            Verdict::ResetTimer => {
                self.master_adver_interval_cs = advert.interval_cs;
                self.master_down_at = Some(advert.at + self.master_down_ns());
                self.master = Some(advert);
                self.kernel_timing = true;
            }
            Verdict::SkewTimer => {
                self.master_down_at = Some(advert.at + self.skew_ns());
                self.master = Some(advert);
                self.kernel_timing = true;
            }
            Verdict::AdvertiseNow => {
                actions.push(Action::SendAdvert {
                    priority: self.params.priority,
                });
                self.adver_at = Some(self.next_advert_after(now));
            }
            Verdict::StepDown => {
                actions.push(Action::RemoveAddresses);
                self.transition(State::Backup, actions);
                self.stop_timers();
                self.master_adver_interval_cs = advert.interval_cs;
                self.master_down_at = Some(advert.at + self.master_down_ns());
                self.master = Some(advert);
            }
            Verdict::Reassert => {
                // The kernel rate-limits these events; the election does too, so the rule holds
                // whatever feeds it.
                let interval = self.advert_int_ns();
                if self
                    .last_reassert
                    .is_none_or(|t| now.saturating_sub(t) >= interval)
                {
                    self.last_reassert = Some(now);
                    actions.push(Action::SendAdvert {
                        priority: self.params.priority,
                    });
                    self.adver_at = Some(self.next_advert_after(now));
                }
            }
            Verdict::Ignore => {}
        }
    }

    fn timers(&mut self, now: Nanos, actions: &mut Vec<Action>) {
        match self.state {
            State::Backup => {
                if self.master_down_at.is_some_and(|t| t <= now) {
                    self.become_master(now, actions);
                }
            }
            State::Master => {
                if let Some(at) = self.adver_at
                    && at <= now
                {
                    actions.push(Action::SendAdvert {
                        priority: self.params.priority,
                    });
                    // On the grid: `at + interval`, or the next grid point if we fell a
                    // whole interval behind.
                    self.adver_at = Some(self.next_advert_after(now));
                }
                if self.garp_refresh_at.is_some_and(|t| t <= now) {
                    actions.push(Action::SendGratuitousArp);
                    self.garp_refresh_at = None;
                }
                if self.address_refresh_at.is_some_and(|t| t <= now) {
                    actions.push(Action::RenewAddresses);
                    self.address_refresh_at = Some(grid_after(now, ADDRESS_REFRESH_NS));
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    /// The same `preempt_delay` rule the kernel applies, on the advert's kernel timestamp.
    fn preempt_hold(&mut self, at: Nanos) -> bool {
        if self.params.preempt_delay_ns == 0 {
            return false;
        }
        let since = *self.lower_since.get_or_insert(at);
        at < self.preempt_hold_until || at < since + self.params.preempt_delay_ns
    }

    /// RFC 9568 6.4.1 as keepalived applies it: an address owner (priority 255) configured
    /// `state MASTER` becomes master at once; everyone else starts as backup.
    fn start(&mut self, now: Nanos, actions: &mut Vec<Action>) {
        if self.params.preempt_delay_ns > 0 {
            self.preempt_hold_until = now + self.params.preempt_delay_ns;
        }
        if self.params.priority == 255 && self.params.initial_master {
            self.become_master(now, actions);
        } else {
            self.become_backup(now, actions);
        }
    }

    fn stop_timers(&mut self) {
        self.master_down_at = None;
        self.adver_at = None;
        self.garp_refresh_at = None;
        self.address_refresh_at = None;
    }

    /// RFC 9568 6.4.1/6.4.2 "transition to Master": send an advert at once, then take the
    /// addresses and announce them. The advert goes first: installing addresses costs
    /// netlink round trips, and every millisecond before the advert is one more in which the
    /// old master's peers see nobody.
    fn become_master(&mut self, now: Nanos, actions: &mut Vec<Action>) {
        self.transition(State::Master, actions);
        actions.push(Action::SendAdvert {
            priority: self.params.priority,
        });
        actions.push(Action::AddAddresses);
        actions.push(Action::SendGratuitousArp);
        self.master_down_at = None;
        self.adver_at = Some(self.next_advert_after(now));
        self.garp_refresh_at = Some(now + GARP_REFRESH_NS);
        self.address_refresh_at = Some(grid_after(now, ADDRESS_REFRESH_NS));
    }

    fn become_backup(&mut self, now: Nanos, actions: &mut Vec<Action>) {
        self.transition(State::Backup, actions);
        // A master's timers must not survive into Backup (a sync group can move a master
        // straight here), or their past deadlines would make the daemon spin.
        self.stop_timers();
        self.master_adver_interval_cs = self.params.advert_int_cs;
        self.master_down_at = Some(now + self.master_down_ns());
    }

    fn transition(&mut self, to: State, actions: &mut Vec<Action>) {
        if self.state != to {
            actions.push(Action::StateChanged {
                from: self.state,
                to,
            });
            self.state = to;
            self.master = None;
            self.lower_since = None;
            self.kernel_timing = false;
        }
    }

    fn master_down_ns(&self) -> Nanos {
        timers::master_down_ns(
            self.params.version,
            self.params.priority,
            self.master_adver_interval_cs,
        )
    }

    fn skew_ns(&self) -> Nanos {
        timers::skew_ns(
            self.params.version,
            self.params.priority,
            self.master_adver_interval_cs,
        )
    }

    fn advert_int_ns(&self) -> Nanos {
        u64::from(self.params.advert_int_cs) * timers::NS_PER_CS
    }

    /// The first point after `now` on the grid of multiples of the advertisement interval
    /// (CLOCK_MONOTONIC). Every master with the same interval advertises on the same grid, so
    /// one wake-up sends them all: K routers at 10 ms cost 100 wake-ups a second, not
    /// 100 x K. The first gap after a transition is therefore up to one interval short
    /// (an early advert is harmless: receivers time from the last one they heard).
    fn next_advert_after(&self, now: Nanos) -> Nanos {
        grid_after(now, self.advert_int_ns())
    }
}

/// The first multiple of `period` after `now`. Periodic work of many instances (adverts,
/// address renewals) lands on the same points, so one wake-up serves them all.
pub fn grid_after(now: Nanos, period: Nanos) -> Nanos {
    let period = period.max(1);
    (now / period + 1) * period
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
