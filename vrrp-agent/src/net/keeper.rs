//! The address keeper: installs, renews and removes virtual addresses, rules and routes, and
//! sends the gratuitous ARPs / unsolicited NAs that follow them, on a thread of its own.
//!
//! Netlink requests run under the kernel's RTNL lock, which any other process (another
//! daemon, `ip`, a namespace being torn down) can hold for milliseconds. Were they made from
//! the election's loop, an advert due at 10 ms intervals would wait for that lock. Here the
//! loop only queues work; the keeper carries it out in order (an address before its
//! announcement, a removal before a re-add), and [`AddressKeeper::flush`] waits for
//! everything queued (at shutdown, so no address outlives the daemon's mastership).

use std::{net::IpAddr, sync::Arc};

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, oneshot};

use crate::{
    config::{VirtualAddress, VirtualRoute, VirtualRule},
    election::GARP_REPEAT,
    net::{link::Netlink, sockets::Announcer},
};

/// What an instance installs or removes: its addresses (with the interface each goes on),
/// rules and routes.
#[derive(Clone, Debug, Default)]
pub struct Holdings {
    /// Addresses and their interface index.
    pub addresses: Vec<(u32, VirtualAddress)>,
    /// `virtual_rules`.
    pub rules: Vec<VirtualRule>,
    /// `virtual_routes` with their resolved `dev`.
    pub routes: Vec<(VirtualRoute, Option<u32>)>,
}

impl Holdings {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.rules.is_empty() && self.routes.is_empty()
    }
}

/// One announcement: an address and the socket of the interface it is announced on.
pub type Announcement = (Arc<Announcer>, IpAddr);

enum Job {
    Install {
        instance: String,
        add: bool,
        holdings: Holdings,
    },
    Announce {
        instance: String,
        announcements: Vec<Announcement>,
    },
    Flush(oneshot::Sender<()>),
}

/// The handle the election's loop queues work on.
pub struct AddressKeeper {
    jobs: mpsc::UnboundedSender<Job>,
}

impl AddressKeeper {
    /// Starts the keeper's thread with its own netlink connection.
    pub fn start() -> Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("address-keeper".into())
            .spawn(move || run(rx, ready_tx))
            .context("starting the address keeper thread")?;
        ready_rx
            .recv()
            .context("the address keeper thread ended at once")??;
        Ok(Self { jobs })
    }

    /// Queues adding (or renewing) or removing what `holdings` names: addresses first, then
    /// rules, then routes, which usually depend on the addresses.
    pub fn install(&self, instance: &str, add: bool, holdings: Holdings) {
        if holdings.is_empty() {
            return;
        }
        self.queue(Job::Install {
            instance: instance.to_string(),
            add,
            holdings,
        });
    }

    /// Queues [`GARP_REPEAT`] announcements of each address (after whatever is queued before).
    pub fn announce(&self, instance: &str, announcements: Vec<Announcement>) {
        if announcements.is_empty() {
            return;
        }
        self.queue(Job::Announce {
            instance: instance.to_string(),
            announcements,
        });
    }

    /// Waits until everything queued so far has been done.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        self.queue(Job::Flush(done));
        let _ = wait.await;
    }

    fn queue(&self, job: Job) {
        if self.jobs.send(job).is_err() {
            tracing::error!("the address keeper has stopped: virtual addresses are not kept");
        }
    }
}

/// The keeper's thread: a runtime of its own, so netlink never waits on the election's loop
/// nor the loop on netlink.
fn run(mut jobs: mpsc::UnboundedReceiver<Job>, ready: std::sync::mpsc::Sender<Result<()>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(e).context("building the address keeper's runtime"));
            return;
        }
    };
    runtime.block_on(async move {
        let netlink = match Netlink::connect() {
            Ok(netlink) => {
                let _ = ready.send(Ok(()));
                netlink
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Install {
                    instance,
                    add,
                    holdings,
                } => install(&netlink, &instance, add, &holdings).await,
                Job::Announce {
                    instance,
                    announcements,
                } => announce(&instance, &announcements),
                Job::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    });
}

/// Adds or removes; failures are logged and the rest still goes on.
async fn install(netlink: &Netlink, name: &str, add: bool, holdings: &Holdings) {
    for (ifindex, vip) in &holdings.addresses {
        let result = if add {
            netlink.add_address(*ifindex, vip).await
        } else {
            netlink.remove_address(*ifindex, vip).await
        };
        if let Err(e) = result {
            tracing::error!(instance = %name, error = %format!("{e:#}"), "virtual address");
        }
    }
    for rule in &holdings.rules {
        let result = if add {
            netlink.add_rule(rule).await
        } else {
            netlink.remove_rule(rule).await
        };
        if let Err(e) = result {
            tracing::error!(instance = %name, error = %format!("{e:#}"), "virtual rule");
        }
    }
    for (route, index) in &holdings.routes {
        let result = if add {
            netlink.add_route(route, *index).await
        } else {
            netlink.remove_route(route, *index).await
        };
        if let Err(e) = result {
            tracing::error!(instance = %name, error = %format!("{e:#}"), "virtual route");
        }
    }
}

fn announce(name: &str, announcements: &[Announcement]) {
    for _ in 0..GARP_REPEAT {
        for (announcer, address) in announcements {
            if let Err(e) = announcer.announce(*address) {
                tracing::warn!(instance = %name, error = %e, "announcing an address failed");
            }
        }
    }
}
