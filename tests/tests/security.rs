//! Security on the wire: what a stranger on the LAN can and cannot do to an instance.

use std::time::Duration;

use vrrp_agent::{election::State, packet::Advert};
use vrrp_common::timers;
use vrrp_lab::{
    Lab, Spec, VIP,
    frames::{AdvertStream, unicast_advert_frame},
    require_root,
};

const SEC: Duration = Duration::from_secs(1);

/// With `check_unicast_src`, adverts from a source outside `unicast_peer` are dropped in XDP
/// (and counted): a stranger claiming priority 250 does not hold the backup, which takes
/// over once its peer is silent, and then follows its peer again when it speaks.
#[test]
fn check_unicast_src_drops_a_strangers_adverts_in_the_kernel() {
    if !require_root("check_unicast_src_drops_a_strangers_adverts_in_the_kernel") {
        return;
    }
    let lab = Lab::new("unisrc", 3).expect("lab");
    let (peer, me, stranger) = (
        lab.router(0).clone(),
        lab.router(1).clone(),
        lab.router(2).clone(),
    );
    let mut spec = Spec::v3(100, "0.1").with_unicast(me.addr, &[peer.addr]);
    spec.extra = "    check_unicast_src\n".into();
    let stream = |from: &vrrp_lab::Node| {
        let frame = unicast_advert_frame(
            (from.mac, from.addr),
            (me.mac, me.addr),
            &Advert::v3(51, 250, 10, vec![VIP]),
        );
        AdvertStream::start_with(
            lab.capture(from).unwrap(),
            Duration::from_millis(100),
            move |_| frame.clone(),
        )
    };
    let strangers = stream(&stranger);
    let agent = lab.spawn_agent(&me, &spec.config()).unwrap();
    let master_down = Duration::from_nanos(timers::master_down_ns(3, 100, 10));
    assert!(
        agent.wait_state(State::Master, master_down + 3 * SEC).is_some(),
        "a stranger's adverts held the backup\n{}",
        agent.log_text()
    );
    assert!(
        agent.counter("unicast-source-errors") > 0,
        "the stranger's adverts were not counted as unicast source errors"
    );
    assert_eq!(
        agent.instance_counter("valid-adverts"),
        0,
        "a stranger's advert counted"
    );

    // The configured peer at a higher priority is followed.
    let _peer = stream(&peer);
    assert!(
        agent
            .wait_backup_of(Some(peer.addr.into()), 3 * SEC)
            .is_some(),
        "the peer's adverts were not accepted"
    );
    drop(strangers);
}
