//! Lease locks used correctly: two workers share a lock and a fenced counter, and the counter rejects the worker
//! whose lease ran out while it was paused.
//!
//! Run: `cargo run --example fenced_counter` (starts a standalone node in-process), or
//! `cargo run --example fenced_counter -- 127.0.0.1:6380` against a running node or cluster.
//!
//! The story: worker-b takes the lock with a 500 ms lease, then stalls for 900 ms (think: a GC pause, a swapped
//! out process, a slow disk) before it writes. Its lease runs out meanwhile, so worker-a gets the lock with a
//! larger fencing token and writes. When worker-b wakes up it still believes it holds the lock, but its write
//! carries the older token and the counter refuses it. Without the token check both writes would land. This is
//! why a lease lock alone is not enough (Martin Kleppmann, "How to do distributed locking"), and why Shoal's
//! locks, which can be held twice during a partition, always come with a fencing token.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A resource that only accepts writes whose fencing token is at least the highest it has accepted.
#[derive(Debug, Default)]
pub struct FencedCounter {
    highest_token: u64,
    value: i64,
    rejected: u64,
}

/// A write carried a token lower than one the resource already accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleToken {
    /// The token the write carried.
    pub token: u64,
    /// The highest token accepted so far.
    pub highest: u64,
}

impl FencedCounter {
    /// Add `delta` if `token` is not older than any token seen; the new value, or why it was refused.
    pub fn add(&mut self, token: u64, delta: i64) -> Result<i64, StaleToken> {
        if token < self.highest_token {
            self.rejected += 1;
            return Err(StaleToken { token, highest: self.highest_token });
        }
        self.highest_token = token;
        self.value += delta;
        Ok(self.value)
    }
}

/// `LOCK.ACQUIRE`, retried until granted: the fencing token and whether a majority granted it.
fn acquire(conn: &mut redis::Connection, name: &str, owner: &str, lease_ms: u64) -> (u64, String) {
    loop {
        let reply: redis::Value =
            redis::cmd("LOCK.ACQUIRE").arg(name).arg(owner).arg(lease_ms).query(conn).expect("LOCK.ACQUIRE");
        if let redis::Value::Array(parts) = reply {
            if let [redis::Value::Int(token), mode] = parts.as_slice() {
                let mode = match mode {
                    redis::Value::SimpleString(s) => s.clone(),
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                };
                return (*token as u64, mode);
            }
        }
        // Nil: someone else holds it. Wait a little and try again.
        thread::sleep(Duration::from_millis(50));
    }
}

fn release(conn: &mut redis::Connection, name: &str, owner: &str, token: u64) -> bool {
    redis::cmd("LOCK.RELEASE").arg(name).arg(owner).arg(token).query::<i64>(conn).map(|n| n == 1).unwrap_or(false)
}

/// One worker: take the lock, (maybe stall), write with the token, release.
fn worker(addr: String, owner: &'static str, start_after_ms: u64, stall_ms: u64, counter: Arc<Mutex<FencedCounter>>) {
    thread::sleep(Duration::from_millis(start_after_ms));
    let mut conn = redis::Client::open(format!("redis://{addr}/")).and_then(|c| c.get_connection()).expect("connect");
    let (token, mode) = acquire(&mut conn, "job1", owner, 500);
    println!("{owner}: got the lock, token {token} ({mode})");
    if stall_ms > 0 {
        println!("{owner}: stalls for {stall_ms} ms (longer than its 500 ms lease)");
        thread::sleep(Duration::from_millis(stall_ms));
    }
    match counter.lock().expect("counter").add(token, 1) {
        Ok(value) => println!("{owner}: write accepted, counter = {value}"),
        Err(stale) => println!("{owner}: write REJECTED: token {} < highest accepted {}", stale.token, stale.highest),
    }
    let released = release(&mut conn, "job1", owner, token);
    println!("{owner}: release -> {}", if released { "released" } else { "not the holder any more" });
}

fn main() -> anyhow::Result<()> {
    let (addr, _node) = match std::env::args().nth(1) {
        Some(addr) => (addr, None),
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            let config = shoal::runtime::ServerConfig {
                listen: Some("127.0.0.1:0".parse()?),
                cluster: None,
                ..Default::default()
            };
            let handle = rt.block_on(shoal::runtime::start(config))?;
            (handle.addr.to_string(), Some((rt, handle)))
        }
    };
    let counter = Arc::new(Mutex::new(FencedCounter::default()));
    let b = {
        let (addr, counter) = (addr.clone(), counter.clone());
        thread::spawn(move || worker(addr, "worker-b", 0, 900, counter))
    };
    let a = {
        let (addr, counter) = (addr.clone(), counter.clone());
        thread::spawn(move || worker(addr, "worker-a", 100, 0, counter))
    };
    a.join().expect("worker-a");
    b.join().expect("worker-b");
    let counter = counter.lock().expect("counter");
    println!("counter = {}, stale writes rejected = {}", counter.value, counter.rejected);
    assert_eq!((counter.value, counter.rejected), (1, 1), "the stalled worker's stale write is refused");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_refuses_older_tokens_and_accepts_equal_or_newer() {
        let mut c = FencedCounter::default();
        assert_eq!(c.add(5, 1), Ok(1));
        assert_eq!(c.add(5, 1), Ok(2));
        assert_eq!(c.add(4, 1), Err(StaleToken { token: 4, highest: 5 }));
        assert_eq!(c.add(9, 1), Ok(3));
        assert_eq!(c.rejected, 1);
    }
}
