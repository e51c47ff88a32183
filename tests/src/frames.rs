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
    checksum, ethernet, ipv4_multicast_mac, ipv6_header, ipv6_multicast_mac, pseudo_header_sum,
};
use vrrp_common::{IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6};

use crate::Capture;

/// One way an advert can be broken, or an odd-but-valid form of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Flaw {
    /// A valid advert.
    None = 0,
    /// TTL (hop limit) 254 instead of 255.
    Ttl254 = 1,
    /// The VRRP checksum is off by one.
    BadChecksum = 2,
    /// The IP header claims four bytes fewer than the address list needs.
    TooShort = 3,
    /// Nothing is sent.
    Silent = 4,
    /// Version 2 in a v3 advert (checksum fixed).
    WrongVersion = 5,
    /// Advertisement interval 0 (erratum 8301; checksum fixed).
    IntervalZero = 6,
    /// Valid, with IPv4 options (IHL 6).
    IpOptions = 7,
    /// Valid, padded to Ethernet's 60-byte minimum.
    Padded = 8,
    /// VRRPv2 with the wrong PASS data.
    WrongPassword = 9,
}

impl Flaw {
    fn from_u8(v: u8) -> Self {
        [
            Flaw::None,
            Flaw::Ttl254,
            Flaw::BadChecksum,
            Flaw::TooShort,
            Flaw::Silent,
            Flaw::WrongVersion,
            Flaw::IntervalZero,
            Flaw::IpOptions,
            Flaw::Padded,
            Flaw::WrongPassword,
        ]
        .get(usize::from(v))
        .copied()
        .unwrap_or(Flaw::Silent)
    }

    /// The dataplane counter that must grow for this flaw.
    pub fn counter(self) -> &'static str {
        match self {
            Flaw::None | Flaw::IpOptions | Flaw::Padded => "valid-adverts",
            Flaw::Ttl254 => "ip-ttl-errors",
            Flaw::BadChecksum => "checksum-errors",
            Flaw::TooShort => "packet-length-errors",
            Flaw::Silent => "vrrp-rx",
            Flaw::WrongVersion => "version-errors",
            Flaw::IntervalZero => "interval-errors",
            Flaw::WrongPassword => "auth-failures",
        }
    }

    /// Whether an advert with this flaw still counts.
    pub fn valid(self) -> bool {
        matches!(self, Flaw::None | Flaw::IpOptions | Flaw::Padded)
    }
}

/// Changes the VRRP message for a flaw that lives inside it, then recomputes the checksum
/// over `seed` (the pseudo-header sum, or 0 for v2) so only the intended flaw remains.
fn edit_vrrp(vrrp: &mut [u8], flaw: Flaw, seed: u32) {
    match flaw {
        Flaw::WrongVersion => vrrp[0] = (vrrp[0] & 0x0f) | 0x20,
        Flaw::IntervalZero => vrrp[4..6].copy_from_slice(&[0, 0]),
        Flaw::WrongPassword => {
            let end = vrrp.len();
            vrrp[end - 8..].copy_from_slice(b"guess\0\0\0");
        }
        _ => return,
    }
    vrrp[6..8].copy_from_slice(&[0, 0]);
    let sum = checksum(seed, vrrp);
    vrrp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// A VRRP (v2 or v3) IPv4 advert frame from `src` (`src_mac`), broken as `flaw` says.
pub fn advert_frame(src_mac: [u8; 6], src: Ipv4Addr, advert: &Advert, flaw: Flaw) -> Vec<u8> {
    let group = Ipv4Addr::from(VRRP_GROUP_V4);
    let mut vrrp = advert.encode(src.into(), group.into(), ChecksumForm::PseudoHeader);
    let seed = if advert.version == 2 {
        0
    } else {
        pseudo_header_sum(src.into(), group.into(), IPPROTO_VRRP, vrrp.len())
    };
    edit_vrrp(&mut vrrp, flaw, seed);
    if flaw == Flaw::BadChecksum {
        vrrp[7] = vrrp[7].wrapping_add(1);
    }
    let mut header = Ipv4Header::vrrp(src);
    if flaw == Flaw::Ttl254 {
        header.ttl = 254;
    }
    let mut ip = header.wrap(&vrrp);
    if flaw == Flaw::TooShort {
        // Keep the bytes on the wire but claim a shorter packet.
        let total = u16::from_be_bytes([ip[2], ip[3]]) - 4;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
    }
    if flaw == Flaw::IpOptions {
        // IHL 6: four bytes of NOP/EOL options between the header and VRRP.
        ip[0] = 0x46;
        let total = u16::from_be_bytes([ip[2], ip[3]]) + 4;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.splice(20..20, [1, 1, 1, 0]);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(0, &ip[..ihl]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = ethernet(ipv4_multicast_mac(group), src_mac, ETH_P_IP, &ip);
    if flaw == Flaw::Padded {
        frame.resize(frame.len().max(60), 0);
    }
    frame
}

/// A valid VRRP IPv4 advert sent unicast from `src` (`src_mac`) to `dst` (`dst_mac`), as a
/// `unicast_peer` sends it.
pub fn unicast_advert_frame(
    (src_mac, src): ([u8; 6], Ipv4Addr),
    (dst_mac, dst): ([u8; 6], Ipv4Addr),
    advert: &Advert,
) -> Vec<u8> {
    let vrrp = advert.encode(src.into(), dst.into(), ChecksumForm::PseudoHeader);
    let mut header = Ipv4Header::vrrp(src);
    header.dst = dst;
    ethernet(dst_mac, src_mac, ETH_P_IP, &header.wrap(&vrrp))
}

/// A VRRPv3 IPv6 advert frame from link-local `src` to ff02::12, broken as `flaw` says
/// (`Ttl254` lowers the hop limit; `TooShort` trims the payload length).
pub fn advert_frame_v6(src_mac: [u8; 6], src: Ipv6Addr, advert: &Advert, flaw: Flaw) -> Vec<u8> {
    let group = Ipv6Addr::from(VRRP_GROUP_V6);
    let mut vrrp = advert.encode(src.into(), group.into(), ChecksumForm::PseudoHeader);
    let seed = pseudo_header_sum(src.into(), group.into(), IPPROTO_VRRP, vrrp.len());
    edit_vrrp(&mut vrrp, flaw, seed);
    if flaw == Flaw::BadChecksum {
        vrrp[7] = vrrp[7].wrapping_add(1);
    }
    let hop_limit = if flaw == Flaw::Ttl254 { 254 } else { 255 };
    let mut ip = ipv6_header(src, group, IPPROTO_VRRP, hop_limit, &vrrp);
    if flaw == Flaw::TooShort {
        let len = u16::from_be_bytes([ip[4], ip[5]]) - 4;
        ip[4..6].copy_from_slice(&len.to_be_bytes());
    }
    let mut frame = ethernet(ipv6_multicast_mac(group), src_mac, ETH_P_IPV6, &ip);
    if flaw == Flaw::Padded {
        frame.resize(frame.len().max(60), 0);
    }
    frame
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

/// A Neighbor Solicitation for `target` from `src` / `src_mac`, to the target's
/// solicited-node group, with a Source Link-Layer Address option unless `src` is `::` (DAD).
pub fn neighbour_solicitation(src_mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::from([
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15],
    ]);
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    if !src.is_unspecified() {
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&src_mac);
    }
    let sum = checksum(
        pseudo_header_sum(src.into(), group.into(), ICMPV6, icmp.len()),
        &icmp,
    );
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let ip = ipv6_header(src, group, ICMPV6, 255, &icmp);
    ethernet(ipv6_multicast_mac(group), src_mac, ETH_P_IPV6, &ip)
}

/// ICMPv6's next-header number.
const ICMPV6: u8 = 58;

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
        Self::start_with(capture, every, move |flaw| {
            advert_frame(src_mac, src, &advert, flaw)
        })
    }

    /// Starts sending `frame(flaw)` every `every` through `capture`.
    pub fn start_with(
        capture: Capture,
        every: Duration,
        frame: impl Fn(Flaw) -> Vec<u8> + Send + 'static,
    ) -> Self {
        let flaw = Arc::new(AtomicU8::new(Flaw::None as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (flaw.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let flaw = Flaw::from_u8(f.load(Ordering::Relaxed));
                if flaw != Flaw::Silent {
                    let _ = capture.send(&frame(flaw));
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
