//! The accept-rule vector table: RFC 9568 6.4.2 / 6.4.3 written out case by case, with the
//! answer the RFC gives (not the one [`classify`](super::classify) computes). The pure rule,
//! the agent's election state machine and the XDP program (through BPF_PROG_TEST_RUN) are
//! each checked against it, so the three cannot disagree without a test failing.
//!
//! Every vector is an IPv4 VRRPv3 instance with local priority [`LOCAL_PRIORITY`] and primary
//! address [`LOCAL_PRIMARY`].

use super::Verdict;
use crate::state;

/// Local priority of every vector.
pub const LOCAL_PRIORITY: u8 = 100;
/// Local primary address of every vector (10.0.0.2).
pub const LOCAL_PRIMARY: [u8; 4] = [10, 0, 0, 2];

/// One case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    /// What the case is about.
    pub name: &'static str,
    /// [`state::BACKUP`] or [`state::MASTER`].
    pub state: u8,
    /// Preempt_Mode.
    pub preempt: bool,
    /// The advert's priority.
    pub priority: u8,
    /// The advert's source address.
    pub src: [u8; 4],
    /// What the RFC says must happen.
    pub expect: Verdict,
}

const fn v(
    name: &'static str,
    state: u8,
    preempt: bool,
    priority: u8,
    src: [u8; 4],
    expect: Verdict,
) -> Vector {
    Vector {
        name,
        state,
        preempt,
        priority,
        src,
        expect,
    }
}

const LOWER: [u8; 4] = [10, 0, 0, 1];
const HIGHER: [u8; 4] = [10, 0, 0, 3];
const B: u8 = state::BACKUP;
const M: u8 = state::MASTER;

/// The table.
pub const VECTORS: [Vector; 16] = [
    v(
        "backup hears a higher priority",
        B,
        true,
        200,
        LOWER,
        Verdict::ResetTimer,
    ),
    v(
        "backup hears the owner",
        B,
        true,
        255,
        LOWER,
        Verdict::ResetTimer,
    ),
    v(
        "backup hears its own priority",
        B,
        true,
        100,
        LOWER,
        Verdict::ResetTimer,
    ),
    v(
        "backup hears its own priority, higher address",
        B,
        true,
        100,
        HIGHER,
        Verdict::ResetTimer,
    ),
    v(
        "preempting backup hears a lower priority",
        B,
        true,
        50,
        LOWER,
        Verdict::Ignore,
    ),
    v(
        "preempting backup hears priority 1",
        B,
        true,
        1,
        HIGHER,
        Verdict::Ignore,
    ),
    v(
        "non-preempting backup hears a lower priority",
        B,
        false,
        50,
        LOWER,
        Verdict::ResetTimer,
    ),
    v(
        "backup hears priority 0",
        B,
        true,
        0,
        LOWER,
        Verdict::SkewTimer,
    ),
    v(
        "non-preempting backup hears priority 0",
        B,
        false,
        0,
        LOWER,
        Verdict::SkewTimer,
    ),
    v(
        "master hears a higher priority",
        M,
        true,
        200,
        LOWER,
        Verdict::StepDown,
    ),
    v(
        "master hears the owner",
        M,
        true,
        255,
        LOWER,
        Verdict::StepDown,
    ),
    v(
        "master hears its priority from a higher address",
        M,
        true,
        100,
        HIGHER,
        Verdict::StepDown,
    ),
    v(
        "master hears its priority from a lower address",
        M,
        true,
        100,
        LOWER,
        Verdict::Reassert,
    ),
    v(
        "master hears a lower priority",
        M,
        true,
        50,
        HIGHER,
        Verdict::Reassert,
    ),
    v(
        "non-preempting master hears a higher priority",
        M,
        false,
        200,
        LOWER,
        Verdict::StepDown,
    ),
    v(
        "master hears priority 0",
        M,
        true,
        0,
        LOWER,
        Verdict::AdvertiseNow,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advert_rule::{Local, classify, v4};

    #[test]
    fn the_pure_rule_matches_the_table() {
        for case in VECTORS {
            let local = Local {
                state: case.state,
                priority: LOCAL_PRIORITY,
                preempt: case.preempt,
                preempt_hold: false,
                primary: v4(LOCAL_PRIMARY),
            };
            assert_eq!(
                classify(&local, case.priority, &v4(case.src)),
                case.expect,
                "{}",
                case.name
            );
        }
    }
}
