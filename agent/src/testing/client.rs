//! The workload's side of a captured connection, on loopback: a socket
//! whose far end `handle_outbound` serves as if the kernel had captured it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use super::fixtures::workload;
use crate::proxy::{handle_outbound, ProxyContext};

/// How long a test waits for the proxy to close or finish a connection.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Client addresses handed out so far (each test binary counts its own).
static NEXT_CLIENT: AtomicU32 = AtomicU32::new(1);

/// A workload connection to `orig_dst`, its far end served by `ctx`: the
/// workload's socket, its address (one of its own in 127/8, so log lines
/// are found by it) and the serving task.
pub async fn captured(
    ctx: Arc<ProxyContext>,
    orig_dst: SocketAddr,
) -> (TcpStream, SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    let n = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed);
    let ip = Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8);
    socket.bind(SocketAddr::new(ip.into(), 0)).unwrap();
    let client = socket
        .connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, src) = listener.accept().await.unwrap();
    let task = tokio::spawn(handle_outbound(ctx, accepted, workload(), src, orig_dst));
    (client, src, task)
}

/// Sends `bytes` and reads until the proxy closes (at most [`CLOSE_WITHIN`]).
pub async fn exchange(client: &mut TcpStream, bytes: &[u8]) -> String {
    client.write_all(bytes).await.unwrap();
    read_to_close(client).await
}

/// Reads until the proxy closes (at most [`CLOSE_WITHIN`]).
pub async fn read_to_close(client: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(CLOSE_WITHIN, client.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for `handle_outbound` to finish (at most [`CLOSE_WITHIN`]).
pub async fn finish(task: JoinHandle<()>) {
    tokio::time::timeout(CLOSE_WITHIN, task)
        .await
        .expect("the connection ends")
        .unwrap();
}
