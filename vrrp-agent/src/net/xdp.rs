//! XDP attachment over rtnetlink (`IFLA_XDP`), the way `ip link set dev X xdp` does it.
//!
//! A netlink attachment is held by the interface, not by a file descriptor of ours, so the
//! program keeps running when the agent dies: that is what lets it fence a dead master (stop
//! answering for its VIPs once the heartbeat goes stale). A `bpf_link` would be released with
//! the process unless pinned, and a pin made from inside `ip netns exec` lives in a private
//! mount namespace that dies with the agent too.

use std::os::fd::RawFd;

use anyhow::{Context as _, Result, anyhow};
use futures::TryStreamExt as _;
use rtnetlink::packet_route::{
    link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage, LinkXdp, XdpAttached},
    neighbour::NeighbourFlags,
};

use super::link::Netlink;

/// `XDP_FLAGS_UPDATE_IF_NOEXIST`: fail rather than replace a program that appeared meanwhile.
const UPDATE_IF_NOEXIST: u32 = 1;
/// `XDP_FLAGS_SKB_MODE`: generic XDP.
const SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver.
const DRV_MODE: u32 = 4;

/// Where an XDP program runs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (native XDP).
    Native,
    /// In the generic path, after the driver refused native mode.
    Generic,
    /// Not XDP at all: the same receive paths as a TC ingress classifier (cls_bpf on the
    /// clsact qdisc), where XDP cannot attach.
    Tc,
}

impl XdpMode {
    fn flags(self) -> u32 {
        match self {
            Self::Native => DRV_MODE,
            Self::Generic | Self::Tc => SKB_MODE,
        }
    }
}

/// The XDP program an interface runs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Its kernel program id.
    pub id: u32,
    /// The mode it runs in.
    pub mode: XdpMode,
}

/// What an interface says about XDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpFacts {
    /// The program it runs now, if any.
    pub attached: Option<Attached>,
    /// Whether it is a veth, where a native XDP_TX frame reaches the peer only if the peer
    /// runs an XDP program too.
    pub veth: bool,
}

impl Netlink {
    /// The XDP program attached to an interface, if any, and its kind.
    pub async fn xdp_facts(&self, index: u32) -> Result<XdpFacts> {
        let link = self
            .handle()
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .with_context(|| format!("reading interface {index}"))?
            .ok_or_else(|| anyhow!("interface {index} disappeared"))?;
        let mut mode = None;
        let mut id = None;
        let mut veth = false;
        for attribute in &link.attributes {
            if let LinkAttribute::LinkInfo(infos) = attribute {
                veth |= infos.contains(&LinkInfo::Kind(InfoKind::Veth));
            }
            if let LinkAttribute::Xdp(xdp) = attribute {
                for item in xdp {
                    match item {
                        LinkXdp::Attached(XdpAttached::Driver) => mode = Some(XdpMode::Native),
                        LinkXdp::Attached(XdpAttached::SocketBuffer) => {
                            mode = Some(XdpMode::Generic)
                        }
                        LinkXdp::ProgId(p) | LinkXdp::DrvProgId(p) | LinkXdp::SkbProgId(p) => {
                            id = Some(*p)
                        }
                        _ => {}
                    }
                }
            }
        }
        let attached = match (id, mode) {
            (Some(id), Some(mode)) if id != 0 => Some(Attached { id, mode }),
            _ => None,
        };
        Ok(XdpFacts { attached, veth })
    }

    /// Attaches the program `fd` in `mode`. With `replace` false the kernel refuses if any
    /// program is attached by then; with it true, whatever runs in that mode is replaced.
    pub async fn attach_xdp(
        &self,
        index: u32,
        fd: RawFd,
        mode: XdpMode,
        replace: bool,
    ) -> Result<()> {
        let flags = if replace {
            mode.flags()
        } else {
            mode.flags() | UPDATE_IF_NOEXIST
        };
        self.set_xdp(index, fd, flags).await
    }

    /// Detaches whatever XDP program runs in `mode`.
    pub async fn detach_xdp(&self, index: u32, mode: XdpMode) -> Result<()> {
        self.set_xdp(index, -1, mode.flags()).await
    }

    async fn set_xdp(&self, index: u32, fd: RawFd, flags: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(LinkAttribute::Xdp(vec![
            LinkXdp::Fd(fd),
            LinkXdp::Flags(flags),
        ]));
        self.handle()
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| anyhow!("{e}"))
    }
}

impl Netlink {
    /// Adds `mac` to the interface's unicast filter (`bridge fdb add MAC dev IF self
    /// permanent`), so the NIC delivers frames sent to a VMAC.
    pub async fn add_unicast_filter(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        let result = self
            .handle()
            .neighbours()
            .add_bridge(index, &mac)
            .flags(NeighbourFlags::Own)
            .replace()
            .execute()
            .await;
        result.map_err(|e| anyhow!("adding the VMAC to the unicast filter: {e}"))
    }

    /// Removes `mac` from the interface's unicast filter.
    pub async fn remove_unicast_filter(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut request = self
            .handle()
            .neighbours()
            .add_bridge(index, &mac)
            .flags(NeighbourFlags::Own);
        let message = request.message_mut().clone();
        self.handle()
            .neighbours()
            .del(message)
            .execute()
            .await
            .map_err(|e| anyhow!("removing the VMAC from the unicast filter: {e}"))
    }
}
