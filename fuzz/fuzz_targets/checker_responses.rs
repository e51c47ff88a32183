//! What the health checkers read from servers: HTTP responses (status line, headers,
//! chunked bodies), SMTP reply lines and DNS replies.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vrrp_agent::checker::{dns_verdict, parse_response, smtp_line};

fuzz_target!(|data: &[u8]| {
    let _ = parse_response(data);
    for line in String::from_utf8_lossy(data).split_inclusive('\n') {
        let _ = smtp_line(line);
    }
    if data.len() >= 2 {
        let id = u16::from_be_bytes([data[0], data[1]]);
        let _ = dns_verdict(data, id, "example.com");
    }
});
