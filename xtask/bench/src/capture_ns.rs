//! A sealed namespace for the capture cases: only `lo`, which also carries
//! the routes to the (fake) service and DNS addresses, and servers on
//! 127.0.0.1 where the capture lands (:15001 TCP accept-only, :15053 UDP
//! echo). An uncaptured packet to those addresses dies on `lo`.

use std::path::Path;

use egret_e2e::process::Background;

use crate::netns::BenchNs;

/// The service address whose connects are captured (routed to `lo` only).
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
    /// target needs a `transparent` listener; with `orig_dst` the listener
    /// consumes each connection's record there, as the agent does.
    pub fn new(
        tag: &str,
        load: &Path,
        logs: &Path,
        life_ms: u64,
        transparent: bool,
        orig_dst: Option<&Path>,
    ) -> anyhow::Result<CaptureNs> {
        let ns = BenchNs::new(tag)?;
        ns.ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"])?;
        // Without a route, connect() to the VIP fails before iptables sees it.
        for net in ["240.0.0.0/4", "10.99.0.0/24"] {
            ns.ip(&["route", "add", net, "dev", "lo", "src", "10.99.0.1"])?;
        }
        let life = life_ms.to_string();
        let mut accept = vec!["accept", "--listen", LISTENER, "--duration-ms", &life];
        if transparent {
            accept.push("--transparent");
        }
        let orig_dst = orig_dst.map(|p| p.to_string_lossy().into_owned());
        if let Some(pin) = &orig_dst {
            accept.extend(["--orig-dst", pin]);
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
            let cmd = crate::load::in_ns(&ns.name, load, &args);
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
