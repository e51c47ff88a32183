//! Reloading the configuration (SIGHUP, `vrrp-agent reload`) the way keepalived does: an
//! instance whose settings did not change keeps running untouched (a master keeps its VIPs,
//! not even one missed advert); removed instances stop cleanly; new ones start. A
//! configuration with errors changes nothing.
//!
//! An instance whose priority, preemption, `preempt_delay`, interval, accept mode or
//! notifications changed is retuned in place (a master stays master and advertises the new
//! values at once). Other changes (addresses, interface, peers, ...) stop and start it again,
//! where keepalived patches more in place: a master among them gives its VIPs up for a moment.

use anyhow::{Result, anyhow};

use super::{Daemon, Instance, setup};
use crate::{config, election::Input, notify::Notifier};

impl Daemon {
    /// Gives a running instance new settings it can take in place (see
    /// `config::Instance::retunable_to`): the election, the kernel's copy, notifications.
    async fn retune(&mut self, index: usize, ic: &config::Instance) {
        let instance = &mut self.instances[index];
        instance.config = ic.clone();
        let actions = instance.election.retune(
            ic.priority,
            ic.preempt,
            u64::from(ic.preempt_delay_ms) * 1_000_000,
            ic.advert_int_cs,
            super::now_ns(),
        );
        let kernel = instance.kernel_config();
        if let Err(e) = self.dataplane.set_instance(instance.key, kernel) {
            tracing::error!(instance = %ic.name, error = %e, "cannot update the dataplane");
        }
        tracing::info!(instance = %ic.name, priority = ic.priority, "retuned in place");
        for action in actions {
            self.apply(index, action).await;
        }
    }

    /// Reads the configuration again and applies it; returns what changed.
    pub(super) async fn reload(&mut self) -> Result<String> {
        let config = config::load_with(&self.config_path, &self.config_options).map_err(|d| {
            anyhow!("the new configuration has errors, the running one stays:\n{d}")
        })?;
        // Which running instance each configured one continues, if any: one configured exactly
        // alike, else one that can take the new settings in place (priority, interval, ...).
        let mut used = vec![false; self.instances.len()];
        let mut matched: Vec<Option<usize>> = vec![None; config.instances.len()];
        let mut retuned = Vec::new();
        for pass in [false, true] {
            for (n, ic) in config.instances.iter().enumerate() {
                if matched[n].is_some() {
                    continue;
                }
                let found = self.instances.iter().enumerate().position(|(i, running)| {
                    !used[i]
                        && if pass {
                            running.config.retunable_to(ic)
                        } else {
                            running.config.same_settings(ic)
                        }
                });
                if let Some(i) = found {
                    used[i] = true;
                    matched[n] = Some(i);
                    if pass {
                        retuned.push((i, ic.clone()));
                    }
                }
            }
        }
        // Set the new instances up before touching anything, so a failure changes nothing.
        let mut fresh = Vec::new();
        let mut waiting = Vec::new();
        for (ic, m) in config.instances.iter().zip(&matched) {
            if m.is_some() {
                continue;
            }
            if setup::waits_for_interface(&self.netlink, &config, ic).await {
                waiting.push(ic.clone());
                continue;
            }
            match setup::instance(&mut self.dataplane, &self.netlink, &config, ic).await {
                Ok(instance) => fresh.push(instance),
                Err(e) => {
                    for instance in &fresh {
                        self.dataplane.remove_instance(&instance.key);
                    }
                    return Err(e.context(format!(
                        "vrrp_instance {}: the running configuration stays",
                        ic.name
                    )));
                }
            }
        }
        // Commit: kept instances first in their new order, then the ones to stop.
        for (i, ic) in &retuned {
            self.retune(*i, ic).await;
        }
        let mut old: Vec<Option<Instance>> = std::mem::take(&mut self.instances)
            .into_iter()
            .map(Some)
            .collect();
        let mut fresh = fresh.into_iter();
        let mut started = Vec::new();
        for m in &matched {
            let next = match m.and_then(|i| old[i].take()) {
                Some(kept) => kept,
                None => match fresh.next() {
                    Some(instance) => {
                        started.push(self.instances.len());
                        instance
                    }
                    None => continue,
                },
            };
            self.instances.push(next);
        }
        let kept = self.instances.len() - started.len() - retuned.len();
        let stopping: Vec<Instance> = old.into_iter().flatten().collect();
        let removed = stopping.len();
        // Groups are rebuilt below; the stopping instances must not drag anybody along.
        self.groups.clear();
        let first_stopping = self.instances.len();
        self.instances.extend(stopping);
        for i in first_stopping..self.instances.len() {
            self.instances[i].deleting = true;
            self.handle(i, Input::Shutdown).await;
            self.forget(i).await;
        }
        self.instances.truncate(first_stopping);

        self.groups = setup::groups(&config, &self.instances);
        self.waiting = waiting;
        self.config = config.clone();
        if let Some(id) = &config.router_id {
            self.router_id = id.clone();
        }
        if config.scripts != self.scripts {
            self.notifier = Notifier::new(&config.scripts, &self.router_id);
            self.scripts = config.scripts.clone();
        }
        for i in started {
            self.start(i).await;
        }
        Ok(format!(
            "configuration reloaded: {kept} instance(s) kept as they were, {} retuned in place, {} started, {removed} stopped",
            retuned.len(),
            self.instances.len() - kept - retuned.len()
        ))
    }
}
