//! Idle upstream connections shared by every workload connection: a
//! connection a workload is done with waits here, keyed by endpoint and TLS
//! settings, for the next request to the same place. Bounded per key and in
//! total; entries older than the idle timeout are dropped (which closes them).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per key.
pub const MAX_PER_KEY: usize = 8;
/// Idle connections kept in all.
pub const MAX_TOTAL: usize = 1024;

/// A bounded set of idle connections `C` under keys `K`.
#[derive(Debug)]
pub struct Pool<K, C> {
    idle: Mutex<Idle<K, C>>,
    idle_timeout: Duration,
    max_per_key: usize,
    max_total: usize,
}

#[derive(Debug)]
struct Idle<K, C> {
    by_key: HashMap<K, VecDeque<(Instant, C)>>,
    total: usize,
}

impl<K: Hash + Eq + Clone, C> Pool<K, C> {
    /// A pool with the given limits.
    pub fn new(idle_timeout: Duration, max_per_key: usize, max_total: usize) -> Self {
        Pool {
            idle: Mutex::new(Idle {
                by_key: HashMap::new(),
                total: 0,
            }),
            idle_timeout,
            max_per_key,
            max_total,
        }
    }

    /// The most recently returned connection under `key` that `usable`
    /// accepts; stale and unusable ones met on the way are dropped.
    pub fn take(&self, key: &K, usable: impl Fn(&C) -> bool) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let list = idle.by_key.get_mut(key)?;
        let mut dropped = 0;
        let mut found = None;
        // Newest last: the warmest connection is the likeliest alive.
        while let Some((since, conn)) = list.pop_back() {
            dropped += 1;
            if now.duration_since(since) <= self.idle_timeout && usable(&conn) {
                found = Some(conn);
                break;
            }
        }
        if list.is_empty() {
            idle.by_key.remove(key);
        }
        idle.total -= dropped;
        found
    }

    /// Keeps `conn` for reuse under `key`; past the limits the oldest idle
    /// connection of the key (or `conn` itself when the pool is full) goes.
    pub fn put(&self, key: K, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let timeout = self.idle_timeout;
        if idle.total >= self.max_total {
            // Sweep the expired before giving up on `conn`.
            let mut swept = 0;
            idle.by_key.retain(|_, list| {
                let before = list.len();
                list.retain(|(since, _)| now.duration_since(*since) <= timeout);
                swept += before - list.len();
                !list.is_empty()
            });
            idle.total -= swept;
            if idle.total >= self.max_total {
                return;
            }
        }
        let list = idle.by_key.entry(key).or_default();
        list.push_back((now, conn));
        let mut added = 1;
        if list.len() > self.max_per_key {
            list.pop_front();
            added = 0;
        }
        idle.total += added;
    }

    /// Idle connections held now.
    pub fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Whether nothing is idle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_newest_usable_connection_of_the_key() {
        let pool = Pool::new(IDLE_TIMEOUT, 4, 16);
        pool.put("a", 1);
        pool.put("a", 2);
        pool.put("b", 3);
        assert_eq!(pool.take(&"a", |_| true), Some(2));
        // 1 is unusable (closed): dropped on the way, nothing left.
        assert_eq!(pool.take(&"a", |c| *c != 1), None);
        assert_eq!(pool.take(&"a", |_| true), None);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take(&"c", |_| true), None);
    }

    #[test]
    fn bounded_per_key_and_in_total() {
        let pool = Pool::new(IDLE_TIMEOUT, 2, 3);
        for c in 0..5 {
            pool.put("a", c);
        }
        assert_eq!(pool.len(), 2);
        pool.put("b", 10);
        pool.put("c", 20);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.take(&"c", |_| true), None);
        assert_eq!(pool.take(&"a", |_| true), Some(4));
        assert_eq!(pool.take(&"a", |_| true), Some(3));
    }

    #[test]
    fn idle_connections_expire() {
        let pool = Pool::new(Duration::from_millis(10), 2, 2);
        pool.put("a", 1);
        pool.put("b", 2);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pool.take(&"a", |_| true), None);
        // A full pool of expired entries makes room.
        pool.put("c", 3);
        pool.put("d", 4);
        assert_eq!(pool.take(&"d", |_| true), Some(4));
        assert_eq!(pool.len(), 1);
    }
}
