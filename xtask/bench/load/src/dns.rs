//! UDP round trips (the DNS hooks' path) and "wait until this name resolves".

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use egret_load::clock::mono_ns;

/// Arguments of `udp`.
#[derive(clap::Args)]
pub struct UdpArgs {
    /// Destination of the unconnected sends (port 53 is what the DNS hooks catch).
    #[arg(long)]
    addr: SocketAddr,
    /// Stop after this many round trips.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Stop after this long.
    #[arg(long, default_value_t = 2000)]
    duration_ms: u64,
}

/// sendto + recvfrom until count or deadline; returns the JSON summary.
pub fn udp(args: UdpArgs) -> anyhow::Result<String> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + Duration::from_millis(args.duration_ms);
    let (mut sent, mut answered) = (0u64, 0u64);
    let mut buf = [0u8; 512];
    while sent < args.count && Instant::now() < deadline {
        socket.send_to(b"egret-bench", args.addr)?;
        sent += 1;
        if socket.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    Ok(serde_json::json!({ "sent": sent, "answered": answered }).to_string())
}

/// Arguments of `dns-wait`.
#[derive(clap::Args)]
pub struct WaitArgs {
    /// The name to resolve (an A query).
    #[arg(long)]
    name: String,
    /// Resolver; default: the first nameserver of /etc/resolv.conf, port 53.
    #[arg(long)]
    server: Option<SocketAddr>,
    /// Give up after this long.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Pause between queries.
    #[arg(long, default_value_t = 1)]
    interval_ms: u64,
}

/// Queries until an A record comes back; returns when (CLOCK_MONOTONIC) and what.
pub fn wait(args: WaitArgs) -> anyhow::Result<String> {
    let server = match args.server {
        Some(s) => s,
        None => SocketAddr::new(first_nameserver()?.into(), 53),
    };
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms);
    let started = mono_ns();
    let mut queries = 0u64;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        queries += 1;
        let id = queries as u16;
        socket.send_to(&query(id, &args.name), server)?;
        let reply = socket.recv_from(&mut buf);
        if queries == 1 {
            // Tells the caller the resolver is being asked (it waits for
            // this line before making the change it times).
            println!("{}", serde_json::json!({ "querying_mono_ns": mono_ns() }));
            std::io::Write::flush(&mut std::io::stdout())?;
        }
        if let Ok((n, _)) = reply {
            if let Some(addr) = first_a(&buf[..n], id) {
                return Ok(serde_json::json!({
                    "started_mono_ns": started,
                    "answered_mono_ns": mono_ns(),
                    "addr": addr.to_string(),
                    "queries": queries,
                })
                .to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
    anyhow::bail!("{} not answered within {} ms", args.name, args.timeout_ms)
}

fn first_nameserver() -> anyhow::Result<Ipv4Addr> {
    let text = std::fs::read_to_string("/etc/resolv.conf")?;
    text.lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .find_map(|a| a.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no IPv4 nameserver in /etc/resolv.conf"))
}

/// A recursive A query for `name`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The first A record of a NOERROR reply to query `id`.
fn first_a(msg: &[u8], id: u16) -> Option<Ipv4Addr> {
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id || msg[3] & 0x0f != 0 {
        return None;
    }
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    let mut at = skip_name(msg, 12)? + 4;
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let head = msg.get(at..at + 10)?;
        let (rtype, len) = (
            u16::from_be_bytes([head[0], head[1]]),
            u16::from_be_bytes([head[8], head[9]]) as usize,
        );
        let data = msg.get(at + 10..at + 10 + len)?;
        if rtype == 1 && len == 4 {
            return Some(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    None
}

/// Offset just past a (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + l as usize,
        }
    }
}
