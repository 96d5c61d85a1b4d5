//! Connection rate: threads connect, set SO_LINGER 0 and close, until the
//! count or the deadline is reached.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egret_load::clock::percentile_us;

/// Arguments of `connect`.
#[derive(clap::Args)]
pub struct Args {
    /// Destination (a server or a captured VIP inside the bench's namespace).
    #[arg(long)]
    addr: SocketAddr,
    /// Stop after this many connections in total.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Stop after this long.
    #[arg(long, default_value_t = 2000)]
    duration_ms: u64,
    /// Client threads, each with one connection at a time.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Runs the loop; returns the JSON summary.
pub fn run(args: Args) -> anyhow::Result<String> {
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(args.duration_ms);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let issued = issued.clone();
            let (addr, count) = (args.addr, args.count);
            std::thread::spawn(move || worker(addr, count, deadline, &issued))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    for w in workers {
        let (lat, err) = w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
        latencies.extend(lat);
        errors += err;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "connections": latencies.len(),
        "errors": errors,
        "secs": secs,
        "per_sec": latencies.len() as f64 / secs,
        "p50_us": percentile_us(&mut latencies, 50.0),
        "p99_us": percentile_us(&mut latencies, 99.0),
    })
    .to_string())
}

fn worker(
    addr: SocketAddr,
    count: u64,
    deadline: Instant,
    issued: &AtomicU64,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::with_capacity(65536);
    let mut errors = 0;
    while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < count {
        let t = Instant::now();
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(stream) => {
                latencies.push(t.elapsed());
                linger_zero(&stream);
            }
            Err(_) => errors += 1,
        }
    }
    (latencies, errors)
}

/// Close with RST: no TIME_WAIT, so a long run never runs out of ports.
pub fn linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the call; linger is a valid option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
