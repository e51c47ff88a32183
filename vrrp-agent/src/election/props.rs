//! Property tests of the election: routers simulated on one injected clock, exchanging
//! adverts with a small delay, in every order proptest can think of.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

const MS: Nanos = 1_000_000;
/// Time an advert takes from sender to receivers.
const LATENCY: Nanos = 100_000;

/// A preempting VRRPv3 router's parameters.
fn v3_params(priority: u8, interval_cs: u16, primary: IpAddr) -> Params {
    Params {
        version: 3,
        priority,
        preempt: true,
        initial_master: false,
        preempt_delay_ns: 0,
        advert_int_cs: interval_cs,
        primary,
    }
}

struct Router {
    election: Election,
    address: IpAddr,
    interval_cs: u16,
}

/// A LAN of routers: each wakes at its own deadline (the kernel's master-down timer stands in
/// for its timer while it follows a master) and hears the others' adverts `LATENCY` later.
struct Lan {
    routers: Vec<Router>,
    /// (delivery time, to, advert)
    in_flight: Vec<(Nanos, usize, AdvertSeen)>,
    now: Nanos,
}

impl Lan {
    fn new(priorities: &[u8], interval_cs: u16) -> Self {
        let routers = priorities
            .iter()
            .enumerate()
            .map(|(i, &priority)| {
                let address = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1));
                Router {
                    election: Election::new(v3_params(priority, interval_cs, address)),
                    address,
                    interval_cs,
                }
            })
            .collect();
        Self {
            routers,
            in_flight: Vec::new(),
            now: 0,
        }
    }

    fn wake(&self, i: usize) -> Option<Nanos> {
        let e = &self.routers[i].election;
        if e.kernel_timed() {
            // The kernel's timer, armed by the same rule.
            e.master_down_at()
        } else {
            e.next_wakeup()
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.now;
        let actions = self.routers[i].election.handle(input, now);
        for action in actions {
            if let Action::SendAdvert { priority } = action {
                let advert = AdvertSeen {
                    src: self.routers[i].address,
                    priority,
                    interval_cs: self.routers[i].interval_cs,
                    at: now + LATENCY,
                };
                for to in (0..self.routers.len()).filter(|&to| to != i) {
                    self.in_flight.push((now + LATENCY, to, advert));
                }
            }
        }
    }

    /// Runs events until `until`; returns the times each router became master.
    fn run(&mut self, until: Nanos) -> Vec<(Nanos, usize)> {
        let mut masters = Vec::new();
        loop {
            let timer = (0..self.routers.len())
                .filter_map(|i| Some((self.wake(i)?, i)))
                .min();
            let delivery = self
                .in_flight
                .iter()
                .enumerate()
                .min_by_key(|(_, (at, _, _))| *at)
                .map(|(k, (at, _, _))| (*at, k));
            let next = match (timer, delivery) {
                (Some(t), Some(d)) => t.0.min(d.0),
                (Some(t), None) => t.0,
                (None, Some(d)) => d.0,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            // Timers never go backwards: no deadline is ever in the past when handled.
            assert!(
                next >= self.now,
                "a deadline in the past: {next} < {}",
                self.now
            );
            self.now = next;
            let before: Vec<State> = self.routers.iter().map(|r| r.election.state()).collect();
            match (timer, delivery) {
                (_, Some((at, k))) if at == next => {
                    let (_, to, advert) = self.in_flight.swap_remove(k);
                    self.input(to, Input::Advert(advert));
                }
                (Some((_, i)), _) => self.input(i, Input::Timer),
                _ => unreachable!(),
            }
            for (i, r) in self.routers.iter().enumerate() {
                if r.election.state() == State::Master && before[i] != State::Master {
                    masters.push((self.now, i));
                }
            }
        }
        self.now = until;
        masters
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&i| self.routers[i].election.state() == State::Master)
            .collect()
    }
}

fn distinct_priorities() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::btree_set(1u8..=254, 2..=4)
        .prop_map(|s| s.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Routers that hear each other agree on one master at steady state, the one with the
    /// highest priority, whatever order they start in.
    #[test]
    fn one_master_at_steady_state(
        priorities in distinct_priorities(),
        interval_cs in prop_oneof![Just(10u16), Just(100u16), 1u16..=300],
        starts in proptest::collection::vec(0u64..2_000, 4),
    ) {
        let mut lan = Lan::new(&priorities, interval_cs);
        let mut order: Vec<(Nanos, usize)> =
            (0..priorities.len()).map(|i| (starts[i] * MS, i)).collect();
        order.sort_unstable();
        for (at, i) in order {
            lan.run(at);
            lan.input(i, Input::Startup);
        }
        let settle = lan.now + 20 * timers::master_down_ns(3, 1, interval_cs);
        lan.run(settle);
        let highest = (0..priorities.len()).max_by_key(|&i| priorities[i]).unwrap();
        prop_assert_eq!(lan.masters(), vec![highest]);
    }

    /// A master that leaves with priority 0 is replaced by the highest remaining priority
    /// within its Skew_Time of hearing it (not Master_Down_Interval).
    #[test]
    fn priority_zero_hands_over_within_skew_time(
        priorities in distinct_priorities(),
        interval_cs in prop_oneof![Just(10u16), Just(100u16), 1u16..=300],
    ) {
        let mut lan = Lan::new(&priorities, interval_cs);
        for i in 0..priorities.len() {
            lan.input(i, Input::Startup);
        }
        let settle = 20 * timers::master_down_ns(3, 1, interval_cs);
        lan.run(settle);
        let old = lan.masters()[0];
        lan.input(old, Input::Shutdown);
        let left = lan.now;
        let next = (0..priorities.len())
            .filter(|&i| i != old)
            .max_by_key(|&i| priorities[i])
            .unwrap();
        let became = lan.run(left + 2 * timers::master_down_ns(3, 1, interval_cs));
        let first = became.first().copied();
        prop_assert_eq!(first.map(|(_, i)| i), Some(next));
        let skew = timers::skew_ns(3, priorities[next], interval_cs);
        let took = first.map(|(at, _)| at - left).unwrap_or(u64::MAX);
        prop_assert!(took <= LATENCY + skew, "took {} ns, skew {} ns", took, skew);
    }

    /// The timers are the RFC's, to the nanosecond: Skew_Time is ((256 - priority) *
    /// Master_Adver_Interval) / 256 rounded down to a nanosecond, never to a centisecond
    /// (which would make it 0 at 10 ms and priority 254), and a backup's deadline is exactly
    /// the advert's time plus Master_Down_Interval.
    #[test]
    fn timers_never_truncate(priority in 1u8..=254, interval_cs in 1u16..=4095, at in 0u64..1 << 40) {
        let interval_ns = u64::from(interval_cs) * 10 * MS;
        let skew = timers::skew_ns(3, priority, interval_cs);
        prop_assert_eq!(skew, (256 - u64::from(priority)) * interval_ns / 256);
        prop_assert!(skew > 0);
        prop_assert_eq!(timers::master_down_ns(3, priority, interval_cs), 3 * interval_ns + skew);
        let mut e = Election::new(v3_params(priority, interval_cs, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        e.handle(Input::Startup, at);
        let from = AdvertSeen {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            priority: 255,
            interval_cs,
            at,
        };
        e.handle(Input::Advert(from), at);
        prop_assert_eq!(e.master_down_at(), Some(at + 3 * interval_ns + skew));
    }
}
