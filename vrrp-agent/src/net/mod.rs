//! Adapters to the OS network stack: rtnetlink, the address keeper and the sending sockets.

pub mod keeper;
pub mod link;
pub mod monitor;
pub mod neighbours;
pub mod sockets;
pub mod xdp;
