//! `virtual_ipaddress` and friends.

use std::net::IpAddr;

use super::{Diagnostic, Statement, VirtualAddress, builder::Builder};

impl Builder {
    pub(super) fn virtual_addresses(&mut self, block: &[Statement]) -> Vec<VirtualAddress> {
        let mut out = Vec::new();
        for s in block {
            if let Some(extra) = s.args.first() {
                self.errors.push(
                    Diagnostic::new(
                        &extra.location,
                        format!(
                            "virtual_ipaddress option `{}` is not supported yet",
                            extra.text
                        ),
                    )
                    .hint("write the address alone, e.g. `10.0.0.100/24`"),
                );
            }
            if s.block.is_some() {
                self.errors.push(Diagnostic::new(
                    &s.keyword.location,
                    "an address cannot have a block",
                ));
            }
            let text = &s.keyword.text;
            let (addr, len) = match text.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (text.as_str(), None),
            };
            let address = addr.parse::<IpAddr>();
            let full = if address.as_ref().is_ok_and(IpAddr::is_ipv6) {
                128
            } else {
                32
            };
            let prefix_len = len.map_or(Ok(full), str::parse::<u8>);
            match (address, prefix_len) {
                (Ok(address), Ok(prefix_len)) if prefix_len <= full => {
                    out.push(VirtualAddress {
                        address,
                        prefix_len,
                    });
                }
                _ => self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        format!("`{text}` is not an IP address with an optional /prefix"),
                    )
                    .hint("write e.g. 10.0.0.100/24 or fd00::100/64"),
                ),
            }
        }
        out
    }
}
