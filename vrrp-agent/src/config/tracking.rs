//! What VRRP instances track: the `vrrp_script`, `track_file` (`vrrp_track_file`) and
//! `vrrp_track_process` blocks, and the `track_script`, `track_interface`, `track_file` and
//! `track_process` lists of `vrrp_instance` and `vrrp_sync_group`.
//!
//! The rules are keepalived's (keepalived.conf(5), "VRRP script(s)", "Track files", "VRRP track
//! processes"): weight 0 means FAULT while down, a positive weight is added while up, a negative
//! one subtracted while down, `reverse` turns both round; an address owner and a sync-group
//! member (without `sync_group_tracking_weight`) ignore weights.

use super::{Diagnostic, Location, Script, Statement, builder::Builder};

/// A `vrrp_script` block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VrrpScript {
    /// Its name, as `track_script` refers to it.
    pub name: String,
    /// The command and the user it runs as.
    pub script: Script,
    /// `interval`: between the starts of two runs (default 1 s).
    pub interval_ms: u32,
    /// `timeout`: a run that takes longer is killed and counts as a failure (default: the
    /// interval).
    pub timeout_ms: u32,
    /// `weight` (default 0: FAULT while failing).
    pub weight: i32,
    /// `weight ... reverse`.
    pub reverse: bool,
    /// `rise`: successes in a row that make a failed script good (default 1).
    pub rise: u32,
    /// `fall`: failures in a row that make a good script failed (default 1).
    pub fall: u32,
    /// `init_fail`: failed until it has succeeded `rise` times.
    pub init_fail: bool,
}

/// A `track_file` (`vrrp_track_file`) block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackFile {
    /// Its name.
    pub name: String,
    /// `file`: the path whose number is read.
    pub path: String,
    /// `weight` the number is multiplied by (default 1; 0: non-zero means FAULT).
    pub weight: i32,
    /// `weight ... reverse`.
    pub reverse: bool,
    /// `init_file [VALUE] [overwrite]`: the value written at start, and whether over an
    /// existing file.
    pub init: Option<(i64, bool)>,
}

/// How the parameters of a `vrrp_track_process` match a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ParamMatch {
    /// Every parameter, and no more.
    Exact,
    /// The configured parameters are the first ones.
    Partial,
    /// As partial, and the last configured one may be a prefix.
    Initial,
}

/// A `vrrp_track_process` block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackProcess {
    /// Its name.
    pub name: String,
    /// `process NAME [PARAM...]`: the process name (or, with parameters or `full_command`,
    /// the command line's first element).
    pub process: String,
    /// Parameters to match, if any.
    pub params: Vec<String>,
    /// How they match (`param_match`; exact when given without a value).
    pub param_match: Option<ParamMatch>,
    /// `weight` (default 1).
    pub weight: i32,
    /// `weight ... reverse`.
    pub reverse: bool,
    /// `quorum`: the fewest matching processes that count as up (default 1).
    pub quorum: u32,
    /// `quorum_max`: the most (default: no limit).
    pub quorum_max: u32,
    /// `fork_delay`: how long quorum must hold before it counts as up.
    pub fork_delay_ms: u32,
    /// `terminate_delay`: how long quorum must be lost before it counts as down.
    pub terminate_delay_ms: u32,
    /// `full_command`: match the whole command line instead of the process name.
    pub full_command: bool,
}

impl TrackProcess {
    /// keepalived's defaults for a tracked process: weight 1, a quorum of one, no delays.
    pub fn new(name: impl Into<String>, process: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            process: process.into(),
            params: Vec::new(),
            param_match: None,
            weight: 1,
            reverse: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay_ms: 0,
            terminate_delay_ms: 0,
            full_command: false,
        }
    }
}

/// What a `track_*` entry refers to.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Tracked {
    /// A `vrrp_script` by name.
    Script(String),
    /// An interface by name.
    Interface(String),
    /// A `track_file` by name.
    File(String),
    /// A `vrrp_track_process` by name.
    Process(String),
}

impl Tracked {
    /// What kind of item ("script", "interface", "file", "process") and its name.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Tracked::Script(n) => ("script", n),
            Tracked::Interface(n) => ("interface", n),
            Tracked::File(n) => ("file", n),
            Tracked::Process(n) => ("process", n),
        }
    }
}

/// One `track_*` entry of an instance or sync group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Track {
    /// What is tracked.
    pub what: Tracked,
    /// `weight W`: overrides the tracked item's own (interfaces: default 0).
    pub weight: Option<i32>,
    /// `reverse` / `noreverse`: overrides the item's own.
    pub reverse: Option<bool>,
}

impl Builder {
    /// `vrrp_script NAME { ... }`.
    pub(super) fn vrrp_script(&mut self, s: &Statement) {
        let Some(name) = self.block_name(s) else {
            return;
        };
        let Some(block) = self.block(s) else { return };
        let mut script = None;
        let mut user = None;
        let mut v = VrrpScript {
            name,
            script: Script::new(""),
            interval_ms: 1000,
            timeout_ms: 0,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            init_fail: false,
        };
        for st in block {
            match st.keyword.text.as_str() {
                "script" => script = self.script(st),
                "interval" => {
                    if let Some(ms) = self.seconds_ms(st, 86_400) {
                        v.interval_ms = ms.max(1);
                    }
                }
                "timeout" => {
                    if let Some(ms) = self.seconds_ms(st, 86_400) {
                        v.timeout_ms = ms;
                    }
                }
                "weight" => {
                    if let Some((w, r)) = self.weight(st, 253) {
                        (v.weight, v.reverse) = (w, r.unwrap_or(false));
                    }
                }
                "rise" => v.rise = self.integer(st, 1, 1_000_000).unwrap_or(v.rise),
                "fall" => v.fall = self.integer(st, 1, 1_000_000).unwrap_or(v.fall),
                "user" => match st.args.as_slice() {
                    [u] => user = Some((u.text.clone(), None)),
                    [u, g] => user = Some((u.text.clone(), Some(g.text.clone()))),
                    _ => self.errors.push(Diagnostic::new(
                        &st.keyword.location,
                        "`user` takes a user and optionally a group",
                    )),
                },
                "init_fail" => v.init_fail = self.flag(st),
                _ => self.unknown(st, "vrrp_script"),
            }
        }
        let Some(mut script) = script else {
            self.errors.push(
                Diagnostic::new(&s.keyword.location, "vrrp_script has no `script`")
                    .hint("add `script \"/usr/bin/killall -0 haproxy\"`"),
            );
            return;
        };
        if let Some((u, g)) = user {
            script.user = Some(u);
            script.group = g;
        }
        v.script = script;
        if v.timeout_ms == 0 {
            v.timeout_ms = v.interval_ms;
        }
        self.vrrp_scripts.push(v);
    }

    /// `track_file NAME { ... }` (and the deprecated `vrrp_track_file`).
    pub(super) fn track_file_block(&mut self, s: &Statement) {
        let Some(name) = self.block_name(s) else {
            return;
        };
        let Some(block) = self.block(s) else { return };
        let mut t = TrackFile {
            name,
            path: String::new(),
            weight: 1,
            reverse: false,
            init: None,
        };
        for st in block {
            match st.keyword.text.as_str() {
                "file" => t.path = self.string(st).unwrap_or_default(),
                "weight" => {
                    if let Some((w, r)) = self.weight(st, i32::MAX) {
                        (t.weight, t.reverse) = (w, r.unwrap_or(false));
                    }
                }
                "init_file" => {
                    let mut value = 0;
                    let mut overwrite = false;
                    for w in &st.args {
                        if w.text == "overwrite" {
                            overwrite = true;
                        } else if let Ok(n) = w.text.parse() {
                            value = n;
                        } else {
                            self.errors.push(Diagnostic::new(
                                &w.location,
                                format!(
                                    "`init_file` takes a number and `overwrite`, not `{}`",
                                    w.text
                                ),
                            ));
                        }
                    }
                    t.init = Some((value, overwrite));
                }
                _ => self.unknown(st, "track_file"),
            }
        }
        if t.path.is_empty() {
            self.errors.push(
                Diagnostic::new(&s.keyword.location, "track_file has no `file`")
                    .hint("add `file \"/etc/keepalived/weight\"`"),
            );
            return;
        }
        self.track_files.push(t);
    }

    /// `vrrp_track_process NAME { ... }`.
    pub(super) fn vrrp_track_process(&mut self, s: &Statement) {
        let Some(name) = self.block_name(s) else {
            return;
        };
        let Some(block) = self.block(s) else { return };
        let mut p = TrackProcess::new(name, "");
        for st in block {
            match st.keyword.text.as_str() {
                "process" => match st.args.split_first() {
                    Some((first, rest)) => {
                        p.process = first.text.clone();
                        p.params = rest.iter().map(|w| w.text.clone()).collect();
                    }
                    None => self.errors.push(Diagnostic::new(
                        &st.keyword.location,
                        "`process` needs a process name",
                    )),
                },
                "param_match" => {
                    p.param_match = match st.args.first().map(|w| w.text.as_str()) {
                        None => Some(ParamMatch::Exact),
                        Some("partial") => Some(ParamMatch::Partial),
                        Some("initial") => Some(ParamMatch::Initial),
                        Some(other) => {
                            self.errors.push(Diagnostic::new(
                                &st.args[0].location,
                                format!("`param_match` takes partial or initial, not `{other}`"),
                            ));
                            None
                        }
                    }
                }
                "weight" => {
                    if let Some((w, r)) = self.weight(st, 254) {
                        (p.weight, p.reverse) = (w, r.unwrap_or(false));
                    }
                }
                "quorum" => p.quorum = self.integer(st, 0, 65_535).unwrap_or(p.quorum),
                "quorum_max" => p.quorum_max = self.integer(st, 0, 65_535).unwrap_or(p.quorum_max),
                "fork_delay" => p.fork_delay_ms = self.seconds_ms(st, 3600).unwrap_or(0),
                "terminate_delay" => p.terminate_delay_ms = self.seconds_ms(st, 3600).unwrap_or(0),
                "delay" => {
                    let ms = self.seconds_ms(st, 3600).unwrap_or(0);
                    (p.fork_delay_ms, p.terminate_delay_ms) = (ms, ms);
                }
                "full_command" => p.full_command = self.flag(st),
                _ => self.unknown(st, "vrrp_track_process"),
            }
        }
        if p.process.is_empty() {
            self.errors.push(Diagnostic::new(
                &s.keyword.location,
                "vrrp_track_process has no `process`",
            ));
            return;
        }
        if p.quorum > p.quorum_max {
            self.errors.push(Diagnostic::new(
                &s.keyword.location,
                format!("quorum {} is above quorum_max {}", p.quorum, p.quorum_max),
            ));
        }
        self.track_processes.push(p);
    }

    /// A `track_script`, `track_interface`, `track_file` or `track_process` block of an
    /// instance or sync group: one item per line, `NAME [weight W] [reverse|noreverse]`.
    /// Returns false when `s` is none of them.
    pub(super) fn track_keyword(
        &mut self,
        s: &Statement,
        tracks: &mut Vec<(Track, Location)>,
    ) -> bool {
        let kind: fn(String) -> Tracked = match s.keyword.text.as_str() {
            "track_script" => Tracked::Script,
            "track_interface" => Tracked::Interface,
            "track_file" => Tracked::File,
            "track_process" => Tracked::Process,
            _ => return false,
        };
        let Some(block) = self.block(s) else {
            return true;
        };
        let limit = if s.keyword.text == "track_file" {
            254
        } else {
            253
        };
        for item in block {
            let mut track = Track {
                what: kind(item.keyword.text.clone()),
                weight: None,
                reverse: None,
            };
            let mut args = item.args.iter();
            while let Some(w) = args.next() {
                match w.text.as_str() {
                    "weight" => match args.next().map(|v| (v, v.text.parse::<i32>())) {
                        Some((_, Ok(n))) if n.abs() <= limit => track.weight = Some(n),
                        Some((v, _)) => self.errors.push(Diagnostic::new(
                            &v.location,
                            format!(
                                "a tracking weight is from -{limit} to {limit}, not `{}`",
                                v.text
                            ),
                        )),
                        None => self
                            .errors
                            .push(Diagnostic::new(&w.location, "`weight` needs a value")),
                    },
                    "reverse" => track.reverse = Some(true),
                    "noreverse" => track.reverse = Some(false),
                    _ => self.errors.push(
                        Diagnostic::new(
                            &w.location,
                            format!("unexpected `{}` in {}", w.text, s.keyword.text),
                        )
                        .hint("write one item per line: `NAME weight -20` (optionally `reverse`)"),
                    ),
                }
            }
            tracks.push((track, item.keyword.location.clone()));
        }
        true
    }

    /// `weight W [reverse]` of a tracked item's own block.
    fn weight(&mut self, s: &Statement, limit: i32) -> Option<(i32, Option<bool>)> {
        let Some(w) = s.args.first() else {
            self.errors.push(Diagnostic::new(
                &s.keyword.location,
                "`weight` is missing its value",
            ));
            return None;
        };
        if let Some(extra) = s.args.get(2) {
            self.errors.push(Diagnostic::new(
                &extra.location,
                format!("unexpected `{}` after the weight", extra.text),
            ));
        }
        let reverse = match s.args.get(1).map(|w| w.text.as_str()) {
            None => None,
            Some("reverse") => Some(true),
            Some(other) => {
                self.errors.push(Diagnostic::new(
                    &s.args[1].location,
                    format!("`weight` takes a number and optionally `reverse`, not `{other}`"),
                ));
                None
            }
        };
        match w.text.parse::<i64>() {
            Ok(n) if n.abs() <= i64::from(limit) => Some((n as i32, reverse)),
            _ => {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!("`weight` is from -{limit} to {limit}, not `{}`", w.text),
                ));
                None
            }
        }
    }

    /// The one name after a tracker block's keyword.
    fn block_name(&mut self, s: &Statement) -> Option<String> {
        match s.args.as_slice() {
            [name] => Some(name.text.clone()),
            _ => {
                self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        format!("{} needs exactly one name", s.keyword.text),
                    )
                    .hint(format!("write `{} chk_service {{`", s.keyword.text)),
                );
                None
            }
        }
    }
}

impl Builder {
    /// Checks that every `track_*` entry names something defined, gives each instance its
    /// sync group's entries, and resolves weights by keepalived's rules: the entry's own, else
    /// the item's, and 0 (FAULT while down) for an address owner or a sync-group member
    /// without `sync_group_tracking_weight`, with a warning where that discards a weight.
    pub(super) fn resolve_tracks(
        &mut self,
        instances: &mut [super::Instance],
        groups: &mut [super::SyncGroup],
    ) {
        for (what, at) in std::mem::take(&mut self.track_refs) {
            let (kind, name, defined): (&str, &str, Vec<&str>) = match &what {
                Tracked::Script(n) => (
                    "vrrp_script",
                    n,
                    self.vrrp_scripts.iter().map(|s| s.name.as_str()).collect(),
                ),
                Tracked::File(n) => (
                    "track_file",
                    n,
                    self.track_files.iter().map(|s| s.name.as_str()).collect(),
                ),
                Tracked::Process(n) => (
                    "vrrp_track_process",
                    n,
                    self.track_processes
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect(),
                ),
                Tracked::Interface(_) => continue,
            };
            if !defined.contains(&name) {
                let hint = if defined.is_empty() {
                    format!("define it with `{kind} {name} {{ ... }}`")
                } else {
                    format!("defined: {}", defined.join(", "))
                };
                self.errors
                    .push(Diagnostic::new(&at, format!("no {kind} named `{name}`")).hint(hint));
            }
        }
        for instance in instances.iter_mut() {
            let group = groups.iter().find(|g| g.members.contains(&instance.name));
            if let Some(group) = group {
                instance.tracks.extend(group.tracks.iter().cloned());
            }
            let weights_allowed = group.is_none_or(|g| g.tracking_weight);
            let mut discarded = false;
            for track in &mut instance.tracks {
                let (weight, reverse) = self.item_weight(&track.what);
                let weight = track.weight.unwrap_or(weight);
                track.reverse = Some(track.reverse.unwrap_or(reverse));
                let keep = instance.priority < 255 && weights_allowed;
                discarded |= weight != 0 && !keep;
                track.weight = Some(if keep { weight } else { 0 });
            }
            if discarded {
                let why = if instance.priority == 255 {
                    "an address owner (priority 255) keeps its priority: a failure means FAULT"
                } else {
                    "a sync group member without sync_group_tracking_weight: a failure means FAULT"
                };
                self.warnings.push(
                    Diagnostic::new(
                        &instance.location,
                        format!(
                            "vrrp_instance {}: tracking weights ignored, {why}",
                            instance.name
                        ),
                    )
                    .hint("this is keepalived's rule; set the weights to 0 to silence this"),
                );
            }
        }
    }

    /// A tracked item's own weight and direction.
    fn item_weight(&self, what: &Tracked) -> (i32, bool) {
        match what {
            Tracked::Script(n) => self
                .vrrp_scripts
                .iter()
                .find(|s| &s.name == n)
                .map(|s| (s.weight, s.reverse)),
            Tracked::File(n) => self
                .track_files
                .iter()
                .find(|s| &s.name == n)
                .map(|s| (s.weight, s.reverse)),
            Tracked::Process(n) => self
                .track_processes
                .iter()
                .find(|s| &s.name == n)
                .map(|s| (s.weight, s.reverse)),
            Tracked::Interface(_) => None,
        }
        .unwrap_or((0, false))
    }

    /// The scripts of the `vrrp_script`s something tracks (the only ones that run).
    pub(super) fn tracked_scripts(&self, instances: &[super::Instance]) -> Vec<Script> {
        self.vrrp_scripts
            .iter()
            .filter(|s| {
                instances
                    .iter()
                    .flat_map(|i| &i.tracks)
                    .any(|t| t.what == Tracked::Script(s.name.clone()))
            })
            .map(|s| s.script.clone())
            .collect()
    }
}
