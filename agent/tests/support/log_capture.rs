//! The test binary's log lines, captured in memory: in-process waypoint
//! tests find their access log lines by the workload connection's address.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use egret::logging::{self, LogFormat};

/// Every log line of this test binary.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Capture {
    type Writer = Capture;
    fn make_writer(&'w self) -> Capture {
        self.clone()
    }
}

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
    String::from_utf8(logs().0.lock().unwrap().clone()).unwrap()
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
