//! Reading a node's membership view over RESP (SHOAL.MEMBERS and INFO cluster), and running the `shoal` binary
//! as a child process that can be killed with SIGKILL. Shared by `tests/cluster.rs` and `benches/detection.rs`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::Value;

/// One row of SHOAL.MEMBERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub cluster_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub state: String,
    pub incarnation: u64,
}

impl Member {
    pub fn is_alive(&self) -> bool {
        self.state == "alive"
    }

    pub fn is_down(&self) -> bool {
        self.state == "down"
    }
}

/// A node's view: its rows, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct View(pub Vec<Member>);

impl View {
    /// The row named `name`, if the node knows it.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.0.iter().find(|m| m.name == name)
    }

    /// How many members the node sees alive, itself included.
    pub fn alive(&self) -> usize {
        self.0.iter().filter(|m| m.is_alive()).count()
    }

    /// Whether the node sees exactly `names` alive (and nobody else alive).
    pub fn alive_exactly(&self, names: &[&str]) -> bool {
        let mut alive: Vec<&str> = self.0.iter().filter(|m| m.is_alive()).map(|m| m.name.as_str()).collect();
        alive.sort_unstable();
        let mut want = names.to_vec();
        want.sort_unstable();
        alive == want
    }

    /// Whether the node shows `name` as down (an unknown name is not down).
    pub fn is_down(&self, name: &str) -> bool {
        self.get(name).is_some_and(Member::is_down)
    }
}

/// A client connection to one node, reconnecting after errors (a node may be restarting).
pub struct Client {
    addr: SocketAddr,
    conn: Option<redis::Connection>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    fn conn(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.conn.is_none() {
            let client = redis::Client::open(format!("redis://{}/", self.addr))?;
            let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            conn.set_read_timeout(Some(Duration::from_secs(2)))?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Option<T> {
        let result = self.conn().and_then(|c| cmd.query::<T>(c));
        if result.is_err() {
            self.conn = None;
        }
        result.ok()
    }

    /// The node's SHOAL.MEMBERS, or `None` if it cannot be reached.
    pub fn view(&mut self) -> Option<View> {
        let value: Value = self.query(&redis::cmd("SHOAL.MEMBERS"))?;
        Some(parse_members(value).expect("SHOAL.MEMBERS has the documented shape"))
    }

    /// One numeric field of `INFO cluster` (e.g. `gossip_rejected_auth`), or `None` if unreachable.
    pub fn info_u64(&mut self, field: &str) -> Option<u64> {
        self.info_field(field)?.parse().ok()
    }

    /// One field of `INFO cluster`, as text.
    pub fn info_field(&mut self, field: &str) -> Option<String> {
        let text: String = self.query(redis::cmd("INFO").arg("cluster"))?;
        let prefix = format!("{field}:");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().to_string())
    }
}

/// SHOAL.MEMBERS is an array of maps; under RESP2 each map arrives as a flat key/value array.
pub fn parse_members(value: Value) -> Result<View, String> {
    let Value::Array(rows) = value else { return Err(format!("expected an array, got {value:?}")) };
    let mut view = Vec::with_capacity(rows.len());
    for row in rows {
        let pairs: Vec<(Value, Value)> = match row {
            Value::Map(pairs) => pairs,
            Value::Array(flat) if flat.len() % 2 == 0 => {
                let mut it = flat.into_iter();
                std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
            }
            other => return Err(format!("expected a map, got {other:?}")),
        };
        let field = |key: &str| -> Result<&Value, String> {
            pairs.iter().find(|(k, _)| text(k).as_deref() == Some(key)).map(|(_, v)| v).ok_or(format!("no {key}"))
        };
        let text_field = |key: &str| field(key).and_then(|v| text(v).ok_or(format!("{key} is not text")));
        let addr_field = |key: &str| text_field(key)?.parse::<SocketAddr>().map_err(|e| format!("{key}: {e}"));
        let incarnation = match field("incarnation")? {
            Value::Int(n) => u64::try_from(*n).map_err(|e| e.to_string())?,
            other => return Err(format!("incarnation is not an integer: {other:?}")),
        };
        view.push(Member {
            name: text_field("name")?,
            cluster_addr: addr_field("cluster_addr")?,
            client_addr: addr_field("client_addr")?,
            state: text_field("state")?,
            incarnation,
        });
    }
    Ok(View(view))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Ports handed out by `free_addr` lie in [PORT_BASE, PORT_BASE + PORT_SPAN): below Linux's ephemeral range
/// (32768-60999 by default), so no outgoing connection of a test or a node can take one between the check here
/// and the node's own bind. CI once lost a node that way ("address in use" at start).
const PORT_BASE: u32 = 20_000;
const PORT_SPAN: u32 = 12_000;

/// A loopback address whose port is free for both TCP and UDP, never the same twice within one test process.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each test binary starts at its own offset (from its pid), so binaries run side by side rarely meet.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % PORT_SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..PORT_SPAN {
        let port = PORT_BASE + NEXT.fetch_add(1, Ordering::SeqCst) % PORT_SPAN;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if TcpListener::bind(addr).is_ok() && UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port in {PORT_BASE}..{}", PORT_BASE + PORT_SPAN)
}

/// A `shoal` process; killed with SIGKILL when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Start `bin` with `args`; its logs go to stderr at `log` level.
    pub fn spawn(bin: &Path, args: &[String], log: &str) -> Process {
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", log)
            // The binary logs to stdout: keep it off the caller's stdout, on stderr when logs were asked for.
            .stdout(if log == "warn" { Stdio::null() } else { Stdio::from(std::io::stderr()) })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("shoal binary starts");
        Process { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, or None while it runs (for failure messages).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: the node stops at once, without leaving the cluster.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (via the `kill` command: the crate forbids unsafe code) and wait up to `limit` for the exit.
    pub fn sigterm(mut self, limit: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
        let deadline = std::time::Instant::now() + limit;
        while sent && std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
