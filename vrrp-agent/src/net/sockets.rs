//! Sending adverts and gratuitous ARPs.
//!
//! Both sockets carry a drop-all socket filter: the kernel's XDP program is the only receive
//! path, so nothing that arrives on the wire ever wakes the agent through a socket.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockFilter, Socket, Type};
use vrrp_common::{IPPROTO_VRRP, VRRP_GROUP_V4};

use crate::{
    net::link::Interface,
    packet::{Advert, Arp, BROADCAST_MAC, ChecksumForm, Ipv4Header},
};

/// A classic BPF program that accepts nothing.
fn drop_all() -> [SockFilter; 1] {
    // BPF_RET | BPF_K, return 0 bytes.
    [SockFilter::new(0x06, 0, 0, 0)]
}

/// Raw IPv4 socket sending one instance's VRRP adverts, to 224.0.0.18 (holding the group
/// membership so NICs and snooping switches deliver adverts to us) or to unicast peers.
pub struct AdvertSender {
    socket: Socket,
    src: Ipv4Addr,
    destinations: Vec<Ipv4Addr>,
}

impl AdvertSender {
    /// Opens the socket on `iface`, sending from `src`; with no `unicast_peers` it joins the
    /// VRRP group and sends there.
    pub fn open(iface: &Interface, src: Ipv4Addr, unicast_peers: &[Ipv4Addr]) -> Result<Self> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )
        .context("opening a raw VRRP socket (needs CAP_NET_RAW)")?;
        socket.attach_filter(&drop_all())?;
        socket.set_header_included_v4(true)?;
        socket.bind_device(Some(iface.name.as_bytes()))?;
        socket.set_multicast_loop_v4(false)?;
        let group = Ipv4Addr::from(VRRP_GROUP_V4);
        let destinations = if unicast_peers.is_empty() {
            socket
                .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(iface.index))
                .with_context(|| format!("joining 224.0.0.18 on {}", iface.name))?;
            vec![group]
        } else {
            unicast_peers.to_vec()
        };
        Ok(Self {
            socket,
            src,
            destinations,
        })
    }

    /// Sends one advert to every destination (IPv4 header built here: TTL 255, TOS 0xc0; the
    /// checksum's pseudo-header names each destination).
    pub fn send(&self, advert: &Advert) -> io::Result<()> {
        let mut result = Ok(());
        for &dst in &self.destinations {
            let payload = advert.encode(self.src, dst, ChecksumForm::PseudoHeader);
            let mut header = Ipv4Header::vrrp(self.src);
            header.dst = dst;
            let sent = self.socket.send_to(
                &header.wrap(&payload),
                &SockAddr::from(SocketAddrV4::new(dst, 0)),
            );
            if let Err(e) = sent {
                result = Err(e);
            }
        }
        result
    }
}

/// AF_PACKET socket for gratuitous ARPs on one interface.
pub struct ArpSender {
    fd: OwnedFd,
    ifindex: u32,
    mac: [u8; 6],
}

impl ArpSender {
    /// Opens the socket on `iface`. It receives nothing (protocol 0 and a drop-all filter).
    pub fn open(iface: &Interface) -> Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error()).context("opening a packet socket");
        }
        // SAFETY: raw is a fresh, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = socket2::SockRef::from(&fd);
        sock.attach_filter(&drop_all())?;
        Ok(Self {
            fd,
            ifindex: iface.index,
            mac: iface.mac,
        })
    }

    /// Broadcasts one gratuitous ARP for `address`.
    pub fn announce(&self, address: Ipv4Addr) -> io::Result<()> {
        let frame = Arp::gratuitous(self.mac, address).frame(BROADCAST_MAC);
        send_frame(self.fd.as_fd(), self.ifindex, &frame)
    }
}

/// Sends a whole Ethernet frame on an AF_PACKET socket out of interface `ifindex`.
pub fn send_frame(fd: BorrowedFd<'_>, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    if frame.len() < 6 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame shorter than a MAC",
        ));
    }
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid initial value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
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
