//! Trackers at run time: what `vrrp_script`s, tracked files, processes and interfaces say, and
//! what that means for each instance (FAULT, or a priority adjustment).
//!
//! Each script, file and process watcher is its own task and reports to the main loop over
//! one channel; the main loop keeps the state here and re-evaluates the instances that track
//! what changed. Nothing here blocks the election: a script that hangs only delays its own
//! next run.

mod file;
mod process;
mod script;

use std::collections::{BTreeMap, HashMap};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    config::{Config, Track, TrackFile, TrackProcess, Tracked, VrrpScript},
    exec::Outcome,
};

/// What a tracked item does to an instance now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// It holds the instance in FAULT.
    Fault,
    /// It adds this much to the priority (may be negative or 0).
    Add(i64),
}

/// keepalived's rule for an up/down item: weight 0 means FAULT while down; a positive weight
/// is added while up, a negative one while down; `reverse` swaps up and down and the sign.
pub fn effect(up: bool, weight: i32, reverse: bool) -> Effect {
    let (up, weight) = if reverse {
        (!up, -i64::from(weight))
    } else {
        (up, i64::from(weight))
    };
    match (weight, up) {
        (0, false) => Effect::Fault,
        (0, true) => Effect::Add(0),
        (w, true) if w > 0 => Effect::Add(w),
        (w, false) if w < 0 => Effect::Add(w),
        _ => Effect::Add(0),
    }
}

/// keepalived's rule for a tracked file: with weight 0 a non-zero value means FAULT;
/// otherwise value x weight is added, and below -253 it means FAULT.
pub fn file_effect(value: i64, weight: i32, reverse: bool) -> Effect {
    if weight == 0 {
        return if (value != 0) != reverse {
            Effect::Fault
        } else {
            Effect::Add(0)
        };
    }
    let result = value.saturating_mul(i64::from(weight));
    let result = if reverse { -result } else { result };
    if result < -253 {
        Effect::Fault
    } else {
        Effect::Add(result)
    }
}

/// A base priority adjusted by the trackers' sum, kept in keepalived's [1, 254]; an address
/// owner stays at 255 (its weights were zeroed when the configuration was read).
pub fn effective_priority(base: u8, adjustment: i64) -> u8 {
    if base == 255 {
        return 255;
    }
    (i64::from(base) + adjustment).clamp(1, 254) as u8
}

/// `rise` / `fall` counting of one script's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Whether the script counts as good.
    pub up: bool,
    /// Results in a row that disagree with `up`.
    streak: u32,
}

impl Health {
    /// The state before any run: good unless `init_fail`.
    pub fn new(init_fail: bool) -> Self {
        Self {
            up: !init_fail,
            streak: 0,
        }
    }

    /// Counts one result; true when the state flipped.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> bool {
        if ok == self.up {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        let needed = if ok { rise } else { fall };
        if self.streak >= needed.max(1) {
            self.up = ok;
            self.streak = 0;
            return true;
        }
        false
    }
}

/// A report from a tracker task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// One run of a `vrrp_script` ended.
    Script {
        /// The script's name.
        name: String,
        /// How.
        outcome: Outcome,
    },
    /// A tracked file's number changed.
    File {
        /// The `track_file` name.
        name: String,
        /// The number now in it (0 when missing or unreadable, as keepalived).
        value: i64,
    },
    /// A tracked process's quorum was gained or lost (after its delays).
    Process {
        /// The `vrrp_track_process` name.
        name: String,
        /// Whether the number of matching processes is within the quorum.
        up: bool,
        /// How many match.
        count: u32,
    },
}

/// One tracked item of an instance, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackStatus {
    /// What is tracked.
    #[serde(flatten)]
    pub what: Tracked,
    /// Whether it is up (for a file: its value is 0 or it does not cause FAULT).
    pub up: bool,
    /// A file's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// "fault", or the priority change it makes ("+10", "-20", "0").
    pub effect: String,
}

/// A `vrrp_script`'s counters, for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScriptStatus {
    /// Its name.
    pub name: String,
    /// Whether it counts as good (after rise/fall).
    pub up: bool,
    /// Runs so far.
    pub runs: u64,
    /// Runs that failed (non-zero exit, not started, or timed out).
    pub failures: u64,
    /// Runs killed at their timeout.
    pub timeouts: u64,
}

/// A running watcher: its definition, what it says now, and its task.
struct Watched<D, S> {
    def: D,
    state: S,
    task: JoinHandle<()>,
}

/// A `vrrp_script`'s rise/fall state and counters.
struct ScriptState {
    health: Health,
    status: ScriptStatus,
}

/// Keeps the watchers of `wanted` running: unchanged ones keep their task and state, changed
/// or new ones are (re)started with `start`, the rest are stopped.
fn reconcile<D: PartialEq + Clone, S>(
    running: &mut BTreeMap<String, Watched<D, S>>,
    wanted: &[&D],
    name: impl Fn(&D) -> &String,
    mut start: impl FnMut(&D) -> (S, JoinHandle<()>),
) {
    running.retain(|name, w| {
        let keep = wanted.contains(&&w.def);
        if !keep {
            tracing::info!(tracker = %name, "tracker stopped");
            w.task.abort();
        }
        keep
    });
    for def in wanted {
        if running.contains_key(name(def)) {
            continue;
        }
        let (state, task) = start(def);
        running.insert(
            name(def).clone(),
            Watched {
                def: (*def).clone(),
                state,
                task,
            },
        );
    }
}

/// The trackers' state and tasks.
pub struct Tracking {
    scripts: BTreeMap<String, Watched<VrrpScript, ScriptState>>,
    /// Tracked files and the number each holds.
    files: BTreeMap<String, Watched<TrackFile, i64>>,
    /// Tracked processes and whether their quorum holds.
    processes: BTreeMap<String, Watched<TrackProcess, bool>>,
    /// Tracked interfaces by name: their index while they exist, and whether they are up.
    interfaces: HashMap<String, (Option<u32>, bool)>,
    tx: mpsc::UnboundedSender<Update>,
}

impl Tracking {
    /// No trackers yet; their reports will come out of the returned receiver.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Update>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                scripts: BTreeMap::new(),
                files: BTreeMap::new(),
                processes: BTreeMap::new(),
                interfaces: HashMap::new(),
                tx,
            },
            rx,
        )
    }

    /// Starts the watchers `config` needs and stops the ones it no longer has. A watcher
    /// whose definition did not change keeps running with its state (a reload does not make a
    /// failed script good). As keepalived, only what some instance tracks runs.
    pub fn configure(&mut self, config: &Config) {
        let tracked: Vec<&Tracked> = config
            .instances
            .iter()
            .flat_map(|i| &i.tracks)
            .map(|t| &t.what)
            .collect();
        let wanted = |what: Tracked| tracked.contains(&&what);
        let default_user = crate::exec::default_user(config.scripts.script_user.as_ref());

        let scripts: Vec<&VrrpScript> = config
            .vrrp_scripts
            .iter()
            .filter(|s| wanted(Tracked::Script(s.name.clone())))
            .collect();
        let tx = self.tx.clone();
        reconcile(
            &mut self.scripts,
            &scripts,
            |d| &d.name,
            |def| {
                let health = Health::new(def.init_fail);
                let status = ScriptStatus {
                    name: def.name.clone(),
                    up: health.up,
                    ..ScriptStatus::default()
                };
                let task = script::spawn(def.clone(), default_user.clone(), tx.clone());
                (ScriptState { health, status }, task)
            },
        );
        let files: Vec<&TrackFile> = config
            .track_files
            .iter()
            .filter(|f| wanted(Tracked::File(f.name.clone())))
            .collect();
        reconcile(
            &mut self.files,
            &files,
            |d| &d.name,
            |def| {
                let value = file::prepare(def);
                (value, file::spawn(def.clone(), value, tx.clone()))
            },
        );
        let processes: Vec<&TrackProcess> = config
            .track_processes
            .iter()
            .filter(|p| wanted(Tracked::Process(p.name.clone())))
            .collect();
        reconcile(
            &mut self.processes,
            &processes,
            |d| &d.name,
            |def| process::spawn(def.clone(), tx.clone()),
        );

        self.interfaces
            .retain(|name, _| wanted(Tracked::Interface(name.clone())));
        for what in tracked {
            if let Tracked::Interface(name) = what {
                self.interfaces.entry(name.clone()).or_insert((None, false));
            }
        }
    }

    /// Takes a report in; returns the item whose state changed, if any.
    pub fn update(&mut self, update: Update) -> Option<Tracked> {
        match update {
            Update::Script { name, outcome } => {
                let w = self.scripts.get_mut(&name)?;
                let (def, state) = (&w.def, &mut w.state);
                let status = &mut state.status;
                status.runs += 1;
                if !outcome.success() {
                    status.failures += 1;
                }
                if outcome == Outcome::TimedOut {
                    status.timeouts += 1;
                    tracing::warn!(script = %name, timeout_ms = def.timeout_ms, "vrrp_script timed out: its process group was killed (a failure)");
                }
                let changed = state.health.record(outcome.success(), def.rise, def.fall);
                status.up = state.health.up;
                if changed {
                    let word = if state.health.up {
                        "succeeded"
                    } else {
                        "failed"
                    };
                    // keepalived's wording.
                    tracing::info!(
                        "Script `{name}` now returning {}",
                        if state.health.up { 0 } else { 1 }
                    );
                    tracing::info!(script = %name, ?outcome, "VRRP_Script({name}) {word}");
                }
                changed.then_some(Tracked::Script(name))
            }
            Update::File { name, value } => {
                let state = &mut self.files.get_mut(&name)?.state;
                let changed = *state != value;
                *state = value;
                if changed {
                    tracing::info!(file = %name, value, "tracked file changed");
                }
                changed.then_some(Tracked::File(name))
            }
            Update::Process { name, up, count } => {
                let state = &mut self.processes.get_mut(&name)?.state;
                let changed = *state != up;
                *state = up;
                if changed {
                    tracing::info!(process = %name, up, count, "tracked process quorum {}", if up { "gained" } else { "lost" });
                }
                changed.then_some(Tracked::Process(name))
            }
        }
    }

    /// The tracked interfaces, by name.
    pub fn interface_names(&self) -> Vec<String> {
        self.interfaces.keys().cloned().collect()
    }

    /// Records a tracked interface's state (index None: it does not exist); true on change.
    pub fn set_interface(&mut self, name: &str, index: Option<u32>, up: bool) -> bool {
        match self.interfaces.get_mut(name) {
            Some(state) => {
                let changed = state.1 != up;
                *state = (index, up);
                changed
            }
            None => false,
        }
    }

    /// The tracked interface with this index, if any.
    pub fn interface_with_index(&self, index: u32) -> Option<String> {
        self.interfaces
            .iter()
            .find(|(_, (i, _))| *i == Some(index))
            .map(|(name, _)| name.clone())
    }

    /// What one tracked item does now, and whether it is up.
    fn item(&self, track: &Track) -> (Effect, bool, Option<i64>) {
        let weight = track.weight.unwrap_or(0);
        let reverse = track.reverse.unwrap_or(false);
        match &track.what {
            Tracked::Script(name) => {
                let up = self.scripts.get(name).is_none_or(|s| s.state.health.up);
                (effect(up, weight, reverse), up, None)
            }
            Tracked::Interface(name) => {
                let up = self.interfaces.get(name).is_some_and(|s| s.1);
                (effect(up, weight, reverse), up, None)
            }
            Tracked::Process(name) => {
                let up = self.processes.get(name).is_some_and(|s| s.state);
                (effect(up, weight, reverse), up, None)
            }
            Tracked::File(name) => {
                let value = self.files.get(name).map_or(0, |s| s.state);
                let e = file_effect(value, weight, reverse);
                (e, e != Effect::Fault, Some(value))
            }
        }
    }

    /// What an instance's tracked items add up to: FAULT if any says so, else the sum.
    pub fn evaluate(&self, tracks: &[Track]) -> Effect {
        let mut sum = 0i64;
        for track in tracks {
            match self.item(track).0 {
                Effect::Fault => return Effect::Fault,
                Effect::Add(n) => sum += n,
            }
        }
        Effect::Add(sum)
    }

    /// Each tracked item of an instance, for `status`.
    pub fn describe(&self, tracks: &[Track]) -> Vec<TrackStatus> {
        tracks
            .iter()
            .map(|track| {
                let (effect, up, value) = self.item(track);
                TrackStatus {
                    what: track.what.clone(),
                    up,
                    value,
                    effect: match effect {
                        Effect::Fault => "fault".into(),
                        Effect::Add(0) => "0".into(),
                        Effect::Add(n) => format!("{n:+}"),
                    },
                }
            })
            .collect()
    }

    /// Every running script's counters.
    pub fn scripts(&self) -> Vec<ScriptStatus> {
        self.scripts
            .values()
            .map(|s| s.state.status.clone())
            .collect()
    }

    /// Stops every watcher.
    pub fn stop(&mut self) {
        for s in self.scripts.values() {
            s.task.abort();
        }
        for f in self.files.values() {
            f.task.abort();
        }
        for p in self.processes.values() {
            p.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_keepalived() {
        assert_eq!(effect(false, 0, false), Effect::Fault);
        assert_eq!(effect(true, 0, false), Effect::Add(0));
        assert_eq!(
            effect(true, 0, true),
            Effect::Fault,
            "weight 0 reverse: down when up"
        );
        assert_eq!(effect(true, 10, false), Effect::Add(10));
        assert_eq!(effect(false, 10, false), Effect::Add(0));
        assert_eq!(effect(false, -20, false), Effect::Add(-20));
        assert_eq!(effect(true, -20, false), Effect::Add(0));
        assert_eq!(
            effect(true, 10, true),
            Effect::Add(-10),
            "reverse: decreased when up"
        );
        assert_eq!(
            effect(false, -20, true),
            Effect::Add(20),
            "reverse: increased when down"
        );
    }

    #[test]
    fn files_multiply_and_fault_below_minus_253() {
        assert_eq!(file_effect(0, 0, false), Effect::Add(0));
        assert_eq!(file_effect(3, 0, false), Effect::Fault);
        assert_eq!(file_effect(5, 2, false), Effect::Add(10));
        assert_eq!(file_effect(-5, 2, false), Effect::Add(-10));
        assert_eq!(file_effect(-254, 1, false), Effect::Fault);
        assert_eq!(file_effect(5, 2, true), Effect::Add(-10));
    }

    #[test]
    fn priority_stays_in_range_and_owners_keep_255() {
        assert_eq!(effective_priority(100, -200), 1);
        assert_eq!(effective_priority(100, 200), 254);
        assert_eq!(effective_priority(100, -20), 80);
        assert_eq!(effective_priority(255, -50), 255);
    }

    #[test]
    fn rise_and_fall_count_results_in_a_row() {
        let mut h = Health::new(false);
        assert!(!h.record(false, 2, 3));
        assert!(!h.record(false, 2, 3));
        assert!(!h.record(true, 2, 3), "a success breaks the streak");
        assert!(!h.record(false, 2, 3));
        assert!(!h.record(false, 2, 3));
        assert!(h.record(false, 2, 3));
        assert!(!h.up);
        assert!(!h.record(true, 2, 3));
        assert!(h.record(true, 2, 3));
        assert!(h.up);
        let h = Health::new(true);
        assert!(!h.up, "init_fail starts failed");
    }
}
