//! The TLS client listener with certificates made by the test (rcgen): `redis-cli --tls`, a Rust client
//! (tokio-rustls with the node's own `tls::client_config`), client certificates required / optional, a plain
//! client on the TLS port, a handshake that never starts, and TLS alone (`--listen off`).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::pki::Pki;
use common::{eventually, TestServer};
use shoal::runtime::tls::{self, CertFiles, ClientAuth};
use shoal::runtime::{ServerConfig, TlsListenConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// A server with a plain listener and a TLS one on `pki`'s server certificate that authenticates clients as
/// `auth` says.
fn tls_server(pki: &Pki, auth: ClientAuth, plain: bool) -> TestServer {
    let mut tls = TlsListenConfig::new(local(), pki.files("server"), Some(pki.path("ca.pem")));
    tls.auth_clients = auth;
    tls.handshake_timeout_ms = 500;
    let listen = plain.then(local);
    TestServer::start_as_given(ServerConfig { listen, tls: Some(tls), ..ServerConfig::default() })
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn tls_addr(srv: &TestServer) -> SocketAddr {
    srv.handle().tls_addr.expect("a TLS listener")
}

/// Run redis-cli over TLS against `addr` with `extra` flags; returns (success, stdout + stderr).
fn redis_cli_tls(addr: SocketAddr, pki: &Pki, client_cert: bool, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--tls", "--cacert"]).arg(pki.path("ca.pem"));
    if client_cert {
        cmd.arg("--cert").arg(pki.path("client.pem")).arg("--key").arg(pki.path("client.key"));
    }
    cmd.args(["-h", "127.0.0.1", "-p", &addr.port().to_string()]).args(args);
    let out = cmd.output().expect("redis-cli runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Send `request` over a TLS connection made with the node's own client configuration; returns the first reply
/// bytes, or the error that ended the attempt.
fn rust_tls_roundtrip(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<&CertFiles>,
    request: &[u8],
) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = tls::client_config(ca, identity).map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let work = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let mut stream =
                TlsConnector::from(Arc::clone(&config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
            stream.write_all(request).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        tokio::time::timeout(Duration::from_secs(10), work).await.map_err(|_| "timed out".to_string())?
    })
}

fn info_field(srv: &TestServer, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("all").query(&mut srv.client()).unwrap();
    let value = info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or_else(|| panic!("{name}"));
    value.trim().parse().unwrap()
}

#[test]
fn redis_cli_over_tls_with_a_client_certificate() {
    let pki = Pki::new("cli");
    let srv = tls_server(&pki, ClientAuth::Yes, true);
    let addr = tls_addr(&srv);
    let (ok, out) = redis_cli_tls(addr, &pki, true, &["SET", "tls-key", "over-tls"]);
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = redis_cli_tls(addr, &pki, true, &["GET", "tls-key"]);
    assert!(ok && out.trim() == "over-tls", "{out}");
    // The plain listener beside it serves the same data.
    let v: String = redis::cmd("GET").arg("tls-key").query(&mut srv.client()).unwrap();
    assert_eq!(v, "over-tls");
    // Without a client certificate the handshake is refused (`tls-auth-clients yes`) and nothing is served.
    let before = info_field(&srv, "tls_handshake_failures");
    let (_, out) = redis_cli_tls(addr, &pki, false, &["PING"]);
    assert!(!out.contains("PONG"), "{out}");
    assert!(eventually(Duration::from_secs(5), || info_field(&srv, "tls_handshake_failures") > before));
    let (ok, out) = redis_cli_tls(addr, &pki, true, &["PING"]);
    assert!(ok && out.trim() == "PONG", "still serving: {out}");
}

#[test]
fn rust_client_with_and_without_a_certificate() {
    let pki = Pki::new("rust");
    let srv = tls_server(&pki, ClientAuth::Yes, true);
    let addr = tls_addr(&srv);
    let ca = pki.path("ca.pem");
    let client = pki.files("client");
    assert_eq!(rust_tls_roundtrip(addr, &ca, Some(&client), b"PING\r\n").unwrap(), "+PONG\r\n");
    // TLS 1.3 reports a refused client certificate after the client's handshake ends: the first read fails.
    let refused = rust_tls_roundtrip(addr, &ca, None, b"PING\r\n");
    assert!(refused.is_err(), "{refused:?}");
    // A server certificate from another CA is refused by the client.
    let other = Pki::new("other-ca");
    assert!(rust_tls_roundtrip(addr, &other.path("ca.pem"), Some(&client), b"PING\r\n").is_err());
    assert_eq!(rust_tls_roundtrip(addr, &ca, Some(&client), b"ECHO hi\r\n").unwrap(), "$2\r\nhi\r\n");
}

#[test]
fn optional_and_no_client_authentication_serve_clients_without_certificates() {
    let pki = Pki::new("optional");
    let ca = pki.path("ca.pem");
    for auth in [ClientAuth::Optional, ClientAuth::No] {
        let srv = tls_server(&pki, auth, true);
        let addr = tls_addr(&srv);
        assert_eq!(rust_tls_roundtrip(addr, &ca, None, b"PING\r\n").unwrap(), "+PONG\r\n", "{auth}");
        let (ok, out) = redis_cli_tls(addr, &pki, false, &["PING"]);
        assert!(ok && out.trim() == "PONG", "{auth}: {out}");
        let with_cert = rust_tls_roundtrip(addr, &ca, Some(&pki.files("client")), b"PING\r\n");
        assert_eq!(with_cert.unwrap(), "+PONG\r\n", "{auth}");
    }
}

#[test]
fn a_plain_client_on_the_tls_port_is_refused_and_counted() {
    let pki = Pki::new("plain");
    let srv = tls_server(&pki, ClientAuth::Yes, true);
    let addr = tls_addr(&srv);
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut plain, b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("PONG"), "{got:?}");
    assert!(got.len() < 64, "at most a TLS alert comes back: {got:?}");
    assert!(eventually(Duration::from_secs(5), || info_field(&srv, "tls_handshake_failures") >= 1));
    // A connection that never starts its handshake is closed after the handshake timeout (500 ms here).
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(silent.read(&mut [0u8; 16]).expect("closed, not timed out"), 0);
    assert!(eventually(Duration::from_secs(5), || info_field(&srv, "tls_handshake_failures") >= 2));
    let (ok, out) = redis_cli_tls(addr, &pki, true, &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
}

#[test]
fn tls_alone_with_auth_default_and_hello() {
    let pki = Pki::new("alone");
    let mut tls = TlsListenConfig::new(local(), pki.files("server"), Some(pki.path("ca.pem")));
    tls.auth_clients = ClientAuth::No;
    let config =
        ServerConfig { listen: None, tls: Some(tls), requirepass: Some("pw".into()), ..ServerConfig::default() };
    let srv = TestServer::start_as_given(config);
    let addr = tls_addr(&srv);
    assert_eq!(srv.addr, addr, "with no plain listener the TLS one is the client address");
    let (_, out) = redis_cli_tls(addr, &pki, false, &["GET", "k"]);
    assert!(out.contains("NOAUTH"), "{out}");
    let (ok, out) = redis_cli_tls(addr, &pki, false, &["--user", "default", "--pass", "pw", "SET", "k", "v"]);
    assert!(ok && out.contains("OK"), "{out}");
    let ca = pki.path("ca.pem");
    let hello = rust_tls_roundtrip(addr, &ca, None, b"HELLO 3 AUTH default pw\r\nGET k\r\n").unwrap();
    assert!(hello.starts_with('%') && hello.contains("proto"), "{hello}");
    let wrong = rust_tls_roundtrip(addr, &ca, None, b"AUTH bob pw\r\n").unwrap();
    assert_eq!(wrong, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
}

/// The binary started with the TLS flags and `--listen off`, stopped on drop.
struct Binary(std::process::Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_serves_tls_alone_from_its_flags() {
    let pki = Pki::new("binary");
    let addr = common::members::free_addr();
    let path = |name: &str| pki.path(name).to_string_lossy().into_owned();
    let args = [
        "--listen".to_string(),
        "off".to_string(),
        "--cluster".to_string(),
        "off".to_string(),
        "--tls-listen".to_string(),
        addr.to_string(),
        "--tls-cert-file".to_string(),
        path("server.pem"),
        "--tls-key-file".to_string(),
        path("server.key"),
        "--tls-ca-cert-file".to_string(),
        path("ca.pem"),
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("shoal starts");
    let _node = Binary(child);
    let answered =
        eventually(Duration::from_secs(10), || redis_cli_tls(addr, &pki, true, &["PING"]).1.trim() == "PONG");
    assert!(answered, "the TLS listener answers redis-cli --tls with a client certificate");
    let (_, out) = redis_cli_tls(addr, &pki, true, &["CONFIG", "GET", "tls-*"]);
    assert!(out.contains(&addr.port().to_string()) && out.contains("yes"), "{out}");
    let (_, out) = redis_cli_tls(addr, &pki, false, &["PING"]);
    assert!(!out.contains("PONG"), "no certificate, no service: {out}");
}
