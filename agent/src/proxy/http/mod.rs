//! The L7 path for HTTP ports of waypoint-bound services: the workload's
//! HTTP/1.1 connection is served by hyper, and each request runs the
//! [`pipeline::Pipeline`] and goes upstream through [`upstream::UpstreamSession`].
//! Bodies stream both ways; nothing buffers a whole body.

pub mod authorize;
pub mod body;
pub mod forward;
pub mod h1;
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
use std::sync::Arc;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};

use self::body::{LoggedBody, PendingLog};
use self::pipeline::{Decision, Exchange, Pipeline};
use self::reply::LocalReply;
use self::retry::Tried;
use self::upstream::UpstreamSession;
use super::access_log::{ConnectionOutcome, RequestRecord};
use super::context::{ConnectionContext, UpstreamTarget};
use super::flags::ResponseFlag;
use super::ProxyContext;
use hyper::body::Body as _;

/// What every request of one workload connection shares.
struct Connection {
    ctx: Arc<ProxyContext>,
    conn: Arc<ConnectionContext>,
    target: UpstreamTarget,
    pipeline: Pipeline,
    upstream: UpstreamSession,
}

/// Serves HTTP/1.1 or HTTP/2 on `downstream` until the workload closes it.
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
    let pipeline = if conn.waypoint.is_some() {
        Pipeline::waypoint(&conn)
    } else {
        Pipeline::standard()
    };
    let state = Arc::new(Connection {
        upstream: UpstreamSession::new(
            ctx.resolver.clone(),
            conn.orig_dst,
            ctx.limits.upstream_idle_timeout,
        ),
        ctx,
        conn,
        target,
        pipeline,
    });
    server::run(state, downstream).await
}

/// One request, top to bottom: record, decide, forward, respond.
async fn handle(
    state: Arc<Connection>,
    request: Request<Incoming>,
) -> Result<Response<LoggedBody>, Infallible> {
    let (mut head, body) = request.into_parts();
    let record = RequestRecord::from_head(&head);
    let snapshot = state.ctx.snapshots.borrow().clone();
    let normalization = snapshot.mesh.path_normalization;
    let mut exchange = Exchange::new(state.conn.clone(), snapshot, state.target.clone());

    let decision = match sanitize::check(&mut head, &state.ctx.limits, normalization) {
        Err(refused) => {
            tracing::debug!(error = %refused, "request refused before policy");
            Decision::Respond(refused.reply())
        }
        Ok(()) => state.pipeline.decide(&mut exchange, &mut head),
    };
    let response = match decision {
        Decision::Respond(reply) => {
            if let Some(flag) = reply.flag {
                exchange.flags.insert(flag);
            }
            reply.into_response()
        }
        Decision::Continue => {
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
                    Some(limit) => tokio::time::timeout(limit, tries).await.ok(),
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
    let log = PendingLog {
        conn: state.conn.clone(),
        upstream: exchange.upstream_addr,
        request: record,
        status: head.status,
        flags: exchange.flags,
        authz: exchange.authz.take(),
    };
    let idle = state.ctx.limits.stream_idle_timeout;
    Ok(Response::from_parts(head, LoggedBody::new(body, log, idle)))
}
