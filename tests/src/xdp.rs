//! BPF_PROG_TEST_RUN harness: the real XDP program and maps, one instance, crafted frames.

use vrrp_agent::dataplane::Dataplane;
use vrrp_common::{FAMILY_IPV6, InstanceConfig, InstanceKey, auth, counters, state};

/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// `XDP_TX`.
pub const XDP_TX: u32 = 3;
/// `lo`: BPF_PROG_TEST_RUN needs an existing interface for `ingress_ifindex`.
pub const IFINDEX: u32 = 1;

/// The loaded program with one instance (VRID 51 on [`IFINDEX`]).
pub struct Harness {
    /// The program and its maps.
    pub dp: Dataplane,
    /// The AsyncFd of the event ring is registered with this runtime.
    pub rt: tokio::runtime::Runtime,
    /// The instance's key.
    pub key: InstanceKey,
    /// What was written for it.
    pub config: InstanceConfig,
}

impl Harness {
    /// A VRRPv3 instance at 10 ms.
    pub fn new(state: u8, priority: u8) -> Self {
        Self::with(InstanceConfig {
            state,
            priority,
            preempt: 1,
            version: 3,
            primary: vrrp_common::advert_rule::v4([10, 0, 0, 2]),
            generation: 7,
            interval_cs: 1,
            auth_type: 0,
            flags: 0,
            auth_pass: [0; 8],
            preempt_delay_ms: 0,
            pad2: 0,
            preempt_hold_until_ns: 0,
        })
    }

    /// A VRRPv2 backup at 1 s with `auth_type PASS`, `auth_pass secret`.
    pub fn v2_pass() -> Self {
        Self::with(InstanceConfig {
            version: 2,
            interval_cs: 100,
            auth_type: auth::PASS,
            auth_pass: *b"secret\0\0",
            ..Self::new(state::BACKUP, 100).config
        })
    }

    /// A VRRPv3 IPv6 backup at 10 ms.
    pub fn v6() -> Self {
        let mut h = Self::new(state::BACKUP, 100);
        h.dp.remove_instance(&h.key);
        h.key = InstanceKey::new(IFINDEX, FAMILY_IPV6, 51);
        h.dp.set_instance(h.key, h.config).unwrap();
        h
    }

    /// An instance with the given configuration.
    pub fn with(config: InstanceConfig) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let mut dp = Dataplane::load().expect("load the XDP program");
        let key = InstanceKey::ipv4(IFINDEX, 51);
        dp.set_instance(key, config).unwrap();
        drop(_guard);
        Self {
            dp,
            rt,
            key,
            config,
        }
    }

    /// Runs each named frame and checks its action and that exactly its counter moved.
    pub fn expect_each(&mut self, cases: Vec<(&str, Vec<u8>, u32, u32)>) {
        for (name, frame, action, counter) in cases {
            let (got, delta) = self.run(&frame);
            assert_eq!(got, action, "{name}: action");
            assert!(
                only(&delta, counter),
                "{name}: expected {} only, counters moved {:?}",
                counters::NAMES[counter as usize],
                moved(&delta)
            );
        }
    }

    /// Runs a frame; returns the action and how much each counter grew.
    pub fn run(&mut self, frame: &[u8]) -> (u32, [u64; counters::COUNT]) {
        let before = self.dp.counters();
        let action = self.dp.run_frame(frame, IFINDEX).expect("test run").action;
        let after = self.dp.counters();
        let mut delta = [0; counters::COUNT];
        for i in 0..counters::COUNT {
            delta[i] = after[i] - before[i];
        }
        (action, delta)
    }
}

/// Whether `counter` moved by one (with `vrrp-rx`) and nothing else did.
pub fn only(delta: &[u64; counters::COUNT], counter: u32) -> bool {
    delta.iter().enumerate().all(|(i, d)| {
        let want = u64::from(i as u32 == counter || i as u32 == counters::VRRP_RX);
        *d == want
    })
}

/// The counters that moved, by name, for assertion messages.
pub fn moved(delta: &[u64; counters::COUNT]) -> Vec<(&'static str, u64)> {
    delta
        .iter()
        .enumerate()
        .filter(|(_, d)| **d > 0)
        .map(|(i, d)| (counters::NAMES[i], *d))
        .collect()
}

/// Loads a minimal XDP program (`return XDP_PASS`) named `name` with the raw bpf(2) syscall:
/// the stand-in for somebody else's program already attached to an interface.
pub fn load_foreign_program(name: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;

    /// The head of `union bpf_attr` for BPF_PROG_LOAD.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    // r0 = 2 (XDP_PASS); exit
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    for (slot, b) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *slot = b;
    }
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: 0,
    };
    // SAFETY: attr and the buffers it points to outlive the call; the size is the struct's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &raw const attr,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}
