//! Cluster membership over real UDP on loopback: joining through a seed, crash detection, graceful leave,
//! restart under a higher incarnation, two groups merging, a wrong secret kept out, and two nodes given one name.
//!
//! Nodes run in-process (one tokio runtime each, so a "crash" is the runtime torn down without the leave
//! step: its sockets close and it sends nothing more, as after SIGKILL) except where the test needs a real
//! process killed with SIGKILL and restarted. Every address is a loopback port below the ephemeral range
//! (`free_addr`) and every wait is bounded by `eventually`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::eventually;
use common::members::{free_addr, Client, Process, View};
use shoal::core::NodeConfig;
use shoal::runtime::{ClusterConfig, ServerConfig, ServerHandle};

/// Long enough for any join or detection with the LAN profile on a loaded 2-core machine.
const CONVERGE: Duration = Duration::from_secs(15);
/// A graceful leave is gossiped at once; this leaves room for a loaded machine only.
const LEAVE: Duration = Duration::from_secs(1);

/// How to start one node.
#[derive(Clone)]
struct Spec {
    name: String,
    listen: SocketAddr,
    cluster: SocketAddr,
    seeds: Vec<SocketAddr>,
    secret: Option<Vec<u8>>,
}

impl Spec {
    fn new(name: &str, seeds: &[SocketAddr]) -> Spec {
        Spec {
            name: name.into(),
            // Not port 0: a restart binds the same ports again, and an ephemeral port could meanwhile be taken by
            // an outgoing connection (free_addr's ports lie below the ephemeral range).
            listen: free_addr(),
            cluster: free_addr(),
            seeds: seeds.to_vec(),
            secret: None,
        }
    }

    fn secret(mut self, secret: &[u8]) -> Spec {
        self.secret = Some(secret.to_vec());
        self
    }

    fn server_config(&self) -> ServerConfig {
        let mut cluster = ClusterConfig::new(self.cluster);
        cluster.seeds = self.seeds.iter().map(ToString::to_string).collect();
        cluster.secret = self.secret.clone().map(Into::into);
        // Announce often, so a node kept out by its secret knocks many times within the test.
        cluster.gossip.announce_period_ms = 250;
        ServerConfig {
            listen: Some(self.listen),
            node: NodeConfig { name: self.name.clone(), ..NodeConfig::default() },
            seed: name_seed(&self.name),
            cluster: Some(cluster),
            ..ServerConfig::default()
        }
    }
}

fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// An in-process node on its own runtime.
struct Node {
    spec: Spec,
    addr: SocketAddr,
    cluster_addr: SocketAddr,
    handle: Option<ServerHandle>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Node {
    fn start(spec: Spec) -> Node {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let handle = rt.block_on(shoal::runtime::start(spec.server_config())).expect("node starts");
        let cluster_addr = handle.cluster_addr.expect("clustered");
        // Pin the ports, so that a restart comes back on the same addresses.
        let spec = Spec { listen: handle.addr, cluster: cluster_addr, ..spec };
        Node { spec, addr: handle.addr, cluster_addr, handle: Some(handle), rt: Some(rt) }
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// Stop gracefully: the node leaves the cluster, then exits.
    fn stop(mut self) -> Spec {
        let (rt, handle) = (self.rt.take().unwrap(), self.handle.take().unwrap());
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), handle.stop()).await })
            .expect("stops in time")
            .expect("stops cleanly");
        self.spec.clone()
    }

    /// Crash: tear the runtime down with no leave; every task and socket is dropped where it stands.
    fn crash(mut self) -> Spec {
        self.handle.take();
        self.rt.take().unwrap().shutdown_timeout(Duration::from_secs(5));
        self.spec.clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let (Some(rt), Some(handle)) = (self.rt.take(), self.handle.take()) {
            let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), handle.stop()).await });
        }
    }
}

/// A seed node and `n - 1` nodes that join through it, named `{prefix}0..`.
fn group(prefix: &str, n: usize) -> Vec<Node> {
    let seed = Node::start(Spec::new(&format!("{prefix}0"), &[]));
    let seeds = [seed.cluster_addr];
    let mut nodes = vec![seed];
    nodes.extend((1..n).map(|i| Node::start(Spec::new(&format!("{prefix}{i}"), &seeds))));
    nodes
}

/// Poll every client until `check` holds for all of their views.
fn all_see(clients: &mut [Client], limit: Duration, check: impl Fn(&View) -> bool) -> bool {
    eventually(limit, || clients.iter_mut().all(|c| c.view().is_some_and(|v| check(&v))))
}

fn names(nodes: &[Node]) -> Vec<&str> {
    nodes.iter().map(Node::name).collect()
}

fn describe(clients: &mut [Client]) -> String {
    clients.iter_mut().map(|c| format!("{:?}\n", c.view())).collect()
}

#[test]
fn five_nodes_join_through_one_seed_and_agree() {
    let nodes = group("j", 5);
    let all = names(&nodes);
    let mut clients: Vec<Client> = nodes.iter().map(Node::client).collect();
    let started = Instant::now();
    assert!(all_see(&mut clients, CONVERGE, |v| v.alive_exactly(&all)), "all see 5 alive: {}", describe(&mut clients));
    eprintln!("5 nodes joined in {:?}", started.elapsed());
    // Equal live digests: every node holds the same live set.
    let same_digest = eventually(CONVERGE, || {
        let digests: Vec<Option<String>> = clients.iter_mut().map(|c| c.info_field("live_digest")).collect();
        digests[0].is_some() && digests.iter().all(|d| *d == digests[0])
    });
    assert!(same_digest, "live digests agree");
    assert!(clients.iter_mut().all(|c| c.info_u64("members_alive") == Some(5)));
}

#[test]
fn crashed_node_is_declared_down_by_all_others() {
    let mut nodes = group("c", 5);
    let all = names(&nodes).iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut clients: Vec<Client> = nodes.iter().map(Node::client).collect();
    assert!(all_see(&mut clients, CONVERGE, |v| v.alive_exactly(&all)), "joined: {}", describe(&mut clients));
    let victim = nodes.remove(2);
    clients.remove(2);
    victim.crash();
    let started = Instant::now();
    assert!(all_see(&mut clients, CONVERGE, |v| v.is_down("c2")), "c2 declared down: {}", describe(&mut clients));
    eprintln!("crash detected by all 4 survivors in {:?}", started.elapsed());
    assert!(all_see(&mut clients, CONVERGE, |v| v.alive() == 4));
}

#[test]
fn graceful_leave_shows_down_at_once() {
    let mut nodes = group("l", 4);
    let all: Vec<String> = names(&nodes).iter().map(|s| s.to_string()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut clients: Vec<Client> = nodes.iter().map(Node::client).collect();
    assert!(all_see(&mut clients, CONVERGE, |v| v.alive_exactly(&all)), "joined: {}", describe(&mut clients));
    let leaver = nodes.remove(1);
    clients.remove(1);
    let started = Instant::now();
    leaver.stop();
    assert!(all_see(&mut clients, LEAVE, |v| v.is_down("l1")), "l1 down within 1 s: {}", describe(&mut clients));
    eprintln!("graceful leave seen by all 3 others in {:?}", started.elapsed());
}

#[test]
fn in_process_restart_comes_back_alive_with_a_higher_incarnation() {
    let mut nodes = group("r", 3);
    let mut clients: Vec<Client> = nodes.iter().map(Node::client).collect();
    assert!(all_see(&mut clients, CONVERGE, |v| v.alive() == 3), "joined: {}", describe(&mut clients));
    let before = clients[0].view().unwrap().get("r2").unwrap().incarnation;
    let spec = nodes.remove(2).crash();
    clients.truncate(2);
    assert!(all_see(&mut clients, CONVERGE, |v| v.is_down("r2")), "r2 down: {}", describe(&mut clients));
    let restarted = Node::start(spec);
    clients.push(restarted.client());
    let back = |v: &View| v.alive() == 3 && v.get("r2").is_some_and(|m| m.is_alive() && m.incarnation > before);
    assert!(all_see(&mut clients, CONVERGE, back), "r2 back, incarnation > {before}: {}", describe(&mut clients));
    nodes.push(restarted);
}

#[test]
fn killed_process_is_declared_down_then_restarts_alive_with_a_higher_incarnation() {
    let nodes = group("p", 2);
    let (listen, cluster) = (free_addr(), free_addr());
    let args: Vec<String> = [
        "--name",
        "proc",
        "--listen",
        &listen.to_string(),
        "--cluster",
        &cluster.to_string(),
        "--seed",
        &nodes[0].cluster_addr.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bin = Path::new(env!("CARGO_BIN_EXE_shoal"));
    let process = Process::spawn(bin, &args, "warn");
    let mut clients: Vec<Client> = nodes.iter().map(Node::client).collect();
    clients.push(Client::new(listen));
    let three = ["p0", "p1", "proc"];
    assert!(all_see(&mut clients, CONVERGE, |v| v.alive_exactly(&three)), "joined: {}", describe(&mut clients));
    let before = clients[0].view().unwrap().get("proc").unwrap().incarnation;

    process.kill9();
    clients.pop();
    let started = Instant::now();
    assert!(all_see(&mut clients, CONVERGE, |v| v.is_down("proc")), "kill -9 detected: {}", describe(&mut clients));
    eprintln!("kill -9 detected by both others in {:?}", started.elapsed());

    let restarted = Process::spawn(bin, &args, "warn");
    clients.push(Client::new(listen));
    let back = |v: &View| v.alive_exactly(&three) && v.get("proc").is_some_and(|m| m.incarnation > before);
    assert!(all_see(&mut clients, CONVERGE, back), "restarted proc alive: {}", describe(&mut clients));

    // SIGTERM: the process leaves, so the others see it down at once, and it exits with status 0.
    let started = Instant::now();
    assert!(restarted.sigterm(Duration::from_secs(5)), "SIGTERM exits cleanly");
    clients.pop();
    assert!(all_see(&mut clients, LEAVE, |v| v.is_down("proc")), "SIGTERM leave seen: {}", describe(&mut clients));
    eprintln!("SIGTERM leave seen by both others in {:?}", started.elapsed());
}

#[test]
fn groups_started_apart_merge_once_one_node_learns_of_the_other() {
    let a = group("a", 2);
    let mut b = group("b", 2);
    let mut clients: Vec<Client> = a.iter().chain(&b).map(Node::client).collect();
    let (group_a, group_b) = (["a0", "a1"], ["b0", "b1"]);
    let apart = all_see(&mut clients[..2], CONVERGE, |v| v.alive_exactly(&group_a))
        && all_see(&mut clients[2..], CONVERGE, |v| v.alive_exactly(&group_b));
    assert!(apart, "two separate groups: {}", describe(&mut clients));

    // b1 restarts with a seed in each group; b0 never hears of group A except through it.
    let mut spec = b.remove(1).stop();
    spec.seeds = vec![b[0].cluster_addr, a[1].cluster_addr];
    b.push(Node::start(spec));
    let four = ["a0", "a1", "b0", "b1"];
    assert!(all_see(&mut clients, CONVERGE, |v| v.alive_exactly(&four)), "merged: {}", describe(&mut clients));
}

#[test]
fn node_with_the_wrong_secret_is_never_admitted() {
    let secret = b"the-right-secret-0123456789";
    let a0 = Node::start(Spec::new("s0", &[]).secret(secret));
    let a1 = Node::start(Spec::new("s1", &[a0.cluster_addr]).secret(secret));
    let wrong =
        Node::start(Spec::new("wrong", &[a0.cluster_addr, a1.cluster_addr]).secret(b"another-secret-0123456789"));
    let none = Node::start(Spec::new("none", &[a0.cluster_addr]));
    let mut good: Vec<Client> = [&a0, &a1].iter().map(|n| n.client()).collect();
    let mut bad: Vec<Client> = [&wrong, &none].iter().map(|n| n.client()).collect();
    assert!(
        all_see(&mut good, CONVERGE, |v| v.alive_exactly(&["s0", "s1"])),
        "s0 and s1 join: {}",
        describe(&mut good)
    );

    // Watch until a0 has refused many announces (they come every 250 ms): the outsiders never get in.
    let mut a0_client = a0.client();
    let mut admitted = Vec::new();
    let refused_enough = eventually(CONVERGE, || {
        for c in good.iter_mut() {
            let v = c.view().unwrap_or_default();
            admitted.extend(["wrong", "none"].into_iter().filter(|n| v.get(n).is_some()));
        }
        for (c, name) in bad.iter_mut().zip(["wrong", "none"]) {
            if !c.view().is_some_and(|v| v.alive_exactly(&[name]) && v.0.len() == 1) {
                admitted.push(name);
            }
        }
        a0_client.info_u64("gossip_rejected_auth").is_some_and(|n| n >= 16)
    });
    assert!(admitted.is_empty(), "outsiders admitted: {admitted:?}; {}", describe(&mut good));
    assert!(refused_enough, "gossip_rejected_auth grows on s0");
    assert!(good[1].info_u64("gossip_rejected_auth").is_some_and(|n| n > 0), "s1, a seed of `wrong`, refuses too");
}

#[test]
fn two_nodes_with_one_name_are_shown_in_info_cluster() {
    let a = Node::start(Spec::new("twin", &[]));
    let b = Node::start(Spec::new("other", &[a.cluster_addr]));
    let c = Node::start(Spec::new("twin", &[a.cluster_addr]));
    let mut clients: Vec<Client> = [&a, &b, &c].iter().map(|n| n.client()).collect();
    let shown = eventually(CONVERGE, || clients.iter_mut().all(|c| c.info_u64("name_conflicts") == Some(1)));
    assert!(shown, "every node shows the conflict: {}", describe(&mut clients));
    let line = clients[1].info_field("name_conflict_0").expect("the conflict is listed");
    let (x, y) = (a.cluster_addr.to_string(), c.cluster_addr.to_string());
    assert!(line.starts_with("name=twin,addrs=") && line.contains(&x) && line.contains(&y), "{line}");
    drop(c);
    let cleared = eventually(CONVERGE, || clients[..2].iter_mut().all(|c| c.info_u64("name_conflicts") == Some(0)));
    assert!(cleared, "the conflict clears once one twin is gone");
}
