//! A network lab for chaos tests: one network namespace per node, each with a veth pair onto a bridge in a
//! namespace of its own, a veth from the test's namespace onto the same bridge (so the test's clients reach every
//! node), partitions as `nftables` rules inside the node namespaces, and real `shoal` processes started inside
//! them with `ip netns exec` (which execs, so the child's PID is the node's).
//!
//! Names carry the test process's PID and a counter (`shch<pid>x<n>-...`), so concurrent runs never meet, and a
//! lab whose creator died (a crash, a `kill -9` of the test) is removed by the next lab created on the machine.
//! Everything a lab made is removed when it is dropped, also while a panic unwinds: the node processes (by PID),
//! the namespaces (which takes their veth ends and rules with them) and the scratch directory.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every name a lab makes.
const PREFIX: &str = "shch";
/// The client port every node listens on (each has its own namespace, so they all can).
pub const CLIENT_PORT: u16 = 6379;
/// The cluster (gossip and peer) port of every node.
pub const CLUSTER_PORT: u16 = 7946;

/// Run a command; its stderr in the error.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Run a command with `input` on its stdin.
fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    child.stdin.take().expect("piped").write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}\n{input}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether a process with this PID exists.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Why a lab cannot be made here (not root, no `ip netns`, no `nft`), or `None` when it can.
pub fn unavailable() -> Option<String> {
    match run("id", &["-u"]) {
        Ok(uid) if uid.trim() == "0" => {}
        Ok(uid) => return Some(format!("network namespaces need root (uid {})", uid.trim())),
        Err(e) => return Some(e),
    }
    if let Err(e) = run("nft", &["--version"]) {
        return Some(format!("nftables is not installed ({e}); apt-get install nftables"));
    }
    let probe = format!("{PREFIX}{}probe", std::process::id());
    if let Err(e) = run("ip", &["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    let inside = |args: &[&str]| {
        let mut full = vec!["netns", "exec", probe.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    };
    let links = inside(&["ip", "link", "add", "br0", "type", "bridge"])
        .and_then(|_| inside(&["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]))
        .map_err(|e| format!("cannot create a bridge and a veth pair in a namespace: {e}"));
    let nft = links.and_then(|_| {
        inside(&["nft", "list", "ruleset"]).map_err(|e| format!("nft does not work inside a namespace: {e}"))
    });
    let _ = run("ip", &["netns", "delete", &probe]);
    nft.err()
}

/// Remove what labs of dead test processes left behind.
fn remove_stale() {
    let pid_of = |name: &str| -> Option<u32> {
        let rest = name.strip_prefix(PREFIX)?;
        rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
    };
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if pid_of(ns).is_some_and(|pid| !alive(pid)) {
                kill_all_in(ns);
                let _ = run("ip", &["netns", "delete", ns]);
            }
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for link in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            let link = link.split('@').next().unwrap_or(link);
            if pid_of(link).is_some_and(|pid| !alive(pid)) {
                let _ = run("ip", &["link", "delete", link]);
            }
        }
    }
    if let Ok(dirs) = fs::read_dir(std::env::temp_dir()) {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if pid_of(&name).is_some_and(|pid| !alive(pid)) {
                let _ = fs::remove_dir_all(d.path());
            }
        }
    }
}

/// SIGKILL every process still running in namespace `ns`.
fn kill_all_in(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-KILL", pid]);
        }
    }
}

/// Send `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    run("kill", &[&format!("-{signal}"), &pid.to_string()]).expect("kill runs");
}

/// The namespaces, bridge and addresses of one test's cluster.
pub struct Lab {
    /// Name prefix of this lab (`shch<pid>x<n>`).
    pub tag: String,
    /// The node namespaces, in node order.
    pub namespaces: Vec<String>,
    /// The namespace holding the bridge.
    pub bridge: String,
    /// The first three octets of the lab's /24.
    net: [u8; 3],
    /// Scratch directory: the cluster secret and the nodes' logs.
    pub dir: PathBuf,
}

impl Lab {
    /// A lab for `nodes` nodes. Removes stale labs of dead processes first.
    pub fn create(nodes: usize) -> Result<Lab, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        remove_stale();
        let pid = std::process::id();
        let tag = format!("{PREFIX}{pid}x{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        let n = COUNTER.load(Ordering::SeqCst);
        // A /24 in 10.200.0.0-10.249.255.0 that no route of this host covers but the default one (the lab's
        // address on the host would otherwise take that traffic over while the test runs).
        let net = (0..250u32)
            .map(|k| [10, 200 + ((pid / 250 + k) % 50) as u8, ((pid + n * 7 + k * 13) % 250) as u8])
            .find(|net| {
                let probe = format!("{}.{}.{}.1", net[0], net[1], net[2]);
                run("ip", &["-4", "route", "show", "to", "match", &probe])
                    .is_ok_and(|routes| routes.lines().all(|r| r.trim().is_empty() || r.starts_with("default")))
            })
            .ok_or("no free 10.x.y.0/24 for the lab")?;
        let dir = std::env::temp_dir().join(&tag);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let lab = Lab {
            namespaces: (0..nodes).map(|i| format!("{tag}-n{i}")).collect(),
            bridge: format!("{tag}-br"),
            tag,
            net,
            dir,
        };
        lab.build().map(|()| lab)
    }

    fn build(&self) -> Result<(), String> {
        let br = self.bridge.as_str();
        run("ip", &["netns", "add", br])?;
        self.ns(br, &["ip", "link", "add", "br0", "type", "bridge"])?;
        self.ns(br, &["ip", "link", "set", "br0", "up"])?;
        for (i, ns) in self.namespaces.iter().enumerate() {
            run("ip", &["netns", "add", ns])?;
            let port = format!("p{i}");
            run("ip", &["link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", &port, "netns", br])?;
            self.ns(br, &["ip", "link", "set", &port, "master", "br0", "up"])?;
            self.ns(ns, &["ip", "addr", "add", &format!("{}/24", self.node_ip(i)), "dev", "eth0"])?;
            self.ns(ns, &["ip", "link", "set", "eth0", "up"])?;
            self.ns(ns, &["ip", "link", "set", "lo", "up"])?;
        }
        // The test's own namespace reaches the bridge through one more veth (named after the lab: removed with
        // the bridge namespace, which holds its other end).
        let host_if = self.host_if();
        run("ip", &["link", "add", &host_if, "type", "veth", "peer", "name", "host", "netns", br])?;
        self.ns(br, &["ip", "link", "set", "host", "master", "br0", "up"])?;
        run("ip", &["addr", "add", &format!("{}/24", self.host_ip()), "dev", &host_if])?;
        run("ip", &["link", "set", &host_if, "up"])?;
        Ok(())
    }

    /// The host end of the lab's veth (at most 15 bytes: `shch` + pid + `x` + counter).
    fn host_if(&self) -> String {
        self.tag.clone()
    }

    /// Run a command inside namespace `ns`.
    fn ns(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", ns];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Node `i`'s address.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], i as u8 + 1)
    }

    /// The test's address on the lab's bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], 254)
    }

    /// Node `i`'s client address.
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.node_ip(i).into(), CLIENT_PORT)
    }

    /// Node `i`'s cluster address.
    pub fn cluster_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.node_ip(i).into(), CLUSTER_PORT)
    }

    /// Drop, in node `node`'s namespace, packets from the nodes in `from` and to the nodes in `to` (replacing the
    /// rules set there before). Clients (the test's address) are never cut.
    pub fn block(&self, node: usize, from: &[usize], to: &[usize]) -> Result<(), String> {
        let set = |nodes: &[usize]| nodes.iter().map(|&i| self.node_ip(i).to_string()).collect::<Vec<_>>().join(", ");
        let mut script = String::from("table inet chaos {\n");
        script.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
        if !from.is_empty() {
            script.push_str(&format!("    ip saddr {{ {} }} drop\n", set(from)));
        }
        script.push_str("  }\n  chain output {\n    type filter hook output priority 0; policy accept;\n");
        if !to.is_empty() {
            script.push_str(&format!("    ip daddr {{ {} }} drop\n", set(to)));
        }
        script.push_str("  }\n}\n");
        let _ = self.ns(&self.namespaces[node], &["nft", "delete", "table", "inet", "chaos"]);
        run_with_input("ip", &["netns", "exec", &self.namespaces[node], "nft", "-f", "-"], &script)
    }

    /// Cut the nodes of `a` from those of `b`, both ways.
    pub fn split(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        for &i in a {
            self.block(i, b, b)?;
        }
        for &i in b {
            self.block(i, a, a)?;
        }
        Ok(())
    }

    /// Remove every partition rule.
    pub fn heal(&self) -> Result<(), String> {
        for ns in &self.namespaces {
            let _ = self.ns(ns, &["nft", "delete", "table", "inet", "chaos"]);
        }
        Ok(())
    }

    /// Start `bin` with `args` in node `i`'s namespace, its stderr appended to the node's log; waits until the
    /// child's PID is the binary itself (`ip netns exec` execs into it) and returns the child.
    pub fn spawn(&self, i: usize, bin: &Path, args: &[String]) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{i}.log")))
            .expect("log file opens");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i]])
            .arg(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("ip netns exec starts");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        let name = bin.file_name().expect("binary name").to_owned();
        loop {
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
            if exe.as_ref().and_then(|e| e.file_name()) == Some(name.as_os_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "pid {pid} never became {name:?} (exe {exe:?})");
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    /// The last lines of node `i`'s log (for failure messages).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = fs::read_to_string(self.dir.join(format!("node{i}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().chain(std::iter::once(&self.bridge)) {
            kill_all_in(ns);
            let _ = run("ip", &["netns", "delete", ns]);
        }
        let _ = run("ip", &["link", "delete", &self.host_if()]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
