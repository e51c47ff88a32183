//! The network-namespace lab: a bridge namespace, router namespaces and a client namespace,
//! joined by veth pairs, with helpers to run agents, capture and inject frames, and wait for
//! observable outcomes.
//!
//! Everything a [`Lab`] creates is removed when it is dropped, also while a test panics, and
//! every name carries the process id and a counter so tests run in parallel.

pub mod agent;
pub mod capture;
pub mod faults;
pub mod frames;
pub mod frr;
pub mod keepalived;
pub mod netns;
pub mod pcap;
pub mod xdp;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

pub use agent::Agent;
pub use capture::Capture;
pub use netns::{ip, run_in};

/// The virtual address the scenarios use.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// The IPv6 virtual address the scenarios use (no link-local VIP: keepalived accepts that).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
/// Name of every node's lab interface.
pub const IFNAME: &str = "eth0";

/// One namespace on the lab's bridge.
#[derive(Clone, Debug)]
pub struct Node {
    /// Namespace name.
    pub ns: String,
    /// Its address on the lab subnet (10.0.0.0/24).
    pub addr: Ipv4Addr,
    /// The MAC of its `eth0`.
    pub mac: [u8; 6],
}

/// A lab: `routers` router namespaces and one client namespace on a bridge.
pub struct Lab {
    /// Prefix of every name this lab created.
    pub name: String,
    bridge: String,
    /// Router namespaces; router `i` has address 10.0.0.(i+1).
    pub routers: Vec<Node>,
    /// The client namespace, 10.0.0.50.
    pub client: Node,
    /// Scratch directory for configs, sockets and logs.
    pub dir: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether the lab can run here. Prints why a test is skipped when it cannot.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED {test}: the namespace lab needs root (CI runs it as root)");
    }
    root
}

/// Serialises the scenarios whose outcome depends on timely scheduling (10 ms adverts), so
/// parallel tests on a two-core machine do not starve them.
pub fn timing_sensitive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lab {
    /// Builds a lab named after `test`.
    pub fn new(test: &str, routers: usize) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let name = format!("vl-{short}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir)?;
        let mut lab = Self {
            bridge: format!("{name}-br"),
            routers: Vec::new(),
            client: Node {
                ns: format!("{name}-c"),
                addr: CLIENT_ADDR,
                mac: [0; 6],
            },
            name,
            dir,
        };
        // From here on, Drop cleans up whatever was created, even on error.
        netns::add(&lab.bridge)?;
        ip(&lab.bridge, &["link", "add", "br0", "type", "bridge"])?;
        ip(&lab.bridge, &["link", "set", "br0", "up"])?;
        for i in 0..routers {
            let node =
                lab.add_node(&format!("r{}", i + 1), Ipv4Addr::new(10, 0, 0, i as u8 + 1))?;
            lab.routers.push(node);
        }
        lab.client = lab.add_node("c", CLIENT_ADDR)?;
        Ok(lab)
    }

    fn add_node(&self, suffix: &str, addr: Ipv4Addr) -> Result<Node> {
        let ns = format!("{}-{suffix}", self.name);
        let port = format!("p{suffix}");
        netns::add(&ns)?;
        netns::no_dad(&ns)?;
        ip(
            &ns,
            &[
                "link",
                "add",
                IFNAME,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.bridge,
            ],
        )?;
        ip(&self.bridge, &["link", "set", &port, "master", "br0", "up"])?;
        ip(&ns, &["link", "set", "lo", "up"])?;
        ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", IFNAME])?;
        ip(&ns, &["link", "set", IFNAME, "up"])?;
        let mac = netns::mac(&ns, IFNAME)?;
        Ok(Node { ns, addr, mac })
    }

    /// Router `i` (0-based).
    pub fn router(&self, i: usize) -> &Node {
        &self.routers[i]
    }

    /// Starts `vrrp-agent -f CONFIG` in a router's namespace.
    pub fn spawn_agent(&self, node: &Node, config: &str) -> Result<Agent> {
        Agent::spawn(&self.dir, node, config, &[])
    }

    /// Starts `vrrp-agent -f CONFIG ARGS...` in a router's namespace.
    pub fn spawn_agent_with(&self, node: &Node, config: &str, args: &[&str]) -> Result<Agent> {
        Agent::spawn(&self.dir, node, config, args)
    }

    /// Makes the bridge flood every frame to every port (no MAC learning), so a frame sent
    /// to a MAC reaches every node, not just the one that last used it.
    pub fn bridge_as_hub(&self) -> Result<()> {
        ip(
            &self.bridge,
            &["link", "set", "br0", "type", "bridge", "ageing_time", "0"],
        )
    }

    /// Sends one ICMP echo request from the client and waits for the reply.
    pub fn client_ping(&self, addr: Ipv4Addr, timeout: Duration) -> Result<bool> {
        run_in(&self.client.ns, move || -> Result<bool> {
            // An ICMP datagram ("ping") socket: the kernel fills in the id and checksum. A new
            // namespace allows it to no group; root's group is enough here.
            std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 0")?;
            // SAFETY: plain socket(2) call; the result is checked.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            // SAFETY: fd is fresh and owned here.
            let socket =
                unsafe { <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            socket.set_read_timeout(Some(timeout))?;
            let echo = [8u8, 0, 0, 0, 0, 0, 0, 1, b'v', b'r', b'r', b'p'];
            socket.send_to(&echo, (addr, 0))?;
            let mut buf = [0u8; 64];
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if n >= 8 && buf[0] == 0 && from.ip() == IpAddr::V4(addr) => {
                        return Ok(true);
                    }
                    Ok(_) => continue,
                    Err(_) => return Ok(false),
                }
            }
            Ok(false)
        })?
    }

    /// Takes a router's port off the bridge (carrier stays up): a partition.
    pub fn set_port_attached(&self, suffix: &str, attached: bool) -> Result<()> {
        let port = format!("p{suffix}");
        if attached {
            ip(&self.bridge, &["link", "set", &port, "master", "br0"])
        } else {
            ip(&self.bridge, &["link", "set", &port, "nomaster"])
        }
    }

    /// IPv4 addresses on a node's `eth0`.
    pub fn addresses(&self, node: &Node) -> Result<Vec<Ipv4Addr>> {
        netns::ipv4_addresses(&node.ns, IFNAME)
    }

    /// IPv6 addresses on a node's `eth0`.
    pub fn addresses_v6(&self, node: &Node) -> Result<Vec<Ipv6Addr>> {
        netns::ipv6_addresses(&node.ns, IFNAME)
    }

    /// The client's neighbour entry (MAC) for `addr`, if it has one with an address.
    pub fn client_neighbour(&self, addr: Ipv4Addr) -> Result<Option<[u8; 6]>> {
        netns::neighbour(&self.client.ns, IFNAME, addr)
    }

    /// Makes the client's kernel resolve `addr` by sending it a UDP datagram.
    pub fn client_poke(&self, addr: Ipv4Addr) -> Result<()> {
        run_in(&self.client.ns, move || -> Result<()> {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            s.send_to(b"poke", (addr, 9))?;
            Ok(())
        })?
    }

    /// Starts r1 at priority 200 and r2 at 100 (one VRRPv3 instance holding [`VIP`]) and
    /// waits until r1 is MASTER and r2 a BACKUP that has heard it.
    pub fn elected_pair(&self, advert_int: &str) -> (Agent, Agent) {
        let second = Duration::from_secs(1);
        let master = self
            .spawn_agent(self.router(0), &single_instance_config(200, advert_int))
            .expect("start r1");
        let backup = self
            .spawn_agent(self.router(1), &single_instance_config(100, advert_int))
            .expect("start r2");
        assert!(
            master
                .wait_state(vrrp_agent::election::State::Master, 10 * second)
                .is_some(),
            "r1 never became MASTER"
        );
        let heard = backup.wait_backup_of(Some(self.router(0).addr.into()), 5 * second);
        assert!(
            heard.is_some(),
            "r2 is not a BACKUP of r1: {:?}",
            backup.status()
        );
        (master, backup)
    }

    /// r1 played by the test (VRRPv3 adverts for [`VIP`] at priority 200 every 100 ms, as long
    /// as the returned stream lives) and an agent at r2 (priority 100) that follows it.
    pub fn backup_of_injected_master(&self) -> (frames::AdvertStream, Agent) {
        let r1 = self.router(0);
        let stream = frames::AdvertStream::start(
            self.capture(r1).expect("capture on r1"),
            r1.mac,
            r1.addr,
            vrrp_agent::packet::Advert::v3(51, 200, 10, vec![VIP]),
            Duration::from_millis(100),
        );
        let backup = self
            .spawn_agent(self.router(1), &single_instance_config(100, "0.1"))
            .expect("start r2");
        assert!(
            backup
                .wait_backup_of(Some(r1.addr.into()), Duration::from_secs(5))
                .is_some(),
            "the backup does not follow the injected master"
        );
        (stream, backup)
    }

    /// Asks for `addr` once from the client (a broadcast ARP request from a raw socket, so
    /// the client's own neighbour state plays no part) and returns the MAC of every reply
    /// that arrived within `window`, in order (two nodes answering with one VMAC show twice).
    pub fn arp_answerers(&self, addr: Ipv4Addr, window: Duration) -> Result<Vec<[u8; 6]>> {
        let request = frames::arp_request(self.client.mac, CLIENT_ADDR, addr);
        self.answerers(&request, window, |frame| {
            vrrp_agent::packet::Arp::parse_frame(frame)
                .filter(|arp| arp.op == vrrp_agent::packet::ARP_REPLY && arp.spa == addr)
                .map(|arp| arp.sha)
        })
    }

    /// The same for IPv6: a Neighbor Solicitation for `addr` from the client (as fd00::50,
    /// whether or not its stack holds that address) and the target MAC of every NA for it.
    pub fn nd_answerers(&self, addr: Ipv6Addr, window: Duration) -> Result<Vec<[u8; 6]>> {
        let source = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x50);
        let request = frames::neighbour_solicitation(self.client.mac, source, addr);
        self.answerers(&request, window, |frame| {
            vrrp_agent::packet::NeighbourAdvert::parse_frame(frame)
                .filter(|na| na.target == addr && na.solicited)
                .and_then(|na| na.target_mac)
        })
    }

    /// Sends `request` from the client once and collects what `answer` extracts from every
    /// incoming frame within `window`.
    fn answerers(
        &self,
        request: &[u8],
        window: Duration,
        answer: impl Fn(&[u8]) -> Option<[u8; 6]>,
    ) -> Result<Vec<[u8; 6]>> {
        let capture = self.capture(&self.client)?;
        capture.send(request)?;
        let deadline = Instant::now() + window;
        let mut answerers = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(frame) = capture.recv(left) else {
                break;
            };
            if let Some(mac) = answer(&frame.data).filter(|_| !frame.outgoing) {
                answerers.push(mac);
            }
        }
        Ok(answerers)
    }

    /// Attaches a foreign XDP program named `name` (generic mode) to a node's `eth0`, as
    /// another tool on the host would have.
    pub fn attach_foreign_xdp(&self, node: &Node, name: &str) -> Result<()> {
        use std::os::fd::AsRawFd as _;
        let program = xdp::load_foreign_program(name).context("loading a foreign XDP program")?;
        let fd = program.as_raw_fd();
        let ifindex = netns::ifindex(&node.ns, IFNAME)?;
        run_in(&node.ns, move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let netlink = vrrp_agent::net::link::Netlink::connect()?;
                netlink
                    .attach_xdp(ifindex, fd, vrrp_agent::dataplane::XdpMode::Generic, false)
                    .await
            })
        })??;
        Ok(())
    }

    /// The name of the XDP program a node's `eth0` runs, if any (from `ip -j link`).
    pub fn xdp_program_name(&self, node: &Node) -> Result<Option<String>> {
        netns::xdp_program_name(&node.ns, IFNAME)
    }

    /// Creates a FIFO named `name` in the lab directory and opens its reading end
    /// (non-blocking), so notify lines written to it are kept from now on.
    pub fn fifo_reader(&self, name: &str) -> Result<(PathBuf, std::fs::File)> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.dir.join(name);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: a NUL-terminated path that outlives the call.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)?;
        Ok((path, reader))
    }

    /// Opens a frame capture/injection socket on a node's `eth0`.
    pub fn capture(&self, node: &Node) -> Result<Capture> {
        Capture::open(&node.ns, IFNAME).context("opening a capture socket")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut all: Vec<String> = self.routers.iter().map(|n| n.ns.clone()).collect();
        all.push(self.client.ns.clone());
        all.push(self.bridge.clone());
        for ns in &all {
            netns::kill_all_in(ns);
        }
        for ns in &all {
            let _ = netns::del(ns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sleeps until `at` (at once if it has passed): for checks tied to a protocol deadline.
pub fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// Polls `f` every `every` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// One VRRP instance on `eth0` holding [`VIP`], as keepalived.conf (both daemons read it).
#[derive(Clone, Debug)]
pub struct Spec {
    /// `priority`.
    pub priority: u8,
    /// `advert_int` as written.
    pub advert_int: String,
    /// `vrrp_version` in global_defs.
    pub version: u8,
    /// `authentication { auth_type PASS auth_pass ... }` (v2).
    pub auth_pass: Option<String>,
    /// `unicast_src_ip` and `unicast_peer { ... }`.
    pub unicast: Option<(IpAddr, Vec<IpAddr>)>,
    /// The `virtual_ipaddress` block's lines (default: [`VIP`]/24).
    pub vip: String,
    /// Raw lines added to the instance block.
    pub extra: String,
}

impl Spec {
    /// A VRRPv3 instance.
    pub fn v3(priority: u8, advert_int: &str) -> Self {
        Self {
            priority,
            advert_int: advert_int.to_string(),
            version: 3,
            auth_pass: None,
            unicast: None,
            vip: format!("{VIP}/24"),
            extra: String::new(),
        }
    }

    /// A VRRPv3 IPv6 instance holding [`VIP6`].
    pub fn v6(priority: u8, advert_int: &str) -> Self {
        Self {
            vip: format!("{VIP6}/64"),
            ..Self::v3(priority, advert_int)
        }
    }

    /// A VRRPv2 instance (whole-second intervals).
    pub fn v2(priority: u8, advert_int: u8) -> Self {
        Self {
            version: 2,
            ..Self::v3(priority, &advert_int.to_string())
        }
    }

    /// With PASS authentication.
    pub fn with_auth(mut self, pass: &str) -> Self {
        self.auth_pass = Some(pass.to_string());
        self
    }

    /// Sending unicast from `src` to `peers`.
    pub fn with_unicast<A: Into<IpAddr> + Copy>(mut self, src: A, peers: &[A]) -> Self {
        self.unicast = Some((src.into(), peers.iter().map(|&p| p.into()).collect()));
        self
    }

    /// The configuration text.
    pub fn config(&self) -> String {
        let mut extra = self.auth_pass.as_ref().map_or(String::new(), |p| {
            format!(
                "    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}\n"
            )
        });
        if let Some((src, peers)) = &self.unicast {
            let peers: String = peers.iter().map(|p| format!("        {p}\n")).collect();
            extra.push_str(&format!(
                "    unicast_src_ip {src}\n    unicast_peer {{\n{peers}    }}\n"
            ));
        }
        extra.push_str(&self.extra);
        format!(
            "global_defs {{\n    router_id lab\n    vrrp_version {}\n}}\n\n\
             vrrp_instance VI_1 {{\n    state {}\n    interface {IFNAME}\n    virtual_router_id 51\n    \
             priority {}\n    advert_int {}\n{extra}    virtual_ipaddress {{\n        {}\n    }}\n}}\n",
            self.version,
            if self.priority == 255 {
                "MASTER"
            } else {
                "BACKUP"
            },
            self.priority,
            self.advert_int,
            self.vip
        )
    }
}

/// A keepalived.conf with one VRRPv3 instance on `eth0` holding [`VIP`].
pub fn single_instance_config(priority: u8, advert_int: &str) -> String {
    Spec::v3(priority, advert_int).config()
}

/// Formats a MAC address.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
