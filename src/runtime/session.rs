//! A connection's own state (protocol version, authentication, name) and the commands that only touch it:
//! PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT, COMMAND, CONFIG GET, TIME, SHOAL.CONSISTENCY, and the
//! cluster commands answered from the slot map (`cluster.rs`, which also sends cluster-aware clients MOVED).
//!
//! Until a client authenticates (when `requirepass` is set) only AUTH, HELLO with AUTH, QUIT and RESET are
//! allowed, as in Redis, and the connection parses their requests under the parser's pre-AUTH bounds (`access`).
//! Everything else is turned into a `core::Command` for the node. `AUTH default <password>` and `HELLO 3 AUTH
//! default <password>` are the two-argument forms of AUTH; any other user name is refused as Redis refuses an
//! unknown user.

use std::sync::Arc;

use bytes::Bytes;

use super::cluster::ClusterConn;
use super::node_task::{wall_ms, ToNode};
use super::{DebugCommand, Shared};
use crate::core::command::Command;
use crate::core::glob;
use crate::core::info::policy_name;
use crate::core::replication::Levels;
use crate::core::reply::{Reply, ERR_NOAUTH, ERR_WRONGPASS};
use crate::core::ConnId;
use crate::resp::command::{parse, ConnCommand, Parsed};
use crate::resp::encode::Protocol;
use crate::resp::frame::Access;
use crate::resp::introspect::command_reply;

/// Redis's answer to DEBUG when `enable-debug-command` does not allow it.
pub const ERR_DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// What the connection does with one request.
pub enum Step {
    /// Answer now.
    Reply(Reply),
    /// Send to the node.
    Data(Command),
    /// Answer, then close the connection (QUIT).
    ReplyThenClose(Reply),
}

/// One connection's state.
pub struct Session {
    id: ConnId,
    peer: String,
    protocol: Protocol,
    authenticated: bool,
    name: Option<Bytes>,
    levels: Levels,
    /// Cluster-aware or not, READONLY or not.
    cluster: ClusterConn,
    shared: Arc<Shared>,
}

impl Session {
    /// A new session for connection `id` from `peer`.
    pub fn new(id: ConnId, peer: String, shared: Arc<Shared>) -> Session {
        let authenticated = shared.config.requirepass.is_none();
        shared.clients.open(id, &peer);
        let levels = shared.config.node.levels;
        let cluster = ClusterConn::default();
        Session { id, peer, protocol: Protocol::Resp2, authenticated, name: None, levels, cluster, shared }
    }

    /// The consistency levels this connection's commands run at.
    pub fn levels(&self) -> Levels {
        self.levels
    }

    /// Whether requests are parsed under the pre-AUTH bounds (a password is set and not yet given).
    pub fn access(&self) -> Access {
        if self.authenticated {
            Access::Authenticated
        } else {
            Access::Unauthenticated
        }
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Forget the connection in the shared client list.
    pub fn close(&self) {
        self.shared.clients.close(self.id);
    }

    /// Decide what to do with one request's arguments.
    pub fn handle(&mut self, args: Vec<Bytes>) -> Step {
        let parsed = parse(args);
        if !self.authenticated && !self.allowed_unauthenticated(&parsed) {
            return Step::Reply(Reply::err(ERR_NOAUTH));
        }
        match parsed {
            Parsed::Data(cmd) => match self.cluster.redirect(&self.shared.topology, &cmd) {
                Some(redirect) => Step::Reply(redirect),
                None => Step::Data(cmd),
            },
            Parsed::Error(e) => Step::Reply(e),
            Parsed::Conn(ConnCommand::Quit) => Step::ReplyThenClose(Reply::Ok),
            Parsed::Conn(ConnCommand::Info(sections)) => {
                Step::Data(Command::Info { sections, server: self.shared.facts() })
            }
            Parsed::Conn(c) => Step::Reply(self.conn_command(c)),
        }
    }

    fn allowed_unauthenticated(&self, parsed: &Parsed) -> bool {
        match parsed {
            Parsed::Conn(ConnCommand::Auth { .. } | ConnCommand::Quit | ConnCommand::Reset) => true,
            Parsed::Conn(ConnCommand::Hello { auth, .. }) => auth.is_some(),
            _ => false,
        }
    }

    fn conn_command(&mut self, cmd: ConnCommand) -> Reply {
        match cmd {
            ConnCommand::Ping(None) => Reply::simple("PONG"),
            ConnCommand::Ping(Some(msg)) | ConnCommand::Echo(msg) => Reply::Bulk(msg),
            ConnCommand::Auth { user, pass } => self.auth(user.as_deref(), &pass),
            ConnCommand::Hello { proto, auth, setname } => self.hello(proto, auth, setname),
            ConnCommand::Select(0) => Reply::Ok,
            ConnCommand::Select(_) => Reply::err("ERR DB index is out of range"),
            ConnCommand::Reset => {
                self.protocol = Protocol::Resp2;
                self.name = None;
                self.levels = self.shared.config.node.levels;
                self.cluster.reset();
                self.authenticated = self.shared.config.requirepass.is_none();
                self.shared.clients.set_name(self.id, None);
                Reply::simple("RESET")
            }
            ConnCommand::ClientSetName(name) => {
                if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Reply::err("ERR Client names cannot contain spaces, newlines or special characters.");
                }
                let name = (!name.is_empty()).then_some(name);
                self.shared.clients.set_name(self.id, name.clone());
                self.name = name;
                Reply::Ok
            }
            ConnCommand::ClientGetName => self.name.clone().map_or(Reply::Nil, Reply::Bulk),
            ConnCommand::ClientId => Reply::Int(self.id as i64),
            ConnCommand::ClientInfo => Reply::Verbatim(self.client_line()),
            ConnCommand::ClientList => Reply::Verbatim(self.shared.clients.list(self.protocol)),
            ConnCommand::ClientSetInfo { .. } | ConnCommand::ClientNoEvict(_) | ConnCommand::ClientNoTouch(_) => {
                Reply::Ok
            }
            c @ (ConnCommand::CommandList
            | ConnCommand::CommandCount
            | ConnCommand::CommandInfo(_)
            | ConnCommand::CommandDocs(_)
            | ConnCommand::Help(_)) => command_reply(&c).unwrap_or(Reply::err("ERR internal: no reply")),
            ConnCommand::ConfigGet(patterns) => self.config_get(&patterns),
            ConnCommand::ConfigResetStat => Reply::Ok,
            ConnCommand::ConfigSet | ConnCommand::ConfigRewrite => {
                Reply::err("ERR Shoal's configuration is read-only at runtime; restart with new flags or config file")
            }
            ConnCommand::Consistency(Some(levels)) => {
                self.levels = levels;
                Reply::Ok
            }
            ConnCommand::Consistency(None) => Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(self.levels.read.as_str().as_bytes())),
                Reply::Bulk(Bytes::from_static(self.levels.write.as_str().as_bytes())),
            ]),
            ConnCommand::Time => {
                let ms = wall_ms();
                Reply::Array(vec![
                    Reply::Bulk(Bytes::from((ms / 1000).to_string())),
                    Reply::Bulk(Bytes::from(((ms % 1000) * 1000).to_string())),
                ])
            }
            ConnCommand::Debug(args) => self.debug(&args),
            ConnCommand::Cluster(c) => self.cluster.answer(&self.shared.topology, c),
            // Answered in `handle`; kept here so the match stays exhaustive.
            ConnCommand::Quit => Reply::Ok,
            ConnCommand::Info(_) => Reply::err("ERR internal: INFO reached the session"),
        }
    }

    fn auth(&mut self, user: Option<&[u8]>, pass: &[u8]) -> Reply {
        let user_ok = user.is_none_or(|u| u == b"default");
        let Some(expected) = &self.shared.config.requirepass else {
            // Without a password the default user is `nopass` in Redis: its two-argument AUTH accepts anything.
            return match user {
                None => Reply::err(
                    "ERR AUTH <password> called without any password configured for the default user. \
                     Are you sure your configuration is correct?",
                ),
                Some(_) if user_ok => Reply::Ok,
                Some(_) => Reply::err(ERR_WRONGPASS),
            };
        };
        if user_ok && expected.matches(pass) {
            self.authenticated = true;
            Reply::Ok
        } else {
            Reply::err(ERR_WRONGPASS)
        }
    }

    fn hello(&mut self, proto: Option<i64>, auth: Option<(Bytes, Bytes)>, setname: Option<Bytes>) -> Reply {
        let protocol = match proto {
            None => self.protocol,
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
        };
        if let Some((user, pass)) = auth {
            let r = self.auth(Some(&user), &pass);
            if r.is_error() {
                return r;
            }
        }
        if let Some(name) = setname {
            let r = self.conn_command(ConnCommand::ClientSetName(name));
            if r.is_error() {
                return r;
            }
        }
        self.protocol = protocol;
        let field = |k: &'static str, v: Reply| (Reply::simple(k), v);
        Reply::Map(vec![
            field("server", Reply::Bulk(Bytes::from_static(b"redis"))),
            field("version", Reply::Bulk(Bytes::from_static(b"7.2.0"))),
            field("proto", Reply::Int(if protocol == Protocol::Resp3 { 3 } else { 2 })),
            field("id", Reply::Int(self.id as i64)),
            field("mode", Reply::Bulk(Bytes::from_static(self.mode().as_bytes()))),
            field("role", Reply::Bulk(Bytes::from_static(b"master"))),
            field("modules", Reply::Array(vec![])),
        ])
    }

    /// HELLO's `mode`: `cluster` on a clustered node, as Redis Cluster says.
    fn mode(&self) -> &'static str {
        if self.shared.config.cluster.is_some() {
            "cluster"
        } else {
            "standalone"
        }
    }

    fn client_line(&self) -> String {
        let name = self.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
        let resp = if self.protocol == Protocol::Resp3 { 3 } else { 2 };
        format!("id={} addr={} name={} db=0 resp={}\n", self.id, self.peer, name, resp)
    }

    /// DEBUG: refused with Redis's text unless `--enable-debug-command` allows this client; PANIC makes the node
    /// task panic (the process then ends: see `runtime::run` and the binary's panic hook).
    fn debug(&self, args: &[Bytes]) -> Reply {
        let local = || self.peer.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        let allowed = match self.shared.config.enable_debug_command {
            DebugCommand::No => false,
            DebugCommand::Yes => true,
            DebugCommand::Local => local(),
        };
        if !allowed {
            return Reply::err(ERR_DEBUG_NOT_ALLOWED);
        }
        match args {
            [sub] if sub.eq_ignore_ascii_case(b"panic") => {
                tracing::warn!(client = %self.peer, "DEBUG PANIC: making the node task panic");
                match self.shared.to_node.try_send(ToNode::DebugPanic) {
                    Ok(()) => Reply::Ok,
                    Err(_) => Reply::err("ERR the node task's queue is full or closed"),
                }
            }
            _ => {
                let sub = args.first().map(|s| String::from_utf8_lossy(s).into_owned()).unwrap_or_default();
                Reply::error(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try DEBUG PANIC."
                ))
            }
        }
    }

    fn config_get(&self, patterns: &[Bytes]) -> Reply {
        let c = &self.shared.config;
        let params: Vec<(&str, String)> = vec![
            ("bind", c.listen.or(c.tls.as_ref().map(|t| t.listen)).map_or(String::new(), |a| a.ip().to_string())),
            ("port", c.listen.map_or(0, |a| a.port()).to_string()),
            ("maxmemory", c.node.maxmemory_bytes.unwrap_or(0).to_string()),
            ("maxmemory-policy", policy_name(c.node.eviction).to_string()),
            ("maxclients", c.maxclients.to_string()),
            ("proto-max-bulk-len", c.limits.bulk_len_max.to_string()),
            ("databases", "1".to_string()),
            ("save", String::new()),
            ("appendonly", "no".to_string()),
            ("timeout", (c.client_idle_timeout_ms / 1000).to_string()),
            ("client-query-buffer-limit", c.client_query_buffer_bytes_max.to_string()),
            ("client-output-buffer-limit", format!("normal {} 0 0", c.client_output_buffer_bytes_max)),
            ("tls-port", c.tls.as_ref().map_or(0, |t| t.listen.port()).to_string()),
            ("tls-auth-clients", c.tls.as_ref().map_or("yes".to_string(), |t| t.auth_clients.to_string())),
            ("tls-cluster", if c.cluster.as_ref().is_some_and(|c| c.tls.is_some()) { "yes" } else { "no" }.to_string()),
            // Never the password itself: only whether one is set.
            ("requirepass", c.requirepass.as_ref().map_or(String::new(), |_| "<redacted>".to_string())),
        ];
        let mut out = Vec::new();
        for (name, value) in params {
            if patterns.iter().any(|p| glob::matches(&p.to_ascii_lowercase(), name.as_bytes())) {
                out.push((Reply::Bulk(Bytes::from_static(name.as_bytes())), Reply::Bulk(Bytes::from(value))));
            }
        }
        Reply::Map(out)
    }
}
