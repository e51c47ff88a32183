//! `virtual_server_group NAME { IP PORT; IP-LAST PORT; ... }`: several addresses and ports
//! served as one virtual server (`virtual_server group NAME { ... }`): one set of real
//! servers and checkers, one scheduling table, each address and port forwarded alike.

use std::net::IpAddr;

use super::{Diagnostic, builder::Builder, syntax::Statement};

impl Builder {
    /// `virtual_server_group NAME { ... }`.
    pub(super) fn virtual_server_group(&mut self, s: &Statement) {
        let Some(name) = s.args.first().map(|w| w.text.clone()) else {
            self.errors.push(
                Diagnostic::new(&s.keyword.location, "virtual_server_group needs a name")
                    .hint("write `virtual_server_group WEB { 10.0.0.100 80 }`"),
            );
            return;
        };
        let Some(block) = self.block(s) else { return };
        let mut members = Vec::new();
        for st in block {
            if st.keyword.text == "fwmark" {
                // Refused with the keyword table's reason (netfilter marks come after XDP).
                self.unknown(st, "virtual_server_group");
                continue;
            }
            let Some(port_word) = st.args.first() else {
                self.errors.push(
                    Diagnostic::new(&st.keyword.location, "a group entry is `IP PORT` or `IP-LAST PORT` (the XDP load balancer serves one port per entry)")
                        .hint("e.g. `10.0.0.100 80` or `10.0.0.100-103 443`"),
                );
                continue;
            };
            let Some(port) = self.port_word(port_word) else {
                continue;
            };
            match range(&st.keyword.text) {
                Some(addresses) => members.extend(addresses.into_iter().map(|a| (a, port))),
                None => {
                    if let Some(a) = self.address_word(&st.keyword) {
                        members.push((a, port));
                    }
                }
            }
        }
        if members.is_empty() {
            self.warnings.push(Diagnostic::new(
                &s.keyword.location,
                format!("virtual_server_group {name} has no entries"),
            ));
        }
        self.vs_groups.push((name, members));
    }

    /// The members of a group defined earlier.
    pub(super) fn vs_group(&self, name: &str) -> Option<&[(IpAddr, u16)]> {
        self.vs_groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_slice())
    }
}

/// `A.B.C.D-E` (or an IPv6 address with a last-group range `...:x-y`): every address from
/// the first to the one with the last part replaced by E. `None` if it is not a range.
fn range(text: &str) -> Option<Vec<IpAddr>> {
    let (first, last) = text.rsplit_once('-')?;
    match first.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let o = a.octets();
            let end: u8 = last.parse().ok()?;
            (o[3] <= end).then(|| {
                (o[3]..=end)
                    .map(|x| IpAddr::from([o[0], o[1], o[2], x]))
                    .collect()
            })
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let end = u16::from_str_radix(last, 16).ok()?;
            (s[7] <= end).then(|| {
                (s[7]..=end)
                    .map(|x| {
                        let mut seg = s;
                        seg[7] = x;
                        IpAddr::from(seg)
                    })
                    .collect()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = range("10.0.0.100-102").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2], "10.0.0.102".parse::<IpAddr>().unwrap());
        assert_eq!(range("2001:db8::a-c").unwrap().len(), 3);
        assert!(range("10.0.0.100").is_none());
        assert!(range("10.0.0.100-99").is_none());
    }

    #[test]
    fn a_group_may_be_defined_after_the_virtual_server_that_uses_it() {
        let text = "virtual_server group WEB {\n    lb_kind DR\n    real_server 10.0.0.3 80 {\n        TCP_CHECK {\n        }\n    }\n}\nvirtual_server_group WEB {\n    10.0.0.100-101 80\n}\n";
        let config = crate::config::parse(std::path::Path::new("k.conf"), text)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(config.virtual_servers[0].group.len(), 2);
    }
}
