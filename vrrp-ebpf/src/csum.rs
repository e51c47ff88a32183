//! Internet checksum arithmetic (RFC 1071) for the programs.

/// The `i`-th native-order 32-bit word of an address.
#[inline(always)]
pub fn word(a: &[u8; 16], i: usize) -> u64 {
    u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]) as u64
}

/// Sum of the four native-order 32-bit words of an IPv6 address.
#[inline(always)]
pub fn address_sum(a: &[u8; 16]) -> u64 {
    word(a, 0) + word(a, 4) + word(a, 8) + word(a, 12)
}

/// Folds a ones'-complement sum of native-order words to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Whether two 16-byte addresses are equal, compared word by word (slice or array `==`
/// becomes a memcmp call, which BPF cannot make).
#[inline(always)]
pub fn same_address(a: &[u8; 16], b: &[u8; 16]) -> bool {
    word(a, 0) == word(b, 0)
        && word(a, 4) == word(b, 4)
        && word(a, 8) == word(b, 8)
        && word(a, 12) == word(b, 12)
}
