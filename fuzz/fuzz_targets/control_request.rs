//! The control socket's request parser: one JSON line. Whatever parses serialises back to a
//! request that parses the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vrrp_agent::control::Request;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = serde_json::from_str::<Request>(line.trim()) {
        let text = serde_json::to_string(&request).expect("a request serialises");
        let back: Request = serde_json::from_str(&text).expect("and parses again");
        assert_eq!(back, request);
    }
});
