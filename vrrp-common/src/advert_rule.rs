//! Which received adverts count, per RFC 9568 sections 6.4.2 (Backup) and 6.4.3 (Master).
//!
//! Used by the XDP program to decide whether to re-arm its master-down timer, and by the
//! agent's election state machine, so both sides agree by construction.

use crate::state;

pub mod vectors;

/// What a valid advert for a configured instance means for that instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Backup: reset the master-down timer to Master_Down_Interval (and adopt the interval).
    ResetTimer,
    /// Backup: the master is leaving (priority 0): set the master-down timer to Skew_Time.
    SkewTimer,
    /// Master: a peer left (priority 0): send an advert at once.
    AdvertiseNow,
    /// Master: the advert wins the election: step down to Backup.
    StepDown,
    /// Master: a lower-priority (or equal-priority, lower-address) peer believes it is
    /// master: advertise at once so it yields (RFC 9568 6.4.3, keepalived's default), at most
    /// once per advertisement interval.
    Reassert,
    /// Nothing to do (lower priority with preempt on, or not running).
    Ignore,
}

/// The local side of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    /// One of the [`state`] constants.
    pub state: u8,
    /// Local effective priority.
    pub priority: u8,
    /// Preempt_Mode.
    pub preempt: bool,
    /// keepalived's `preempt_delay` is running: lower-priority adverts still count.
    pub preempt_hold: bool,
    /// Local primary address, compared unsigned in network byte order on equal priority
    /// (IPv4 in the first four bytes, the rest zero).
    pub primary: [u8; 16],
}

/// Applies RFC 9568 6.4.2 / 6.4.3 to an advert of `priority` from `src` (same layout as
/// [`Local::primary`]).
pub fn classify(local: &Local, priority: u8, src: &[u8; 16]) -> Verdict {
    match local.state {
        state::BACKUP => {
            if priority == 0 {
                Verdict::SkewTimer
            } else if !local.preempt || local.preempt_hold || priority >= local.priority {
                Verdict::ResetTimer
            } else {
                Verdict::Ignore
            }
        }
        state::MASTER => {
            if priority == 0 {
                Verdict::AdvertiseNow
            } else if priority > local.priority
                || (priority == local.priority && greater(src, &local.primary))
            {
                Verdict::StepDown
            } else {
                Verdict::Reassert
            }
        }
        _ => Verdict::Ignore,
    }
}

/// `a > b` as unsigned big-endian numbers (lexicographic byte order), loop-free for BPF.
fn greater(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let hi = |x: &[u8; 16]| u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
    let lo =
        |x: &[u8; 16]| u64::from_be_bytes([x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15]]);
    (hi(a), lo(a)) > (hi(b), lo(b))
}

/// An IPv4 address in the 16-byte layout of [`Local::primary`].
pub const fn v4(a: [u8; 4]) -> [u8; 16] {
    [a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(state: u8, priority: u8, preempt: bool) -> Local {
        Local {
            state,
            priority,
            preempt,
            preempt_hold: false,
            primary: v4([10, 0, 0, 2]),
        }
    }

    #[test]
    fn backup_rules() {
        let b = local(state::BACKUP, 100, true);
        assert_eq!(classify(&b, 0, &v4([10, 0, 0, 1])), Verdict::SkewTimer);
        assert_eq!(classify(&b, 100, &v4([10, 0, 0, 1])), Verdict::ResetTimer);
        assert_eq!(classify(&b, 200, &v4([10, 0, 0, 1])), Verdict::ResetTimer);
        assert_eq!(classify(&b, 50, &v4([10, 0, 0, 1])), Verdict::Ignore);
        let nopreempt = local(state::BACKUP, 100, false);
        assert_eq!(
            classify(&nopreempt, 50, &v4([10, 0, 0, 1])),
            Verdict::ResetTimer
        );
    }

    #[test]
    fn preempt_delay_holds_a_backup_behind_a_lower_master() {
        let mut b = local(state::BACKUP, 100, true);
        b.preempt_hold = true;
        assert_eq!(classify(&b, 50, &v4([10, 0, 0, 1])), Verdict::ResetTimer);
        assert_eq!(classify(&b, 0, &v4([10, 0, 0, 1])), Verdict::SkewTimer);
    }

    #[test]
    fn master_rules_and_tie_break() {
        let m = local(state::MASTER, 100, true);
        assert_eq!(classify(&m, 0, &v4([10, 0, 0, 1])), Verdict::AdvertiseNow);
        assert_eq!(classify(&m, 101, &v4([10, 0, 0, 1])), Verdict::StepDown);
        assert_eq!(classify(&m, 99, &v4([10, 0, 0, 9])), Verdict::Reassert);
        // Equal priority: the higher primary address wins, compared unsigned.
        assert_eq!(classify(&m, 100, &v4([10, 0, 0, 3])), Verdict::StepDown);
        assert_eq!(classify(&m, 100, &v4([10, 0, 0, 1])), Verdict::Reassert);
        assert_eq!(classify(&m, 100, &v4([200, 0, 0, 1])), Verdict::StepDown);
    }

    #[test]
    fn ipv6_tie_break_compares_all_sixteen_bytes() {
        let mut m = local(state::MASTER, 100, true);
        m.primary = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
        let mut higher = m.primary;
        higher[15] = 6;
        let mut lower = m.primary;
        lower[15] = 4;
        assert_eq!(classify(&m, 100, &higher), Verdict::StepDown);
        assert_eq!(classify(&m, 100, &lower), Verdict::Reassert);
    }

    #[test]
    fn not_running_ignores_everything() {
        assert_eq!(
            classify(&local(state::INIT, 100, true), 255, &v4([1, 1, 1, 1])),
            Verdict::Ignore
        );
        assert_eq!(
            classify(&local(state::FAULT, 100, true), 255, &v4([1, 1, 1, 1])),
            Verdict::Ignore
        );
    }
}
