//! TLS peer links (`--tls-cluster`) between real in-process nodes on loopback, with certificates made by the test
//! (rcgen): nodes under one CA replicate through TLS, whatever names their certificates hold; a plain-TCP
//! connection to a TLS node's peer port gets no peer handshake and is counted; nodes that share the cluster
//! secret (so they are gossip members) but have a certificate from another CA, or no TLS at all, never reach the
//! data path, and the refusals are counted on both sides; the binary takes the flags and refuses them without
//! the files.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::members::{free_addr, Client, Process};
use common::pki::Pki;
use common::{eventually, TestServer};
use shoal::core::membership::ClusterSecret;
use shoal::core::replication::handshake::NONCE_BYTES;
use shoal::core::replication::{Connector, Consistency, Greeting, Levels};
use shoal::core::NodeConfig;
use shoal::runtime::tls::ClusterTlsFiles;
use shoal::runtime::{ClusterConfig, ServerConfig};

const SECRET: &[u8] = b"tls-peer-test-secret-0123456789";
const CONVERGE: Duration = Duration::from_secs(15);

/// A clustered node named `name` on `cluster`, joining through `seeds`, with TLS peer links when `tls` is given.
/// Every key has three replicas and reads and writes wait for one, so in a three-node cluster every node owns
/// every key and a write succeeds with the coordinator alone.
fn node(name: &str, cluster: SocketAddr, seeds: &[SocketAddr], tls: Option<ClusterTlsFiles>) -> TestServer {
    let mut c = ClusterConfig::new(cluster);
    c.seeds = seeds.iter().map(ToString::to_string).collect();
    c.secret = Some(SECRET.to_vec().into());
    c.tls = tls;
    let levels = Levels { read: Consistency::One, write: Consistency::One };
    let node = NodeConfig { name: name.into(), replicas: 3, levels, ..NodeConfig::default() };
    TestServer::start(ServerConfig { node, cluster: Some(c), ..ServerConfig::default() })
}

/// The value this node holds for `key` itself (SHOAL.LOCALGET: nil, or a map with the entry's `kind` and `value`).
fn local(srv: &TestServer, key: &str) -> Option<String> {
    let reply: redis::Value = redis::cmd("SHOAL.LOCALGET").arg(key).query(&mut srv.client()).expect("it answers");
    let fields = match reply {
        redis::Value::Nil => return None,
        redis::Value::Array(fields) => fields,
        other => panic!("SHOAL.LOCALGET {key}: {other:?}"),
    };
    let value = fields.chunks(2).find(|kv| kv[0] == redis::Value::SimpleString("value".into()));
    match value.map(|kv| &kv[1]) {
        Some(redis::Value::BulkString(v)) => Some(String::from_utf8_lossy(v).into_owned()),
        other => panic!("SHOAL.LOCALGET {key}: no value in {other:?}"),
    }
}

fn set(srv: &TestServer, key: &str, value: &str) {
    let _: redis::Value = redis::cmd("SET").arg(key).arg(value).query(&mut srv.client()).expect("SET answers");
}

fn info(srv: &TestServer, field: &str) -> u64 {
    Client::new(srv.addr).info_u64(field).unwrap_or_else(|| panic!("INFO cluster has {field}"))
}

/// Wait until every node sees all of `names` alive.
fn converge(nodes: &[&TestServer], names: &[&str]) {
    for srv in nodes {
        let mut client = Client::new(srv.addr);
        let ok = eventually(CONVERGE, || client.view().is_some_and(|v| v.alive_exactly(names)));
        assert!(ok, "{:?} sees {names:?} alive", client.view());
    }
}

#[test]
fn three_nodes_over_tls_replicate_whatever_names_their_certificates_hold() {
    let pki = Pki::new("peer-replicate");
    // Names are not checked on peer links (the chain is): one certificate for the dialed IP, one for a DNS name
    // nobody dials, one with no name at all.
    pki.issue("a", &["127.0.0.1"]);
    pki.issue("b", &["node-b.example"]);
    pki.issue("c", &[]);
    let (a_addr, b_addr, c_addr) = (free_addr(), free_addr(), free_addr());
    let a = node("a", a_addr, &[], Some(pki.cluster_files("a")));
    let b = node("b", b_addr, &[a_addr], Some(pki.cluster_files("b")));
    let c = node("c", c_addr, &[a_addr], Some(pki.cluster_files("c")));
    converge(&[&a, &b, &c], &["a", "b", "c"]);

    set(&a, "from-a", "v1");
    for (srv, name) in [(&b, "b"), (&c, "c")] {
        let arrived = eventually(CONVERGE, || local(srv, "from-a").as_deref() == Some("v1"));
        assert!(arrived, "{name} holds the key written on a");
    }
    set(&c, "from-c", "v2");
    for (srv, name) in [(&a, "a"), (&b, "b")] {
        let arrived = eventually(CONVERGE, || local(srv, "from-c").as_deref() == Some("v2"));
        assert!(arrived, "{name} holds the key written on c");
    }
    for (srv, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        let counters = srv.handle().peer_stats.snapshot();
        assert!(counters.connects >= 1 && counters.frames_received >= 1, "{name}: {counters:?}");
        assert_eq!(info(srv, "peer_tls_handshakes_failed"), 0, "{name}: no TLS failure in a healthy cluster");
        assert_eq!(info(srv, "peer_handshakes_failed"), 0, "{name}");
    }
    let config: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("tls-cluster").query(&mut a.client()).unwrap();
    assert_eq!(config, ["tls-cluster", "yes"]);
}

/// Read what the node sends until it closes `s`; `None` if it stays open past the read timeout.
fn read_until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    for _ in 0..1_000 {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn plain_tcp_on_a_tls_peer_port_gets_no_handshake_and_is_counted() {
    let pki = Pki::new("peer-plain");
    pki.issue("a", &["127.0.0.1"]);
    let a_addr = free_addr();
    let a = node("a", a_addr, &[], Some(pki.cluster_files("a")));
    set(&a, "k", "v");

    // A peer that knows the secret but speaks plain TCP: its hello is not TLS, so no challenge comes back.
    let secret = ClusterSecret::from_bytes(SECRET).ok();
    let me = Greeting { from: free_addr(), name: "plain".into(), nonce: [7; NONCE_BYTES] };
    let (_, hello) = Connector::new(secret, &me);
    let mut s = TcpStream::connect(a_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&hello).unwrap();
    let got = read_until_closed(&mut s).expect("the node closes the connection");
    // At most a TLS alert record (content type 21) comes back, never a peer handshake frame.
    assert!(got.is_empty() || (got[0] == 21 && got.len() <= 16), "{got:?}");
    assert!(eventually(CONVERGE, || info(&a, "peer_tls_handshakes_failed") == 1));
    assert_eq!(info(&a, "peer_handshakes_failed"), 0, "the peer handshake never started");

    // A connection that never starts TLS is closed after the handshake timeout (3 s) and counted too.
    let mut silent = TcpStream::connect(a_addr).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(read_until_closed(&mut silent).expect("closed by the node, not left open").is_empty());
    assert!(eventually(CONVERGE, || info(&a, "peer_tls_handshakes_failed") == 2));
    let metrics_counter = a.handle().peer_stats.snapshot().tls_handshakes_failed;
    assert_eq!(metrics_counter, 2);
    assert_eq!(local(&a, "k").as_deref(), Some("v"), "the node goes on serving");
}

/// Two nodes under the cluster CA and an intruder with the cluster secret (a gossip member, so an owner of every
/// key) whose peer links use `intruder_tls(cluster CA, another CA)`: while the two good nodes replicate, no key
/// crosses between the intruder and the others in either direction, however often the links retry, and the good
/// nodes count the refusals as TLS failures (the peer handshake never starts).
fn intruder_never_reaches_the_data_path(tag: &str, intruder_tls: impl FnOnce(&Pki, &Pki) -> Option<ClusterTlsFiles>) {
    let (pki, other) = (Pki::new(tag), Pki::new(&format!("{tag}-other")));
    pki.issue("a", &["127.0.0.1"]);
    pki.issue("b", &["127.0.0.1"]);
    let (a_addr, b_addr, x_addr) = (free_addr(), free_addr(), free_addr());
    let a = node("a", a_addr, &[], Some(pki.cluster_files("a")));
    let b = node("b", b_addr, &[a_addr], Some(pki.cluster_files("b")));
    let x = node("x", x_addr, &[a_addr], intruder_tls(&pki, &other));
    converge(&[&a, &b, &x], &["a", "b", "x"]);

    let failures = |srv: &TestServer| srv.handle().peer_stats.snapshot().links_failed;
    let (a_failed, x_failed) = (failures(&a), failures(&x));
    let mut written = 0;
    // Writes on both sides, each sending a replica to the other side: every one is a new connect attempt after
    // the backoff (100 ms, doubling). Bounded in count; ends once both sides failed a few times.
    for i in 0..40 {
        set(&a, &format!("from-a-{i}"), "v");
        set(&x, &format!("from-x-{i}"), "v");
        written = i + 1;
        if failures(&a) >= a_failed + 3 && failures(&x) >= x_failed + 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(failures(&a) >= a_failed + 3 && failures(&x) >= x_failed + 3, "both sides kept trying");
    let last = format!("from-a-{}", written - 1);
    assert!(eventually(CONVERGE, || local(&b, &last).is_some()), "a and b replicate over TLS");
    for i in 0..written {
        assert_eq!(local(&x, &format!("from-a-{i}")), None, "the intruder never receives a key");
        assert_eq!(local(&a, &format!("from-x-{i}")), None, "the intruder's writes never arrive");
        assert_eq!(local(&b, &format!("from-x-{i}")), None, "the intruder's writes never arrive");
    }
    assert_eq!(x.handle().peer_stats.snapshot().frames_received, 0, "no peer message reached the intruder");
    for (srv, name) in [(&a, "a"), (&b, "b")] {
        assert!(info(srv, "peer_tls_handshakes_failed") >= 1, "{name} counted the refusals");
        assert_eq!(info(srv, "peer_handshakes_failed"), 0, "{name}: refused at TLS, before the peer handshake");
        assert_eq!(srv.handle().peer_stats.snapshot().frames_forged, 0, "{name}");
    }
}

#[test]
fn a_node_with_a_certificate_from_another_ca_never_reaches_the_data_path() {
    intruder_never_reaches_the_data_path("peer-other-ca", |_, other| {
        other.issue("x", &["127.0.0.1"]);
        Some(other.cluster_files("x"))
    });
}

#[test]
fn a_node_without_tls_never_reaches_the_data_path_of_a_tls_cluster() {
    intruder_never_reaches_the_data_path("peer-no-tls", |_, _| None);
}

#[test]
fn a_node_that_trusts_the_cluster_ca_but_has_a_foreign_certificate_is_refused() {
    // The intruder verifies the good nodes' certificates, but its own is signed by another CA.
    intruder_never_reaches_the_data_path("peer-own-cert", |pki, other| {
        let own = other.issue("x", &["127.0.0.1"]);
        Some(ClusterTlsFiles { identity: own, ca_cert_file: pki.path("ca.pem") })
    });
}

#[test]
fn missing_certificate_files_stop_the_start() {
    let pki = Pki::new("peer-missing");
    let mut files = pki.cluster_files("server");
    files.ca_cert_file = pki.path("no-such-ca.pem");
    let mut c = ClusterConfig::new(free_addr());
    c.tls = Some(files);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = ServerConfig { listen: Some("127.0.0.1:0".parse().unwrap()), cluster: Some(c), ..Default::default() };
    let error = match rt.block_on(shoal::runtime::start(config)) {
        Ok(_) => panic!("a node without its CA file must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("--tls-cluster") && error.contains("no-such-ca.pem"), "{error}");
}

/// The binary's arguments for a TLS cluster node on `cluster` with a client port at `listen`.
fn binary_args(listen: SocketAddr, cluster: SocketAddr, files: &[(&str, std::path::PathBuf)]) -> Vec<String> {
    let mut args = vec!["--listen".into(), listen.to_string(), "--cluster".into(), cluster.to_string()];
    args.extend(["--name".into(), "solo".into(), "--tls-cluster".into()]);
    for (flag, path) in files {
        args.extend([flag.to_string(), path.to_string_lossy().into_owned()]);
    }
    args
}

#[test]
fn the_binary_takes_tls_cluster_with_its_files_and_refuses_it_without() {
    let pki = Pki::new("peer-binary");
    let (listen, cluster) = (free_addr(), free_addr());
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_shoal"));
    let out = Command::new(bin).args(binary_args(listen, cluster, &[])).env("RUST_LOG", "warn").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no files, no start");
    assert!(stderr.contains("--tls-cluster needs") && stderr.contains("missing: --tls-cert-file"), "{stderr}");

    let files = [
        ("--tls-cert-file", pki.path("server.pem")),
        ("--tls-key-file", pki.path("server.key")),
        ("--tls-ca-cert-file", pki.path("ca.pem")),
    ];
    let mut process = Process::spawn(bin, &binary_args(listen, cluster, &files), "warn");
    let mut client = Client::new(listen);
    let up = eventually(CONVERGE, || client.view().is_some_and(|v| v.alive_exactly(&["solo"])));
    assert!(up, "the node starts with the certificate files and --tls-cluster alone: {:?}", process.exited());
    let mut conn = redis::Client::open(format!("redis://{listen}/")).unwrap().get_connection().unwrap();
    let config: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("tls-cluster").query(&mut conn).unwrap();
    assert_eq!(config, ["tls-cluster", "yes"]);
    assert!(process.sigterm(Duration::from_secs(10)), "stops cleanly");
}
