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
pub mod host;
pub mod normalize;
pub mod pipeline;
pub mod reply;
pub mod retry;
pub mod routing;
pub mod sender;
pub mod upstream;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use self::body::{LoggedBody, PendingLog};
use self::pipeline::{Decision, Exchange, Pipeline};
use self::reply::LocalReply;
use self::retry::Tried;
use self::upstream::UpstreamSession;
use super::access_log::{ConnectionOutcome, RequestRecord};
use super::context::{ConnectionContext, Destination, UpstreamTarget};
use super::flags::ResponseFlag;
use super::outbound::route;
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
    /// Where the last request went, by the config it was decided on:
    /// worked out again only when the config moves.
    current: Mutex<Current>,
}

/// The connection's path in one config.
#[derive(Clone)]
struct Current {
    destination: Arc<Destination>,
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
                route(&destination, self.conn.orig_dst)
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
        Pipeline::waypoint(&conn)
    } else {
        Pipeline::standard()
    };
    let state = Arc::new(Connection {
        upstream: UpstreamSession::new(ctx.resolver.clone(), conn.orig_dst),
        current: Mutex::new(Current {
            destination: conn.accepted.clone(),
            target: Ok(target.clone()),
        }),
        ctx: ctx.clone(),
        conn: conn.clone(),
        accepted: target,
        pipeline,
    });
    let service = {
        let state = state.clone();
        service_fn(move |request| handle(state.clone(), request))
    };
    // HTTP/1.1, or HTTP/2 with prior knowledge: the preface tells them apart.
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        // Pipelined requests get their responses flushed together.
        .pipeline_flush(true);
    let connection = builder.serve_connection(TokioIo::new(downstream), service);
    tokio::pin!(connection);
    let gone = recheck::revoked(ctx.snapshots.clone(), &conn, |dest| {
        recheck::path_unchanged(&conn, dest)
    });
    tokio::pin!(gone);
    let mut closed_by: Option<Revoked> = None;
    let served = loop {
        tokio::select! {
            // Requests already read are served (and refused, when their
            // service is gone) before the connection is wound down.
            biased;
            served = connection.as_mut() => break served,
            revoked = &mut gone, if closed_by.is_none() => {
                // In-flight requests finish; HTTP/1.1 closes after the
                // response, HTTP/2 sends GOAWAY and takes no new stream.
                tracing::debug!(src = %conn.src, reason = %revoked, "closing an HTTP connection after a config change");
                connection.as_mut().graceful_shutdown();
                closed_by = Some(revoked);
            }
        }
    };

    let mut outcome = ConnectionOutcome {
        upstream: state.upstream.last_addr(),
        ..ConnectionOutcome::default()
    };
    if let Some(revoked) = closed_by {
        outcome.fail(Some(revoked.flag()), &revoked);
    }
    if let Err(e) = served {
        // A malformed request is the workload's fault; a workload that
        // hangs up mid-response is not an error worth a flag.
        let parse_error = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse);
        let flag = parse_error.then_some(ResponseFlag::DownstreamProtocolError);
        outcome.fail(flag, &e);
    }
    outcome
}

/// One request, top to bottom: record, decide, forward, respond.
async fn handle(
    state: Arc<Connection>,
    request: Request<Incoming>,
) -> Result<Response<LoggedBody>, Infallible> {
    let (mut head, body) = request.into_parts();
    let record = RequestRecord::from_head(&head);
    let http2 = head.version == http::Version::HTTP_2;
    normalize_uri(&mut head);
    let current = state.current();
    let (target, gone) = match current.target {
        Ok(target) => (target, None),
        Err(revoked) => (state.accepted.clone(), Some(revoked)),
    };
    let mut exchange = Exchange::new(state.conn.clone(), current.destination, target);

    let decision = match &gone {
        // The service or port is gone: never sent on to it.
        Some(revoked) => {
            tracing::debug!(src = %state.conn.src, reason = %revoked, "request refused");
            Decision::Respond(LocalReply::no_virtual_host())
        }
        None => state.pipeline.decide(&mut exchange, &mut head),
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
            let tries = retry::send(
                &state.upstream,
                &mut exchange,
                head,
                body.boxed_unsync(),
                replayable,
            );
            let sent = match exchange_timeout {
                Some(limit) => tokio::time::timeout(limit, tries).await.ok(),
                None => Some(tries.await),
            };
            match sent {
                None | Some(Tried::TimedOut) => {
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
        upstream: exchange.upstream_addr,
        request: record,
        status: head.status,
        flags: exchange.flags,
        authz: exchange.authz.take(),
    };
    Ok(Response::from_parts(head, LoggedBody::new(body, log)))
}

/// Puts the normalized path in the request, keeping the query as sent.
fn normalize_uri(head: &mut http::request::Parts) {
    let path = head.uri.path();
    let normalize::NormalizedPath::Changed(normal) = normalize::classify(path) else {
        return;
    };
    let mut path_and_query = normal;
    if let Some(query) = head.uri.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    let mut parts = head.uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            head.uri = uri;
        }
    }
}
