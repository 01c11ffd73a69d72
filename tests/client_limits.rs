//! Client limits on a real server over loopback: Redis's bounds before AUTH, the query buffer limit, the output
//! buffer limit for a client that never reads, and the idle timeout. Each cut client is counted in INFO while
//! other clients keep being served.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{eventually, request, TestServer};
use redis::Commands;
use shoal::runtime::ServerConfig;

fn info_field(srv: &TestServer, auth: Option<&str>, name: &str) -> u64 {
    let mut c = srv.client();
    if let Some(pw) = auth {
        let _: () = redis::cmd("AUTH").arg(pw).query(&mut c).unwrap();
    }
    let info: String = redis::cmd("INFO").arg("all").query(&mut c).unwrap();
    let value = info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or_else(|| panic!("{name}"));
    value.trim().parse().unwrap()
}

#[test]
fn oversized_requests_before_auth_are_refused_and_the_node_stays_up() {
    let srv = TestServer::start(ServerConfig { requirepass: Some("s3cret".into()), ..ServerConfig::default() });
    // Eleven arguments: refused on the `*11` line alone, then the connection is closed, as Redis does.
    let mut raw = srv.raw();
    raw.roundtrip(b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n");
    assert!(raw.closed());
    // A bulk over 16384 bytes: refused on its `$` line, before the data is sent.
    let mut raw = srv.raw();
    raw.roundtrip(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n");
    assert!(raw.closed());
    // A million-element array header and a 512 MB bulk header get the same answers.
    let mut raw = srv.raw();
    raw.roundtrip(b"*1000000\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n");
    let mut raw = srv.raw();
    raw.roundtrip(b"*1\r\n$536870912\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n");
    // Within the bounds the client is answered, and still must authenticate.
    let mut raw = srv.raw();
    let ten: Vec<&[u8]> = vec![b"x"; 10];
    raw.roundtrip(&request(&ten), b"-NOAUTH Authentication required.\r\n");
    // After AUTH (two-argument form) the same connection may send big values and many arguments.
    raw.roundtrip(&request(&[b"AUTH", b"default", b"s3cret"]), b"+OK\r\n");
    let big = vec![b'v'; 1 << 20];
    raw.roundtrip(&request(&[b"SET", b"big", &big]), b"+OK\r\n");
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    mset.extend(std::iter::repeat_n(&b"k"[..], 40));
    raw.roundtrip(&request(&mset), b"+OK\r\n");
    // Other clients are served throughout.
    let mut c = redis::Client::open(format!("redis://default:s3cret@{}/", srv.addr)).unwrap().get_connection().unwrap();
    let v: Vec<u8> = c.get("big").unwrap();
    assert_eq!(v.len(), 1 << 20);
}

#[test]
fn auth_default_forms_without_requirepass_follow_redis() {
    let srv = TestServer::default_config();
    let mut raw = srv.raw();
    raw.roundtrip(&request(&[b"AUTH", b"default", b"anything"]), b"+OK\r\n");
    raw.roundtrip(
        &request(&[b"AUTH", b"bob", b"anything"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    raw.send(&request(&[b"AUTH", b"pw"]));
    let mut head = [0u8; 4];
    raw.s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"-ERR", "one-argument AUTH without a password is an error, as in Redis");
}

#[test]
fn a_client_over_the_query_buffer_limit_is_disconnected_and_counted() {
    let config = ServerConfig { client_query_buffer_bytes_max: 1 << 20, ..ServerConfig::default() };
    let srv = TestServer::start(config);
    let mut raw = srv.raw();
    // A request whose 2 MB bulk never completes: the server holds 1 MB of it at most, then cuts the client.
    raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097152\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < 2 << 20 {
        if raw.s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(raw.closed());
    assert_eq!(info_field(&srv, None, "client_query_buffer_limit_disconnections"), 1);
    // Requests that are parsed as they come do not count against it, however much is sent in total.
    let mut c = srv.client();
    let value = vec![b'y'; 600 * 1024];
    for i in 0..4 {
        let _: () = c.set(format!("k{i}"), &value).unwrap();
    }
    assert_eq!(info_field(&srv, None, "client_query_buffer_limit_disconnections"), 1);
}

#[test]
fn a_client_that_never_reads_is_cut_off_at_its_output_limit() {
    let config = ServerConfig { client_output_buffer_bytes_max: 1 << 20, ..ServerConfig::default() };
    let srv = TestServer::start(config);
    let mut c = srv.client();
    let _: () = c.set("big", vec![b'v'; 64 * 1024]).unwrap();
    let mut lazy = srv.raw();
    // 4000 GETs of 64 KiB: 256 MB of replies, far more than socket buffers and the 1 MiB limit.
    let gets: Vec<u8> = (0..4000).flat_map(|_| request(&[b"GET", b"big"])).collect();
    lazy.send(&gets);
    assert!(
        eventually(Duration::from_secs(10), || info_field(&srv, None, "client_output_buffer_limit_disconnections")
            == 1),
        "the lazy client is cut"
    );
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG", "other clients are served");
    // The lazy client sees at most what was written before the cut, then the end of the stream.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match lazy.s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 4000 * 64 * 1024, "got {got} bytes");
    // A client that reads its replies is never cut, however much it receives in total.
    for _ in 0..50 {
        let v: Vec<u8> = c.get("big").unwrap();
        assert_eq!(v.len(), 64 * 1024);
    }
    let mut pipe = redis::pipe();
    for _ in 0..8 {
        pipe.cmd("GET").arg("big");
    }
    let values: Vec<Vec<u8>> = pipe.query(&mut c).unwrap();
    assert_eq!(values.len(), 8);
    assert_eq!(info_field(&srv, None, "client_output_buffer_limit_disconnections"), 1);
}

#[test]
fn idle_clients_are_closed_after_the_timeout() {
    let config = ServerConfig { client_idle_timeout_ms: 300, ..ServerConfig::default() };
    let srv = TestServer::start(config);
    let mut idle = srv.raw();
    idle.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
    assert!(idle.closed(), "closed within the 5 s read timeout");
    assert!(info_field(&srv, None, "client_idle_timeouts") >= 1);
    // A client that keeps talking is not closed.
    let mut busy = srv.raw();
    for _ in 0..8 {
        busy.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(100));
    }
    busy.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn info_and_config_show_the_client_limits() {
    let config = ServerConfig {
        maxclients: 100,
        client_idle_timeout_ms: 7_000,
        client_output_buffer_bytes_max: 5 << 20,
        ..ServerConfig::default()
    };
    let srv = TestServer::start(config);
    assert_eq!(info_field(&srv, None, "maxclients"), 100);
    let mut c = srv.client();
    let timeout: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("timeout").query(&mut c).unwrap();
    assert_eq!(timeout, ["timeout", "7"]);
    let out: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("client-output-buffer-limit").query(&mut c).unwrap();
    assert_eq!(out, ["client-output-buffer-limit", "normal 5242880 0 0"]);
}
