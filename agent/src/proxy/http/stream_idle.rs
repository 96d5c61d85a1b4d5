//! Envoy's `stream_idle_timeout` for the wait on an upstream: the request
//! body moving counts as activity; when nothing has moved for the timeout
//! and no response headers have come, the workload gets `408 stream
//! timeout` (`SI`) instead of waiting on.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::body::ProxyBody;

/// When the request last moved.
#[derive(Clone, Debug)]
pub struct Activity(Arc<Mutex<Instant>>);

impl Activity {
    /// Activity starting now.
    pub fn start() -> Self {
        Activity(Arc::new(Mutex::new(Instant::now())))
    }

    fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `body`, touching the activity on every frame.
    pub fn track(&self, body: ProxyBody) -> ProxyBody {
        http_body_util::BodyExt::boxed_unsync(Tracked {
            body,
            activity: self.clone(),
        })
    }

    /// Resolves once nothing has moved for `limit` (never when `limit` is 0).
    pub async fn idle(&self, limit: Duration) {
        if limit.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let deadline = self.last() + limit;
            tokio::time::sleep_until(deadline).await;
            if self.last() + limit <= Instant::now() {
                return;
            }
        }
    }
}

struct Tracked {
    body: ProxyBody,
    activity: Activity,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.activity.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn body_frames_hold_the_timeout_off() {
        let activity = Activity::start();
        let started = Instant::now();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let stream = http_body_util::StreamBody::new(futures::stream::unfold(rx, |mut rx| async {
            rx.recv()
                .await
                .map(|b| (Ok::<_, hyper::Error>(Frame::data(b)), rx))
        }));
        let mut body = activity.track(stream.boxed_unsync());
        let reader = tokio::spawn(async move { while body.frame().await.is_some() {} });
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(40)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
            // Then nothing more, the body left open (`tx` stays alive).
            std::future::pending::<()>().await;
        });
        activity.idle(Duration::from_secs(60)).await;
        // Frames at 40, 80 and 120 s; idle from 120 s for 60 s.
        assert_eq!(started.elapsed(), Duration::from_secs(180));
        reader.abort();
        sender.abort();
    }
}
