//! Relays the queries the proxy does not answer itself to the upstream
//! nameservers, one after the other, and hands back the first real answer.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::{tcp, DnsError, Transport};
use crate::net::socket;

/// How long one upstream gets to answer before the next is tried.
pub(crate) const TRY_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest DNS message over UDP or TCP.
const MAX_MESSAGE: usize = 65_535;

/// RCODEs after which, like glibc, the next upstream is asked; the reply is
/// still relayed if no upstream does better.
const RETRY_RCODES: [u8; 3] = [
    2, /* SERVFAIL */
    4, /* NOTIMP */
    5, /* REFUSED */
];

/// The ordered upstream nameservers.
#[derive(Debug)]
pub(crate) struct Forwarder {
    upstreams: Vec<SocketAddr>,
}

impl Forwarder {
    pub(crate) fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self { upstreams }
    }

    /// Sends `query` (a decoded query, so at least a header long) to each
    /// upstream in turn over `transport`; returns the first answer,
    /// unchanged except for the ID, which is the client's again.
    pub(crate) async fn forward(
        &self,
        query: &[u8],
        transport: Transport,
    ) -> Result<Vec<u8>, DnsError> {
        let client_id = [query[0], query[1]];
        let mut wire = query.to_vec();
        let mut fallback = None;
        for &upstream in &self.upstreams {
            // A fresh random ID per try: a spoofer must guess it and the port.
            let id: u16 = rand::random();
            wire[..2].copy_from_slice(&id.to_be_bytes());
            let attempt = async {
                match transport {
                    Transport::Udp => exchange_udp(upstream, &wire, id).await,
                    Transport::Tcp => exchange_tcp(upstream, &wire, id).await,
                }
            };
            let mut reply = match tokio::time::timeout(TRY_TIMEOUT, attempt).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => {
                    debug!(error = %e, "DNS upstream failed, trying the next");
                    continue;
                }
                Err(_) => {
                    debug!(%upstream, "DNS upstream timed out, trying the next");
                    continue;
                }
            };
            reply[..2].copy_from_slice(&client_id);
            if RETRY_RCODES.contains(&(reply[3] & 0x0f)) {
                fallback.get_or_insert(reply);
                continue;
            }
            return Ok(reply);
        }
        fallback.ok_or(DnsError::UpstreamsFailed {
            count: self.upstreams.len(),
        })
    }
}

/// One query over UDP on a fresh connected socket.
async fn exchange_udp(upstream: SocketAddr, wire: &[u8], id: u16) -> Result<Vec<u8>, DnsError> {
    let fail = |e: std::io::Error| upstream_error(upstream, e.to_string());
    let socket = socket::udp_to(upstream).map_err(fail)?;
    socket.send(wire).await.map_err(fail)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = socket.recv(&mut buf).await.map_err(fail)?;
        // Anything else (a forged or stray datagram) is ignored, not fatal.
        if is_reply_to(&buf[..n], id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One query over a fresh TCP connection.
async fn exchange_tcp(upstream: SocketAddr, wire: &[u8], id: u16) -> Result<Vec<u8>, DnsError> {
    let fail = |e: std::io::Error| upstream_error(upstream, e.to_string());
    let mut stream = socket::connect(upstream)
        .await
        .map_err(|e| upstream_error(upstream, e.to_string()))?;
    tcp::write_frame(&mut stream, wire).await.map_err(fail)?;
    let reply = tcp::read_frame(&mut stream)
        .await
        .map_err(fail)?
        .ok_or_else(|| upstream_error(upstream, "closed the connection".into()))?;
    // Best effort; the reply is already in hand.
    let _ = stream.shutdown().await;
    if !is_reply_to(&reply, id) {
        return Err(upstream_error(
            upstream,
            "reply does not match the query".into(),
        ));
    }
    Ok(reply)
}

/// Whether `bytes` is a response (QR set) carrying `id`.
fn is_reply_to(bytes: &[u8], id: u16) -> bool {
    bytes.len() >= 12 && bytes[..2] == id.to_be_bytes() && bytes[2] & 0x80 != 0
}

fn upstream_error(upstream: SocketAddr, reason: String) -> DnsError {
    DnsError::Upstream { upstream, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_responses_with_our_id_are_replies() {
        let mut reply = [0u8; 12];
        reply[..2].copy_from_slice(&0xbeefu16.to_be_bytes());
        assert!(!is_reply_to(&reply, 0xbeef), "QR clear: a query");
        reply[2] = 0x80;
        assert!(is_reply_to(&reply, 0xbeef));
        assert!(!is_reply_to(&reply, 0xbeee));
        assert!(!is_reply_to(&reply[..11], 0xbeef), "shorter than a header");
    }

    #[tokio::test]
    async fn no_upstreams_means_failure() {
        let forwarder = Forwarder::new(Vec::new());
        let err = forwarder.forward(&[0u8; 12], Transport::Udp).await;
        assert!(matches!(err, Err(DnsError::UpstreamsFailed { count: 0 })));
    }

    #[tokio::test]
    async fn servfail_from_the_first_upstream_asks_the_next() {
        let first = fake(2).await;
        let second = fake(0).await;
        let forwarder = Forwarder::new(vec![first, second]);
        let mut query = [0u8; 12];
        query[..2].copy_from_slice(&7u16.to_be_bytes());
        let reply = forwarder.forward(&query, Transport::Udp).await.unwrap();
        assert_eq!(reply[..2], 7u16.to_be_bytes(), "client ID restored");
        assert_eq!(reply[3] & 0x0f, 0, "the second upstream's NOERROR wins");
    }

    /// A UDP peer on loopback replying to every datagram with `rcode`.
    async fn fake(rcode: u8) -> SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                buf[2] |= 0x80;
                buf[3] = rcode;
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        addr
    }
}
