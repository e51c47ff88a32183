//! `virtual_ipaddress` and friends.

use std::net::IpAddr;

use super::{Diagnostic, Statement, VirtualAddress, builder::Builder};

impl Builder {
    /// `virtual_ipaddress { ADDR[/LEN] [brd ADDR] [dev IF] [scope SCOPE] [label LABEL] }`
    /// (also `virtual_ipaddress_excluded`). keepalived's other options change routing or
    /// duplicate address detection and are refused with their location.
    pub(super) fn virtual_addresses(&mut self, block: &[Statement]) -> Vec<VirtualAddress> {
        block
            .iter()
            .filter_map(|s| self.virtual_address(s))
            .collect()
    }

    fn virtual_address(&mut self, s: &Statement) -> Option<VirtualAddress> {
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
        let mut vip = match (address, prefix_len) {
            (Ok(address), Ok(prefix_len)) if prefix_len <= full => VirtualAddress {
                address,
                prefix_len,
                ..VirtualAddress::default()
            },
            _ => {
                self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        format!("`{text}` is not an IP address with an optional /prefix"),
                    )
                    .hint("write e.g. 10.0.0.100/24 or fd00::100/64"),
                );
                return None;
            }
        };
        let mut args = s.args.iter();
        while let Some(option) = args.next() {
            let Some(value) = args.next() else {
                self.errors.push(Diagnostic::new(
                    &option.location,
                    format!("`{}` is missing its value", option.text),
                ));
                break;
            };
            match option.text.as_str() {
                "dev" => vip.dev = Some(value.text.clone()),
                "label" => vip.label = Some(value.text.clone()),
                "brd" => match (value.text.parse(), vip.address) {
                    (Ok(brd), IpAddr::V4(_)) => vip.broadcast = Some(brd),
                    _ => self.errors.push(Diagnostic::new(
                        &value.location,
                        format!(
                            "`brd {}` needs an IPv4 broadcast address for an IPv4 address",
                            value.text
                        ),
                    )),
                },
                "scope" => match scope(&value.text) {
                    Some(scope) => vip.scope = Some(scope),
                    None => self.errors.push(
                        Diagnostic::new(&value.location, format!("unknown scope `{}`", value.text))
                            .hint("use global, site, link, host, nowhere or a number 0-255"),
                    ),
                },
                other => {
                    self.errors.push(
                        Diagnostic::new(
                            &option.location,
                            format!("virtual_ipaddress option `{other}` is not supported"),
                        )
                        .hint("supported: brd, dev, scope, label"),
                    );
                    break;
                }
            }
        }
        Some(vip)
    }
}

/// An address scope by name (as iproute2 spells them) or number.
fn scope(text: &str) -> Option<u8> {
    match text {
        "global" => Some(0),
        "site" => Some(200),
        "link" => Some(253),
        "host" => Some(254),
        "nowhere" => Some(255),
        n => n.parse().ok(),
    }
}
