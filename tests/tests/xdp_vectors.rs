//! The shared accept-rule table (`vrrp_common::advert_rule::vectors`) through the real XDP
//! program (BPF_PROG_TEST_RUN): each verdict judged by what the kernel does — the master-down
//! deadline it arms, the event it raises, the counter it bumps. The election's unit tests run
//! the same table, so kernel and agent cannot disagree without one of them failing.

use std::{net::Ipv4Addr, time::Duration};

use vrrp_agent::packet::Advert;
use vrrp_common::{
    InstanceConfig,
    advert_rule::{
        Verdict, v4,
        vectors::{LOCAL_PRIMARY, LOCAL_PRIORITY, VECTORS},
    },
    counters, event, timers,
};
use vrrp_lab::{
    VIP,
    frames::{Flaw, advert_frame},
    require_root,
    xdp::{Harness, XDP_DROP},
};

#[test]
fn the_kernel_agrees_with_the_shared_vector_table() {
    if !require_root("the_kernel_agrees_with_the_shared_vector_table") {
        return;
    }
    const INTERVAL: u16 = 100;
    for case in VECTORS {
        let mut h = Harness::with(InstanceConfig {
            state: case.state,
            priority: LOCAL_PRIORITY,
            preempt: u8::from(case.preempt),
            primary: v4(LOCAL_PRIMARY),
            interval_cs: INTERVAL,
            ..Harness::new(case.state, LOCAL_PRIORITY).config
        });
        let mut events = h.dp.take_events().expect("event ring");
        let advert = Advert::v3(51, case.priority, INTERVAL, vec![VIP]);
        let src = Ipv4Addr::from(case.src);
        let frame = advert_frame([2, 0, 0, 0, 0, 9], src, &advert, Flaw::None);
        let (action, delta) = h.run(&frame);
        assert_eq!(action, XDP_DROP, "{}: absorbed", case.name);
        let raised: Vec<u32> = h.rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(100), events.next_batch())
                .await
                .map(|batch| batch.unwrap().iter().map(|e| e.kind).collect())
                .unwrap_or_default()
        });
        let at = h.dp.seen(&h.key).map(|s| s.at_ns);
        let deadline = h.dp.master_down_at(&h.key);
        let ignored = delta[counters::IGNORED_ADVERTS as usize] == 1;
        match case.expect {
            Verdict::ResetTimer => assert_eq!(
                deadline,
                at.map(|at| at + timers::master_down_ns(3, LOCAL_PRIORITY, INTERVAL)),
                "{}",
                case.name
            ),
            Verdict::SkewTimer => assert_eq!(
                deadline,
                at.map(|at| at + timers::skew_ns(3, LOCAL_PRIORITY, INTERVAL)),
                "{}",
                case.name
            ),
            Verdict::Ignore => {
                assert!(ignored, "{}: not counted as ignored", case.name);
                assert_eq!(deadline, None, "{}: armed a timer", case.name);
                assert!(raised.is_empty(), "{}: raised {raised:?}", case.name);
            }
            Verdict::StepDown => {
                assert_eq!(raised, vec![event::PREEMPTED], "{}", case.name)
            }
            Verdict::Reassert => {
                assert_eq!(raised, vec![event::LOWER_PRIORITY], "{}", case.name)
            }
            Verdict::AdvertiseNow => {
                assert_eq!(raised, vec![event::PRIORITY_ZERO], "{}", case.name)
            }
        }
        if case.expect != Verdict::Ignore {
            assert!(!ignored, "{}: counted as ignored", case.name);
        }
    }
}
