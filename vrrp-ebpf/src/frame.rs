//! Bounds-checked access to packet bytes, shared by the XDP and TC programs.

use aya_ebpf::programs::{TcContext, XdpContext};

/// A packet the programs can read: the `[data, data_end)` window of an XDP buffer or an skb.
pub trait Frame {
    /// Address of the first byte.
    fn start(&self) -> usize;
    /// Address one past the last byte.
    fn end(&self) -> usize;
}

impl Frame for XdpContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
}

impl Frame for TcContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
}

/// `N` bytes at `offset`, or `None` past the end of the frame.
#[inline(always)]
pub fn bytes<const N: usize>(frame: &impl Frame, offset: usize) -> Option<[u8; N]> {
    let start = frame.start() + offset;
    if start + N > frame.end() {
        return None;
    }
    // SAFETY: bounds checked against the end of the frame just above.
    Some(unsafe { *(start as *const [u8; N]) })
}
