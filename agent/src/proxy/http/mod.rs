//! The L7 path for HTTP ports of waypoint-bound services: the workload's
//! HTTP/1.1 or HTTP/2 connection is served by hyper, and each request runs
//! the [`pipeline::Pipeline`] on the config in force when it arrives and
//! goes upstream through [`upstream::UpstreamSession`]. A config change
//! that takes the connection's service or port away ends the connection
//! gracefully: HTTP/1.1 after the response in flight (`connection: close`),
//! HTTP/2 with GOAWAY. Bodies stream both ways; nothing buffers a whole body.

pub mod authorize;
pub mod body;
pub mod forward;
pub mod h1;
pub mod host;
pub mod normalize;
pub mod pipeline;
pub mod reply;
pub mod retry;
pub mod routing;
pub mod sanitize;
pub mod sender;
mod server;
pub mod stream_idle;
pub mod upstream;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};

use self::body::{LoggedBody, PendingLog};
use self::pipeline::{Exchange, Pipeline, StageFlow};
use self::reply::LocalReply;
use self::retry::Tried;
use self::upstream::UpstreamSession;
use super::access_log::{ConnectionLog, RequestRecord};
use super::context::{ConnectionContext, ResolvedDestination, UpstreamTarget};
use super::flags::ResponseFlag;
use super::outcome::ConnectionOutcome;
use super::recheck::{self, Revoked};
use super::ProxyContext;
use hyper::body::Body as _;

/// What every request of one workload connection shares.
struct Connection {
    ctx: Arc<ProxyContext>,
    conn: Arc<ConnectionContext>,
    /// The service port as accepted (for replies to requests refused
    /// because it is gone).
    accepted: UpstreamTarget,
    pipeline: Pipeline,
    upstream: UpstreamSession,
    /// What the connection's request lines and metrics share.
    log: Arc<ConnectionLog>,
    /// Where the last request went, by the config it was decided on:
    /// worked out again only when the config moves.
    current: Mutex<Current>,
}

/// The connection's path in one config.
#[derive(Clone)]
struct Current {
    destination: Arc<ResolvedDestination>,
    /// The service port requests go to, or why the connection is done.
    target: Result<UpstreamTarget, Revoked>,
}

impl Connection {
    /// The connection's destination and target in the config in force now.
    fn current(&self) -> Current {
        let snapshot = self.ctx.snapshots.borrow().clone();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current.destination.snapshot, &snapshot) {
            let destination = self.conn.destination_in(snapshot);
            let target = recheck::path_unchanged(&self.conn, &destination).and_then(|()| {
                self.conn
                    .route(&destination)
                    .map(|r| r.target().clone())
                    .map_err(|reason| Revoked::Gone {
                        generation: destination.snapshot.generation,
                        reason,
                    })
            });
            *current = Current {
                destination,
                target,
            };
        }
        current.clone()
    }
}

/// Serves HTTP/1.1 or HTTP/2 on `downstream` until the workload closes it,
/// or until a new config takes its service away.
pub async fn serve<S>(
    ctx: Arc<ProxyContext>,
    conn: Arc<ConnectionContext>,
    target: UpstreamTarget,
    downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Policy applies at a waypoint; without one the request goes as sent.
    let pipeline = if conn.waypoint().is_some() {
        Pipeline::waypoint(ctx.authorizer.clone(), &conn)
    } else {
        Pipeline::standard()
    };
    let state = Arc::new(Connection {
        upstream: UpstreamSession::new(&ctx, conn.orig_dst),
        log: Arc::new(ConnectionLog::of(ctx.metrics.clone(), &conn)),
        current: Mutex::new(Current {
            destination: conn.accepted.clone(),
            target: Ok(target.clone()),
        }),
        ctx: ctx.clone(),
        conn: conn.clone(),
        accepted: target,
        pipeline,
    });
    // Resolves when a config change takes the connection's service or port
    // away: the server then winds the connection down gracefully.
    let gone = recheck::revoked(ctx.snapshots.clone(), &conn, |dest| {
        recheck::path_unchanged(&conn, dest)
    });
    server::run(state, downstream, gone).await
}

/// One request, top to bottom: record, decide, forward, respond.
async fn handle(
    state: Arc<Connection>,
    request: Request<Incoming>,
) -> Result<Response<LoggedBody>, Infallible> {
    let (mut head, body) = request.into_parts();
    let record = RequestRecord::from_head(&head);
    let http2 = head.version == http::Version::HTTP_2;
    let current = state.current();
    let (target, gone) = match current.target {
        Ok(target) => (target, None),
        Err(revoked) => (state.accepted.clone(), Some(revoked)),
    };
    let normalization = current.destination.snapshot.mesh.path_normalization;
    let mut exchange = Exchange::new(
        state.conn.clone(),
        current.destination,
        target,
        state.ctx.default_retries.clone(),
    );

    let decision = match &gone {
        // The service or port is gone: never sent on to it.
        Some(revoked) => {
            tracing::debug!(src = %state.conn.src, reason = %revoked, "request refused");
            StageFlow::Respond(LocalReply::no_virtual_host())
        }
        None => match sanitize::check(&mut head, &state.ctx.limits, normalization) {
            Err(refused) => {
                tracing::debug!(error = %refused, "request refused before policy");
                StageFlow::Respond(refused.reply())
            }
            Ok(()) => state.pipeline.decide(&mut exchange, &mut head),
        },
    };
    let response = match decision {
        StageFlow::Respond(reply) => {
            if let Some(flag) = reply.flag {
                exchange.flags.insert(flag);
            }
            reply.into_response()
        }
        StageFlow::Continue => {
            if let Some(delay) = exchange.delay {
                tokio::time::sleep(delay).await;
            }
            let exchange_timeout = exchange.timeout;
            forward::upstream_request(&mut head, &exchange.target);
            let replayable = body.is_end_stream();
            let activity = stream_idle::Activity::start();
            let tries = retry::send(
                &state.upstream,
                &mut exchange,
                head,
                activity.track(body.boxed_unsync()),
                replayable,
            );
            let timed = async {
                match exchange_timeout {
                    // Boxed: most routes set no timeout.
                    Some(limit) => Box::pin(tokio::time::timeout(limit, tries)).await.ok(),
                    None => Some(tries.await),
                }
            };
            // `None`: nothing moved for the stream idle timeout first.
            let tried = tokio::select! {
                sent = timed => Some(sent.unwrap_or(Tried::TimedOut)),
                () = activity.idle(state.ctx.limits.stream_idle_timeout) => None,
            };
            match tried {
                None => {
                    exchange.flags.insert(ResponseFlag::StreamIdleTimeout);
                    LocalReply::stream_idle_timeout().into_response()
                }
                Some(Tried::TimedOut) => {
                    exchange.flags.insert(ResponseFlag::UpstreamRequestTimeout);
                    LocalReply::upstream_timeout().into_response()
                }
                Some(Tried::Response(response)) => {
                    let (mut head, body) = response.into_parts();
                    forward::downstream_response(&mut head);
                    Response::from_parts(head, body.boxed_unsync())
                }
                Some(Tried::Failed(e)) => {
                    tracing::debug!(error = %e, "request got no upstream response");
                    let reply = e.reply();
                    if let Some(flag) = reply.flag {
                        exchange.flags.insert(flag);
                    }
                    reply.into_response()
                }
            }
        }
    };

    let (mut head, body) = response.into_parts();
    state.pipeline.respond(&exchange, &mut head);
    if gone.is_some() && !http2 {
        // HTTP/1.1: this is the connection's last response.
        head.headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    let log = PendingLog {
        conn: state.conn.clone(),
        shared: state.log.clone(),
        upstream: exchange.upstream_addr,
        request: record,
        status: head.status,
        flags: exchange.flags,
        authz: exchange.authz.take(),
    };
    let idle = state.ctx.limits.stream_idle_timeout;
    Ok(Response::from_parts(head, LoggedBody::new(body, log, idle)))
}
