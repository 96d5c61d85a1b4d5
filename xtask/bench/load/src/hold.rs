//! Connection scale: hold N idle connections open (through the waypoint),
//! then time fresh HTTP/1.1 requests while they stay open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::connect::linger_zero;
use egret_load::clock::percentile_us;

/// Arguments of `hold`.
#[derive(clap::Args)]
pub struct Args {
    /// host:port (resolved once, through the workload's resolver).
    #[arg(long)]
    target: String,
    /// Idle connections to hold.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Timed requests, each on a fresh connection.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Request path.
    #[arg(long, default_value = "/get")]
    path: String,
    /// How long to keep everything open after the requests (memory sampling).
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
    /// Deadline for the whole run.
    #[arg(long, default_value_t = 60_000)]
    duration_ms: u64,
}

/// Runs the hold; returns the JSON summary.
pub fn run(args: Args) -> anyhow::Result<String> {
    raise_nofile(args.conns as u64 + 1024)?;
    let addr: SocketAddr = args
        .target
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} did not resolve", args.target))?;
    let host = args
        .target
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let deadline = Instant::now() + Duration::from_millis(args.duration_ms);
    let opened_at = Instant::now();
    let mut idle = Vec::with_capacity(args.conns);
    let mut connect_errors = 0u64;
    while idle.len() < args.conns && Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => idle.push(s),
            Err(_) => connect_errors += 1,
        }
    }
    let open_secs = opened_at.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(args.requests);
    let mut request_errors = 0u64;
    for _ in 0..args.requests {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        match get(addr, &host, &args.path) {
            Ok(()) => latencies.push(t.elapsed()),
            Err(_) => request_errors += 1,
        }
    }
    std::thread::sleep(
        Duration::from_millis(args.hold_ms).min(deadline - Instant::now().min(deadline)),
    );
    let held = idle.len();
    for s in &idle {
        linger_zero(s);
    }
    Ok(serde_json::json!({
        "addr": addr.to_string(),
        "held": held,
        "connect_errors": connect_errors,
        "open_secs": open_secs,
        "requests": latencies.len(),
        "request_errors": request_errors,
        "p50_us": percentile_us(&mut latencies, 50.0),
        "p99_us": percentile_us(&mut latencies, 99.0),
    })
    .to_string())
}

/// One GET on a fresh connection, read to the end of its body.
fn get(addr: SocketAddr, host: &str, path: &str) -> anyhow::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    anyhow::ensure!(body.starts_with(b"HTTP/1.1 200"), "not a 200");
    Ok(())
}

/// 10,000 sockets need more than the usual 1,024 descriptors.
fn raise_nofile(want: u64) -> anyhow::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = want.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            anyhow::bail!(
                "setrlimit(NOFILE, {want}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}
