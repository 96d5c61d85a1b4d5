//! The test binary's log lines, captured in memory: in-process waypoint
//! tests find their access log lines by the workload connection's address.

use std::net::SocketAddr;
use std::sync::OnceLock;

use egret::logging::{self, LogFormat};
use egret::testing::log::Capture;

/// The capture, installed as the global text logger on first use.
pub fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        logging::init_with_writer(LogFormat::Text, "info", capture.clone()).unwrap();
        capture
    })
}

/// Everything logged so far.
pub fn text() -> String {
    logs().text()
}

/// Log lines of the workload connection from `src`.
pub fn lines_for(src: SocketAddr) -> Vec<String> {
    let needle = format!("src.addr={src} ");
    text()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}
