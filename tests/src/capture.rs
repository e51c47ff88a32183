//! AF_PACKET capture and injection on an interface inside a namespace.

use std::{
    io,
    mem::{size_of, zeroed},
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::Result;
use vrrp_agent::net::sockets::send_frame;

use crate::netns::run_in;

/// `PACKET_OUTGOING` in `sockaddr_ll.sll_pkttype`: frames this host sent.
const PACKET_OUTGOING: u8 = 4;

/// A raw socket on one interface: sees every frame (both directions) and can send frames.
pub struct Capture {
    fd: OwnedFd,
    ifindex: u32,
}

/// A captured frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The bytes, from the Ethernet header on.
    pub data: Vec<u8>,
    /// Whether this host sent it.
    pub outgoing: bool,
    /// When it was read.
    pub at: Instant,
}

impl Capture {
    /// Opens the socket inside `ns` on `ifname`.
    pub fn open(ns: &str, ifname: &str) -> Result<Self> {
        let ifname = ifname.to_string();
        run_in(ns, move || -> io::Result<Capture> {
            let c = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
            // SAFETY: valid C string.
            let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) } as i32;
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket call, result checked.
            let raw = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    proto.into(),
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_ll is plain data.
            let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex;
            // SAFETY: sll is valid for its size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Capture {
                fd,
                ifindex: ifindex as u32,
            })
        })?
        .map_err(Into::into)
    }

    /// Reads the next frame, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Frame> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is valid for one entry.
        let n = unsafe {
            libc::poll(
                &mut pfd,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if n <= 0 {
            return None;
        }
        let mut buf = vec![0u8; 2048];
        // SAFETY: plain data.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: buffers valid for their lengths.
        let got = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&raw mut sll).cast(),
                &mut len,
            )
        };
        if got < 0 {
            return None;
        }
        buf.truncate(got as usize);
        Some(Frame {
            data: buf,
            outgoing: sll.sll_pkttype == PACKET_OUTGOING,
            at: Instant::now(),
        })
    }

    /// Waits up to `timeout` for an incoming frame matching `pred`.
    pub fn wait_incoming(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if let Some(f) = self.recv(left)
                && !f.outgoing
                && pred(&f.data)
            {
                return Some(f);
            }
        }
    }

    /// Sends one frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        send_frame(self.fd.as_fd(), self.ifindex, frame)
    }
}
