//! One `vrrp_script`: run every `interval` (start to start), each run limited to `timeout`
//! (its process group killed beyond), the outcome sent to the main loop.

use std::time::Duration;

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use super::Update;
use crate::{
    config::VrrpScript,
    exec::{self, Job, Outcome},
};

/// Starts the script's task. `default_user` is `script_user` (or keepalived's default).
pub(super) fn spawn(
    def: VrrpScript,
    default_user: Option<(String, Option<String>)>,
    tx: mpsc::UnboundedSender<Update>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let argv = def.script.argv();
        let ids = exec::script_ids(
            def.script.user.as_deref(),
            def.script.group.as_deref(),
            default_user.as_ref(),
        );
        let interval = Duration::from_millis(u64::from(def.interval_ms));
        let timeout = Duration::from_millis(u64::from(def.timeout_ms));
        let mut next = Instant::now();
        loop {
            let outcome = match &ids {
                Ok(ids) => {
                    let job = Job {
                        argv: argv.clone(),
                        ids: *ids,
                    };
                    exec::run(&job, timeout).await
                }
                Err(user) => {
                    tracing::error!(script = %def.name, %user, "vrrp_script not run: no such user or group");
                    Outcome::NotStarted
                }
            };
            let update = Update::Script {
                name: def.name.clone(),
                outcome,
            };
            if tx.send(update).is_err() {
                return;
            }
            // Start to start; a run that overran its slot is followed by the next at once.
            next += interval;
            let now = Instant::now();
            if next < now {
                next = now;
            }
            tokio::time::sleep_until(next).await;
        }
    })
}
