//! Reading one keyword's value, with a located error when it is not what keepalived takes.

use std::net::IpAddr;

use super::{
    Diagnostic, InitialState, Statement, Word,
    builder::Builder,
    keywords::{self, Policy},
};

impl Builder {
    pub(super) fn ip(&mut self, s: &Statement) -> Option<IpAddr> {
        let w = self.value(s)?;
        match w.text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!(
                        "`{}` expects an IP address, not `{}`",
                        s.keyword.text, w.text
                    ),
                ));
                None
            }
        }
    }

    /// A keyword the builder does not handle where it is written (`block`: `top` or the
    /// enclosing block's keyword): refused or warned about as the keyword table says, or
    /// reported as unknown.
    pub(super) fn unknown(&mut self, s: &Statement, block: &str) {
        let keyword = s.keyword.text.as_str();
        let at = &s.keyword.location;
        let place = if block == "top" {
            "at the top level".to_string()
        } else {
            format!("in {block}")
        };
        match keywords::lookup(block, keyword).map(|k| k.policy) {
            Some(Policy::Refuse(why)) => self.errors.push(
                Diagnostic::new(at, format!("keepalived's `{keyword}` is not supported: {why}"))
                    .hint("it changes how the cluster behaves, so running without it would be wrong; remove it or keep keepalived for this configuration"),
            ),
            Some(Policy::Warn(why)) => self.warnings.push(
                Diagnostic::new(at, format!("keepalived's `{keyword}` has no effect here: {why}"))
                    .hint("the daemon runs without it; remove it to silence this warning"),
            ),
            Some(Policy::Implemented) | None => self.errors.push(
                Diagnostic::new(at, format!("unknown or unsupported keyword `{keyword}` {place}"))
                    .hint("check the spelling and the block it is in; keywords this version does not implement are refused rather than ignored"),
            ),
        }
    }

    pub(super) fn block<'s>(&mut self, s: &'s Statement) -> Option<&'s [Statement]> {
        if s.block.is_none() {
            self.errors.push(
                Diagnostic::new(
                    &s.keyword.location,
                    format!("`{}` needs a block", s.keyword.text),
                )
                .hint("open it with `{` on the same line"),
            );
        }
        s.block.as_deref()
    }

    pub(super) fn value<'s>(&mut self, s: &'s Statement) -> Option<&'s Word> {
        if s.block.is_some() {
            self.errors.push(Diagnostic::new(
                &s.keyword.location,
                format!("`{}` takes a value, not a block", s.keyword.text),
            ));
            return None;
        }
        match s.args.as_slice() {
            [w] => Some(w),
            [] => {
                self.errors.push(
                    Diagnostic::new(
                        &s.keyword.location,
                        format!("`{}` is missing its value", s.keyword.text),
                    )
                    .hint(format!("write `{} VALUE` on one line", s.keyword.text)),
                );
                None
            }
            [_, extra, ..] => {
                self.errors.push(Diagnostic::new(
                    &extra.location,
                    format!(
                        "unexpected `{}` after the value of `{}`",
                        extra.text, s.keyword.text
                    ),
                ));
                None
            }
        }
    }

    pub(super) fn no_args(&mut self, s: &Statement) -> bool {
        if let Some(extra) = s.args.first() {
            self.errors.push(Diagnostic::new(
                &extra.location,
                format!("`{}` takes no value", s.keyword.text),
            ));
            return false;
        }
        true
    }

    /// A number of seconds (fractions allowed) from 0 to `max`, as milliseconds.
    pub(super) fn seconds_ms(&mut self, s: &Statement, max: u32) -> Option<u32> {
        let w = self.value(s)?;
        match w.text.parse::<f64>() {
            Ok(v) if v.is_finite() && (0.0..=f64::from(max)).contains(&v) => {
                Some((v * 1000.0).round() as u32)
            }
            _ => {
                self.errors.push(Diagnostic::new(
                    &w.location,
                    format!(
                        "`{}` expects seconds from 0 to {max}, not `{}`",
                        s.keyword.text, w.text
                    ),
                ));
                None
            }
        }
    }

    /// A keyword that is on when present, or takes `true`/`false` (keepalived's booleans).
    pub(super) fn flag(&mut self, s: &Statement) -> bool {
        match s.args.as_slice() {
            [] => true,
            [w] => match w.text.to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" => true,
                "false" | "off" | "no" => false,
                _ => {
                    self.errors.push(Diagnostic::new(
                        &w.location,
                        format!("`{}` takes true or false, not `{}`", s.keyword.text, w.text),
                    ));
                    false
                }
            },
            [_, extra, ..] => {
                self.errors.push(Diagnostic::new(
                    &extra.location,
                    format!("unexpected `{}` after `{}`", extra.text, s.keyword.text),
                ));
                false
            }
        }
    }

    pub(super) fn string(&mut self, s: &Statement) -> Option<String> {
        self.value(s).map(|w| w.text.clone())
    }

    pub(super) fn integer(&mut self, s: &Statement, min: u32, max: u32) -> Option<u32> {
        let w = self.value(s)?;
        match w.text.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let d = Diagnostic::new(
                    &w.location,
                    format!(
                        "`{}` expects an integer from {min} to {max}, not `{}`",
                        s.keyword.text, w.text
                    ),
                );
                self.errors.push(d);
                None
            }
        }
    }

    pub(super) fn version(&mut self, s: &Statement) -> Option<u8> {
        self.integer(s, 2, 3).map(|v| v as u8)
    }

    pub(super) fn initial_state(&mut self, s: &Statement) -> Option<InitialState> {
        let w = self.value(s)?;
        let state = match w.text.to_ascii_uppercase().as_str() {
            "MASTER" => InitialState::Master,
            "BACKUP" => InitialState::Backup,
            _ => {
                self.errors.push(
                    Diagnostic::new(
                        &w.location,
                        format!("`state` must be MASTER or BACKUP, not `{}`", w.text),
                    )
                    .hint("write `state BACKUP` (or MASTER on the preferred node)"),
                );
                return None;
            }
        };
        if w.text != w.text.to_ascii_uppercase() {
            self.warnings.push(
                Diagnostic::new(
                    &w.location,
                    format!("`state {}` should be upper case", w.text),
                )
                .hint("keepalived expects MASTER or BACKUP"),
            );
        }
        Some(state)
    }

    /// `advert_int` in seconds with up to two decimals, as centiseconds.
    pub(super) fn advert_int(&mut self, s: &Statement) -> Option<u16> {
        let w = self.value(s)?;
        let parsed = w
            .text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f > 0.0);
        match parsed.map(|f| (f * 100.0).round()) {
            Some(cs) if (1.0..=4095.0).contains(&cs) => Some(cs as u16),
            _ => {
                self.errors.push(
                    Diagnostic::new(
                        &w.location,
                        format!(
                            "`advert_int {}` is not a number of seconds from 0.01 to 40.95",
                            w.text
                        ),
                    )
                    .hint("write e.g. `advert_int 1` or `advert_int 0.1`"),
                );
                None
            }
        }
    }
}
