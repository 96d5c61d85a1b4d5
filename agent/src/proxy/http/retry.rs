//! Retries as Istio configures Envoy's: `attempts` retries after the first
//! try on the `retryOn` conditions, each try bounded by `perTryTimeout`,
//! with jittered exponential back-off (25 ms base). Istio's default (2
//! retries on connect-failure, refused-stream, unavailable, cancelled,
//! retriable-status-codes) applies when no VirtualService route says
//! otherwise. Only requests without a body are re-sent: the waypoint streams
//! bodies and keeps no copy to replay.

use std::time::Duration;

use http::{request, Request, Response};
use hyper::body::Incoming;

use super::body::{self, ProxyBody};
use super::pipeline::Exchange;
use super::upstream::{UpstreamError, UpstreamSession};
use crate::route::RetryPolicy;

/// Envoy's base retry back-off.
const BACKOFF_BASE: Duration = Duration::from_millis(25);

/// The result of the last try.
pub enum Tried {
    /// An upstream response (possibly one a retry condition matched, when
    /// the tries ran out).
    Response(Response<Incoming>),
    /// The upstream failed.
    Failed(UpstreamError),
    /// The last try's `perTryTimeout` passed.
    TimedOut,
}

/// Sends the request, retrying per `exchange.retries` when it has no body.
pub async fn send(
    upstream: &UpstreamSession,
    exchange: &mut Exchange,
    head: request::Parts,
    body: ProxyBody,
    replayable: bool,
) -> Tried {
    let policy = exchange.retries.clone();
    let retries = match (&policy, replayable) {
        (Some(p), true) => p.attempts,
        _ => 0,
    };
    let per_try = policy.as_ref().and_then(|p| p.per_try_timeout);
    let mut body = Some(body);
    let mut attempt = 0;
    loop {
        let body = body.take().unwrap_or_else(body::empty);
        // The head is copied only while another try can follow; the last
        // (usually the only) try takes it.
        if attempt >= retries {
            return try_once(upstream, exchange, Request::from_parts(head, body), per_try).await;
        }
        let request = Request::from_parts(copy_head(&head), body);
        let tried = try_once(upstream, exchange, request, per_try).await;
        if !policy.as_ref().is_some_and(|p| retriable(p, &tried)) {
            return tried;
        }
        attempt += 1;
        tracing::debug!(attempt, "retrying upstream request");
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// One try, bounded by the per-try timeout when there is one.
async fn try_once(
    upstream: &UpstreamSession,
    exchange: &mut Exchange,
    request: Request<ProxyBody>,
    per_try: Option<Duration>,
) -> Tried {
    match per_try {
        // Boxed: its timer would otherwise size every request's future.
        Some(limit) => match Box::pin(tokio::time::timeout(
            limit,
            upstream.send(exchange, request),
        ))
        .await
        {
            Ok(r) => into_tried(r),
            Err(_) => Tried::TimedOut,
        },
        None => into_tried(upstream.send(exchange, request).await),
    }
}

fn into_tried(result: Result<Response<Incoming>, UpstreamError>) -> Tried {
    match result {
        Ok(r) => Tried::Response(r),
        Err(e) => Tried::Failed(e),
    }
}

/// Whether the policy's conditions call for another try.
fn retriable(policy: &RetryPolicy, tried: &Tried) -> bool {
    let on = |c: &str| policy.retry_on.iter().any(|r| r == c);
    match tried {
        Tried::Response(r) => {
            let status = r.status().as_u16();
            (on("5xx") && status >= 500)
                || (on("gateway-error") && matches!(status, 502..=504))
                || (on("retriable-status-codes") && policy.retriable_status_codes.contains(&status))
        }
        Tried::TimedOut => on("5xx") || on("gateway-error"),
        Tried::Failed(e) => match e {
            UpstreamError::Connect(_) | UpstreamError::Handshake { .. } => {
                on("connect-failure") || on("5xx") || on("gateway-error")
            }
            UpstreamError::Reset { .. } => on("reset") || on("5xx"),
            // Resolution failures and TLS refusals do not get better by
            // trying again at once.
            _ => false,
        },
    }
}

/// Exponential back-off with full jitter, capped at ten times the base.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE * 2u32.saturating_pow(attempt.min(4));
    let ceiling = ceiling.min(BACKOFF_BASE * 10);
    ceiling.mul_f64(rand::random::<f64>())
}

/// The head of another try of the same request.
fn copy_head(head: &request::Parts) -> request::Parts {
    let mut builder = Request::builder()
        .method(head.method.clone())
        .uri(head.uri.clone())
        .version(head.version);
    if let Some(headers) = builder.headers_mut() {
        *headers = head.headers.clone();
    }
    builder
        .body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|_| Request::new(()).into_parts().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &[&str], codes: &[u16]) -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: on.iter().map(|s| s.to_string()).collect(),
            retriable_status_codes: codes.to_vec(),
        }
    }

    #[test]
    fn timeouts_retry_only_on_5xx_and_gateway_error() {
        assert!(retriable(&policy(&["5xx"], &[]), &Tried::TimedOut));
        assert!(retriable(
            &policy(&["gateway-error"], &[]),
            &Tried::TimedOut
        ));
        assert!(!retriable(&RetryPolicy::istio_default(), &Tried::TimedOut));
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 1..10 {
            assert!(backoff(attempt) <= BACKOFF_BASE * 10);
        }
    }

    #[test]
    fn copied_heads_keep_method_uri_and_headers() {
        let (head, ()) = Request::post("http://h/p?q=1")
            .header("x-a", "1")
            .body(())
            .unwrap()
            .into_parts();
        let copy = copy_head(&head);
        assert_eq!(copy.method, http::Method::POST);
        assert_eq!(copy.uri, "http://h/p?q=1");
        assert_eq!(copy.headers["x-a"], "1");
    }
}
