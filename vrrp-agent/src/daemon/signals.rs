//! The signals the daemon answers, keepalived's meanings: SIGTERM/SIGINT stop, SIGHUP
//! reloads, SIGUSR1/SIGUSR2/SIGRTMIN+2 write the data, stats and JSON dumps.
//!
//! One task listens to all of them and forwards what arrived over one channel, so the main
//! loop polls a single receiver per wake-up rather than six signal streams (a 10 ms master
//! wakes a hundred times a second).

use anyhow::Result;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use super::dumps::Dump;

/// What a signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Asked {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
    /// A dump.
    Dump(Dump),
}

/// Installs the handlers (before the daemon says it is ready) and starts forwarding.
pub(super) fn listen() -> Result<mpsc::UnboundedReceiver<Asked>> {
    let kinds = [
        (SignalKind::terminate(), Asked::Stop),
        (SignalKind::interrupt(), Asked::Stop),
        (SignalKind::hangup(), Asked::Reload),
        (SignalKind::user_defined1(), Asked::Dump(Dump::Data)),
        (SignalKind::user_defined2(), Asked::Dump(Dump::Stats)),
        (
            SignalKind::from_raw(Dump::Json.signal()),
            Asked::Dump(Dump::Json),
        ),
    ];
    let (tx, rx) = mpsc::unbounded_channel();
    for (kind, asked) in kinds {
        let mut stream = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(asked).is_err() {
                    return;
                }
            }
        });
    }
    Ok(rx)
}
