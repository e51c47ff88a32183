//! Adapters to the OS network stack: rtnetlink and the sending sockets.

pub mod link;
pub mod monitor;
pub mod sockets;
pub mod xdp;
