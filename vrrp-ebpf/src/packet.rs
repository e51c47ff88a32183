//! Frame parsing and the RFC 9568 5.1/7.1 validation ladder, bounds-checked for the verifier.
//!
//! Lengths come from the IP header, never from the frame: a one-address v3 advert is shorter
//! than Ethernet's minimum frame, so the frame carries padding.

use aya_ebpf::programs::XdpContext;
use vrrp_common::{IPPROTO_VRRP, VRRP_TTL, counters};

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Fixed VRRP header: version/type, VRID, priority, count, interval, checksum.
const VRRP_HLEN: usize = 8;
/// VRRP advertisement type.
const TYPE_ADVERTISEMENT: u8 = 1;
/// 255 IPv4 addresses after the fixed header, in 32-bit words.
const MAX_VRRP_WORDS: usize = (VRRP_HLEN + 255 * 4) / 4;

/// What the frame is, as far as VRRP is concerned.
pub enum Parsed {
    /// Not an IPv4 protocol-112 packet: none of our business.
    NotVrrp,
    /// VRRP we do not handle here, counted under this counter and passed to the stack.
    Pass(u32),
    /// A VRRP packet whose fixed header is readable.
    Vrrp(Advert),
}

/// The fields of a VRRP packet the ladder needs, plus where it sits in the frame.
pub struct Advert {
    /// Offset of the VRRP header from the start of the frame.
    pub offset: usize,
    /// VRRP length according to the IP header.
    pub len: usize,
    pub ttl: u8,
    pub version: u8,
    pub kind: u8,
    pub vrid: u8,
    pub priority: u8,
    pub count: u8,
    pub interval_cs: u16,
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

#[inline(always)]
fn bytes<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u8; N]> {
    let start = ctx.data() + offset;
    if start + N > ctx.data_end() {
        return None;
    }
    // SAFETY: bounds checked against data_end just above.
    Some(unsafe { *(start as *const [u8; N]) })
}

/// Finds an IPv4 VRRP packet in the frame, skipping nothing silently.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Parsed {
    let Some(eth) = bytes::<ETH_HLEN>(ctx, 0) else {
        return Parsed::NotVrrp;
    };
    let mut ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    let mut l3 = ETH_HLEN;
    let tagged = ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD;
    if tagged {
        let Some(tag) = bytes::<4>(ctx, ETH_HLEN) else {
            return Parsed::NotVrrp;
        };
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        l3 += 4;
    }
    if ethertype != ETH_P_IPV4 {
        return Parsed::NotVrrp;
    }
    let Some(ip) = bytes::<20>(ctx, l3) else {
        return Parsed::NotVrrp;
    };
    if ip[0] >> 4 != 4 || ip[9] != IPPROTO_VRRP {
        return Parsed::NotVrrp;
    }
    if tagged {
        // A tagged advert belongs to a VLAN interface's own speaker, not to this one.
        return Parsed::Pass(counters::VLAN_TAGGED);
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & 0x3fff != 0 {
        return Parsed::Pass(counters::FRAGMENTS);
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    // The frame may be longer (padding) but never shorter than the IP header says; that is
    // checked in `validate`, after the header read, so the verifier sees each check it needs.
    if ihl < 20 || total < ihl + VRRP_HLEN {
        return Parsed::Pass(counters::PACKET_LENGTH_ERRORS);
    }
    let offset = l3 + ihl;
    let Some(h) = bytes::<VRRP_HLEN>(ctx, offset) else {
        return Parsed::Pass(counters::PACKET_LENGTH_ERRORS);
    };
    Parsed::Vrrp(Advert {
        offset,
        len: total - ihl,
        ttl: ip[8],
        version: h[0] >> 4,
        kind: h[0] & 0x0f,
        vrid: h[1],
        priority: h[2],
        count: h[3],
        interval_cs: u16::from_be_bytes([h[4] & 0x0f, h[5]]),
        src: [ip[12], ip[13], ip[14], ip[15]],
        dst: [ip[16], ip[17], ip[18], ip[19]],
    })
}

/// The ladder after the VRID lookup. Returns the counter to bump on failure.
#[inline(always)]
pub fn validate(ctx: &XdpContext, advert: &Advert, version: u8) -> Result<(), u32> {
    if advert.ttl != VRRP_TTL {
        return Err(counters::IP_TTL_ERRORS);
    }
    if advert.version != version {
        return Err(counters::VERSION_ERRORS);
    }
    if advert.kind != TYPE_ADVERTISEMENT {
        return Err(counters::INVALID_TYPE);
    }
    if advert.count == 0 {
        return Err(counters::ADDRESS_LIST_ERRORS);
    }
    if advert.len != VRRP_HLEN + 4 * advert.count as usize
        || ctx.data() + advert.offset + advert.len > ctx.data_end()
    {
        return Err(counters::PACKET_LENGTH_ERRORS);
    }
    if !checksum_ok(ctx, advert) {
        return Err(counters::CHECKSUM_ERRORS);
    }
    if advert.interval_cs == 0 {
        return Err(counters::INTERVAL_ERRORS);
    }
    Ok(())
}

/// Accepts both VRRPv3/IPv4 checksum forms: with the IPv4 pseudo-header (keepalived's and
/// FRR's default) and without it (RFC 9568 as keepalived's `v3_checksum_as_v2` sends it).
#[inline(always)]
fn checksum_ok(ctx: &XdpContext, advert: &Advert) -> bool {
    let words = advert.len / 4;
    let start = ctx.data() + advert.offset;
    let end = ctx.data_end();
    let mut sum: u64 = 0;
    let mut i = 0;
    while i < MAX_VRRP_WORDS {
        if i >= words {
            break;
        }
        let p = start + i * 4;
        if p + 4 > end {
            return false;
        }
        // SAFETY: bounds checked against data_end just above.
        sum += unsafe { *(p as *const u32) } as u64;
        i += 1;
    }
    if fold(sum) == 0xffff {
        return true;
    }
    let len = advert.len as u16;
    let pseudo = u32::from_ne_bytes(advert.src) as u64
        + u32::from_ne_bytes(advert.dst) as u64
        + u32::from_ne_bytes([0, IPPROTO_VRRP, (len >> 8) as u8, len as u8]) as u64;
    fold(sum + pseudo) == 0xffff
}

/// Folds a ones'-complement sum of native-order words to 16 bits.
#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
