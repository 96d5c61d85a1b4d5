//! A sealed namespace for the capture cases: `lo`, a `dummy0` that carries
//! the route to the (fake) service addresses, and servers on 127.0.0.1
//! where the capture lands (:15001 TCP accept-only, :15053 UDP echo).

use std::path::Path;

use egret_e2e::process::Background;

use super::netns::BenchNs;

/// The service address whose connects are captured (never routed anywhere:
/// dummy0 drops what it is given).
pub const VIP: [u8; 4] = [240, 240, 9, 1];
/// `VIP:80` as text.
pub const VIP_PORT: &str = "240.240.9.1:80";
/// Where DNS sends go (captured to :15053 when enrolled).
pub const DNS_ADDR: &str = "10.99.0.53:53";
/// Where captured connects land.
pub const LISTENER: &str = "127.0.0.1:15001";

/// The namespace and its servers; dropping it stops them and deletes it.
pub struct CaptureNs {
    // Field order = drop order: servers before the namespace.
    _servers: Vec<Background>,
    pub ns: BenchNs,
}

impl CaptureNs {
    /// Builds it; servers stop by themselves after `life_ms`. A TPROXY
    /// target needs a `transparent` listener.
    pub fn new(
        tag: &str,
        load: &Path,
        logs: &Path,
        life_ms: u64,
        transparent: bool,
    ) -> anyhow::Result<CaptureNs> {
        let ns = BenchNs::new(tag)?;
        ns.ip(&["link", "add", "dummy0", "type", "dummy"])?;
        ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "dummy0"])?;
        ns.ip(&["link", "set", "dummy0", "up"])?;
        // Without a route, connect() to the VIP fails before iptables sees it.
        ns.ip(&["route", "add", "240.0.0.0/4", "dev", "dummy0"])?;
        let life = life_ms.to_string();
        let mut accept = vec!["accept", "--listen", LISTENER, "--duration-ms", &life];
        if transparent {
            accept.push("--transparent");
        }
        let mut servers = Vec::new();
        for (name, args) in [
            ("accept", accept),
            (
                "udp-echo",
                vec![
                    "udp-echo",
                    "--listen",
                    "127.0.0.1:15053",
                    "--duration-ms",
                    &life,
                ],
            ),
        ] {
            let cmd = super::load::in_ns(&ns.name, load, &args);
            servers.push(Background::spawn(
                name,
                cmd,
                &logs.join(format!("{tag}-{name}.log")),
            )?);
        }
        // The listeners are up once the ports answer.
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok(CaptureNs {
            _servers: servers,
            ns,
        })
    }
}
