//! `PING_CHECK`: one ICMP (or ICMPv6) echo request, answered by an echo reply from the target
//! with our identifier. A raw socket, as keepalived's checker runs as root too; the kernel
//! hands every ICMP packet to it, so replies are matched by source and identifier.

use std::{
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd as _, OwnedFd},
};

use tokio::io::unix::AsyncFd;

/// Sends an echo request to `target` and waits (the caller bounds it) for its reply.
pub async fn ping(target: IpAddr, bind_if: Option<&str>) -> Result<(), String> {
    let v6 = target.is_ipv6();
    let (domain, protocol) = if v6 {
        (socket2::Domain::IPV6, socket2::Protocol::ICMPV6)
    } else {
        (socket2::Domain::IPV4, socket2::Protocol::ICMPV4)
    };
    let socket = socket2::Socket::new(domain, socket2::Type::RAW, Some(protocol))
        .map_err(|e| format!("ICMP socket: {e}"))?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    if let Some(dev) = bind_if {
        socket
            .bind_device(Some(dev.as_bytes()))
            .map_err(|e| format!("bind_if {dev}: {e}"))?;
    }
    let id = (std::process::id() as u16) ^ next_sequence();
    let seq = next_sequence();
    let mut request = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    request.extend_from_slice(&id.to_be_bytes());
    request.extend_from_slice(&seq.to_be_bytes());
    request.extend_from_slice(b"vrrp-agent PING_CHECK");
    if !v6 {
        // ICMPv6 checksums are filled in by the kernel; ICMPv4's are ours.
        let sum = checksum(&request);
        request[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let to: socket2::SockAddr = SocketAddr::new(target, 0).into();
    socket
        .send_to(&request, &to)
        .map_err(|e| format!("sending the echo request: {e}"))?;
    let fd: OwnedFd = socket.into();
    // SAFETY: the descriptor is moved into the AsyncFd, which deregisters it before dropping.
    let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    loop {
        let mut guard = fd.readable().await.map_err(|e| e.to_string())?;
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: reading into our own buffers.
        let n = unsafe {
            libc::recvfrom(
                fd.get_ref().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut from).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(e.to_string());
        }
        let packet = &buf[..n as usize];
        // An IPv4 raw socket sees the IP header; an IPv6 one does not.
        let icmp = if v6 {
            packet
        } else {
            let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
            packet.get(ihl..).unwrap_or_default()
        };
        let reply_type = if v6 { 129 } else { 0 };
        if icmp.len() >= 8
            && icmp[0] == reply_type
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
            && source(&from) == Some(target)
        {
            return Ok(());
        }
    }
}

fn source(from: &libc::sockaddr_storage) -> Option<IpAddr> {
    // SAFETY: the kernel filled a sockaddr of the family it says.
    unsafe {
        match i32::from(from.ss_family) {
            libc::AF_INET => {
                let a = &*(from as *const _ as *const libc::sockaddr_in);
                Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let a = &*(from as *const _ as *const libc::sockaddr_in6);
                Some(IpAddr::from(a.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

fn next_sequence() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The Internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
