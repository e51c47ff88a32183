//! Telling the world about state changes, as keepalived does: notify scripts and notify FIFOs.
//!
//! Scripts of one instance (or sync group) run one after the other, in the order the
//! transitions happened, each with a time limit; they run on their own tasks, so a slow or hung
//! script never holds up the election. FIFO lines are written at once and without blocking: a
//! reader that is absent or not reading costs a counted dropped line, never a stall.

mod fifo;
mod mail;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    config::{Notify, Script, ScriptGlobals},
    exec::{Job, Outcome},
};
pub use fifo::Fifo;
pub use mail::Mailer;

/// How long one notify script may run before its process group is killed.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A `vrrp_instance`.
    Instance,
    /// A `vrrp_sync_group` (notified with priority 0).
    Group,
    /// A real or virtual server (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`).
    Server,
}

impl Subject {
    fn word(self) -> &'static str {
        match self {
            Self::Instance => "INSTANCE",
            Self::Group => "GROUP",
            Self::Server => "SERVER",
        }
    }
}

/// Notification counters, for `status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotifyCounters {
    /// Scripts started.
    pub scripts_started: u64,
    /// Scripts that could not start or exited with a failure.
    pub scripts_failed: u64,
    /// Scripts killed for running longer than the limit.
    pub scripts_timed_out: u64,
    /// Lines written to the notify FIFOs.
    pub fifo_lines: u64,
    /// Lines dropped because no reader was there or it was not reading.
    pub fifo_lines_dropped: u64,
    /// Alert mails the SMTP server accepted.
    #[serde(default)]
    pub mails_sent: u64,
    /// Alert mails that could not be delivered.
    #[serde(default)]
    pub mails_failed: u64,
}

#[derive(Default)]
struct Counters {
    scripts_started: AtomicU64,
    scripts_failed: AtomicU64,
    scripts_timed_out: AtomicU64,
}

/// Runs notify scripts and writes the FIFOs.
pub struct Notifier {
    fifos: Vec<Fifo>,
    /// One ordered queue (and its worker) per instance or group.
    queues: HashMap<(Subject, String), mpsc::UnboundedSender<Vec<Job>>>,
    workers: Vec<JoinHandle<()>>,
    default_user: Option<(String, Option<String>)>,
    counters: Arc<Counters>,
    timeout: Duration,
    mailer: Mailer,
}

impl Notifier {
    /// Opens (creating when absent) the FIFOs of `global_defs`; mails name the node
    /// `router_id`.
    pub fn new(globals: &ScriptGlobals, router_id: &str) -> Self {
        let fifos = globals.fifos.iter().map(Fifo::new).collect();
        Self {
            fifos,
            queues: HashMap::new(),
            workers: Vec::new(),
            default_user: crate::exec::default_user(globals.script_user.as_ref()),
            counters: Arc::new(Counters::default()),
            timeout: SCRIPT_TIMEOUT,
            mailer: Mailer::new(globals.mail.clone(), router_id),
        }
    }

    /// Reports a state change: the FIFO line at once, then the state's script and the generic
    /// `notify` script (with `INSTANCE|GROUP name STATE priority` appended), queued in order.
    pub fn notify(
        &mut self,
        subject: Subject,
        name: &str,
        state: &str,
        priority: u8,
        scripts: &Notify,
    ) {
        self.fifo_line(subject, name, state, priority);
        self.mailer
            .state_change(subject, name, state, scripts.smtp_alert);
        let specific = match state {
            "MASTER" => scripts.master.as_ref(),
            "BACKUP" => scripts.backup.as_ref(),
            "FAULT" => scripts.fault.as_ref(),
            "STOP" => scripts.stop.as_ref(),
            "DELETED" => scripts.deleted.as_ref(),
            _ => None,
        };
        let mut jobs = Vec::new();
        if let Some(script) = specific {
            jobs.extend(self.job(script, &[]));
        }
        if let Some(script) = &scripts.generic {
            let appended = [subject.word(), name, state, &priority.to_string()].map(String::from);
            jobs.extend(self.job(script, &appended));
        }
        self.enqueue(subject, name, jobs);
    }

    /// Runs a checker's script (`notify_up`, `quorum_down`, ...) on the queue of `server`, so
    /// one server's scripts run in the order its changes happened.
    pub fn run_script(&mut self, server: &str, script: &Script) {
        let jobs: Vec<Job> = self.job(script, &[]).into_iter().collect();
        self.enqueue(Subject::Server, server, jobs);
    }

    /// Queues jobs on the worker of (subject, name), starting it if needed.
    fn enqueue(&mut self, subject: Subject, name: &str, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let key = (subject, name.to_string());
        let queue = match self.queues.get(&key) {
            Some(queue) => queue.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let worker = tokio::spawn(run_queue(rx, self.counters.clone(), self.timeout));
                self.workers.push(worker);
                self.queues.insert(key, tx.clone());
                tx
            }
        };
        let _ = queue.send(jobs);
    }

    /// Writes keepalived's FIFO line `INSTANCE|GROUP "name" STATE priority` to every FIFO
    /// (STATE may also be MASTER_PRIORITY / BACKUP_PRIORITY for a priority change).
    pub fn fifo_line(&mut self, subject: Subject, name: &str, state: &str, priority: u8) {
        let line = format!("{} \"{name}\" {state} {priority}\n", subject.word());
        for fifo in &mut self.fifos {
            fifo.write_line(&line);
        }
    }

    fn job(&self, script: &Script, appended: &[String]) -> Option<Job> {
        let mut argv = script.argv();
        if argv.is_empty() {
            return None;
        }
        argv.extend_from_slice(appended);
        let ids = match crate::exec::script_ids(
            script.user.as_deref(),
            script.group.as_deref(),
            self.default_user.as_ref(),
        ) {
            Ok(ids) => ids,
            Err(user) => {
                tracing::error!(script = %argv[0], %user, "notify script not run: no such user or group");
                self.counters.scripts_failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        Some(Job { argv, ids })
    }

    /// The counters so far.
    pub fn counters(&self) -> NotifyCounters {
        let (lines, dropped) = self
            .fifos
            .iter()
            .fold((0, 0), |(l, d), f| (l + f.lines, d + f.dropped));
        NotifyCounters {
            scripts_started: self.counters.scripts_started.load(Ordering::Relaxed),
            scripts_failed: self.counters.scripts_failed.load(Ordering::Relaxed),
            scripts_timed_out: self.counters.scripts_timed_out.load(Ordering::Relaxed),
            fifo_lines: lines,
            fifo_lines_dropped: dropped,
            mails_sent: self.mailer.sent.load(Ordering::Relaxed),
            mails_failed: self.mailer.failed.load(Ordering::Relaxed),
        }
    }

    /// Lets queued scripts finish (at most `limit`), for a clean stop.
    pub async fn drain(&mut self, limit: Duration) {
        self.queues.clear();
        let workers = std::mem::take(&mut self.workers);
        let all = futures::future::join_all(workers);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("notify scripts still running at exit");
        }
    }
}

/// Runs one queue's batches in order.
async fn run_queue(
    mut rx: mpsc::UnboundedReceiver<Vec<Job>>,
    counters: Arc<Counters>,
    timeout: Duration,
) {
    while let Some(batch) = rx.recv().await {
        for job in batch {
            counters.scripts_started.fetch_add(1, Ordering::Relaxed);
            match crate::exec::run(&job, timeout).await {
                Outcome::Exited(0) => {
                    tracing::debug!(script = %job.argv.join(" "), "notify script done");
                }
                Outcome::Exited(code) => {
                    counters.scripts_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(script = %job.argv.join(" "), code, "notify script failed");
                }
                Outcome::NotStarted => {
                    counters.scripts_failed.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::TimedOut => {
                    counters.scripts_timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(script = %job.argv.join(" "), ?timeout, "notify script timed out: its process group was killed");
                }
            }
        }
    }
}
