//! Command parsing: turn a request's arguments into a data command, a connection command, or an error reply.
//!
//! The dispatcher looks the name up in `table` (any case), resolves a container's subcommand, checks the arity
//! and hands the arguments to the row's parser. Every syntax error is answered here with Redis 7's exact text;
//! what needs the store, the clock or the connection's state is left to `core` or the runtime. Parsers live in
//! one file per group: `strings`, `keyspace` (data), `conn` (answered by the connection) and `cluster`.

pub(crate) mod args;
pub mod cluster;
pub(crate) mod conn;
pub(crate) mod keyspace;
pub(crate) mod locks;
pub(crate) mod strings;

use bytes::Bytes;

use super::table;
use crate::core::command::Command;
use crate::core::replication::Levels;
use crate::core::reply::{err_wrong_arity, Reply};

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A command for the node's store.
    Data(Command),
    /// A command the connection answers itself.
    Conn(ConnCommand),
    /// A reply to send at once (a syntax error): nothing else happens.
    Error(Reply),
}

/// An attribute `CLIENT SETINFO` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAttr {
    /// `LIB-NAME`.
    LibName,
    /// `LIB-VER`.
    LibVer,
}

/// A command about the connection or the server, answered without touching data.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnCommand {
    /// PING [message].
    Ping(Option<Bytes>),
    /// ECHO message.
    Echo(Bytes),
    /// HELLO [protover [AUTH user pass] [SETNAME name]]; `proto` is already checked to be 2 or 3.
    Hello {
        /// Protocol version asked for (2 or 3).
        proto: Option<i64>,
        /// AUTH username password.
        auth: Option<(Bytes, Bytes)>,
        /// SETNAME clientname.
        setname: Option<Bytes>,
    },
    /// AUTH [user] pass.
    Auth {
        /// Username (`default` when absent).
        user: Option<Bytes>,
        /// Password.
        pass: Bytes,
    },
    /// SELECT index (only 0 exists; the runtime answers the error for others).
    Select(i64),
    /// QUIT: answer OK, then close.
    Quit,
    /// RESET: back to a fresh connection's state.
    Reset,
    /// CLIENT SETNAME name (checked: printable, no spaces; empty clears it).
    ClientSetName(Bytes),
    /// CLIENT GETNAME.
    ClientGetName,
    /// CLIENT ID.
    ClientId,
    /// CLIENT INFO.
    ClientInfo,
    /// CLIENT LIST.
    ClientList,
    /// CLIENT SETINFO LIB-NAME|LIB-VER value: record it, answer OK.
    ClientSetInfo {
        /// Which attribute.
        attr: ClientAttr,
        /// Its value (checked: printable, no spaces).
        value: Bytes,
    },
    /// CLIENT NO-EVICT on|off: answer OK.
    ClientNoEvict(bool),
    /// CLIENT NO-TOUCH on|off: answer OK.
    ClientNoTouch(bool),
    /// COMMAND / COMMAND INFO [name ...]: an empty list means every command.
    CommandInfo(Vec<Bytes>),
    /// COMMAND COUNT.
    CommandCount,
    /// COMMAND LIST.
    CommandList,
    /// COMMAND DOCS [name ...]: an empty list means every command.
    CommandDocs(Vec<Bytes>),
    /// CLIENT / COMMAND / CONFIG HELP: the lines to send.
    Help(&'static [&'static str]),
    /// CONFIG GET parameter [parameter ...].
    ConfigGet(Vec<Bytes>),
    /// CONFIG SET: refused, the configuration is read-only at runtime.
    ConfigSet,
    /// CONFIG RESETSTAT.
    ConfigResetStat,
    /// CONFIG REWRITE: refused, there is no config file to rewrite at runtime.
    ConfigRewrite,
    /// INFO [section ...], sections in lower case; the runtime adds `ServerFacts` and sends `Command::Info`.
    Info(Vec<String>),
    /// TIME: the runtime answers with its clock.
    Time,
    /// SHOAL.CONSISTENCY [read write]: `None` asks for the connection's levels, `Some` sets them.
    Consistency(Option<Levels>),
    /// DEBUG subcommand [argument ...] (the arguments after DEBUG); only PANIC exists.
    Debug(Vec<Bytes>),
    /// CLUSTER SLOTS/SHARDS/NODES/INFO/MYID/KEYSLOT, READONLY, READWRITE, ASKING: answered from the slot map.
    Cluster(cluster::ClusterCmd),
}

/// Parses one request's arguments (the first is the command name). An empty request is an unknown command.
pub fn parse(args: Vec<Bytes>) -> Parsed {
    let Some(spec) = args.first().and_then(|name| table::lookup(name)) else {
        return Parsed::Error(unknown_command(&args));
    };
    let spec = match args.get(1) {
        Some(sub) if !spec.subcommands.is_empty() => match spec.subcommand(sub) {
            Some(sub_spec) => sub_spec,
            None => return Parsed::Error(unknown_subcommand(spec.name, sub)),
        },
        _ => spec,
    };
    if !spec.arity_ok(args.len()) {
        return Parsed::Error(err_wrong_arity(spec.name));
    }
    (spec.parse)(args).unwrap_or_else(Parsed::Error)
}

/// Redis's text for an unknown command: the name and the first arguments, each cut to what still fits in 128.
fn unknown_command(args: &[Bytes]) -> Reply {
    const SHOWN_MAX: usize = 128;
    let name = args.first().map_or(&b""[..], |n| &n[..n.len().min(SHOWN_MAX)]);
    let mut shown = Vec::new();
    for arg in args.iter().skip(1) {
        if shown.len() >= SHOWN_MAX {
            break;
        }
        let room = SHOWN_MAX - shown.len();
        shown.push(b'\'');
        shown.extend_from_slice(&arg[..arg.len().min(room)]);
        shown.extend_from_slice(b"' ");
    }
    Reply::error(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        String::from_utf8_lossy(name),
        String::from_utf8_lossy(&shown)
    ))
}

/// Redis's text for an unknown subcommand of `container`.
fn unknown_subcommand(container: &str, sub: &[u8]) -> Reply {
    let sub = &sub[..sub.len().min(128)];
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        container.to_ascii_uppercase()
    ))
}

#[cfg(test)]
mod tests;
