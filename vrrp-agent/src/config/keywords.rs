//! The keyword table: every keyword of keepalived 2.2.7's keepalived.conf(5), where it is
//! written, and what vrrp-agent does with it (`keywords.tsv`, checked against the man page by
//! `tests/tests/keyword_table.rs`).
//!
//! The builder consults it for every keyword it does not handle itself, so a keyword is never
//! silently ignored: one that would change how the cluster behaves is refused (the daemon
//! does not start, exit 3), one that has no effect here is warned about (exit 4 with `-t`).

use std::sync::OnceLock;

/// The table as committed.
pub const TABLE: &str = include_str!("keywords.tsv");

/// What vrrp-agent does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Read and honoured.
    Implemented,
    /// Changes behaviour and is not implemented: refuse to run, saying why.
    Refuse(&'static str),
    /// Has no effect here: warn and run.
    Warn(&'static str),
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyword {
    /// Where it is written: `top` (outside any block) or the enclosing block's keyword.
    pub block: &'static str,
    /// The keyword.
    pub keyword: &'static str,
    /// What vrrp-agent does with it.
    pub policy: Policy,
}

/// Every row, parsed once.
pub fn all() -> &'static [Keyword] {
    static ROWS: OnceLock<Vec<Keyword>> = OnceLock::new();
    ROWS.get_or_init(|| {
        TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let block = fields.next()?;
                let keyword = fields.next()?;
                let policy = fields.next()?;
                let why = fields.next().unwrap_or("");
                let policy = match policy {
                    "implemented" => Policy::Implemented,
                    "warn" => Policy::Warn(why),
                    _ => Policy::Refuse(why),
                };
                Some(Keyword {
                    block,
                    keyword,
                    policy,
                })
            })
            .collect()
    })
}

/// The row for `keyword` written in `block`.
pub fn lookup(block: &str, keyword: &str) -> Option<&'static Keyword> {
    all()
        .iter()
        .find(|k| k.block == block && k.keyword == keyword)
}
