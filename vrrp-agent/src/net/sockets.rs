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
        })
    }

    /// Sends the VRRPv3/IPv4 checksum in `form` (keepalived's `v3_checksum_as_v2`).
    pub fn with_checksum_form(mut self, form: ChecksumForm) -> Self {
        self.form = form;
        self
    }

    /// Sends one advert to every destination (the checksum's pseudo-header names each).
    pub fn send(&self, advert: &Advert) -> io::Result<()> {
        let mut result = Ok(());
        for &dst in &self.destinations {
            let payload = advert.encode(self.src, dst, self.form);
            let sent = match (self.src, dst) {
                (IpAddr::V4(src), IpAddr::V4(dst)) => {
                    let mut header = Ipv4Header::vrrp(src);
                    header.dst = dst;
                    let to = SockAddr::from(SocketAddrV4::new(dst, 0));
                    self.socket.send_to(&header.wrap(&payload), &to)
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
                    self.socket.send_to(&payload, &to)
                }
                (IpAddr::V6(_), IpAddr::V4(_)) => continue,
            };
            if let Err(e) = sent {
                result = Err(e);
            }
        }
        result
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
