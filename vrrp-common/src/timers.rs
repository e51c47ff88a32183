//! RFC 9568 section 6.1 timer arithmetic, in exact nanoseconds.
//!
//! Never truncated to seconds or centiseconds: v3 Skew_Time is
//! `((256 - Priority) * Master_Adver_Interval) / 256` centiseconds, which is a fraction of a
//! centisecond for most priorities.

/// Nanoseconds in one centisecond.
pub const NS_PER_CS: u64 = 10_000_000;

/// VRRPv3 Skew_Time in nanoseconds for a local `priority` and the master's interval.
pub const fn skew_ns(priority: u8, master_adver_interval_cs: u16) -> u64 {
    (256 - priority as u64) * master_adver_interval_cs as u64 * NS_PER_CS / 256
}

/// VRRPv3 Master_Down_Interval in nanoseconds: `3 * Master_Adver_Interval + Skew_Time`.
pub const fn master_down_ns(priority: u8, master_adver_interval_cs: u16) -> u64 {
    3 * master_adver_interval_cs as u64 * NS_PER_CS + skew_ns(priority, master_adver_interval_cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_not_truncated() {
        // Priority 100 at 1 s: (156 * 100) / 256 cs = 60.9375 cs.
        assert_eq!(skew_ns(100, 100), 609_375_000);
        // Priority 254 at 10 ms: (2 * 1) / 256 cs = 78.125 us.
        assert_eq!(skew_ns(254, 1), 78_125);
    }

    #[test]
    fn master_down_is_three_intervals_plus_skew() {
        assert_eq!(master_down_ns(100, 100), 3_000_000_000 + 609_375_000);
        assert_eq!(master_down_ns(255, 10), 300_000_000 + 390_625);
    }
}
