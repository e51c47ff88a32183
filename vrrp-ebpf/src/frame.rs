//! Bounds-checked access to packet bytes, shared by the XDP and TC programs.

use aya_ebpf::programs::{TcContext, XdpContext};

/// A packet the programs can read: the `[data, data_end)` window of an XDP buffer or an skb.
pub trait Frame {
    /// Address of the first byte.
    fn start(&self) -> usize;
    /// Address one past the last byte.
    fn end(&self) -> usize;
}

/// Both contexts expose the window as `data()` / `data_end()`.
macro_rules! frame_from_data_pointers {
    ($($context:ty),*) => {$(
        impl Frame for $context {
            #[inline(always)]
            fn start(&self) -> usize {
                self.data()
            }

            #[inline(always)]
            fn end(&self) -> usize {
                self.data_end()
            }
        }
    )*};
}

frame_from_data_pointers!(XdpContext, TcContext);

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

/// Writes `N` bytes at `offset`; false (and nothing written) past the end of the frame.
#[inline(always)]
pub fn store<const N: usize>(frame: &impl Frame, offset: usize, value: [u8; N]) -> bool {
    // Opaque to LLVM, so it cannot drop the bounds check below as implied by an earlier one
    // (the verifier tracks ranges per packet pointer and would not follow); masked so the
    // verifier knows its bounds. Every offset we write at is below 1 KiB.
    let offset = core::hint::black_box(offset) & 0x3ff;
    let start = frame.start() + offset;
    if start + N > frame.end() {
        return false;
    }
    // SAFETY: bounds checked against the end of the frame just above.
    unsafe { core::ptr::write_unaligned(start as *mut [u8; N], value) };
    true
}

/// What the receive paths decide, independent of the hook they run in (the values are XDP's,
/// so the XDP entry point returns them as they are; the TC one maps them).
pub mod verdict {
    /// Let the stack have it.
    pub const PASS: u32 = 2;
    /// Drop it.
    pub const DROP: u32 = 1;
    /// Send the (rewritten) frame back out of the interface it came in on.
    pub const TX: u32 = 3;
    /// Send it out of the interface `bpf_redirect` was given (already called).
    pub const REDIRECT: u32 = 4;
}

/// A received frame, in XDP or in TC ingress: what the receive paths need beyond the bytes.
pub trait Ingress: Frame {
    /// The interface it arrived on.
    fn ifindex(&self) -> u32;
    /// Grows or shrinks the frame to `len` bytes; false if the kernel refused.
    fn resize(&self, len: usize) -> bool;
    /// The destination MAC was rewritten to this host's: make the stack take it as ours.
    fn now_for_host(&self);
}

impl Ingress for XdpContext {
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        self.ingress_ifindex() as u32
    }

    #[inline(always)]
    fn resize(&self, len: usize) -> bool {
        let delta = len as i32 - (self.end() - self.start()) as i32;
        // SAFETY: the context pointer is the program's own; the helper checks the delta.
        unsafe { aya_ebpf::helpers::generated::bpf_xdp_adjust_tail(self.ctx, delta) == 0 }
    }

    #[inline(always)]
    fn now_for_host(&self) {
        // XDP runs before the stack classifies the frame: nothing to do.
    }
}

impl Ingress for TcContext {
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: the context's skb pointer is valid for this program run.
        unsafe { (*self.skb.skb).ifindex }
    }

    #[inline(always)]
    fn resize(&self, len: usize) -> bool {
        // SAFETY: the skb pointer is the program's own; the helper checks the length.
        unsafe {
            aya_ebpf::helpers::generated::bpf_skb_change_tail(self.skb.skb, len as u32, 0) == 0
        }
    }

    #[inline(always)]
    fn now_for_host(&self) {
        /// `PACKET_HOST`.
        const PACKET_HOST: u32 = 0;
        let _ = self.skb.change_type(PACKET_HOST);
    }
}
