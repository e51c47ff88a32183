use std::net::Ipv4Addr;

use super::*;

const MS: Nanos = 1_000_000;
const SEC: Nanos = 1_000 * MS;

fn params(priority: u8, preempt: bool) -> Params {
    Params {
        version: 3,
        priority,
        preempt,
        initial_master: priority == 255,
        preempt_delay_ns: 0,
        advert_int_cs: 100,
        primary: Ipv4Addr::new(10, 0, 0, 2).into(),
    }
}

fn advert(priority: u8, interval_cs: u16, at: Nanos) -> AdvertSeen {
    AdvertSeen {
        src: Ipv4Addr::new(10, 0, 0, 1).into(),
        priority,
        interval_cs,
        at,
    }
}

fn started(priority: u8, preempt: bool) -> Election {
    let mut e = Election::new(params(priority, preempt));
    e.handle(Input::Startup, 0);
    e
}

fn became_master(actions: &[Action]) -> bool {
    actions.contains(&Action::StateChanged {
        from: State::Backup,
        to: State::Master,
    })
}

#[test]
fn starts_backup_and_takes_over_after_master_down_interval() {
    let mut e = started(100, true);
    assert_eq!(e.state(), State::Backup);
    // 3 * 1 s + (156 * 1 s) / 256 = 3.609375 s, not truncated.
    let md = 3 * SEC + 609_375 * 1_000;
    assert_eq!(e.next_wakeup(), Some(md));
    assert!(e.handle(Input::Timer, md - 1).is_empty());
    let actions = e.handle(Input::Timer, md);
    assert!(became_master(&actions));
    assert!(actions.contains(&Action::AddAddresses));
    assert!(actions.contains(&Action::SendGratuitousArp));
    assert!(actions.contains(&Action::SendAdvert { priority: 100 }));
}

#[test]
fn owner_starts_master_at_once() {
    let mut e = Election::new(params(255, true));
    let actions = e.handle(Input::Startup, 7);
    assert_eq!(e.state(), State::Master);
    // RFC 9568 6.4.1: the advert first, then the addresses and their announcement.
    assert_eq!(
        actions[1..],
        [
            Action::SendAdvert { priority: 255 },
            Action::AddAddresses,
            Action::SendGratuitousArp
        ]
    );
    // The next advert is on the interval's grid (shared by every master with that interval).
    assert_eq!(e.next_wakeup(), Some(SEC));
}

#[test]
fn higher_advert_resets_the_timer_from_its_kernel_timestamp() {
    let mut e = started(100, true);
    e.handle(Input::Advert(advert(200, 100, 2 * SEC)), 2 * SEC + 5 * MS);
    assert_eq!(e.master_down_at(), Some(2 * SEC + 3_609_375_000));
    // The kernel owns the timer from now on: no userspace wake-up for master-down.
    assert_eq!(e.next_wakeup(), None);
    assert!(e.handle(Input::Timer, 5 * SEC).is_empty());
    assert!(became_master(&e.handle(Input::Timer, 6 * SEC)));
}

#[test]
fn lower_priority_with_preempt_does_not_hold_a_backup() {
    let mut e = started(100, true);
    e.handle(Input::Advert(advert(50, 100, SEC)), SEC);
    assert_eq!(e.master(), None);
    assert!(became_master(&e.handle(Input::Timer, 3_609_375_000)));
}

#[test]
fn lower_priority_holds_a_nopreempt_backup() {
    let mut e = started(100, false);
    e.handle(Input::Advert(advert(50, 100, SEC)), SEC);
    assert!(e.handle(Input::Timer, 3_700_000_000).is_empty());
}

#[test]
fn priority_zero_sets_the_timer_to_skew() {
    let mut e = started(100, true);
    e.handle(Input::Advert(advert(200, 100, SEC)), SEC);
    e.handle(Input::Advert(advert(0, 100, 2 * SEC)), 2 * SEC);
    assert_eq!(e.master_down_at(), Some(2 * SEC + 609_375_000));
    assert!(became_master(
        &e.handle(Input::Timer, 2 * SEC + 609_375_000)
    ));
}

#[test]
fn backup_adopts_the_masters_interval() {
    let mut e = started(100, true);
    e.handle(Input::Advert(advert(200, 10, SEC)), SEC);
    assert_eq!(e.master_adver_interval_cs(), 10);
    // 3 * 100 ms + (156 * 100 ms) / 256.
    assert_eq!(e.master_down_at(), Some(SEC + 300 * MS + 60_937_500));
}

#[test]
fn master_steps_down_for_higher_priority_and_equal_priority_higher_address() {
    let mut e = started(255, true);
    let actions = e.handle(Input::Advert(advert(255, 100, SEC)), SEC);
    // Equal priority, source 10.0.0.1 < local 10.0.0.2: we stay master and reassert.
    assert_eq!(actions, vec![Action::SendAdvert { priority: 255 }]);
    assert_eq!(e.state(), State::Master);
    let mut higher = advert(255, 100, SEC);
    higher.src = Ipv4Addr::new(10, 0, 0, 3).into();
    let actions = e.handle(Input::Advert(higher), SEC);
    assert_eq!(e.state(), State::Backup);
    assert_eq!(actions[0], Action::RemoveAddresses);
}

#[test]
fn master_answers_priority_zero_with_an_advert() {
    let mut e = started(255, true);
    let actions = e.handle(Input::Advert(advert(0, 100, SEC / 2)), SEC / 2);
    assert_eq!(actions, vec![Action::SendAdvert { priority: 255 }]);
    // The advert timer restarts on the grid: the next advert at the next multiple of the
    // interval (1 s), then every interval; never a gap longer than one interval.
    let sends = |a: &[Action]| a.contains(&Action::SendAdvert { priority: 255 });
    assert!(!sends(&e.handle(Input::Timer, SEC - 1)));
    assert!(sends(&e.handle(Input::Timer, SEC)));
    assert_eq!(e.next_wakeup(), Some(2 * SEC));
}

#[test]
fn master_advertises_on_schedule_and_refreshes_garp() {
    let mut e = started(255, true);
    assert_eq!(
        e.handle(Input::Timer, SEC),
        vec![Action::SendAdvert { priority: 255 }, Action::RenewAddresses]
    );
    assert_eq!(e.next_wakeup(), Some(2 * SEC));
    // A late wake-up does not drift the schedule.
    e.handle(Input::Timer, 2 * SEC + 300 * MS);
    assert_eq!(e.next_wakeup(), Some(3 * SEC));
    let actions = e.handle(Input::Timer, 5 * SEC);
    assert!(actions.contains(&Action::SendGratuitousArp));
}

#[test]
fn shutdown_of_a_master_sends_priority_zero_and_removes_addresses() {
    let mut e = started(255, true);
    let actions = e.handle(Input::Shutdown, SEC);
    assert_eq!(actions[0], Action::SendAdvert { priority: 0 });
    assert_eq!(actions[1], Action::RemoveAddresses);
    assert_eq!(e.state(), State::Initialize);
    assert_eq!(e.next_wakeup(), None);
}

#[test]
fn master_reasserts_against_lower_priority_at_most_once_per_interval() {
    let mut e = started(200, true);
    e.handle(Input::Timer, 4 * SEC); // becomes master at 3.22 s
    assert_eq!(e.state(), State::Master);
    let t = 5 * SEC;
    assert_eq!(
        e.handle(Input::Advert(advert(100, 100, t)), t),
        vec![Action::SendAdvert { priority: 200 }]
    );
    // The adver timer restarts from the immediate advert (the address refresh is due first).
    let sends = |a: &[Action]| a.contains(&Action::SendAdvert { priority: 200 });
    assert!(!sends(&e.handle(Input::Timer, t + SEC / 2)));
    // A flood within the same interval is not answered again.
    for i in 1..100 {
        assert!(
            e.handle(Input::Advert(advert(100, 100, t + i * MS)), t + i * MS)
                .is_empty()
        );
    }
    let later = t + SEC;
    assert_eq!(
        e.handle(Input::Advert(advert(100, 100, later)), later),
        vec![Action::SendAdvert { priority: 200 }]
    );
}

#[test]
fn interface_down_is_fault_and_up_starts_over() {
    let mut e = started(255, true);
    let actions = e.handle(Input::Fault, SEC);
    assert_eq!(
        actions[..2],
        [Action::SendAdvert { priority: 0 }, Action::RemoveAddresses],
        "a master leaving for FAULT says so with priority 0, then drops its addresses"
    );
    assert_eq!(e.state(), State::Fault);
    assert_eq!(
        e.next_wakeup(),
        None,
        "a faulted instance neither advertises nor times out"
    );
    // Adverts heard meanwhile change nothing.
    assert!(
        e.handle(Input::Advert(advert(100, 100, SEC)), SEC)
            .is_empty()
    );
    e.handle(Input::Recover, 2 * SEC);
    assert_eq!(
        e.state(),
        State::Master,
        "the owner takes over again at once"
    );

    let mut b = started(100, true);
    b.handle(Input::Fault, SEC);
    b.handle(Input::Recover, 2 * SEC);
    assert_eq!(b.state(), State::Backup);
    assert_eq!(b.next_wakeup(), Some(2 * SEC + 3_609_375_000));
}

#[test]
fn sync_group_inputs_move_a_member_and_deferral_restarts_the_timer() {
    let mut e = started(100, true);
    assert!(!e.master_down_due(SEC));
    assert!(e.master_down_due(4 * SEC));
    e.defer_master_down(4 * SEC);
    assert!(!e.master_down_due(4 * SEC));
    assert_eq!(e.master_down_at(), Some(4 * SEC + 3_609_375_000));
    let actions = e.handle(Input::GroupMaster, 5 * SEC);
    assert!(became_master(&actions) && actions.contains(&Action::AddAddresses));
    let actions = e.handle(Input::GroupBackup, 6 * SEC);
    assert_eq!(actions[0], Action::RemoveAddresses);
    assert_eq!(e.state(), State::Backup);
    // Only the master-down timer runs in Backup: no stale master deadline to spin on.
    assert_eq!(e.next_wakeup(), Some(6 * SEC + 3_609_375_000));
    // A member in FAULT does not follow the group to master.
    e.handle(Input::Fault, 7 * SEC);
    assert!(e.handle(Input::GroupMaster, 8 * SEC).is_empty());
}

#[test]
fn an_owner_configured_state_backup_starts_as_backup_like_keepalived() {
    let mut p = params(255, true);
    p.initial_master = false;
    let mut e = Election::new(p);
    e.handle(Input::Startup, 0);
    assert_eq!(e.state(), State::Backup);
    // 3 x 1 s + (1 x 1 s) / 256.
    assert_eq!(e.next_wakeup(), Some(3_003_906_250));
}

#[test]
fn preempt_delay_holds_behind_a_lower_master_after_startup_and_after_first_sight() {
    let mut p = params(200, true);
    p.preempt_delay_ns = 2 * SEC;
    let mut e = Election::new(p);
    e.handle(Input::Startup, 0);
    assert_eq!(e.preempt_hold_until(), 2 * SEC);
    // Within the startup hold a lower master counts: the timer follows its adverts.
    e.handle(Input::Advert(advert(100, 100, SEC)), SEC);
    assert!(e.master().is_some());
    assert_eq!(e.master_down_at(), Some(SEC + 3_218_750_000));
    // The delay also runs from the first lower advert: at 1 s + 2 s it ends.
    e.handle(
        Input::Advert(advert(100, 100, 2_900_000_000)),
        2_900_000_000,
    );
    assert_eq!(e.master_down_at(), Some(2_900_000_000 + 3_218_750_000));
    // After it, lower adverts no longer reset the timer and we preempt.
    e.handle(
        Input::Advert(advert(100, 100, 3_100_000_000)),
        3_100_000_000,
    );
    assert_eq!(e.master_down_at(), Some(2_900_000_000 + 3_218_750_000));
    assert!(became_master(&e.handle(Input::Timer, 6_200_000_000)));
}

#[test]
fn a_master_renews_its_addresses_every_second() {
    let mut e = started(255, true);
    assert_eq!(e.next_wakeup(), Some(SEC));
    let actions = e.handle(Input::Timer, SEC);
    assert!(actions.contains(&Action::RenewAddresses), "{actions:?}");
    assert!(actions.contains(&Action::SendAdvert { priority: 255 }));
    e.handle(Input::Advert(advert(255, 100, 2 * SEC)), 2 * SEC);
    let mut higher = advert(255, 100, 2 * SEC);
    higher.src = Ipv4Addr::new(10, 0, 0, 3).into();
    e.handle(Input::Advert(higher), 2 * SEC);
    assert_eq!(e.state(), State::Backup);
    assert_eq!(
        e.next_wakeup(),
        e.master_down_at(),
        "the advert that beat it was counted while master: the kernel's timer is not armed yet"
    );
    higher.at = 2 * SEC + SEC / 10;
    e.handle(Input::Advert(higher), higher.at);
    assert_eq!(
        e.next_wakeup(),
        None,
        "a backup that hears a master renews nothing (the kernel times the master)"
    );
}

/// The shared accept-rule table (`vrrp_common::advert_rule::vectors`), through the election
/// state machine: each verdict judged by what the election does.
#[test]
fn the_election_agrees_with_the_shared_vector_table() {
    use vrrp_common::{
        advert_rule::{
            Verdict,
            vectors::{LOCAL_PRIMARY, LOCAL_PRIORITY, VECTORS},
        },
        state, timers,
    };
    let interval: u16 = 100;
    for case in VECTORS {
        let mut e = Election::new(Params {
            primary: Ipv4Addr::from(LOCAL_PRIMARY).into(),
            ..params(LOCAL_PRIORITY, case.preempt)
        });
        e.handle(Input::Startup, 0);
        let mut now = SEC;
        if case.state == state::MASTER {
            now = e.next_wakeup().expect("master-down timer");
            e.handle(Input::Timer, now);
            assert_eq!(e.state(), State::Master, "{}", case.name);
        }
        let before = e.master_down_at();
        let at = now + 10 * MS;
        let seen = AdvertSeen {
            src: Ipv4Addr::from(case.src).into(),
            priority: case.priority,
            interval_cs: interval,
            at,
        };
        let actions = e.handle(Input::Advert(seen), at);
        let sent = actions
            .iter()
            .any(|a| matches!(a, Action::SendAdvert { .. }));
        match case.expect {
            Verdict::ResetTimer => assert_eq!(
                e.master_down_at(),
                Some(at + timers::master_down_ns(3, LOCAL_PRIORITY, interval)),
                "{}",
                case.name
            ),
            Verdict::SkewTimer => assert_eq!(
                e.master_down_at(),
                Some(at + timers::skew_ns(3, LOCAL_PRIORITY, interval)),
                "{}",
                case.name
            ),
            Verdict::Ignore => {
                assert_eq!(e.master_down_at(), before, "{}", case.name);
                assert!(actions.is_empty(), "{}: {actions:?}", case.name);
            }
            Verdict::StepDown => assert_eq!(e.state(), State::Backup, "{}", case.name),
            Verdict::Reassert | Verdict::AdvertiseNow => {
                assert_eq!(e.state(), State::Master, "{}", case.name);
                assert!(sent, "{}: no advert in {actions:?}", case.name);
            }
        }
    }
}

#[test]
fn retuning_a_master_keeps_it_master_and_advertises_the_new_values_at_once() {
    let mut e = started(255, true);
    assert_eq!(e.state(), State::Master);
    let actions = e.retune(150, false, 0, 50, 2 * SEC);
    assert_eq!(actions, vec![Action::SendAdvert { priority: 150 }]);
    assert_eq!(e.state(), State::Master);
    assert_eq!((e.params().priority, e.params().preempt), (150, false));
    // The next advert follows the new 0.5 s interval.
    let sends = |actions: Vec<Action>| actions.contains(&Action::SendAdvert { priority: 150 });
    assert!(!sends(e.handle(Input::Timer, 2 * SEC + 499 * MS)));
    assert!(sends(e.handle(Input::Timer, 2 * SEC + 500 * MS)));
    // A backup just takes the values for what comes next.
    let mut b = started(100, true);
    assert!(b.retune(120, true, 0, 100, SEC).is_empty());
    assert_eq!(b.state(), State::Backup);
}

#[test]
fn an_advert_run_is_exactly_what_the_timers_would_do() {
    let fast = Params {
        advert_int_cs: 1,
        ..params(255, true)
    };
    let mut driven = Election::new(fast.clone());
    driven.handle(Input::Startup, 7);
    let mut trained = driven.clone();
    let run = trained.advert_run().expect("a master advertising");
    assert_eq!(
        run,
        AdvertRun {
            next: 10 * MS,
            until: SEC,
            interval: 10 * MS,
            priority: 255
        }
    );
    // Driven by its timer, every grid point before `until` sends just that advert.
    let mut t = run.next;
    while t < run.until {
        assert_eq!(driven.next_wakeup(), Some(t));
        assert_eq!(
            driven.handle(Input::Timer, t),
            vec![Action::SendAdvert { priority: 255 }]
        );
        t += run.interval;
    }
    // The daemon sent them itself and reports where it stopped: the same state.
    trained.adverts_sent_until(t);
    assert_eq!(trained.next_wakeup(), driven.next_wakeup());
    let at_until = trained.handle(Input::Timer, t);
    assert_eq!(at_until, driven.handle(Input::Timer, t));
    assert!(at_until.contains(&Action::RenewAddresses));
    // At a 1 s interval every advert meets the 1 s address renewal: nothing to run alone.
    let slow = started(255, true);
    assert_eq!(slow.advert_run(), None);
    // A backup has no run.
    assert_eq!(started(100, true).advert_run(), None);
}
