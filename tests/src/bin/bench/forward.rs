//! The load balancer's XDP path: UDP datagrams to a `virtual_server` (DR, `mh`, one real
//! server) from the generator at its top rate, 256 flows. Forwarded packets come from the
//! director's own per real server counter; the cost is the whole system's busy time (generic
//! XDP on veth runs in softirq, charged to no process). keepalived cannot take part: its
//! load balancing is IPVS, which this kernel does not have.

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, Result};
use vrrp_agent::packet::{ETH_P_IP, Ipv4Header, ethernet};
use vrrp_lab::{Lab, VIP, wait_for};

use crate::{load::Generator, sys::System};

/// One measured window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ForwardSample {
    /// Seconds measured.
    pub window_s: f64,
    /// Datagrams the generator sent per second.
    pub generated_per_s: f64,
    /// Datagrams the director forwarded per second (its XDP counter).
    pub forwarded_per_s: f64,
    /// Whole-system busy time per second (CPU-seconds per second).
    pub system_busy: f64,
    /// The generator's own CPU per second.
    pub generator: f64,
}

const PORT: u16 = 9000;

/// Runs the scenario for `window`.
pub fn run(window: Duration) -> Result<ForwardSample> {
    let lab = Lab::new("bfwd", 2)?;
    let (director, server) = (lab.router(0), lab.router(1));
    vrrp_lab::netns::ip(
        &server.ns,
        &["addr", "add", &format!("{VIP}/32"), "dev", "lo"],
    )?;
    let config = format!(
        "global_defs {{\n    vrrp_version 3\n}}\nvrrp_instance VI_1 {{\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    priority 255\n    advert_int 1\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\nvirtual_server {VIP} {PORT} {{\n    protocol UDP\n    lb_kind DR\n    lb_algo mh\n    delay_loop 1\n    real_server {} {PORT} {{\n        MISC_CHECK {{\n            misc_path /bin/true\n        }}\n    }}\n}}\n",
        server.addr
    );
    let agent = lab.spawn_agent(director, &config)?;
    let counted = || -> u64 {
        agent
            .status()
            .ok()
            .and_then(|s| {
                s.virtual_servers
                    .first()
                    .and_then(|v| v.real_servers.first().map(|r| r.forwarded.packets))
            })
            .unwrap_or(0)
    };
    // The agent learns the server's MAC from the neighbour table (asking for it first):
    // wait for the first forwarded datagram.
    let probe = datagram(lab.client.mac, director.mac, lab.client.addr, 1);
    let capture = lab.capture(&lab.client)?;
    wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        let _ = capture.send(&probe);
        (counted() > 0).then_some(())
    })
    .context("the director never forwarded a datagram")?;
    let frames: Vec<Vec<u8>> = (0..256)
        .map(|flow| datagram(lab.client.mac, director.mac, lab.client.addr, 10_000 + flow))
        .collect();
    let generator = Generator::start(vec![capture], vec![frames], 0);
    std::thread::sleep(Duration::from_millis(500));
    let (c0, s0, t0) = (counted(), System::now(), std::time::Instant::now());
    std::thread::sleep(window);
    let (c1, s1, elapsed) = (counted(), System::now(), t0.elapsed().as_secs_f64());
    let (sent, generator_cpu) = generator.stop();
    let busy = s0.until(&s1).busy;
    Ok(ForwardSample {
        window_s: elapsed,
        generated_per_s: sent as f64 / (elapsed + 0.5),
        forwarded_per_s: (c1 - c0) as f64 / elapsed,
        system_busy: busy / elapsed,
        generator: generator_cpu.as_secs_f64() / (elapsed + 0.5),
    })
}

/// A UDP datagram from the client (`sport`) to VIP:PORT, as a frame to the director.
fn datagram(client_mac: [u8; 6], director_mac: [u8; 6], client: Ipv4Addr, sport: u16) -> Vec<u8> {
    let mut udp = Vec::with_capacity(8 + 18);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&PORT.to_be_bytes());
    udp.extend_from_slice(&26u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // no checksum
    udp.extend_from_slice(&[0u8; 18]);
    let header = Ipv4Header {
        src: client,
        dst: VIP,
        ttl: 64,
        protocol: 17,
    };
    ethernet(director_mac, client_mac, ETH_P_IP, &header.wrap(&udp))
}
