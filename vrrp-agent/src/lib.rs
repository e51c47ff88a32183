//! vrrp-agent: a keepalived-compatible VRRP daemon whose fast path runs in eBPF.
//!
//! The crate is a library with a thin `main`, so the lab and the benchmarks reuse its codec,
//! its status types and its configuration parser.
#![deny(missing_docs)]

pub mod checker;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod election;
pub mod exec;
pub mod lb;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod packet;
pub mod privileges;
pub mod sd_notify;
pub mod track;
