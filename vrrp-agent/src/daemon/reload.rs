//! Reloading the configuration (SIGHUP, `vrrp-agent reload`) the way keepalived does: an
//! instance whose settings did not change keeps running untouched (a master keeps its VIPs,
//! not even one missed advert); removed instances stop cleanly; new ones start. A
//! configuration with errors changes nothing.
//!
//! An instance whose priority, preemption, `preempt_delay`, interval, accept mode,
//! notifications or addresses (virtual, excluded, routes, rules; same family) changed is
//! retuned in place: a master stays master, advertises the new values at once, removes only
//! the addresses that went and adds and announces only those that came. Other changes
//! (interface, VRID, family, peers, VMAC, ...) make it another instance to keepalived too: the
//! old one stops and the new one starts.

use anyhow::{Result, anyhow};

use vrrp_common::{VipKey, virtual_mac};

use super::{Daemon, Held, Instance, setup};
use crate::{
    config::{self, VirtualRoute, VirtualRule},
    election::{Input, State},
    net::keeper::Holdings,
    notify::Notifier,
    packet::bytes16,
};

impl Daemon {
    /// Gives a running instance new settings it can take in place (see
    /// `config::Instance::retunable_to`): the election, the kernel's copy, notifications.
    async fn retune(&mut self, index: usize, ic: &config::Instance) {
        self.dissolve_train_of(index);
        self.readdress(index, ic).await;
        let old_priority = self.instances[index].election.params().priority;
        // The new base priority with what its trackers say now (FAULT is applied afterwards).
        let priority = self
            .tracked_priority(ic.priority, &ic.tracks)
            .unwrap_or(old_priority);
        let instance = &mut self.instances[index];
        instance.config = ic.clone();
        instance.adverts.invalidate();
        let actions = instance.election.retune(
            priority,
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
        if priority != old_priority {
            self.notify_priority(index);
        }
    }

    /// Gives a running instance its new addresses, routes and rules: the kernel's responder
    /// and address list learn them; a master takes away only what went, adds only what came
    /// (and announces it). Addresses that stay are never touched, so traffic to them goes on.
    async fn readdress(&mut self, index: usize, ic: &config::Instance) {
        let instance = &self.instances[index];
        let old = &instance.config;
        if old.virtual_addresses == ic.virtual_addresses
            && old.excluded_addresses == ic.excluded_addresses
            && old.virtual_routes == ic.virtual_routes
            && old.virtual_rules == ic.virtual_rules
        {
            return;
        }
        let own_mac = if ic.use_vmac {
            virtual_mac(instance.key.family, ic.vrid)
        } else {
            instance.iface.mac
        };
        let (key, iface) = (instance.key, instance.iface.clone());
        let new = match setup::addresses(
            &mut self.dataplane,
            &self.netlink,
            ic,
            &iface,
            own_mac,
            key,
        )
        .await
        {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(instance = %ic.name, error = %format!("{e:#}"), "new addresses not taken");
                return;
            }
        };
        if let Err(e) = self
            .dataplane
            .set_address_list(key, setup::address_list(&ic.virtual_addresses))
        {
            tracing::error!(instance = %ic.name, error = %e, "cannot update the dataplane");
        }
        let instance = &self.instances[index];
        let gone: Vec<&Held> = instance
            .held
            .iter()
            .filter(|h| !new.held.contains(h))
            .collect();
        for held in &gone {
            if !new
                .held
                .iter()
                .any(|n| n.ifindex == held.ifindex && n.vip.address == held.vip.address)
            {
                self.dataplane.remove_vip(&VipKey::new(
                    held.ifindex,
                    setup::family_of(held.vip.address),
                    bytes16(held.vip.address),
                ));
            }
        }
        let master = instance.election.state() == State::Master;
        let came: Vec<&Held> = new
            .held
            .iter()
            .filter(|h| !instance.held.contains(h))
            .collect();
        if master {
            let not_in = |from: &[VirtualRule], to: &[VirtualRule]| -> Vec<VirtualRule> {
                from.iter().filter(|r| !to.contains(r)).cloned().collect()
            };
            let routes = |from: &[(VirtualRoute, Option<u32>)],
                          to: &[(VirtualRoute, Option<u32>)]| {
                from.iter().filter(|r| !to.contains(r)).cloned().collect()
            };
            let addresses =
                |held: &[&Held]| held.iter().map(|h| (h.ifindex, h.vip.clone())).collect();
            let went = Holdings {
                addresses: addresses(&gone),
                rules: not_in(&old.virtual_rules, &ic.virtual_rules),
                routes: routes(&instance.routes, &new.routes),
            };
            let arrived = Holdings {
                addresses: addresses(&came),
                rules: not_in(&ic.virtual_rules, &old.virtual_rules),
                routes: routes(&new.routes, &instance.routes),
            };
            self.keeper.install(&ic.name, false, went);
            self.keeper.install(&ic.name, true, arrived);
            self.keeper.flush().await;
        }
        let (gone, came) = (gone.len(), came.len());
        let instance = &mut self.instances[index];
        instance.announcers = new.announcers;
        let arrived: Vec<usize> = (0..new.held.len())
            .filter(|&n| !instance.held.contains(&new.held[n]))
            .collect();
        instance.held = new.held;
        instance.routes = new.routes;
        if master {
            let announcements = instance.announcements(arrived.iter().map(|&n| &instance.held[n]));
            self.keeper.announce(&ic.name, announcements);
        }
        tracing::info!(instance = %ic.name, added = came, removed = gone, "addresses changed in place");
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
        // Check what can fail before touching anything, so a failure changes nothing: the
        // interfaces new addresses go on, then the new instances' set-up.
        for (_, ic) in &retuned {
            let devs = ic.all_addresses().filter_map(|v| v.dev.as_ref());
            for dev in devs.chain(ic.virtual_routes.iter().filter_map(|r| r.dev.as_ref())) {
                if let Err(e) = self.netlink.interface(dev).await {
                    return Err(e.context(format!(
                        "vrrp_instance {}: dev {dev}: the running configuration stays",
                        ic.name
                    )));
                }
            }
        }
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
        // Commit: the new notification settings, kept instances first in their new order,
        // then the ones to stop.
        if config.scripts != self.scripts {
            self.notifier = Notifier::new(&config.scripts, &self.router_id);
            self.scripts = config.scripts.clone();
        }
        self.tracking.configure(&config);
        self.refresh_tracked_interfaces().await;
        if config.virtual_servers != self.checkers.config() {
            // A reload that changes the services starts their checks over; unchanged checks
            // start from what their predecessors knew, so the forwarding tables do not move.
            let generation = self.checkers.generation().wrapping_add(1);
            self.checkers = crate::checker::Checkers::start(
                &config.virtual_servers,
                crate::exec::default_user(config.scripts.script_user.as_ref()),
                &self.verdicts,
                generation,
                Some(&self.checkers),
            );
        }
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
        if config.rate_limit != self.config.rate_limit
            && let Err(e) = self.dataplane.set_rate_limits(config.rate_limit)
        {
            tracing::error!(error = %format!("{e:#}"), "the new rate limits are not in force");
        }
        self.config = config.clone();
        if let Some(id) = &config.router_id {
            self.router_id = id.clone();
        }
        for i in started.iter().copied() {
            self.start(i).await;
        }
        // Kept instances may track other things now, or the same things differently.
        for i in (0..self.instances.len()).filter(|i| !started.contains(i)) {
            self.reevaluate(i).await;
        }
        Ok(format!(
            "configuration reloaded: {kept} instance(s) kept as they were, {} retuned in place, {} started, {removed} stopped",
            retuned.len(),
            self.instances.len() - kept - retuned.len()
        ))
    }
}
