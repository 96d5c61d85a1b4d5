//! The I/O hickory's resolver uses, with egret's socket mark, so the
//! agent's own name lookups are never captured either.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use hickory_proto::iocompat::AsyncIoTokioAsStd;
use hickory_proto::TokioTime;
use hickory_resolver::name_server::{RuntimeProvider, TokioHandle};
use tokio::net::{TcpStream, UdpSocket};

use crate::net::socket;

/// Tokio I/O for hickory-resolver with every socket marked.
#[derive(Clone, Default)]
pub(crate) struct MarkedRuntime(TokioHandle);

impl RuntimeProvider for MarkedRuntime {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = UdpSocket;
    type Tcp = AsyncIoTokioAsStd<TcpStream>;

    fn create_handle(&self) -> Self::Handle {
        self.0.clone()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<Self::Tcp>>>> {
        Box::pin(async move {
            socket::connect(server_addr)
                .await
                .map(AsyncIoTokioAsStd)
                .map_err(io::Error::other)
        })
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        _server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<Self::Udp>>>> {
        Box::pin(async move { socket::udp_bound(local_addr) })
    }
}
