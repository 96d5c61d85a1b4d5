//! The admin endpoint (`--admin`, default `127.0.0.1:15000`): `/metrics`,
//! `/healthz/ready`, `/config_dump` over plain HTTP/1.1. It binds in the
//! process's own network namespace on loopback, where workloads (each in
//! its own namespace) cannot reach it.

pub mod config_dump;
pub mod error;
pub mod routes;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use self::error::AdminError;
pub use self::routes::{Admin, AdminView, ListWorkloads};

/// Where the admin endpoint listens when not told otherwise (Envoy's and
/// ztunnel's admin port).
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15000);

/// The running admin endpoint; dropping it stops serving.
pub struct AdminServer {
    /// The pages' state (mark it ready with [`Admin::set_ready`]).
    pub admin: Arc<Admin>,
    /// The address bound (useful with port 0).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` now, on the calling thread (so in the process's own network
/// namespace, whatever tasks do later), and serves the pages in the
/// background; they answer 503 until [`Admin::set_ready`].
pub fn start(addr: SocketAddr) -> Result<AdminServer, AdminError> {
    let bind_err = |source| AdminError::Bind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let bound = std_listener.local_addr().map_err(bind_err)?;
    let listener = TcpListener::from_std(std_listener).map_err(bind_err)?;
    let admin = Arc::new(Admin::default());
    tracing::info!(addr = %bound, "admin endpoint listening");
    let task = tokio::spawn(serve(listener, admin.clone()));
    Ok(AdminServer {
        admin,
        addr: bound,
        task,
    })
}

async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin endpoint accept");
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let response = admin.respond(req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn serves_over_loopback_and_refuses_a_taken_port() {
        let server = start("127.0.0.1:0".parse().unwrap()).unwrap();
        let reply = get(server.addr, "/healthz/ready").await;
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        let err = start(server.addr).err().expect("port is taken");
        assert!(err.to_string().contains("--admin"), "{err}");
        assert!(!server.admin.is_ready());
    }
}
