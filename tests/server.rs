//! The real server on loopback, driven by the `redis` crate and by raw bytes: commands, pipelining, TTLs,
//! eviction, AUTH, RESP3 and protocol errors.

mod common;

use std::time::Duration;

use common::{eventually, request, TestServer};
use redis::{Commands, RedisResult, Value};
use shoal::runtime::ServerConfig;

#[test]
fn set_get_expire_ttl_with_a_redis_client() {
    let srv = TestServer::default_config();
    let mut c = srv.client();
    let _: () = c.set("greeting", "hello").unwrap();
    let v: String = c.get("greeting").unwrap();
    assert_eq!(v, "hello");
    let set: bool = c.expire("greeting", 100).unwrap();
    assert!(set);
    let ttl: i64 = c.ttl("greeting").unwrap();
    assert!((99..=100).contains(&ttl), "ttl {ttl}");
    let missing: Option<String> = c.get("nope").unwrap();
    assert_eq!(missing, None);
    let n: i64 = c.incr("counter", 5).unwrap();
    assert_eq!(n, 5);
    let deleted: i64 = c.del(&["greeting", "counter", "nope"]).unwrap();
    assert_eq!(deleted, 2);
    let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(size, 0);
}

#[test]
fn pipelined_commands_answer_in_order() {
    let srv = TestServer::default_config();
    let mut c = srv.client();
    let mut pipe = redis::pipe();
    for i in 0..1_000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        pipe.cmd("PING").ignore();
    }
    for i in 0..1_000 {
        pipe.cmd("GET").arg(format!("k{i}"));
    }
    let values: Vec<i64> = pipe.query(&mut c).unwrap();
    assert_eq!(values, (0..1_000).collect::<Vec<i64>>());
}

#[test]
fn deep_pipelines_on_several_connections_get_every_answer_in_order() {
    // Together more inputs than the node task handles in one turn: the rest of a batch waits for the next turn
    // and every reply still reaches its connection, in order.
    let srv = TestServer::default_config();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let mut c = srv.client();
            std::thread::spawn(move || {
                let mut pipe = redis::pipe();
                for i in 0..5_000 {
                    pipe.cmd("SET").arg(format!("t{t}:{i}")).arg(i).ignore();
                }
                for i in 0..5_000 {
                    pipe.cmd("GET").arg(format!("t{t}:{i}"));
                }
                let values: Vec<i64> = pipe.query(&mut c).unwrap();
                assert_eq!(values, (0..5_000).collect::<Vec<i64>>(), "connection {t}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("every pipeline answered in order");
    }
}

#[test]
fn raw_pipeline_in_one_write_mixing_connection_and_data_commands() {
    let srv = TestServer::default_config();
    let mut raw = srv.raw();
    let mut bytes = Vec::new();
    bytes.extend(request(&[b"SET", b"a", b"1"]));
    bytes.extend(request(&[b"PING"]));
    bytes.extend(request(&[b"GET", b"a"]));
    bytes.extend(b"ECHO hi\r\n");
    bytes.extend(request(&[b"GET", b"b"]));
    raw.roundtrip(&bytes, b"+OK\r\n+PONG\r\n$1\r\n1\r\n$2\r\nhi\r\n$-1\r\n");
}

#[test]
fn a_request_split_into_single_bytes_still_parses() {
    let srv = TestServer::default_config();
    let mut raw = srv.raw();
    for b in request(&[b"SET", b"split", b"value"]) {
        raw.send(&[b]);
    }
    raw.roundtrip(b"", b"+OK\r\n");
    raw.roundtrip(&request(&[b"GET", b"split"]), b"$5\r\nvalue\r\n");
}

#[test]
fn lazy_and_active_expiry() {
    let srv = TestServer::default_config();
    let mut c = srv.client();
    let _: () = redis::cmd("SET").arg("lazy").arg("v").arg("PX").arg(150).query(&mut c).unwrap();
    for i in 0..200 {
        let _: () = redis::cmd("SET").arg(format!("active{i}")).arg("v").arg("PX").arg(100).query(&mut c).unwrap();
    }
    let _: () = c.set("forever", "v").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let v: Option<String> = c.get("lazy").unwrap();
    assert_eq!(v, None, "an expired key is never returned");
    // Nobody reads the active* keys; the server must still reclaim them (DBSIZE counts unreclaimed keys).
    let reclaimed = eventually(Duration::from_secs(5), || {
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        n == 1
    });
    assert!(reclaimed, "active expiry reclaimed keys nobody read");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    assert!(info.contains("expired_keys:201"), "{info}");
}

#[test]
fn maxmemory_evicts_and_reports_in_info() {
    let mut cfg = ServerConfig::default();
    cfg.node.maxmemory_bytes = Some(200_000);
    let srv = TestServer::start(cfg);
    let mut c = srv.client();
    let value = "x".repeat(1_000);
    for i in 0..2_000 {
        let _: () = c.set(format!("k{i}"), &value).unwrap();
    }
    let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
    let used: u64 = field(&info, "used_memory").parse().unwrap();
    let evicted: u64 = field(&info, "evicted_keys").parse().unwrap();
    assert!(used <= 200_000, "used {used}");
    assert!(evicted >= 1_500, "evicted {evicted}");
    let last: String = c.get("k1999").unwrap();
    assert_eq!(last.len(), 1_000);
}

fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or_else(|| panic!("{name} in {info}"))
}

#[test]
fn requirepass_demands_auth() {
    let cfg = ServerConfig { requirepass: Some("s3cret".into()), ..ServerConfig::default() };
    let srv = TestServer::start(cfg);
    let mut raw = srv.raw();
    raw.roundtrip(&request(&[b"GET", b"k"]), b"-NOAUTH Authentication required.\r\n");
    raw.roundtrip(
        &request(&[b"AUTH", b"wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    raw.roundtrip(&request(&[b"AUTH", b"default", b"s3cret"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    let url = format!("redis://:s3cret@{}/", srv.addr);
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let v: String = c.get("k").unwrap();
    assert_eq!(v, "v");
}

#[test]
fn config_get_never_returns_the_password() {
    let cfg = ServerConfig { requirepass: Some("s3cret-pass".into()), ..ServerConfig::default() };
    let srv = TestServer::start(cfg);
    let url = format!("redis://:s3cret-pass@{}/", srv.addr);
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let one: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("requirepass").query(&mut c).unwrap();
    assert_eq!(one, ["requirepass", "<redacted>"]);
    let all: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("*").query(&mut c).unwrap();
    assert!(all.len() > 4 && !all.iter().any(|v| v.contains("s3cret")), "{all:?}");
    let info: String = redis::cmd("INFO").arg("everything").query(&mut c).unwrap();
    assert!(!info.contains("s3cret"), "INFO shows no secret");
    let open = TestServer::default_config();
    let mut c = open.client();
    let none: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("requirepass").query(&mut c).unwrap();
    assert_eq!(none, ["requirepass", ""], "no password: an empty value, as in Redis");
}

#[test]
fn hello_3_switches_to_resp3() {
    let srv = TestServer::default_config();
    let mut raw = srv.raw();
    raw.send(&request(&[b"HELLO", b"3"]));
    let mut head = [0u8; 1];
    std::io::Read::read_exact(&mut raw.s, &mut head).unwrap();
    assert_eq!(&head, b"%", "HELLO 3 answers with a RESP3 map");
    // Drain the map, then check RESP3 nulls.
    let mut c = raw;
    let mut buf = vec![0u8; 4096];
    let _ = std::io::Read::read(&mut c.s, &mut buf);
    c.roundtrip(&request(&[b"GET", b"missing"]), b"_\r\n");
}

#[test]
fn errors_use_redis_texts_and_keep_the_connection() {
    let srv = TestServer::default_config();
    let mut raw = srv.raw();
    raw.roundtrip(&request(&[b"NOSUCH", b"a"]), b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n");
    raw.roundtrip(&request(&[b"GET"]), b"-ERR wrong number of arguments for 'get' command\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"v", b"EX", b"abc"]), b"-ERR value is not an integer or out of range\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"v", b"EX", b"0"]), b"-ERR invalid expire time in 'set' command\r\n");
    raw.roundtrip(&request(&[b"SELECT", b"1"]), b"-ERR DB index is out of range\r\n");
    raw.roundtrip(&request(&[b"SELECT", b"0"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn protocol_errors_close_the_connection_but_not_the_server() {
    let srv = TestServer::default_config();
    let mut c = srv.client();
    let _: () = c.set("survivor", "yes").unwrap();
    let mut raw = srv.raw();
    raw.roundtrip(b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(raw.closed());
    let mut raw = srv.raw();
    raw.send(b"*2\r\n$3\r\nGET\r\n$999999999999\r\n");
    assert!(raw.closed(), "an oversized bulk closes the connection");
    let mut raw = srv.raw();
    raw.send(b"*1\r\n$4\r\nPI"); // disconnect mid-frame
    drop(raw);
    let v: String = c.get("survivor").unwrap();
    assert_eq!(v, "yes");
}

#[test]
fn oversized_bulk_is_refused_by_configured_limit() {
    let mut cfg = ServerConfig::default();
    cfg.limits.bulk_len_max = 1024;
    cfg.node.value_bytes_max = 1024;
    let srv = TestServer::start(cfg);
    let mut raw = srv.raw();
    let big = vec![b'x'; 2048];
    raw.send(&request(&[b"SET", b"k", &big]));
    assert!(raw.closed());
    let mut c = srv.client();
    let r: RedisResult<Value> = redis::cmd("APPEND").arg("k").arg(vec![b'y'; 1000]).query(&mut c);
    assert!(r.is_ok());
    let r: RedisResult<Value> = redis::cmd("APPEND").arg("k").arg(vec![b'y'; 1000]).query(&mut c);
    assert!(r.is_err(), "growing past value_bytes_max is an error");
    let len: i64 = redis::cmd("STRLEN").arg("k").query(&mut c).unwrap();
    assert_eq!(len, 1000);
}

#[test]
fn quit_answers_ok_then_closes() {
    let srv = TestServer::default_config();
    let mut raw = srv.raw();
    raw.roundtrip(&request(&[b"QUIT"]), b"+OK\r\n");
    assert!(raw.closed());
}

#[test]
fn scan_walks_the_keyspace() {
    let srv = TestServer::default_config();
    let mut c = srv.client();
    for i in 0..500 {
        let _: () = c.set(format!("user:{i}"), i).unwrap();
    }
    let _: () = c.set("other", 1).unwrap();
    let keys: Vec<String> = c.scan_match::<_, String>("user:*").unwrap().map(|k| k.unwrap()).collect();
    assert_eq!(keys.len(), 500);
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert_eq!(all.len(), 501);
}

#[test]
fn client_and_config_commands() {
    let srv = TestServer::default_config();
    let mut c = srv.client();
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("tester").query(&mut c).unwrap();
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name, "tester");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
    assert!(id > 0);
    let cfg: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory*").query(&mut c).unwrap();
    assert!(cfg.contains(&"maxmemory-policy".to_string()), "{cfg:?}");
    let n: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(n > 40);
}

#[test]
fn shoal_consistency_is_per_connection_and_reset_restores_the_defaults() {
    use shoal::core::replication::{Consistency, Levels};
    let node = shoal::core::NodeConfig {
        levels: Levels { read: Consistency::Quorum, write: Consistency::All },
        ..Default::default()
    };
    let srv = TestServer::start(ServerConfig { node, ..ServerConfig::default() });
    let mut c = srv.client();
    let levels = |c: &mut redis::Connection| -> Vec<String> { redis::cmd("SHOAL.CONSISTENCY").query(c).unwrap() };
    assert_eq!(levels(&mut c), ["QUORUM", "ALL"], "a new connection starts with the configured levels");
    let ok: String = redis::cmd("SHOAL.CONSISTENCY").arg("one").arg("Quorum").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(levels(&mut c), ["ONE", "QUORUM"]);
    assert_eq!(levels(&mut srv.client()), ["QUORUM", "ALL"], "other connections keep theirs");
    let _: () = c.set("k", "v").unwrap();

    let mut raw = srv.raw();
    raw.roundtrip(
        &request(&[b"SHOAL.CONSISTENCY", b"two", b"ALL"]),
        b"-ERR unknown consistency level 'two' (expected ONE, QUORUM or ALL)\r\n",
    );
    raw.roundtrip(
        &request(&[b"SHOAL.CONSISTENCY", b"ALL"]),
        b"-ERR wrong number of arguments for 'shoal.consistency' command\r\n",
    );
    raw.roundtrip(&request(&[b"SHOAL.CONSISTENCY", b"ALL", b"ONE"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SHOAL.CONSISTENCY"]), b"*2\r\n$3\r\nALL\r\n$3\r\nONE\r\n");
    raw.roundtrip(&request(&[b"RESET"]), b"+RESET\r\n");
    raw.roundtrip(&request(&[b"SHOAL.CONSISTENCY"]), b"*2\r\n$6\r\nQUORUM\r\n$3\r\nALL\r\n");
}

#[test]
fn a_clustered_server_takes_peer_connections_on_its_gossip_port() {
    use std::io::{Read, Write};
    let cluster = shoal::runtime::ClusterConfig::new("127.0.0.1:0".parse().unwrap());
    let srv = TestServer::start(ServerConfig { cluster: Some(cluster), ..ServerConfig::default() });
    let cluster = srv.handle().cluster_addr.expect("clustered");
    // TCP on the same address and port as gossip; a stranger's bytes are a failed handshake and close the
    // connection.
    let mut s = std::net::TcpStream::connect(cluster).expect("the peer listener shares the gossip port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "closed");
    let stats = srv.handle().peer_stats.clone();
    assert!(eventually(Duration::from_secs(5), || stats.snapshot().handshakes_failed == 1));
    // Clients are not affected.
    let pong: String = redis::cmd("PING").query(&mut srv.client()).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn prometheus_metrics_are_served_over_http() {
    use std::io::{Read, Write};
    let at = common::members::free_addr();
    let server = TestServer::start(ServerConfig { metrics: Some(at), ..ServerConfig::default() });
    let mut c = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(at).expect("metrics endpoint listens");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let text = get("/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\nshoal_keys 1\n"), "{text}");
    assert!(text.contains("# TYPE shoal_commands_total counter"));
    assert!(text.contains("shoal_connected_clients 1"));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
}
