//! RFC 3768 / RFC 9568 timer arithmetic, in exact nanoseconds.
//!
//! Never truncated to seconds or centiseconds: v3 Skew_Time is
//! `((256 - Priority) * Master_Adver_Interval) / 256` centiseconds, which is a fraction of a
//! centisecond for most priorities; v2 Skew_Time is `(256 - Priority) / 256` seconds whatever
//! the interval. Intervals are carried in centiseconds for both versions (v2's whole seconds
//! times 100).

/// Nanoseconds in one centisecond.
pub const NS_PER_CS: u64 = 10_000_000;

/// Skew_Time in nanoseconds for a local `priority` and the master's interval.
pub const fn skew_ns(version: u8, priority: u8, master_adver_interval_cs: u16) -> u64 {
    let skew_units = 256 - priority as u64;
    if version == 2 {
        skew_units * 1_000_000_000 / 256
    } else {
        skew_units * master_adver_interval_cs as u64 * NS_PER_CS / 256
    }
}

/// Master_Down_Interval in nanoseconds: `3 * Master_Adver_Interval + Skew_Time`.
pub const fn master_down_ns(version: u8, priority: u8, master_adver_interval_cs: u16) -> u64 {
    3 * master_adver_interval_cs as u64 * NS_PER_CS
        + skew_ns(version, priority, master_adver_interval_cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_skew_is_not_truncated() {
        // Priority 100 at 1 s: (156 * 100) / 256 cs = 60.9375 cs.
        assert_eq!(skew_ns(3, 100, 100), 609_375_000);
        // Priority 254 at 10 ms: (2 * 1) / 256 cs = 78.125 us.
        assert_eq!(skew_ns(3, 254, 1), 78_125);
        // Priority 1 at the longest interval, 40.95 s: 255 * 4095 / 256 cs.
        assert_eq!(skew_ns(3, 1, 4095), 255 * 4095 * NS_PER_CS / 256);
        assert_eq!(skew_ns(3, 255, 4095), 4095 * NS_PER_CS / 256);
    }

    #[test]
    fn v2_skew_ignores_the_interval() {
        // (256 - 100) / 256 s = 0.609375 s, at 1 s and at 10 s alike.
        assert_eq!(skew_ns(2, 100, 100), 609_375_000);
        assert_eq!(skew_ns(2, 100, 1000), 609_375_000);
        assert_eq!(skew_ns(2, 255, 100), 3_906_250);
    }

    #[test]
    fn master_down_is_three_intervals_plus_skew() {
        assert_eq!(master_down_ns(3, 100, 100), 3_000_000_000 + 609_375_000);
        assert_eq!(master_down_ns(3, 255, 10), 300_000_000 + 390_625);
        assert_eq!(master_down_ns(3, 1, 1), 30_000_000 + 9_960_937);
        assert_eq!(master_down_ns(2, 1, 300), 9_000_000_000 + 996_093_750);
    }
}
