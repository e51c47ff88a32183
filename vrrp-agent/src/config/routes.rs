//! `virtual_routes` and `virtual_rules`: routing the master installs with its addresses (IPv4).

use std::net::Ipv4Addr;

use super::{Diagnostic, Statement, VirtualRoute, VirtualRule, builder::Builder};

impl Builder {
    /// `virtual_routes { [src ADDR] [to] DEST[/LEN] [via|gw GW] [dev IF] [src ADDR]
    /// [metric N] [table N] }` and `blackhole DEST[/LEN]`.
    pub(super) fn virtual_routes(&mut self, block: &[Statement]) -> Vec<VirtualRoute> {
        block.iter().filter_map(|s| self.virtual_route(s)).collect()
    }

    fn virtual_route(&mut self, s: &Statement) -> Option<VirtualRoute> {
        let words: Vec<_> = std::iter::once(&s.keyword).chain(&s.args).collect();
        let mut route = VirtualRoute {
            destination: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            gateway: None,
            dev: None,
            src: None,
            metric: None,
            table: None,
            blackhole: false,
        };
        let mut i = 0;
        let mut destination = None;
        while i < words.len() {
            let w = words[i];
            let value = words.get(i + 1).copied();
            let takes_value = !matches!(w.text.as_str(), "blackhole" | "to")
                && destination.is_some()
                || w.text == "src";
            if takes_value && value.is_none() {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!("`{}` is missing its value", w.text),
                ));
                return None;
            }
            match (w.text.as_str(), value) {
                ("blackhole", _) => route.blackhole = true,
                ("to", _) => {}
                ("src", Some(v)) => route.src = Some(self.route_ipv4(v)?),
                ("via" | "gw", Some(v)) => route.gateway = Some(self.route_ipv4(v)?),
                ("dev", Some(v)) => route.dev = Some(v.text.clone()),
                ("metric", Some(v)) => route.metric = Some(self.route_number(v)?),
                ("table", Some(v)) => route.table = Some(self.route_number(v)?),
                (_, _) if destination.is_none() => {
                    let (addr, len) = w.text.split_once('/').unwrap_or((w.text.as_str(), "32"));
                    match (addr.parse::<Ipv4Addr>(), len.parse::<u8>()) {
                        (Ok(a), Ok(l)) if l <= 32 => destination = Some((a, l)),
                        _ => {
                            self.errors.push(
                                Diagnostic::new(&w.location, format!("`{}` is not an IPv4 destination", w.text))
                                    .hint("write e.g. `192.0.2.0/24 via 10.0.0.254` (IPv4 routes only so far)"),
                            );
                            return None;
                        }
                    }
                    i += 1;
                    continue;
                }
                (other, _) => {
                    self.errors.push(
                        Diagnostic::new(
                            &w.location,
                            format!("virtual_routes option `{other}` is not supported"),
                        )
                        .hint("supported: src, to, via/gw, dev, metric, table, blackhole"),
                    );
                    return None;
                }
            }
            i += if matches!(w.text.as_str(), "blackhole" | "to") {
                1
            } else {
                2
            };
        }
        let Some((destination, prefix_len)) = destination else {
            self.errors.push(Diagnostic::new(
                &s.keyword.location,
                "a virtual route needs a destination",
            ));
            return None;
        };
        route.destination = destination;
        route.prefix_len = prefix_len;
        Some(route)
    }

    /// `virtual_rules { from NET to NET table N priority N iif IF oif IF }` (IPv4).
    pub(super) fn virtual_rules(&mut self, block: &[Statement]) -> Vec<VirtualRule> {
        block.iter().filter_map(|s| self.virtual_rule(s)).collect()
    }

    fn virtual_rule(&mut self, s: &Statement) -> Option<VirtualRule> {
        let words: Vec<_> = std::iter::once(&s.keyword).chain(&s.args).collect();
        let mut rule = VirtualRule::default();
        for pair in words.chunks(2) {
            let [option, value] = pair else {
                self.errors.push(Diagnostic::new(
                    &pair[0].location,
                    format!("`{}` is missing its value", pair[0].text),
                ));
                return None;
            };
            match option.text.as_str() {
                "from" => rule.from = Some(self.rule_prefix(value)?),
                "to" => rule.to = Some(self.rule_prefix(value)?),
                "table" | "lookup" => rule.table = Some(self.route_number(value)?),
                "priority" | "preference" | "pref" => {
                    rule.priority = Some(self.route_number(value)?)
                }
                "iif" => rule.iif = Some(value.text.clone()),
                "oif" => rule.oif = Some(value.text.clone()),
                other => {
                    self.errors.push(
                        Diagnostic::new(
                            &option.location,
                            format!("virtual_rules option `{other}` is not supported"),
                        )
                        .hint("supported: from, to, table, priority, iif, oif"),
                    );
                    return None;
                }
            }
        }
        if rule.table.is_none() {
            self.errors.push(
                Diagnostic::new(
                    &s.keyword.location,
                    "a virtual rule needs a table to look up",
                )
                .hint("add `table N`"),
            );
            return None;
        }
        Some(rule)
    }

    fn rule_prefix(&mut self, w: &super::Word) -> Option<(Ipv4Addr, u8)> {
        let (addr, len) = w.text.split_once('/').unwrap_or((w.text.as_str(), "32"));
        match (addr.parse::<Ipv4Addr>(), len.parse::<u8>()) {
            (Ok(a), Ok(l)) if l <= 32 => Some((a, l)),
            _ => {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!("`{}` is not an IPv4 prefix", w.text),
                ));
                None
            }
        }
    }

    fn route_ipv4(&mut self, w: &super::Word) -> Option<Ipv4Addr> {
        w.text.parse().ok().or_else(|| {
            self.errors.push(Diagnostic::new(
                &w.location,
                format!("`{}` is not an IPv4 address", w.text),
            ));
            None
        })
    }

    fn route_number(&mut self, w: &super::Word) -> Option<u32> {
        w.text.parse().ok().or_else(|| {
            self.errors.push(Diagnostic::new(
                &w.location,
                format!("`{}` is not a number", w.text),
            ));
            None
        })
    }
}
