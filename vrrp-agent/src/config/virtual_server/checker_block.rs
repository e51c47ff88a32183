//! The checker blocks of a `real_server` (`TCP_CHECK`, `HTTP_GET`/`SSL_GET`, `MISC_CHECK`,
//! `SMTP_CHECK`, `DNS_CHECK`, `PING_CHECK`, `UDP_CHECK`): their own keywords, parsed into a
//! [`CheckKind`] and the settings the real server and virtual server may otherwise supply.

use super::{BLOCK, CheckKind, Common, Connect, UnresolvedChecker, Url};
use crate::config::{Diagnostic, Script, Statement, builder::Builder};

impl Builder {
    /// A checker block.
    pub(super) fn checker(&mut self, s: &Statement) -> Option<UnresolvedChecker> {
        let block = self.block(s)?;
        let mut kind = match s.keyword.text.as_str() {
            "TCP_CHECK" => CheckKind::Tcp,
            "HTTP_GET" | "SSL_GET" => CheckKind::Http {
                tls: s.keyword.text == "SSL_GET",
                sni: false,
                protocol: "1.0".into(),
                urls: Vec::new(),
                virtualhost: None,
            },
            "SMTP_CHECK" => CheckKind::Smtp { helo: None },
            "DNS_CHECK" => CheckKind::Dns {
                qtype: 6,
                name: ".".into(),
            },
            "MISC_CHECK" => CheckKind::Misc {
                script: Script::new(""),
                timeout_ms: 0,
                dynamic: false,
            },
            "UDP_CHECK" => CheckKind::Udp {
                payload: None,
                require_reply: None,
                reply_length: (0, 255),
            },
            _ => CheckKind::Ping,
        };
        let mut common = Common::default();
        let mut connect = Connect::default();
        let mut misc_user = None;
        for st in block {
            let k = st.keyword.text.as_str();
            match (&mut kind, k) {
                (_, "connect_ip") => connect.ip = self.ip(st),
                (_, "connect_port") => {
                    connect.port = st.args.first().and_then(|w| self.port_word(w))
                }
                (_, "bindto") => connect.bindto = self.ip(st),
                (_, "bind_port") => {
                    connect.bind_port = st.args.first().and_then(|w| self.port_word(w))
                }
                (_, "bind_if") => connect.bind_if = self.string(st),
                (_, "fwmark") => connect.fwmark = self.integer(st, 0, u32::MAX),
                (_, "log_all_failures") => connect.log_all_failures = self.flag(st),
                (CheckKind::Http { sni, .. }, "enable_sni") => *sni = self.flag(st),
                (CheckKind::Http { protocol, .. }, "http_protocol") => {
                    match st.args.first().map(|w| w.text.as_str()) {
                        Some(p @ ("1.0" | "1.0C" | "1.0c" | "1.1")) => {
                            *protocol = p.to_ascii_uppercase()
                        }
                        _ => self.errors.push(Diagnostic::new(
                            &st.keyword.location,
                            "`http_protocol` is 1.0, 1.0C or 1.1",
                        )),
                    }
                }
                // keepalived checks every URL at once when this is set; we always do.
                (CheckKind::Http { .. }, "fast_recovery") => {
                    let _ = self.flag(st);
                }
                (CheckKind::Http { urls, .. }, "url") => {
                    if let Some(b) = self.block(st) {
                        let url = self.url(b);
                        urls.push(url);
                    }
                }
                (_, "nb_get_retry") => common.retry = self.integer(st, 0, 1_000_000),
                (CheckKind::Smtp { helo }, "helo_name") => *helo = self.string(st),
                (CheckKind::Dns { qtype, .. }, "type") => {
                    match st.args.first().and_then(|w| dns_type(&w.text)) {
                        Some(t) => *qtype = t,
                        None => self.errors.push(Diagnostic::new(
                            &st.keyword.location,
                            "DNS_CHECK `type` is A, NS, CNAME, SOA, MX, TXT or AAAA",
                        )),
                    }
                }
                (CheckKind::Dns { name, .. }, "name") => {
                    if let Some(n) = self.string(st) {
                        *name = n;
                    }
                }
                (CheckKind::Misc { script, .. }, "misc_path") => {
                    if let Some(sc) = self.script(st) {
                        *script = sc;
                    }
                }
                (CheckKind::Misc { timeout_ms, .. }, "misc_timeout") => {
                    *timeout_ms = self.seconds_ms(st, 86_400).unwrap_or(0)
                }
                (CheckKind::Misc { dynamic, .. }, "misc_dynamic") => *dynamic = self.flag(st),
                (CheckKind::Misc { .. }, "user") => {
                    misc_user = st
                        .args
                        .first()
                        .map(|u| (u.text.clone(), st.args.get(1).map(|g| g.text.clone())));
                }
                (CheckKind::Udp { payload, .. }, "payload") => {
                    *payload = Some(self.hex(st).into_iter().map(|n| n.unwrap_or(0)).collect())
                }
                (CheckKind::Udp { require_reply, .. }, "require_reply") => {
                    *require_reply = Some(self.hex(st))
                }
                (CheckKind::Udp { reply_length, .. }, "min_reply_length") => {
                    reply_length.0 = self.integer(st, 0, 65_535).unwrap_or(0)
                }
                (CheckKind::Udp { reply_length, .. }, "max_reply_length") => {
                    reply_length.1 = self.integer(st, 0, 65_535).unwrap_or(255)
                }
                _ if self.common_keyword(st, &mut common) => {}
                _ => self.unknown(st, BLOCK),
            }
        }
        match &mut kind {
            CheckKind::Misc { script, .. } => {
                if script.command.is_empty() {
                    self.errors.push(Diagnostic::new(
                        &s.keyword.location,
                        "MISC_CHECK has no `misc_path`",
                    ));
                    return None;
                }
                if let Some((user, group)) = misc_user {
                    script.user = Some(user);
                    script.group = group;
                }
                self.misc_scripts.push(script.clone());
            }
            CheckKind::Http { urls, .. } if urls.is_empty() => {
                self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        format!("{} has no `url`", s.keyword.text),
                    )
                    .hint("add `url { path / }`"),
                );
                return None;
            }
            _ => {}
        }
        Some((kind, common, connect))
    }

    /// A `url { path ...; digest ...; status_code ...; virtualhost ... }` block.
    fn url(&mut self, block: &[Statement]) -> Url {
        let mut url = Url {
            path: "/".into(),
            digest: None,
            status: Vec::new(),
            virtualhost: None,
        };
        for st in block {
            match st.keyword.text.as_str() {
                "path" => url.path = self.string(st).unwrap_or_else(|| "/".into()),
                "digest" => match self.string(st) {
                    Some(d) if d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        url.digest = Some(d.to_ascii_lowercase())
                    }
                    Some(d) => self.errors.push(
                        Diagnostic::new(&st.keyword.location, format!("`digest` is an MD5 in 32 hex digits, not `{d}`"))
                            .hint("compute it with `curl -s URL | md5sum` (keepalived's genhash does the same)"),
                    ),
                    None => {}
                },
                "status_code" => {
                    for w in &st.args {
                        let range = match w.text.split_once('-') {
                            Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
                            None => w.text.parse().ok().map(|c| (c, c)),
                        };
                        match range {
                            Some((a, b)) if (100..=599).contains(&a) && a <= b && b <= 599 => url.status.push((a, b)),
                            _ => self.errors.push(Diagnostic::new(&w.location, format!("`status_code` takes codes and ranges such as 200 or 200-299, not `{}`", w.text))),
                        }
                    }
                }
                "virtualhost" => url.virtualhost = self.string(st),
                _ => self.unknown(st, BLOCK),
            }
        }
        if url.status.is_empty() {
            url.status.push((200, 299));
        }
        url
    }

    /// keepalived's free-form hex: digits in groups, each group's odd length padded on the
    /// left (`Ab12f 3` is AB 12 0F 03); X stands for a nibble that is not compared.
    fn hex(&mut self, s: &Statement) -> Vec<Option<u8>> {
        let mut bytes = Vec::new();
        for w in &s.args {
            let digits: Vec<char> = w.text.chars().collect();
            let mut group: Vec<Option<u8>> = Vec::new();
            for c in &digits {
                match c {
                    'x' | 'X' => group.push(None),
                    c => match c.to_digit(16) {
                        Some(d) => group.push(Some(d as u8)),
                        None => {
                            self.errors.push(Diagnostic::new(
                                &w.location,
                                format!("`{}` is not hex", w.text),
                            ));
                            return Vec::new();
                        }
                    },
                }
            }
            if group.len() % 2 == 1 {
                group.insert(group.len() - 1, Some(0));
            }
            for pair in group.chunks(2) {
                bytes.push(match (pair[0], pair[1]) {
                    (Some(h), Some(l)) => Some(h << 4 | l),
                    _ => None,
                });
            }
        }
        bytes
    }
}

/// The number of a DNS query type keepalived accepts.
fn dns_type(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        _ => return None,
    })
}
