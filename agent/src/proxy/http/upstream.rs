//! The upstream leg of one workload connection: a client connection to the
//! chosen endpoint (TLS when a DestinationRule says so, offering `h2` and
//! `http/1.1` by ALPN; HTTP/1.1 in plain text), kept for the next request on
//! the same workload connection while it is healthy and goes to the same
//! target with the same TLS settings. When the workload is done, the
//! connection goes to the proxy's [`UpstreamPool`] for the next workload's
//! request to the same endpoint. An HTTP/2 connection stays in the pool while in use:
//! every workload connection to the endpoint shares it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::borrow::Cow;

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::Mutex;

use super::body::ProxyBody;
use super::pipeline::Exchange;
use super::reply::LocalReply;
use super::sender::{Sender, ALPN_H2};
use crate::net::socket::{self, ConnectError};
use crate::net::HostName;
use crate::proxy::context::UpstreamTarget;
use crate::proxy::endpoint::{self, EndpointError};
use crate::proxy::flags::ResponseFlag;
use crate::proxy::pool::{self, IdlePool};
use crate::proxy::tls::settings::strip_port;
use crate::proxy::tls::{OriginTls, TlsError, TlsOrigin};
use crate::proxy::{ProxyContext, ResolveHost};

/// Why a request got no response from upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Nothing to connect to.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// No endpoint accepted the connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The endpoint accepted but the HTTP client could not start.
    #[error("starting {version} with {addr}: {source}")]
    Handshake {
        /// The endpoint.
        addr: SocketAddr,
        /// `HTTP/1.1` or `HTTP/2`.
        version: &'static str,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// TLS toward the upstream could not be set up, or its handshake
    /// (certificate verification included) failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection failed before response headers arrived.
    #[error("upstream {addr} closed before response headers: {source}")]
    Reset {
        /// The endpoint.
        addr: SocketAddr,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
}

impl UpstreamError {
    /// The reply the workload gets instead (Envoy's wording and flag).
    pub fn reply(&self) -> LocalReply {
        match self {
            UpstreamError::Endpoint(_) => LocalReply::no_healthy_upstream(),
            UpstreamError::Connect(_) | UpstreamError::Handshake { .. } => {
                LocalReply::upstream_connect_failure()
            }
            UpstreamError::Reset { .. } => LocalReply::upstream_reset(),
            // Envoy's wording, with its "transport failure reason".
            UpstreamError::Tls(e) => LocalReply {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: Cow::Owned(format!(
                    "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: {}",
                    e.transport_reason()
                )),
                flag: Some(ResponseFlag::UpstreamConnectionFailure),
            },
        }
    }
}

/// An open upstream connection and what it was opened for.
struct Held {
    target: UpstreamTarget,
    /// [`TlsOrigin::connection_key`] of the TLS it speaks; `None` for plain text.
    tls: Option<u64>,
    /// The name a wildcard service resolved for it (`None`: the service host).
    upstream_name: Option<HostName>,
    addr: SocketAddr,
    sender: Sender,
    /// How long it is kept for reuse once no workload holds it.
    idle_timeout: Duration,
}

/// Where an idle connection can serve again: the endpoint and the
/// [`TlsOrigin::connection_key`] (SNI and file versions included) of the
/// TLS it speaks.
type UpstreamKey = (SocketAddr, Option<u64>);

/// The upstream connections workloads are done with, shared by every
/// workload connection of one proxy.
pub struct UpstreamPool(IdlePool<UpstreamKey, Held>);

impl Default for UpstreamPool {
    fn default() -> Self {
        UpstreamPool(IdlePool::new(pool::MAX_PER_KEY, pool::MAX_TOTAL))
    }
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamPool")
    }
}

impl Held {
    /// Idle and open: a request can go out on it right away.
    fn reusable(&self) -> bool {
        !self.sender.is_closed() && self.sender.is_ready()
    }

    /// Returns it to `pool` if it can serve again; it is closed once idle
    /// for its timeout (Envoy's upstream `idle_timeout`).
    fn release(self, pool: &Arc<UpstreamPool>) {
        if !self.reusable() {
            return;
        }
        let idle_timeout = self.idle_timeout;
        pool.0.put((self.addr, self.tls), self, idle_timeout);
        if let (Ok(runtime), Some(at)) = (
            tokio::runtime::Handle::try_current(),
            tokio::time::Instant::now().checked_add(idle_timeout),
        ) {
            let pool = pool.clone();
            runtime.spawn(async move {
                tokio::time::sleep_until(at).await;
                // Just after its deadline: the pass closes it if still idle.
                tokio::time::sleep(Duration::from_millis(1)).await;
                pool.0.sweep();
            });
        }
    }

    /// Leaves a handle in `pool` when the connection carries requests
    /// concurrently (HTTP/2), so other workloads use it meanwhile.
    fn share(&self, pool: &Arc<UpstreamPool>) {
        if let Some(sender) = self.sender.share() {
            let shared = Held {
                target: self.target.clone(),
                tls: self.tls,
                upstream_name: self.upstream_name.clone(),
                addr: self.addr,
                sender,
                idle_timeout: self.idle_timeout,
            };
            shared.release(pool);
        }
    }
}

/// Why a kept connection did not carry a request.
enum ReuseError {
    /// Closed before the request was written: it can go elsewhere.
    Unsent(Request<ProxyBody>),
    /// The connection failed with the request on it.
    Failed(UpstreamError),
}

/// The upstream side of one workload connection.
pub struct UpstreamSession {
    resolver: Arc<dyn ResolveHost>,
    pool: Arc<UpstreamPool>,
    tls: Arc<TlsOrigin>,
    orig_dst: SocketAddr,
    // Requests on one HTTP/1.1 connection are served one at a time, so this
    // lock is never contended; it only makes the session shareable.
    held: Mutex<Option<Held>>,
    last_addr: std::sync::Mutex<Option<SocketAddr>>,
    idle_timeout: Duration,
}

impl UpstreamSession {
    /// A session of `proxy` (its resolver, pool and TLS origination);
    /// `orig_dst` serves `resolution: NONE`; connections it is done with
    /// stay pooled for the upstream idle timeout (zero: until the pool's
    /// bounds evict them).
    pub fn new(proxy: &ProxyContext, orig_dst: SocketAddr) -> Self {
        let idle_timeout = proxy.limits.upstream_idle_timeout;
        UpstreamSession {
            resolver: proxy.resolver.clone(),
            pool: proxy.upstreams.clone(),
            tls: proxy.tls.clone(),
            orig_dst,
            held: Mutex::new(None),
            last_addr: std::sync::Mutex::new(None),
            idle_timeout: if idle_timeout.is_zero() {
                Duration::MAX
            } else {
                idle_timeout
            },
        }
    }

    /// The last endpoint a request was sent to (the connection line's `dst.addr`).
    pub fn last_addr(&self) -> Option<SocketAddr> {
        *self.last_addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `request` to `exchange.target`, on the held connection when it
    /// still works, else on a new one. Records the endpoint and the upstream
    /// service time in `exchange`.
    pub async fn send(
        &self,
        exchange: &mut Exchange,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let host = request_host(&request);
        let tls = origin_tls(exchange, host.as_deref())?;
        let tls_key = tls.as_ref().map(|o| self.tls.connection_key(o));
        let upstream_name = wildcard_name(&exchange.target, host.as_deref());
        let mut slot = self.held.lock().await;
        let (kept, other) = match slot.take() {
            Some(h)
                if h.target.same_as(&exchange.target)
                    && h.tls == tls_key
                    && h.upstream_name == upstream_name =>
            {
                (Some(h), None)
            }
            h => (None, h),
        };
        // A connection to another target may serve another workload.
        if let Some(h) = other {
            h.release(&self.pool);
        }
        if let Some(mut held) = kept {
            // Waits for the previous response to finish; errs if closed.
            if held.sender.ready().await.is_ok() {
                match self.reuse(exchange, &mut held, request).await {
                    Ok(response) => {
                        *slot = Some(held);
                        return Ok(response);
                    }
                    Err(ReuseError::Unsent(unsent)) => request = unsent,
                    Err(ReuseError::Failed(e)) => return Err(e),
                }
            }
        }

        // Boxed, as is `open` below: the rare path (no held connection)
        // would otherwise size every request's future, which hyper moves
        // when it boxes the handler.
        let addrs = Box::pin(endpoint::select_for_host(
            self.resolver.as_ref(),
            &exchange.target,
            self.orig_dst,
            host.as_deref(),
        ))
        .await?;
        // An idle connection another workload left to one of the endpoints.
        while let Some(mut held) = addrs
            .iter()
            .find_map(|a| self.pool.0.take(&(*a, tls_key), Held::reusable))
        {
            held.share(&self.pool);
            held.target = exchange.target.clone();
            held.upstream_name = upstream_name.clone();
            match self.reuse(exchange, &mut held, request).await {
                Ok(response) => {
                    *slot = Some(held);
                    return Ok(response);
                }
                Err(ReuseError::Unsent(unsent)) => request = unsent,
                Err(ReuseError::Failed(e)) => return Err(e),
            }
        }

        let mut held =
            Box::pin(self.open(&exchange.target, tls.as_ref(), &addrs, upstream_name)).await?;
        held.share(&self.pool);
        self.record(exchange, held.addr);
        let sent = Instant::now();
        let response =
            held.sender
                .try_send_request(request)
                .await
                .map_err(|e| UpstreamError::Reset {
                    addr: held.addr,
                    source: e.into_error(),
                })?;
        exchange.upstream_service_time = Some(sent.elapsed());
        *slot = Some(held);
        Ok(response)
    }

    /// Sends `request` on a connection that served before.
    async fn reuse(
        &self,
        exchange: &mut Exchange,
        held: &mut Held,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, ReuseError> {
        self.record(exchange, held.addr);
        let sent = Instant::now();
        match held.sender.try_send_request(request).await {
            Ok(response) => {
                exchange.upstream_service_time = Some(sent.elapsed());
                Ok(response)
            }
            Err(mut e) => match e.take_message() {
                // Never written: the upstream closed the idle connection
                // first. Another connection gets it.
                Some(unsent) => Err(ReuseError::Unsent(unsent)),
                None => Err(ReuseError::Failed(UpstreamError::Reset {
                    addr: held.addr,
                    source: e.into_error(),
                })),
            },
        }
    }

    fn record(&self, exchange: &mut Exchange, addr: SocketAddr) {
        exchange.upstream_addr = Some(addr);
        *self.last_addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }

    /// Connects to the first endpoint of `target` that accepts, then runs
    /// the TLS handshake when `tls` is given.
    async fn open(
        &self,
        target: &UpstreamTarget,
        tls: Option<&OriginTls>,
        addrs: &[SocketAddr],
        upstream_name: Option<HostName>,
    ) -> Result<Held, UpstreamError> {
        let (stream, addr) = socket::connect_first(addrs).await?;
        let sender = match tls {
            None => client(stream, addr, false).await?,
            Some(origin) => {
                let stream = self
                    .tls
                    .connect(origin, stream, addr)
                    .await
                    .inspect_err(|e| {
                        tracing::warn!(
                            upstream = %addr,
                            server_name = origin.server_name.as_str(),
                            destination_rule = %origin.rule_ref(),
                            error = %e,
                            "TLS origination failed"
                        )
                    })?;
                let http2 = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
                client(stream, addr, http2).await?
            }
        };
        Ok(Held {
            target: target.clone(),
            tls: tls.map(|o| self.tls.connection_key(o)),
            upstream_name,
            addr,
            sender,
            idle_timeout: self.idle_timeout,
        })
    }
}

impl Drop for UpstreamSession {
    fn drop(&mut self) {
        if let Some(held) = self.held.get_mut().take() {
            held.release(&self.pool);
        }
    }
}

/// The request's host without port (Host header, else authority).
fn request_host(request: &Request<ProxyBody>) -> Option<HostName> {
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))?;
    Some(HostName::new(strip_port(authority))).filter(|h| !h.is_empty())
}

/// The name a wildcard target resolves for `host`; `None` for plain hosts
/// (or names the wildcard does not cover, which fail in endpoint selection).
fn wildcard_name(target: &UpstreamTarget, host: Option<&str>) -> Option<HostName> {
    target
        .service
        .host
        .is_wildcard()
        .then(|| endpoint::upstream_name(&target.service.host, host).ok())
        .flatten()
}

/// The TLS a request needs (DestinationRule of its target, its host).
fn origin_tls(exchange: &Exchange, host: Option<&str>) -> Result<Option<OriginTls>, UpstreamError> {
    OriginTls::for_request(
        &exchange.snapshot,
        &exchange.target.service,
        exchange.target.port.number,
        host,
    )
    .inspect_err(|e| tracing::warn!(error = %e, "TLS origination not possible"))
    .map_err(UpstreamError::from)
}

/// Starts the client protocol (HTTP/2 when ALPN chose `h2`).
async fn client<S>(stream: S, addr: SocketAddr, http2: bool) -> Result<Sender, UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    Sender::handshake(stream, addr, http2)
        .await
        .map_err(|source| UpstreamError::Handshake {
            addr,
            version: if http2 { "HTTP/2" } else { "HTTP/1.1" },
            source,
        })
}
