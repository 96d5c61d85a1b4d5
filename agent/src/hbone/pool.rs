//! Client connections to waypoints, pooled per (source identity,
//! destination identity, address) as ztunnel pools them; each carries up to
//! [`MAX_STREAMS_PER_CONNECTION`] streams before another is opened.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use h2::client::SendRequest;

use super::MAX_STREAMS_PER_CONNECTION;
use crate::identity::Identity;

/// What a pooled connection is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HbonePoolKey {
    /// The workload identity presented.
    pub src: Identity,
    /// The identity the server must present.
    pub dst: Identity,
    /// The server's HBONE address.
    pub addr: SocketAddr,
}

/// One HTTP/2 connection; its streams hold an `Arc` of it, so the strong
/// count tells how many are open.
#[derive(Debug)]
pub struct PooledConn {
    sender: SendRequest<Bytes>,
    alive: AtomicBool,
}

impl PooledConn {
    /// Wraps a ready client connection.
    pub fn new(sender: SendRequest<Bytes>) -> Arc<Self> {
        Arc::new(PooledConn {
            sender,
            alive: AtomicBool::new(true),
        })
    }

    /// A handle to open streams with.
    pub fn sender(&self) -> SendRequest<Bytes> {
        self.sender.clone()
    }

    /// Called when the connection's driver ends.
    pub fn mark_closed(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }

    fn usable(self: &Arc<Self>) -> bool {
        // One count is the pool's own.
        self.alive.load(Ordering::Relaxed) && Arc::strong_count(self) <= MAX_STREAMS_PER_CONNECTION
    }
}

/// Open connections by key.
#[derive(Debug, Default)]
pub struct HbonePool {
    conns: Mutex<HashMap<HbonePoolKey, Vec<Arc<PooledConn>>>>,
}

impl HbonePool {
    /// A connection for `key` with room for another stream, if any; closed
    /// ones are forgotten on the way.
    pub fn checkout(&self, key: &HbonePoolKey) -> Option<Arc<PooledConn>> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = conns.get_mut(key)?;
        list.retain(|c| c.alive.load(Ordering::Relaxed));
        let found = list.iter().find(|c| c.usable()).cloned();
        if list.is_empty() {
            conns.remove(key);
        }
        found
    }

    /// Adds a new connection for `key`.
    pub fn insert(&self, key: HbonePoolKey, conn: Arc<PooledConn>) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.entry(key).or_default().push(conn);
    }

    /// How many connections are open for `key`.
    pub fn connections(&self, key: &HbonePoolKey) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.get(key).map_or(0, |l| {
            l.iter().filter(|c| c.alive.load(Ordering::Relaxed)).count()
        })
    }
}
