//! The VRRP codec: any bytes as a message from either family; whatever parses must encode
//! back to a message that parses to the same advert.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrrp_agent::packet::{Advert, ChecksumForm};

fuzz_target!(|data: &[u8]| {
    let v4 = (
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)),
    );
    let v6 = (
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
    );
    for (src, dst) in [v4, v6] {
        if let Ok(advert) = Advert::parse(data, src, dst) {
            let again = advert.encode(src, dst, ChecksumForm::PseudoHeader);
            let back = Advert::parse(&again, src, dst).expect("an encoded advert parses");
            assert_eq!(back, advert, "round trip");
        }
    }
    // The frame parsers the lab and the responder share.
    let _ = vrrp_agent::packet::Arp::parse_frame(data);
    let _ = vrrp_agent::packet::NeighbourAdvert::parse_frame(data);
});
