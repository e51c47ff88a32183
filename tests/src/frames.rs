//! Crafted frames: VRRP adverts (valid, or broken in exactly one way) and ARP requests, and a
//! background sender that streams adverts at a fixed rate.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use vrrp_agent::packet::{
    ARP_REQUEST, Advert, Arp, BROADCAST_MAC, ChecksumForm, ETH_P_IP, ETH_P_IPV6, Ipv4Header,
    checksum, ethernet, ipv4_multicast_mac, ipv6_header, ipv6_multicast_mac,
};
use vrrp_common::{IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6};

use crate::Capture;

/// One way an advert can be broken (or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Flaw {
    /// A valid advert.
    None = 0,
    /// TTL 254 instead of 255.
    Ttl254 = 1,
    /// The VRRP checksum is off by one.
    BadChecksum = 2,
    /// The IP header claims four bytes fewer than the address list needs.
    TooShort = 3,
    /// Nothing is sent.
    Silent = 4,
}

impl Flaw {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Flaw::None,
            1 => Flaw::Ttl254,
            2 => Flaw::BadChecksum,
            3 => Flaw::TooShort,
            _ => Flaw::Silent,
        }
    }

    /// The dataplane counter that must grow for this flaw.
    pub fn counter(self) -> &'static str {
        match self {
            Flaw::None => "valid-adverts",
            Flaw::Ttl254 => "ip-ttl-errors",
            Flaw::BadChecksum => "checksum-errors",
            Flaw::TooShort => "packet-length-errors",
            Flaw::Silent => "vrrp-rx",
        }
    }
}

/// A VRRPv3 advert frame from `src` (`src_mac`), broken as `flaw` says.
pub fn advert_frame(src_mac: [u8; 6], src: Ipv4Addr, advert: &Advert, flaw: Flaw) -> Vec<u8> {
    let group = Ipv4Addr::from(VRRP_GROUP_V4);
    let mut vrrp = advert.encode(src.into(), group.into(), ChecksumForm::PseudoHeader);
    if flaw == Flaw::BadChecksum {
        vrrp[7] = vrrp[7].wrapping_add(1);
    }
    let mut header = Ipv4Header::vrrp(src);
    if flaw == Flaw::Ttl254 {
        header.ttl = 254;
    }
    let mut ip = header.wrap(&vrrp);
    if flaw == Flaw::TooShort {
        // Keep the bytes on the wire but claim a shorter packet, then fix the header checksum.
        let total = u16::from_be_bytes([ip[2], ip[3]]) - 4;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(0, &ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    ethernet(ipv4_multicast_mac(group), src_mac, ETH_P_IP, &ip)
}

/// A VRRPv3 IPv6 advert frame from link-local `src` to ff02::12, broken as `flaw` says
/// (`Ttl254` lowers the hop limit; `TooShort` trims the payload length).
pub fn advert_frame_v6(src_mac: [u8; 6], src: Ipv6Addr, advert: &Advert, flaw: Flaw) -> Vec<u8> {
    let group = Ipv6Addr::from(VRRP_GROUP_V6);
    let mut vrrp = advert.encode(src.into(), group.into(), ChecksumForm::PseudoHeader);
    if flaw == Flaw::BadChecksum {
        vrrp[7] = vrrp[7].wrapping_add(1);
    }
    let hop_limit = if flaw == Flaw::Ttl254 { 254 } else { 255 };
    let mut ip = ipv6_header(src, group, IPPROTO_VRRP, hop_limit, &vrrp);
    if flaw == Flaw::TooShort {
        let len = u16::from_be_bytes([ip[4], ip[5]]) - 4;
        ip[4..6].copy_from_slice(&len.to_be_bytes());
    }
    ethernet(ipv6_multicast_mac(group), src_mac, ETH_P_IPV6, &ip)
}

/// A broadcast ARP request for `target` from `src` / `src_mac`.
pub fn arp_request(src_mac: [u8; 6], src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    Arp {
        op: ARP_REQUEST,
        sha: src_mac,
        spa: src,
        tha: [0; 6],
        tpa: target,
    }
    .frame(BROADCAST_MAC)
}

/// Streams adverts from a thread at a fixed interval; the flaw can be changed on the fly.
pub struct AdvertStream {
    flaw: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdvertStream {
    /// Starts sending `advert` from `src` every `every` through `capture`.
    pub fn start(
        capture: Capture,
        src_mac: [u8; 6],
        src: Ipv4Addr,
        advert: Advert,
        every: Duration,
    ) -> Self {
        let flaw = Arc::new(AtomicU8::new(Flaw::None as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (flaw.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let flaw = Flaw::from_u8(f.load(Ordering::Relaxed));
                if flaw != Flaw::Silent {
                    let _ = capture.send(&advert_frame(src_mac, src, &advert, flaw));
                }
                next += every;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                } else {
                    next = Instant::now();
                }
            }
        });
        Self {
            flaw,
            stop,
            thread: Some(thread),
        }
    }

    /// Switches what is sent from now on.
    pub fn set(&self, flaw: Flaw) {
        self.flaw.store(flaw as u8, Ordering::Relaxed);
    }
}

impl Drop for AdvertStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
