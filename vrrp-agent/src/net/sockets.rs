//! Sending adverts, gratuitous ARPs and unsolicited neighbour advertisements.
//!
//! Both sockets carry a drop-all socket filter: the kernel's XDP program is the only receive
//! path, so nothing that arrives on the wire ever wakes the agent through a socket.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockFilter, Socket, Type};
use vrrp_common::{IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6};

use crate::{
    net::link::Interface,
    packet::{Advert, Arp, BROADCAST_MAC, ChecksumForm, Ipv4Header, unsolicited_na},
};

/// A classic BPF program that accepts nothing.
fn drop_all() -> [SockFilter; 1] {
    // BPF_RET | BPF_K, return 0 bytes.
    [SockFilter::new(0x06, 0, 0, 0)]
}

/// Raw socket sending one instance's VRRP adverts, to the VRRP group (holding the group
/// membership so NICs and snooping switches deliver adverts to us) or to unicast peers.
pub struct AdvertSender {
    socket: Socket,
    src: IpAddr,
    destinations: Vec<IpAddr>,
    form: ChecksumForm,
    /// The interface's index and MAC: multicast adverts go out as whole Ethernet frames
    /// through the interface's [`FrameBatch`].
    link: (u32, [u8; 6]),
    /// The last advert sent, encoded: a master sends the same advert every interval, so it
    /// is encoded once and re-sent until something changes.
    encoded: Option<Encoded>,
}

/// A datagram ready to send and where to.
type Datagram = (SockAddr, Vec<u8>);

/// One advert, encoded for every destination.
struct Encoded {
    advert: Advert,
    /// For unicast peers: one datagram each, sent on the raw IP socket.
    datagrams: Vec<Datagram>,
    /// For the multicast group: the whole Ethernet frame.
    frame: Option<Vec<u8>>,
}

impl AdvertSender {
    /// Opens an IPv4 sender on `iface` from `src`; with no `unicast_peers` it joins 224.0.0.18
    /// and sends there. The IPv4 header is ours (TTL 255, TOS 0xc0), as keepalived's is.
    pub fn open_v4(iface: &Interface, src: Ipv4Addr, unicast_peers: &[Ipv4Addr]) -> Result<Self> {
        let socket = raw_vrrp_socket(Domain::IPV4, iface)?;
        socket.set_header_included_v4(true)?;
        socket.set_multicast_loop_v4(false)?;
        let group = Ipv4Addr::from(VRRP_GROUP_V4);
        let destinations = if unicast_peers.is_empty() {
            socket
                .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(iface.index))
                .with_context(|| format!("joining 224.0.0.18 on {}", iface.name))?;
            vec![IpAddr::V4(group)]
        } else {
            unicast_peers.iter().copied().map(IpAddr::V4).collect()
        };
        Ok(Self {
            socket,
            src: IpAddr::V4(src),
            destinations,
            form: ChecksumForm::PseudoHeader,
            link: (iface.index, iface.mac),
            encoded: None,
        })
    }

    /// Opens an IPv6 sender on `iface` from `src` (its link-local address, or
    /// `unicast_src_ip`) with hop limit 255; with no `unicast_peers` it joins ff02::12 and
    /// sends there.
    pub fn open_v6(iface: &Interface, src: Ipv6Addr, unicast_peers: &[Ipv6Addr]) -> Result<Self> {
        let socket = raw_vrrp_socket(Domain::IPV6, iface)?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_unicast_hops_v6(255)?;
        socket.set_multicast_if_v6(iface.index)?;
        socket.set_multicast_loop_v6(false)?;
        let group = Ipv6Addr::from(VRRP_GROUP_V6);
        let destinations = if unicast_peers.is_empty() {
            socket
                .join_multicast_v6(&group, iface.index)
                .with_context(|| format!("joining ff02::12 on {}", iface.name))?;
            vec![IpAddr::V6(group)]
        } else {
            unicast_peers.iter().copied().map(IpAddr::V6).collect()
        };
        socket
            .bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, iface.index)))
            .with_context(|| format!("binding to {src}%{}", iface.name))?;
        Ok(Self {
            socket,
            src: IpAddr::V6(src),
            destinations,
            form: ChecksumForm::PseudoHeader,
            link: (iface.index, iface.mac),
            encoded: None,
        })
    }

    /// Sends the VRRPv3/IPv4 checksum in `form` (keepalived's `v3_checksum_as_v2`).
    pub fn with_checksum_form(mut self, form: ChecksumForm) -> Self {
        self.form = form;
        self.encoded = None;
        self
    }

    /// Sends one advert to every destination (the checksum's pseudo-header names each).
    /// A multicast advert is queued on `batch` (sent by [`FrameBatch::flush`]) when there is
    /// one; unicast adverts go out at once.
    pub fn send(&mut self, advert: &Advert, batch: Option<&mut FrameBatch>) -> io::Result<()> {
        if self.encoded.as_ref().is_none_or(|e| e.advert != *advert) {
            self.encoded = Some(self.encode(advert));
        }
        self.transmit(batch)
    }

    /// Sends the last advert again if it had this priority (`None` if it did not, or nothing
    /// was sent yet): the steady state of a master, without rebuilding the advert from the
    /// configuration. [`AdvertSender::invalidate`] must follow any configuration change.
    pub fn resend(
        &mut self,
        priority: u8,
        batch: Option<&mut FrameBatch>,
    ) -> Option<io::Result<()>> {
        let last = self.encoded.as_ref()?;
        (last.advert.priority == priority).then(|| self.transmit(batch))
    }

    /// The Ethernet frame of the last advert, if it went to the multicast group with this
    /// priority: what an advert train re-sends.
    pub fn standing_frame(&self, priority: u8) -> Option<&[u8]> {
        let last = self.encoded.as_ref()?;
        (last.advert.priority == priority)
            .then_some(last.frame.as_deref())
            .flatten()
    }

    /// Forgets the encoded advert (the instance's configuration changed).
    pub fn invalidate(&mut self) {
        self.encoded = None;
    }

    fn transmit(&self, batch: Option<&mut FrameBatch>) -> io::Result<()> {
        let Some(encoded) = &self.encoded else {
            return Ok(());
        };
        if let (Some(frame), Some(batch)) = (&encoded.frame, batch) {
            batch.push(frame);
            return Ok(());
        }
        let mut result = Ok(());
        for (to, datagram) in &encoded.datagrams {
            if let Err(e) = self.socket.send_to(datagram, to) {
                result = Err(e);
            }
        }
        result
    }

    fn encode(&self, advert: &Advert) -> Encoded {
        let datagrams: Vec<Datagram> = self
            .destinations
            .iter()
            .filter_map(|&dst| self.datagram(advert, dst))
            .collect();
        // Only a sender to the group alone sends frames; unicast peers need the IP layer.
        let multicast = matches!(self.destinations.as_slice(), [dst] if dst.is_multicast());
        let frame = multicast.then(|| advert.group_frame(self.src, self.link.1, self.form));
        Encoded {
            advert: advert.clone(),
            datagrams,
            frame,
        }
    }

    /// The interface the adverts leave by.
    pub fn ifindex(&self) -> u32 {
        self.link.0
    }

    /// The datagram carrying `advert` to `dst` and its socket address (`None` across
    /// families).
    fn datagram(&self, advert: &Advert, dst: IpAddr) -> Option<Datagram> {
        let payload = advert.encode(self.src, dst, self.form);
        match (self.src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut header = Ipv4Header::vrrp(src);
                header.dst = dst;
                let to = SockAddr::from(SocketAddrV4::new(dst, 0));
                Some((to, header.wrap(&payload)))
            }
            (_, IpAddr::V6(dst)) => {
                // Link-local and multicast destinations need the interface as scope.
                let scoped = dst.is_multicast() || dst.is_unicast_link_local();
                let scope = if scoped {
                    self.socket.multicast_if_v6().unwrap_or(0)
                } else {
                    0
                };
                let to = SockAddr::from(SocketAddrV6::new(dst, 0, 0, scope));
                Some((to, payload))
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => None,
        }
    }
}

fn raw_vrrp_socket(domain: Domain, iface: &Interface) -> Result<Socket> {
    let socket = Socket::new(
        domain,
        Type::RAW,
        Some(Protocol::from(i32::from(IPPROTO_VRRP))),
    )
    .context("opening a raw VRRP socket (needs CAP_NET_RAW)")?;
    socket.attach_filter(&drop_all())?;
    socket.bind_device(Some(iface.name.as_bytes()))?;
    Ok(socket)
}

/// AF_PACKET socket announcing virtual addresses on one interface: gratuitous ARP for IPv4,
/// unsolicited neighbour advertisements for IPv6.
pub struct Announcer {
    fd: OwnedFd,
    ifindex: u32,
    mac: [u8; 6],
    link_local: Option<Ipv6Addr>,
}

impl Announcer {
    /// Opens the socket on `iface`. It receives nothing (protocol 0 and a drop-all filter).
    pub fn open(iface: &Interface) -> Result<Self> {
        Ok(Self {
            fd: packet_socket()?,
            ifindex: iface.index,
            mac: iface.mac,
            link_local: iface.link_local,
        })
    }

    /// Announces with `mac` (the VMAC under `use_vmac`) instead of the interface's MAC.
    pub fn with_mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = mac;
        self
    }

    /// Announces that this node now holds `address`.
    pub fn announce(&self, address: IpAddr) -> io::Result<()> {
        let frame = match address {
            IpAddr::V4(v4) => Arp::gratuitous(self.mac, v4).frame(BROADCAST_MAC),
            IpAddr::V6(v6) => {
                let src = self.link_local.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        "no IPv6 link-local address",
                    )
                })?;
                unsolicited_na(self.mac, src, v6)
            }
        };
        send_frame(self.fd.as_fd(), self.ifindex, &frame)
    }
}

/// The multicast adverts due on one interface in one wake-up, sent with one `sendmmsg`:
/// every master on the grid of one interval is due at once, so K routers cost one system
/// call per interval instead of K. Frames go through the interface's queueing and TC egress
/// (the heartbeat stamp, VMAC source) like any other; only the IP layer is skipped, which
/// multicast VRRP does not need (no route, no neighbour, TTL 255).
pub struct FrameBatch {
    fd: OwnedFd,
    ifindex: u32,
    frames: Vec<Vec<u8>>,
    /// How many frames are queued (`frames` keeps its buffers between flushes).
    queued: usize,
}

impl FrameBatch {
    /// Opens the AF_PACKET socket for `ifindex`; it receives nothing.
    pub fn open(ifindex: u32) -> Result<Self> {
        Ok(Self {
            fd: packet_socket()?,
            ifindex,
            frames: Vec::new(),
            queued: 0,
        })
    }

    /// Queues a frame.
    pub fn push(&mut self, frame: &[u8]) {
        if let Some(slot) = self.frames.get_mut(self.queued) {
            slot.clear();
            slot.extend_from_slice(frame);
        } else {
            self.frames.push(frame.to_vec());
        }
        self.queued += 1;
    }

    /// Sends what is queued; returns how many frames could not be sent, with the error.
    pub fn flush(&mut self) -> Result<(), (usize, io::Error)> {
        let queued = std::mem::take(&mut self.queued);
        self.send_queued(queued)
    }

    /// Sends what is queued and keeps it queued, to be sent again (an advert train).
    pub fn send_again(&mut self) -> Result<(), (usize, io::Error)> {
        self.send_queued(self.queued)
    }

    /// Forgets what is queued without sending it.
    pub fn clear(&mut self) {
        self.queued = 0;
    }

    fn send_queued(&self, queued: usize) -> Result<(), (usize, io::Error)> {
        let mut sent = 0;
        while sent < queued {
            match self.send_some(&self.frames[sent..queued]) {
                Ok(0) => return Err((queued - sent, io::ErrorKind::WriteZero.into())),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((queued - sent, e)),
            }
        }
        Ok(())
    }

    fn send_some(&self, frames: &[Vec<u8>]) -> io::Result<usize> {
        let mut sll = link_address(self.ifindex);
        let mut iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        let mut messages: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: msghdr is plain data; zeroed is a valid initial value.
                let mut hdr: libc::msghdr = unsafe { zeroed() };
                hdr.msg_name = (&raw mut sll).cast();
                hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
                hdr.msg_iov = iov;
                hdr.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: hdr,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: every message points at a live iovec, frame and sockaddr for the call.
        let n = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                messages.as_mut_ptr(),
                messages.len() as u32,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// An AF_PACKET socket that receives nothing (protocol 0 and a drop-all filter).
fn packet_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error()).context("opening a packet socket");
    }
    // SAFETY: raw is a fresh, owned descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    socket2::SockRef::from(&fd).attach_filter(&drop_all())?;
    Ok(fd)
}

/// The link-layer address of interface `ifindex` for sending whole frames.
fn link_address(ifindex: u32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid initial value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll
}

/// Sends a whole Ethernet frame on an AF_PACKET socket out of interface `ifindex`.
pub fn send_frame(fd: BorrowedFd<'_>, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    if frame.len() < 6 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame shorter than a MAC",
        ));
    }
    let mut sll = link_address(ifindex);
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: frame and sll are valid for the given lengths.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
