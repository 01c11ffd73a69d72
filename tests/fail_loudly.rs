//! A panic in the node task ends the server for library users too: `serve` (here through `start` and `stop`)
//! returns an error and the client listener is closed, instead of accepting connections nothing serves. (The
//! binary also exits with status 101 on any panic: `tests/process.rs`.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::eventually;
use shoal::runtime::{DebugCommand, ServerConfig};

#[test]
fn a_node_task_panic_makes_serve_return_an_error_and_closes_the_listener() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = ServerConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        enable_debug_command: DebugCommand::Yes,
        ..ServerConfig::default()
    };
    let handle = rt.block_on(shoal::runtime::start(config)).expect("server starts");
    let addr = handle.addr;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    s.write_all(b"*2\r\n$5\r\nDEBUG\r\n$5\r\nPANIC\r\n").unwrap();
    assert!(eventually(Duration::from_secs(10), || TcpStream::connect(addr).is_err()), "the listener closes");
    let err = rt.block_on(handle.stop()).expect_err("serve ends with an error");
    let text = err.to_string();
    assert!(text.contains("the node task panicked") && text.contains("DEBUG PANIC"), "{text}");
}
