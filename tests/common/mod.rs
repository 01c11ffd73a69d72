//! Shared helpers for integration tests: an in-process server on an ephemeral loopback port, raw RESP I/O,
//! and polling with a deadline instead of fixed sleeps.
#![allow(dead_code)]

pub mod members;
pub mod netns;
pub mod pki;
pub mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use shoal::runtime::{ServerConfig, ServerHandle};

/// A server running on its own tokio runtime; stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: Option<ServerHandle>,
    rt: tokio::runtime::Runtime,
}

impl TestServer {
    /// Start a server with `config`, listening on 127.0.0.1 with an ephemeral port.
    pub fn start(mut config: ServerConfig) -> TestServer {
        config.listen = Some("127.0.0.1:0".parse().unwrap());
        TestServer::start_as_given(config)
    }

    /// Start a server with `config` exactly as given (its listeners included: loopback addresses only).
    pub fn start_as_given(config: ServerConfig) -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let handle = rt.block_on(shoal::runtime::start(config)).expect("server starts");
        TestServer { addr: handle.addr, handle: Some(handle), rt }
    }

    /// A server with default settings.
    pub fn default_config() -> TestServer {
        TestServer::start(ServerConfig::default())
    }

    /// The server's running handle (cluster address, peer counters).
    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    /// A `redis` crate client connection.
    pub fn client(&self) -> redis::Connection {
        let url = format!("redis://{}/", self.addr);
        let client = redis::Client::open(url).unwrap();
        client.get_connection_with_timeout(Duration::from_secs(5)).expect("connects")
    }

    /// A raw TCP connection with a read timeout.
    pub fn raw(&self) -> Raw {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw { s }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), h.stop()).await });
        }
    }
}

/// A raw connection for byte-level tests.
pub struct Raw {
    pub s: TcpStream,
}

impl Raw {
    /// Send bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Read until `expected` bytes arrived (or fail after the timeout) and return them.
    pub fn read_exact_len(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.s.read_exact(&mut buf).expect("reply arrives");
        buf
    }

    /// Send `bytes` and expect exactly `reply` back.
    pub fn roundtrip(&mut self, bytes: &[u8], reply: &[u8]) {
        self.send(bytes);
        let got = self.read_exact_len(reply.len());
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(reply));
    }

    /// Whether the server closed the connection (reads return EOF) within the timeout.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Poll `check` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Encode an argument list as a RESP multibulk request.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}
