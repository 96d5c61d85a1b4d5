//! The agent's end of the control socket.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{AgentStatus, Request, Response};
use super::Subscription;
use crate::kernel::events::Verdict;

/// What the control socket serves from.
pub trait ControlHandler: Send + Sync + 'static {
    /// Creates a workload (blocking work allowed: it runs on a blocking thread).
    fn create_workload(
        &self,
        namespace: &str,
        service_account: &str,
        name: Option<&str>,
    ) -> Result<crate::workload::CreatedWorkload, String>;
    /// Removes a workload created earlier (blocking allowed).
    fn remove_workload(&self, id: u64);
    /// Removes a workload taken over from an earlier agent (no connection
    /// owns it; its `egret exec` asks again after the restart). Blocking.
    fn release_adopted(&self, id: u64) -> bool;
    /// Starts feeding a monitor session.
    fn subscribe(&self, redirects: bool) -> Subscription;
    /// Ends a monitor session.
    fn unsubscribe(&self, redirects: bool);
    /// SPIFFE trust domain, for identities in monitor events.
    fn trust_domain(&self) -> String;
    /// The state in force.
    fn status(&self) -> AgentStatus;
    /// The generation of the config in force.
    fn generation(&self) -> u64;
}

/// Binds the control socket at `path` (replacing a stale one) and serves it
/// until the task is dropped.
pub async fn serve(path: &Path, handler: Arc<dyn ControlHandler>) -> std::io::Result<()> {
    if path.exists() {
        // A live agent answers; a dead one's socket is only a file.
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another egret agent is already serving {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    loop {
        let (stream, _) = listener.accept().await?;
        if let Err(why) = super::peer::check(&stream) {
            tracing::warn!(reason = %why, "control request refused");
            tokio::spawn(refuse(stream, why));
            continue;
        }
        tokio::spawn(session(stream, handler.clone()));
    }
}

/// Answers every request of a refused peer with why, then closes.
async fn refuse(stream: UnixStream, why: String) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    if let Ok(Some(_)) = lines.next_line().await {
        let mut text = serde_json::to_string(&Response::Error { message: why }).unwrap_or_default();
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }
}

/// Streams kernel events to a `Monitor` session until it goes away.
async fn monitor(
    mut write: tokio::net::unix::OwnedWriteHalf,
    handler: Arc<dyn ControlHandler>,
    redirects: bool,
) {
    let Subscription {
        mut events,
        workload,
    } = handler.subscribe(redirects);
    let trust_domain = handler.trust_domain();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "a monitor session fell behind");
                continue;
            }
            Err(_) => break,
        };
        if !redirects && matches!(event.verdict, Verdict::Redirected(_)) {
            continue;
        }
        let info = workload(event.netns_cookie);
        let line = Response::Event(crate::verdicts::describe(
            &event,
            info.as_deref(),
            &trust_domain,
        ));
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            break;
        }
    }
    handler.unsubscribe(redirects);
}

/// One CLI connection. Workloads it created are removed when it closes, so
/// an `egret exec` that dies (even by SIGKILL) leaves nothing behind.
async fn session(stream: UnixStream, handler: Arc<dyn ControlHandler>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut owned = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(Request::Monitor { redirects }) = serde_json::from_str::<Request>(&line) {
            // The connection is the stream's from here on; it ends when the
            // client goes (a write fails) — or when it closes its side.
            tokio::select! {
                _ = monitor(write, handler.clone(), redirects) => {}
                _ = async { while let Ok(Some(_)) = lines.next_line().await {} } => {}
            }
            break;
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
            Ok(Request::Status) => Response::Status(handler.status()),
            Ok(Request::Generation) => Response::Generation {
                generation: handler.generation(),
            },
            Ok(Request::Monitor { .. }) => unreachable!("handled above"),
            Ok(Request::ReleaseWorkload { id }) => {
                if let Some(i) = owned.iter().position(|w| *w == id) {
                    owned.swap_remove(i);
                    let h = handler.clone();
                    let _ = tokio::task::spawn_blocking(move || h.remove_workload(id)).await;
                    Response::Released { id }
                } else {
                    let h = handler.clone();
                    let adopted = tokio::task::spawn_blocking(move || h.release_adopted(id))
                        .await
                        .unwrap_or(false);
                    if adopted {
                        Response::Released { id }
                    } else {
                        Response::Error {
                            message: format!("workload {id} is not one of this connection's"),
                        }
                    }
                }
            }
            Ok(Request::CreateWorkload {
                namespace,
                service_account,
                name,
            }) => {
                let h = handler.clone();
                let created = tokio::task::spawn_blocking(move || {
                    h.create_workload(&namespace, &service_account, name.as_deref())
                })
                .await
                .unwrap_or_else(|e| Err(format!("workload setup panicked: {e}")));
                match created {
                    Ok(w) => {
                        owned.push(w.id);
                        Response::Workload(w)
                    }
                    Err(message) => Response::Error { message },
                }
            }
        };
        let mut text = serde_json::to_string(&response).unwrap_or_default();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            break;
        }
    }
    if !owned.is_empty() {
        let h = handler.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for id in owned {
                h.remove_workload(id);
            }
        })
        .await;
    }
}
