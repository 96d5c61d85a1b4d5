//! Idle upstream connections shared by every workload connection: a
//! connection a workload is done with waits here, keyed by endpoint and TLS
//! settings, for the next request to the same place. Bounded per key and in
//! total; an entry past its idle deadline is dropped (which closes it) when
//! met, or by [`IdlePool::sweep`].

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle connections kept per key.
pub const MAX_PER_KEY: usize = 8;
/// Idle connections kept in all.
pub const MAX_TOTAL: usize = 1024;

/// A bounded set of idle connections `C` under keys `K`.
#[derive(Debug)]
pub struct IdlePool<K, C> {
    idle: Mutex<Idle<K, C>>,
    max_per_key: usize,
    max_total: usize,
}

/// Connections by key, each with the instant it stops being kept.
#[derive(Debug)]
struct Idle<K, C> {
    by_key: HashMap<K, VecDeque<(Instant, C)>>,
    total: usize,
}

impl<K: Hash + Eq, C> Idle<K, C> {
    /// Drops every entry past its deadline.
    fn sweep(&mut self, now: Instant) {
        let mut swept = 0;
        self.by_key.retain(|_, list| {
            let before = list.len();
            list.retain(|(deadline, _)| now <= *deadline);
            swept += before - list.len();
            !list.is_empty()
        });
        self.total -= swept;
    }
}

impl<K: Hash + Eq + Clone, C> IdlePool<K, C> {
    /// A pool with the given bounds.
    pub fn new(max_per_key: usize, max_total: usize) -> Self {
        IdlePool {
            idle: Mutex::new(Idle {
                by_key: HashMap::new(),
                total: 0,
            }),
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
        while let Some((deadline, conn)) = list.pop_back() {
            dropped += 1;
            if now <= deadline && usable(&conn) {
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

    /// Keeps `conn` for reuse under `key` for `idle_timeout`; past the
    /// bounds the oldest idle connection of the key (or `conn` itself when
    /// the pool is full) goes.
    pub fn put(&self, key: K, conn: C, idle_timeout: Duration) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if idle.total >= self.max_total {
            // Sweep the expired before giving up on `conn`.
            idle.sweep(now);
            if idle.total >= self.max_total {
                return;
            }
        }
        // A deadline too far to represent means: kept until the bounds evict it.
        let deadline = now
            .checked_add(idle_timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let list = idle.by_key.entry(key).or_default();
        list.push_back((deadline, conn));
        let mut added = 1;
        if list.len() > self.max_per_key {
            list.pop_front();
            added = 0;
        }
        idle.total += added;
    }

    /// Drops (closes) every connection past its idle deadline.
    pub fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.sweep(Instant::now());
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

    const KEEP: Duration = Duration::from_secs(60);

    #[test]
    fn takes_the_newest_usable_connection_of_the_key() {
        let pool = IdlePool::new(4, 16);
        pool.put("a", 1, KEEP);
        pool.put("a", 2, KEEP);
        pool.put("b", 3, KEEP);
        assert_eq!(pool.take(&"a", |_| true), Some(2));
        // 1 is unusable (closed): dropped on the way, nothing left.
        assert_eq!(pool.take(&"a", |c| *c != 1), None);
        assert_eq!(pool.take(&"a", |_| true), None);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take(&"c", |_| true), None);
    }

    #[test]
    fn bounded_per_key_and_in_total() {
        let pool = IdlePool::new(2, 3);
        for c in 0..5 {
            pool.put("a", c, KEEP);
        }
        assert_eq!(pool.len(), 2);
        pool.put("b", 10, KEEP);
        pool.put("c", 20, KEEP);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.take(&"c", |_| true), None);
        assert_eq!(pool.take(&"a", |_| true), Some(4));
        assert_eq!(pool.take(&"a", |_| true), Some(3));
    }

    #[test]
    fn idle_connections_expire() {
        let short = Duration::from_millis(10);
        let pool = IdlePool::new(2, 2);
        pool.put("a", 1, short);
        pool.put("b", 2, short);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pool.take(&"a", |_| true), None);
        // A full pool of expired entries makes room.
        pool.put("c", 3, short);
        pool.put("d", 4, KEEP);
        assert_eq!(pool.take(&"d", |_| true), Some(4));
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn a_sweep_closes_what_expired_and_keeps_the_rest() {
        let pool = IdlePool::new(4, 16);
        pool.put("a", 1, Duration::from_millis(10));
        pool.put("a", 2, KEEP);
        pool.put("b", 3, Duration::from_millis(10));
        pool.put("c", 4, Duration::MAX);
        std::thread::sleep(Duration::from_millis(20));
        pool.sweep();
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take(&"a", |_| true), Some(2));
        assert_eq!(pool.take(&"c", |_| true), Some(4));
    }
}
