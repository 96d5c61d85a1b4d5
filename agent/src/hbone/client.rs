//! The client side of HBONE: a captured connection for a service bound to a
//! remote waypoint goes, as one CONNECT stream, over a pooled mTLS HTTP/2
//! connection to the waypoint's port 15008.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use rustls::pki_types::ServerName;

use super::pool::{HbonePool, HbonePoolKey, PooledConn};
use super::stream::H2Stream;
use super::{HboneError, CONNECTION_WINDOW, MAX_FRAME, MAX_STREAMS_PER_CONNECTION, STREAM_WINDOW};
use crate::identity::{client_config, IdentityStore};
use crate::net::socket;

/// Opens tunnels; one per agent.
#[derive(Debug)]
pub struct HboneClient {
    store: Arc<IdentityStore>,
    pool: HbonePool,
}

impl HboneClient {
    /// A client presenting certificates from `store`.
    pub fn new(store: Arc<IdentityStore>) -> Self {
        HboneClient {
            store,
            pool: HbonePool::default(),
        }
    }

    /// The identity store certificates come from.
    pub fn store(&self) -> &Arc<IdentityStore> {
        &self.store
    }

    /// The pool (for tests and status).
    pub fn pool(&self) -> &HbonePool {
        &self.pool
    }

    /// Sends `request` (a CONNECT built by [`super::request::build`]) over a
    /// connection for `key`, and returns the stream once the waypoint
    /// answered 200.
    pub async fn open(
        &self,
        key: &HbonePoolKey,
        request: Request<()>,
    ) -> Result<H2Stream, HboneError> {
        let target = request
            .uri()
            .authority()
            .and_then(|a| a.as_str().parse().ok())
            .unwrap_or(key.addr);
        let conn = match self.pool.checkout(key) {
            Some(c) => c,
            None => {
                let c = self.dial(key).await?;
                self.pool.insert(key.clone(), c.clone());
                c
            }
        };
        let h2_err = |source| HboneError::H2 {
            peer: key.addr,
            source,
        };
        let mut sender = conn.sender().ready().await.map_err(h2_err)?;
        let (response, send) = sender.send_request(request, false).map_err(h2_err)?;
        let response = response.await.map_err(h2_err)?;
        if response.status() != StatusCode::OK {
            return Err(HboneError::Refused {
                server: key.addr,
                target,
                status: response.status(),
            });
        }
        Ok(H2Stream::new(response.into_body(), send).with_lease(conn))
    }

    /// A new mTLS HTTP/2 connection to the waypoint, its driver spawned.
    async fn dial(&self, key: &HbonePoolKey) -> Result<Arc<PooledConn>, HboneError> {
        let server = key.addr;
        // Marked like every agent socket, so the kernel never captures it.
        let tcp = socket::connect(server)
            .await
            .map_err(|source| HboneError::Connect { server, source })?;
        let _ = tcp.set_nodelay(true);
        let config = client_config(&self.store, &key.src, vec![key.dst.clone()])?;
        // No SNI, no name check: the verifier checks the SPIFFE ID.
        let name = ServerName::IpAddress(server.ip().into());
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|source| HboneError::Tls {
                peer: server,
                source,
            })?;
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .initial_max_send_streams(MAX_STREAMS_PER_CONNECTION)
            .max_header_list_size(16 * 1024)
            .max_send_buffer_size(STREAM_WINDOW as usize)
            .handshake::<_, Bytes>(tls)
            .await
            .map_err(|source| HboneError::H2 {
                peer: server,
                source,
            })?;
        let pooled = PooledConn::new(sender);
        // Weak: the pool counts streams by strong references.
        let driver = Arc::downgrade(&pooled);
        let src = key.src.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%server, error = %e, "HBONE connection ended");
            }
            if let Some(conn) = driver.upgrade() {
                conn.mark_closed();
            }
        });
        tracing::debug!(%server, src.identity = %src, dst.identity = %key.dst, "HBONE connection opened");
        Ok(pooled)
    }
}

/// The waypoint's HBONE address for a Gateway address.
pub fn hbone_addr(ip: std::net::IpAddr) -> SocketAddr {
    SocketAddr::new(ip, super::HBONE_PORT)
}
