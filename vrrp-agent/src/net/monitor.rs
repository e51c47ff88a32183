//! Link state from rtnetlink events (RTNLGRP_LINK), not polling: an instance goes to FAULT
//! the moment its interface loses carrier or is removed.

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, channel::mpsc::UnboundedReceiver};
use rtnetlink::{
    packet_core::{NetlinkMessage, NetlinkPayload},
    packet_route::{
        RouteNetlinkMessage,
        link::{LinkFlags, LinkMessage},
    },
    sys::{AsyncSocket as _, SocketAddr},
};

/// rtnetlink multicast group mask of link changes.
const RTMGRP_LINK: u32 = 1;

/// A link went up or down (or away).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkChange {
    /// Interface index.
    pub index: u32,
    /// Administratively up with carrier.
    pub up: bool,
    /// The interface was deleted (its index will not come back).
    pub removed: bool,
}

/// Whether a link message says the link can carry adverts.
pub fn link_is_up(link: &LinkMessage) -> bool {
    let flags = link.header.flags;
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp)
}

/// Subscribed link events.
pub struct LinkMonitor {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    /// Held only to keep the connection task alive: it ends when its last handle drops.
    _handle: rtnetlink::Handle,
}

impl LinkMonitor {
    /// Subscribes to link changes.
    pub fn open() -> Result<Self> {
        let (mut connection, handle, messages) = rtnetlink::new_connection()
            .context("opening a route netlink socket for link events")?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .context("subscribing to link events")?;
        tokio::spawn(connection);
        Ok(Self {
            messages,
            _handle: handle,
        })
    }

    /// The next link change (None when the netlink connection is gone).
    pub async fn next(&mut self) -> Option<LinkChange> {
        loop {
            let (message, _) = self.messages.next().await?;
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    return Some(LinkChange {
                        index: link.header.index,
                        up: link_is_up(&link),
                        removed: false,
                    });
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    return Some(LinkChange {
                        index: link.header.index,
                        up: false,
                        removed: true,
                    });
                }
                _ => {}
            }
        }
    }
}
