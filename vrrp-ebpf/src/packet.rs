//! Frame parsing and the RFC 9568 5.1/7.1 validation ladder, bounds-checked for the verifier.
//!
//! Lengths come from the IP header, never from the frame: a one-address v3 advert is shorter
//! than Ethernet's minimum frame, so the frame carries padding.

use vrrp_common::{
    AddressList, FAMILY_IPV4, FAMILY_IPV6, IPPROTO_VRRP, InstanceConfig, MAX_LIST, VRRP_TTL, auth,
    counters, seen_flags,
};

use crate::{
    csum::{address_sum, fold, same_address, word},
    frame::{Frame, bytes},
};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
pub const IPV6_HLEN: usize = 40;
/// Fixed VRRP header: version/type, VRID, priority, count, interval, checksum.
const VRRP_HLEN: usize = 8;
/// VRRP advertisement type.
const TYPE_ADVERTISEMENT: u8 = 1;
/// VRRPv2 authentication data after the address list.
const V2_AUTH_LEN: usize = 8;
/// The longest advert: 255 IPv6 addresses after the fixed header, in 32-bit words.
const MAX_VRRP_WORDS: usize = (VRRP_HLEN + 255 * 16) / 4;
/// A CARP advertisement is exactly this long (version 2, type 1, like a VRRPv2 advert).
const CARP_LEN: usize = 36;

/// What the frame is, as far as VRRP is concerned.
pub enum Parsed {
    /// Not an IPv4/IPv6 protocol-112 packet: none of our business.
    NotVrrp,
    /// VRRP we do not handle here, counted under this counter and passed to the stack.
    Pass(u32),
    /// A VRRP packet whose fixed header is readable.
    Vrrp(Advert),
}

/// The fields of a VRRP packet the ladder needs, plus where it sits in the frame.
pub struct Advert {
    /// `FAMILY_IPV4` or `FAMILY_IPV6`.
    pub family: u8,
    /// Offset of the VRRP header from the start of the frame.
    pub offset: usize,
    /// VRRP length according to the IP header.
    pub len: usize,
    /// TTL or hop limit.
    pub ttl: u8,
    pub version: u8,
    pub kind: u8,
    pub vrid: u8,
    pub priority: u8,
    pub count: u8,
    /// v2 only: the authentication type.
    pub auth_type: u8,
    /// Max_Adver_Int (v3) or Adver Int in seconds times 100 (v2).
    pub interval_cs: u16,
    /// Source address (IPv4 in the first four bytes).
    pub src: [u8; 16],
    /// Destination address (IPv4 in the first four bytes).
    pub dst: [u8; 16],
}

impl Advert {
    fn is_v6(&self) -> bool {
        self.family == FAMILY_IPV6
    }

    fn multicast(&self) -> bool {
        if self.is_v6() {
            self.dst[0] == 0xff
        } else {
            self.dst[0] & 0xf0 == 0xe0
        }
    }

    fn address_len(&self) -> usize {
        if self.is_v6() { 16 } else { 4 }
    }
}

/// The IP-level facts of a protocol-112 packet.
struct Ip {
    family: u8,
    /// Offset of the VRRP header.
    offset: usize,
    /// VRRP length according to the IP header.
    len: usize,
    ttl: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

/// Finds a VRRP packet (IPv4 with any IHL, or IPv6) in the frame, skipping nothing silently.
#[inline(always)]
pub fn parse(ctx: &impl Frame) -> Parsed {
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
    let ip = match ethertype {
        ETH_P_IPV4 => ipv4(ctx, l3),
        ETH_P_IPV6 => ipv6(ctx, l3),
        _ => return Parsed::NotVrrp,
    };
    let ip = match ip {
        Ok(Some(ip)) => ip,
        Ok(None) => return Parsed::NotVrrp,
        Err(counter) => {
            return Parsed::Pass(if tagged {
                counters::VLAN_TAGGED
            } else {
                counter
            });
        }
    };
    if tagged {
        // A tagged advert belongs to a VLAN interface's own speaker, not to this one.
        return Parsed::Pass(counters::VLAN_TAGGED);
    }
    if ip.len < VRRP_HLEN {
        return Parsed::Pass(counters::PACKET_LENGTH_ERRORS);
    }
    let Some(h) = bytes::<VRRP_HLEN>(ctx, ip.offset) else {
        return Parsed::Pass(counters::PACKET_LENGTH_ERRORS);
    };
    let version = h[0] >> 4;
    // CARP shares protocol 112, 224.0.0.18 and the version/type byte with VRRPv2; only its
    // fixed length (with an "address count" that does not add up to it) tells it apart.
    if ip.family == FAMILY_IPV4 && version == 2 && ip.len == CARP_LEN && v2_len(h[3]) != CARP_LEN {
        return Parsed::Pass(counters::CARP_PACKETS);
    }
    let interval_cs = if version == 2 {
        h[5] as u16 * 100
    } else {
        u16::from_be_bytes([h[4] & 0x0f, h[5]])
    };
    Parsed::Vrrp(Advert {
        family: ip.family,
        offset: ip.offset,
        len: ip.len,
        ttl: ip.ttl,
        version,
        kind: h[0] & 0x0f,
        vrid: h[1],
        priority: h[2],
        count: h[3],
        auth_type: h[4],
        interval_cs,
        src: ip.src,
        dst: ip.dst,
    })
}

/// An IPv4 header carrying protocol 112, or the counter for why it cannot be VRRP.
#[inline(always)]
fn ipv4(ctx: &impl Frame, l3: usize) -> Result<Option<Ip>, u32> {
    let Some(ip) = bytes::<20>(ctx, l3) else {
        return Ok(None);
    };
    if ip[0] >> 4 != 4 || ip[9] != IPPROTO_VRRP {
        return Ok(None);
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(counters::FRAGMENTS);
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    // The frame may be longer (padding) but never shorter than the IP header says; that is
    // checked in `validate`, after the header read, so the verifier sees each check it needs.
    if ihl < 20 || total < ihl {
        return Err(counters::PACKET_LENGTH_ERRORS);
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&ip[12..16]);
    dst[..4].copy_from_slice(&ip[16..20]);
    Ok(Some(Ip {
        family: FAMILY_IPV4,
        offset: l3 + ihl,
        len: total - ihl,
        ttl: ip[8],
        src,
        dst,
    }))
}

/// An IPv6 header whose next header is VRRP (adverts carry no extension headers).
#[inline(always)]
fn ipv6(ctx: &impl Frame, l3: usize) -> Result<Option<Ip>, u32> {
    let Some(ip) = bytes::<IPV6_HLEN>(ctx, l3) else {
        return Ok(None);
    };
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_VRRP {
        return Ok(None);
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&ip[8..24]);
    dst.copy_from_slice(&ip[24..40]);
    Ok(Some(Ip {
        family: FAMILY_IPV6,
        offset: l3 + IPV6_HLEN,
        len: u16::from_be_bytes([ip[4], ip[5]]) as usize,
        ttl: ip[7],
        src,
        dst,
    }))
}

/// VRRPv2 length for `count` addresses: header, addresses, authentication data.
#[inline(always)]
fn v2_len(count: u8) -> usize {
    VRRP_HLEN + 4 * count as usize + V2_AUTH_LEN
}

/// The ladder after the VRID lookup (RFC 3768 7.1, RFC 9568 7.1). Returns the counter to bump
/// on failure.
#[inline(always)]
pub fn validate(ctx: &impl Frame, advert: &Advert, cfg: &InstanceConfig) -> Result<(), u32> {
    // As keepalived: TTL / hop limit 255 is required of multicast adverts; unicast peers may
    // be routed.
    if advert.multicast() && advert.ttl != VRRP_TTL {
        return Err(counters::IP_TTL_ERRORS);
    }
    if advert.version != cfg.version {
        return Err(counters::VERSION_ERRORS);
    }
    if advert.kind != TYPE_ADVERTISEMENT {
        return Err(counters::INVALID_TYPE);
    }
    if advert.count == 0 {
        return Err(counters::ADDRESS_LIST_ERRORS);
    }
    let v2 = advert.version == 2;
    if v2 && advert.is_v6() {
        return Err(counters::VERSION_ERRORS);
    }
    let expected = if v2 {
        v2_len(advert.count)
    } else {
        VRRP_HLEN + advert.address_len() * advert.count as usize
    };
    if advert.len != expected || ctx.start() + advert.offset + advert.len > ctx.end() {
        return Err(counters::PACKET_LENGTH_ERRORS);
    }
    if !checksum_ok(ctx, advert, v2) {
        return Err(counters::CHECKSUM_ERRORS);
    }
    if v2 {
        if advert.auth_type != cfg.auth_type {
            return Err(counters::AUTH_TYPE_MISMATCH);
        }
        if cfg.auth_type == auth::PASS {
            let at = advert.offset + VRRP_HLEN + 4 * advert.count as usize;
            // Compared as one 64-bit word: no early exit on the first differing byte, so the
            // time taken says nothing about how much of a guess was right.
            match bytes::<V2_AUTH_LEN>(ctx, at) {
                Some(pass) if u64::from_ne_bytes(pass) ^ u64::from_ne_bytes(cfg.auth_pass) == 0 => {
                }
                _ => return Err(counters::AUTH_FAILURES),
            }
        }
    }
    // Interval 0 is never valid (erratum 8301); v2 requires exactly our interval.
    if advert.interval_cs == 0 || (v2 && advert.interval_cs != cfg.interval_cs) {
        return Err(counters::INTERVAL_ERRORS);
    }
    Ok(())
}

/// Compares a validated advert's address list with ours, returning `seen_flags` bits: a
/// different count or any of the first [`MAX_LIST`] addresses differing is a mismatch; an
/// IPv6 list should start with a link-local address.
#[inline(always)]
pub fn list_flags(ctx: &impl Frame, advert: &Advert, list: &AddressList) -> u8 {
    let mut flags = 0;
    let first = advert.offset + VRRP_HLEN;
    if advert.is_v6() {
        match bytes::<16>(ctx, first) {
            Some(a) if a[0] == 0xfe && a[1] & 0xc0 == 0x80 => {}
            _ => flags |= seen_flags::NOT_LINK_LOCAL_FIRST,
        }
    }
    if advert.count != list.count {
        return flags | seen_flags::LIST_MISMATCH;
    }
    let mut i = 0;
    while i < MAX_LIST {
        if i >= advert.count as usize {
            break;
        }
        let ours = &list.addresses[i];
        // Word compares, not slice or array `==`: those become memcmp calls BPF cannot make.
        let same = if advert.is_v6() {
            bytes::<16>(ctx, first + 16 * i).is_some_and(|a| same_address(&a, ours))
        } else {
            bytes::<4>(ctx, first + 4 * i)
                .is_some_and(|a| u32::from_ne_bytes(a) as u64 == word(ours, 0))
        };
        if !same {
            return flags | seen_flags::LIST_MISMATCH;
        }
        i += 1;
    }
    flags
}

/// Checks the VRRP checksum. VRRPv2's never covers a pseudo-header; v3/IPv6's always does;
/// v3/IPv4 accepts both forms: with the IPv4 pseudo-header (keepalived's and FRR's default)
/// and without it (keepalived's `v3_checksum_as_v2`).
#[inline(always)]
fn checksum_ok(ctx: &impl Frame, advert: &Advert, v2: bool) -> bool {
    let words = advert.len / 4;
    let start = ctx.start() + advert.offset;
    let end = ctx.end();
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
    if !advert.is_v6() && fold(sum) == 0xffff {
        return true;
    }
    if v2 {
        return false;
    }
    let len = advert.len as u16;
    let (hi, lo) = ((len >> 8) as u8, len as u8);
    let pseudo = if advert.is_v6() {
        address_sum(&advert.src)
            + address_sum(&advert.dst)
            + u32::from_ne_bytes([0, 0, hi, lo]) as u64
            + u32::from_ne_bytes([0, 0, 0, IPPROTO_VRRP]) as u64
    } else {
        word(&advert.src, 0)
            + word(&advert.dst, 0)
            + u32::from_ne_bytes([0, IPPROTO_VRRP, hi, lo]) as u64
    };
    fold(sum + pseudo) == 0xffff
}
