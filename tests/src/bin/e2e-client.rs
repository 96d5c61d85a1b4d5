//! A workload that holds its connection open across config changes, for
//! the end-to-end suites: it runs STEPs in order on ONE connection to
//! HOST:PORT and prints one line per step (flushed), so a test can change
//! the config between steps and see what the same connection gets next.
//!
//! e2e-client h1|h2|tcp HOST PORT STEP...
//!   req:METHOD:PATH      a request (h1, h2)        -> `status N` | `error …`
//!   raw:TEXT             bytes as written, `\r\n` escapes (h1 only, on
//!                        its own connection)       -> the status line | `error …`
//!   wait:FILE            waits (30 s at most) for FILE to exist -> `go`
//!   echo:TEXT            writes TEXT, reads it back (tcp) -> `echo ok` | `error …`
//!   closed:MS            waits up to MS ms for the peer to close (tcp)
//!                                                  -> `closed` | `open`

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every network step ends within this.
const STEP_LIMIT: Duration = Duration::from_secs(10);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn wait_for(file: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Path::new(file).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    say(if Path::new(file).exists() {
        "go"
    } else {
        "timeout"
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, host, port, steps @ ..] = args.as_slice() else {
        eprintln!("usage: e2e-client h1|h2|tcp HOST PORT STEP...");
        std::process::exit(2);
    };
    let addr = format!("{host}:{port}");
    match mode.as_str() {
        "h1" | "h2" => http(mode == "h2", host, &addr, steps).await,
        "tcp" => tcp(&addr, steps).await,
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

async fn http(h2: bool, host: &str, addr: &str, steps: &[String]) {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return say(&format!("error connecting: {e}")),
    };
    let io = TokioIo::new(stream);
    let mut sender = if h2 {
        let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        Sender::H2(s)
    } else {
        let (s, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        Sender::H1(s)
    };
    for step in steps {
        if let Some(file) = step.strip_prefix("wait:") {
            wait_for(file).await;
        } else if let Some(raw) = step.strip_prefix("raw:") {
            say(&raw_request(addr, raw).await);
        } else if let Some(req) = step.strip_prefix("req:") {
            let (method, path) = req.split_once(':').expect("req:METHOD:PATH");
            let line =
                match tokio::time::timeout(STEP_LIMIT, request(&mut sender, host, method, path))
                    .await
                {
                    Ok(line) => line,
                    Err(_) => "error: no answer in time".into(),
                };
            say(&line);
        } else {
            say(&format!("error: unknown step {step}"));
        }
    }
}

async fn request(sender: &mut Sender, host: &str, method: &str, path: &str) -> String {
    let builder = hyper::Request::builder().method(method);
    let response = match sender {
        Sender::H1(s) => {
            let req = builder
                .uri(path)
                .header("host", host)
                .body(Empty::new())
                .unwrap();
            match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            }
        }
        Sender::H2(s) => {
            let req = builder
                .uri(format!("http://{host}{path}"))
                .body(Empty::new())
                .unwrap();
            match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            }
        }
    };
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.into_body().collect().await;
            format!("status {status}")
        }
        Err(e) => format!("error: {e}"),
    }
}

/// One request written as given on a connection of its own; the status line.
async fn raw_request(addr: &str, text: &str) -> String {
    let bytes = text.replace("\\r\\n", "\r\n");
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(bytes.as_bytes()).await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while !reply.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&reply).into_owned();
        Ok::<_, std::io::Error>(text.lines().next().unwrap_or("closed").to_string())
    };
    match tokio::time::timeout(STEP_LIMIT, attempt).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: no answer in time".into(),
    }
}

async fn tcp(addr: &str, steps: &[String]) {
    let mut stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return say(&format!("error connecting: {e}")),
    };
    for step in steps {
        if let Some(file) = step.strip_prefix("wait:") {
            wait_for(file).await;
        } else if let Some(text) = step.strip_prefix("echo:") {
            let mut back = vec![0u8; text.len()];
            let echoed = async {
                stream.write_all(text.as_bytes()).await?;
                stream.read_exact(&mut back).await
            };
            let line = match tokio::time::timeout(STEP_LIMIT, echoed).await {
                Ok(Ok(_)) if back == text.as_bytes() => "echo ok".to_string(),
                Ok(Ok(_)) => "error: echoed something else".to_string(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "error: no echo in time".to_string(),
            };
            say(&line);
        } else if let Some(ms) = step.strip_prefix("closed:") {
            let limit = Duration::from_millis(ms.parse().expect("closed:MS"));
            let mut buf = [0u8; 1024];
            let closed = async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            };
            say(match tokio::time::timeout(limit, closed).await {
                Ok(()) => "closed",
                Err(_) => "open",
            });
        } else {
            say(&format!("error: unknown step {step}"));
        }
    }
}
