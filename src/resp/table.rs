//! The command table: every command Shoal understands, with what `COMMAND` reports about it and its parser.
//!
//! Data-driven: adding a command is one row here (name, arity, flags, keys, group, docs, parser). Arity follows
//! Redis (positive: exactly that many arguments, name included; negative: at least that many). Rows are sorted
//! by name so lookup is a binary search over a lower-cased copy of the name, without allocating; a test keeps
//! them sorted. Container commands (CLIENT, COMMAND, CONFIG) hold their subcommands in the same shape, named
//! `container|sub` as Redis 7 names them.

use bytes::Bytes;

use super::command::{cluster, conn, keyspace, locks, strings, Parsed};
use crate::core::reply::Reply;

/// Parses the arguments of one command, whose arity is already checked.
pub type ParseFn = fn(Vec<Bytes>) -> Result<Parsed, Reply>;

/// Command flags, as a bit set; `FLAG_NAMES` gives the names COMMAND reports.
pub type Flags = u32;
/// May modify data.
pub const WRITE: Flags = 1;
/// Only reads data.
pub const READONLY: Flags = 1 << 1;
/// May grow memory use: refused when out of memory.
pub const DENYOOM: Flags = 1 << 2;
/// Administrative.
pub const ADMIN: Flags = 1 << 3;
/// Not allowed in scripts.
pub const NOSCRIPT: Flags = 1 << 4;
/// Allowed while loading data.
pub const LOADING: Flags = 1 << 5;
/// Allowed on a stale replica.
pub const STALE: Flags = 1 << 6;
/// O(1) or O(log N), never blocks for long.
pub const FAST: Flags = 1 << 7;
/// Allowed before authentication.
pub const NO_AUTH: Flags = 1 << 8;
/// Allowed while the server is busy with a script.
pub const ALLOW_BUSY: Flags = 1 << 9;
/// ACL only: in the `@dangerous` category.
pub const DANGEROUS: Flags = 1 << 10;
/// ACL only: in the `@keyspace` category although its group is not `generic`.
pub const KEYSPACE: Flags = 1 << 11;

/// The names of the flags COMMAND reports, in Redis's order.
const FLAG_NAMES: [(Flags, &str); 10] = [
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (NOSCRIPT, "noscript"),
    (LOADING, "loading"),
    (STALE, "stale"),
    (FAST, "fast"),
    (NO_AUTH, "no_auth"),
    (ALLOW_BUSY, "allow_busy"),
];

/// Redis's documentation groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Keyspace commands (`generic`).
    Generic,
    /// String commands.
    String,
    /// Connection commands.
    Connection,
    /// Server commands.
    Server,
}

impl Group {
    /// The group's name in COMMAND DOCS.
    pub fn name(self) -> &'static str {
        match self {
            Group::Generic => "generic",
            Group::String => "string",
            Group::Connection => "connection",
            Group::Server => "server",
        }
    }
}

/// One command (or subcommand) and what COMMAND reports about it.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case full name (`get`, `client|setname`).
    pub name: &'static str,
    /// Redis arity, counting the name (and the subcommand).
    pub arity: i32,
    /// Flag bits.
    pub flags: Flags,
    /// Position of the first key (0: none).
    pub first_key: i32,
    /// Position of the last key (-1: the last argument).
    pub last_key: i32,
    /// Distance between keys.
    pub key_step: i32,
    /// Documentation group.
    pub group: Group,
    /// Redis version that introduced it.
    pub since: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Time complexity.
    pub complexity: &'static str,
    /// Parser for its arguments.
    pub parse: ParseFn,
    /// Subcommands, sorted by name (empty for plain commands).
    pub subcommands: &'static [CommandSpec],
}

/// Builds a table row; `keys` is (first, last, step).
#[allow(clippy::too_many_arguments)]
const fn cmd(
    name: &'static str,
    arity: i32,
    flags: Flags,
    keys: (i32, i32, i32),
    group: Group,
    since: &'static str,
    complexity: &'static str,
    summary: &'static str,
    parse: ParseFn,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        key_step: keys.2,
        group,
        since,
        summary,
        complexity,
        parse,
        subcommands: &[],
    }
}

impl CommandSpec {
    /// The same row, holding `subcommands`.
    const fn with(self, subcommands: &'static [CommandSpec]) -> CommandSpec {
        CommandSpec { subcommands, ..self }
    }

    /// The name after the container's `|`, or the whole name.
    pub fn short_name(&self) -> &'static str {
        match self.name.split_once('|') {
            Some((_, sub)) => sub,
            None => self.name,
        }
    }

    /// The names of its flags, as COMMAND reports them.
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        FLAG_NAMES.iter().filter(|(bit, _)| self.flags & bit != 0).map(|&(_, name)| name)
    }

    /// Its ACL categories (`@read`, `@string`, ...), in Redis's order.
    pub fn acl_categories(&self) -> Vec<&'static str> {
        let has = |bit| self.flags & bit != 0;
        let categories = [
            ("@keyspace", self.group == Group::Generic || has(KEYSPACE)),
            ("@read", has(READONLY)),
            ("@write", has(WRITE)),
            ("@string", self.group == Group::String),
            ("@admin", has(ADMIN)),
            ("@fast", has(FAST)),
            ("@slow", !has(FAST)),
            ("@dangerous", has(ADMIN) || has(DANGEROUS)),
            ("@connection", self.group == Group::Connection),
        ];
        categories.iter().filter(|(_, yes)| *yes).map(|&(name, _)| name).collect()
    }

    /// Whether `argc` arguments (name included) satisfy its arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Its subcommand named `name` (any case).
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        find(self.subcommands, self.name.len() + 1, name)
    }
}

/// The command named `name` (any case), if Shoal has it.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(COMMANDS, 0, name)
}

/// Binary search of a sorted table for `name`, compared in lower case with each row's name past `prefix_len`
/// bytes (the `container|` of subcommands).
fn find(table: &'static [CommandSpec], prefix_len: usize, name: &[u8]) -> Option<&'static CommandSpec> {
    const NAME_LEN_MAX: usize = 24;
    if name.len() > NAME_LEN_MAX {
        return None;
    }
    let mut lower = [0u8; NAME_LEN_MAX];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let lower = &*lower;
    let key = |spec: &CommandSpec| spec.name.as_bytes().get(prefix_len..).unwrap_or_default();
    table.binary_search_by(|spec| key(spec).cmp(lower)).ok().map(|i| &table[i])
}

use Group::{Connection as Conn, Generic as Gen, Server as Srv, String as Str};

/// Every top-level command, sorted by name.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    cmd("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "2.0.0", "O(1)", "Appends a string to the value of a key. Creates the key if it doesn't exist.", strings::append),
    cmd("asking", 1, FAST, (0, 0, 0), Srv, "3.0.0", "O(1)", "Signals that a cluster client is following an -ASK redirect (accepted; Shoal never sends ASK).", cluster::asking),
    cmd("auth", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, (0, 0, 0), Conn, "1.0.0", "O(N) where N is the number of passwords defined for the user", "Authenticates the connection.", conn::auth),
    cmd("client", -2, 0, (0, 0, 0), Conn, "2.4.0", "Depends on subcommand.", "A container for client connection commands.", conn::container).with(CLIENT),
    cmd("cluster", -2, 0, (0, 0, 0), Srv, "3.0.0", "Depends on subcommand.", "A container for Redis Cluster commands (the slot map Shoal derives from its ring).", conn::container).with(CLUSTER),
    cmd("command", -1, LOADING | STALE, (0, 0, 0), Srv, "2.8.13", "O(N) where N is the total number of Redis commands", "Returns detailed information about all commands.", conn::command).with(COMMAND),
    cmd("config", -2, 0, (0, 0, 0), Srv, "2.0.0", "Depends on subcommand.", "A container for server configuration commands.", conn::container).with(CONFIG),
    cmd("dbsize", 1, READONLY | FAST | KEYSPACE, (0, 0, 0), Srv, "1.0.0", "O(1)", "Returns the number of keys in the database.", keyspace::dbsize),
    cmd("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), Srv, "1.0.0", "Depends on subcommand.", "A container for debugging commands (DEBUG PANIC only, behind --enable-debug-command).", conn::debug),
    cmd("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "1.0.0", "O(1)", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", strings::decr),
    cmd("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "1.0.0", "O(1)", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", strings::decrby),
    cmd("del", -2, WRITE, (1, -1, 1), Gen, "1.0.0", "O(N) where N is the number of keys that will be removed.", "Deletes one or more keys.", keyspace::del),
    cmd("echo", 2, LOADING | STALE | FAST, (0, 0, 0), Conn, "1.0.0", "O(1)", "Returns the given string.", conn::echo),
    cmd("exists", -2, READONLY | FAST, (1, -1, 1), Gen, "1.0.0", "O(N) where N is the number of keys to check.", "Determines whether one or more keys exist.", keyspace::exists),
    cmd("expire", -3, WRITE | FAST, (1, 1, 1), Gen, "1.0.0", "O(1)", "Sets the expiration time of a key in seconds.", keyspace::expire),
    cmd("expireat", -3, WRITE | FAST, (1, 1, 1), Gen, "1.2.0", "O(1)", "Sets the expiration time of a key to a Unix timestamp.", keyspace::expireat),
    cmd("expiretime", 2, READONLY | FAST, (1, 1, 1), Gen, "7.0.0", "O(1)", "Returns the expiration time of a key as a Unix timestamp.", keyspace::expiretime),
    cmd("flushall", -1, WRITE | KEYSPACE | DANGEROUS, (0, 0, 0), Srv, "1.0.0", "O(N) where N is the total number of keys in all databases", "Removes all keys from all databases.", keyspace::flush),
    cmd("flushdb", -1, WRITE | KEYSPACE | DANGEROUS, (0, 0, 0), Srv, "1.0.0", "O(N) where N is the number of keys in the selected database", "Remove all keys from the current database.", keyspace::flush),
    cmd("get", 2, READONLY | FAST, (1, 1, 1), Str, "1.0.0", "O(1)", "Returns the string value of a key.", strings::get),
    cmd("getdel", 2, WRITE | FAST, (1, 1, 1), Str, "6.2.0", "O(1)", "Returns the string value of a key after deleting the key.", strings::getdel),
    cmd("getex", -2, WRITE | FAST, (1, 1, 1), Str, "6.2.0", "O(1)", "Returns the string value of a key after setting its expiration time.", strings::getex),
    cmd("getrange", 4, READONLY, (1, 1, 1), Str, "2.4.0", "O(N) where N is the length of the returned string.", "Returns a substring of the string stored at a key.", strings::getrange),
    cmd("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "1.0.0", "O(1)", "Returns the previous string value of a key after setting it to a new value.", strings::getset),
    cmd("hello", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, (0, 0, 0), Conn, "6.0.0", "O(1)", "Handshakes with the Redis server.", conn::hello),
    cmd("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "1.0.0", "O(1)", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", strings::incr),
    cmd("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "1.0.0", "O(1)", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrby),
    cmd("incrbyfloat", 3, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "2.6.0", "O(1)", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrbyfloat),
    cmd("info", -1, LOADING | STALE | DANGEROUS, (0, 0, 0), Srv, "1.0.0", "O(1)", "Returns information and statistics about the server.", conn::info),
    cmd("keys", 2, READONLY | DANGEROUS, (0, 0, 0), Gen, "1.0.0", "O(N) with N being the number of keys in the database", "Returns all key names that match a pattern.", keyspace::keys),
    cmd("lock.acquire", 4, WRITE | FAST, (1, 1, 1), Srv, "0.1.0", "O(1)", "Takes a lease lock for an owner; returns a fencing token and whether a majority of the lock's replicas granted it, or nil when another owner holds it.", locks::acquire),
    cmd("lock.info", 2, READONLY | FAST, (1, 1, 1), Srv, "0.1.0", "O(1)", "Returns a lock's holder, fencing token, remaining lease and whether a majority of its replicas agree.", locks::info),
    cmd("lock.release", 4, WRITE | FAST, (1, 1, 1), Srv, "0.1.0", "O(1)", "Frees a lock held by the owner with this token.", locks::release),
    cmd("lock.renew", 5, WRITE | FAST, (1, 1, 1), Srv, "0.1.0", "O(1)", "Extends the lease of the owner holding the lock with this token.", locks::renew),
    cmd("mget", -2, READONLY | FAST, (1, -1, 1), Str, "1.0.0", "O(N) where N is the number of keys to retrieve.", "Atomically returns the string values of one or more keys.", strings::mget),
    cmd("mset", -3, WRITE | DENYOOM, (1, -1, 2), Str, "1.0.1", "O(N) where N is the number of keys to set.", "Atomically creates or modifies the string values of one or more keys.", strings::mset),
    cmd("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), Str, "1.0.1", "O(N) where N is the number of keys to set.", "Atomically modifies the string values of one or more keys only when all keys don't exist.", strings::msetnx),
    cmd("persist", 2, WRITE | FAST, (1, 1, 1), Gen, "2.2.0", "O(1)", "Removes the expiration time of a key.", keyspace::persist),
    cmd("pexpire", -3, WRITE | FAST, (1, 1, 1), Gen, "2.6.0", "O(1)", "Sets the expiration time of a key in milliseconds.", keyspace::pexpire),
    cmd("pexpireat", -3, WRITE | FAST, (1, 1, 1), Gen, "2.6.0", "O(1)", "Sets the expiration time of a key to a Unix milliseconds timestamp.", keyspace::pexpireat),
    cmd("pexpiretime", 2, READONLY | FAST, (1, 1, 1), Gen, "7.0.0", "O(1)", "Returns the expiration time of a key as a Unix milliseconds timestamp.", keyspace::pexpiretime),
    cmd("ping", -1, FAST, (0, 0, 0), Conn, "1.0.0", "O(1)", "Returns the server's liveliness response.", conn::ping),
    cmd("psetex", 4, WRITE | DENYOOM, (1, 1, 1), Str, "2.6.0", "O(1)", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", strings::psetex),
    cmd("pttl", 2, READONLY | FAST, (1, 1, 1), Gen, "2.6.0", "O(1)", "Returns the expiration time in milliseconds of a key.", keyspace::pttl),
    cmd("quit", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, (0, 0, 0), Conn, "1.0.0", "O(1)", "Closes the connection.", conn::quit),
    cmd("randomkey", 1, READONLY, (0, 0, 0), Gen, "1.0.0", "O(1)", "Returns a random key name from the database.", keyspace::randomkey),
    cmd("readonly", 1, FAST | LOADING | STALE, (0, 0, 0), Srv, "3.0.0", "O(1)", "Enables read-only queries to any owner of a slot for a connection to a Redis Cluster node.", cluster::readonly),
    cmd("readwrite", 1, FAST | LOADING | STALE, (0, 0, 0), Srv, "3.0.0", "O(1)", "Sends reads to the slot's master again after READONLY.", cluster::readwrite),
    cmd("reset", 1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, (0, 0, 0), Conn, "6.2.0", "O(1)", "Resets the connection.", conn::reset),
    cmd("scan", -2, READONLY, (0, 0, 0), Gen, "2.8.0", "O(1) for every call. O(N) for a complete iteration.", "Iterates over the key names in the database.", keyspace::scan),
    cmd("select", 2, LOADING | STALE | FAST, (0, 0, 0), Conn, "1.0.0", "O(1)", "Changes the selected database.", conn::select),
    cmd("set", -3, WRITE | DENYOOM, (1, 1, 1), Str, "1.0.0", "O(1)", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", strings::set),
    cmd("setex", 4, WRITE | DENYOOM, (1, 1, 1), Str, "2.0.0", "O(1)", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", strings::setex),
    cmd("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), Str, "1.0.0", "O(1)", "Set the string value of a key only when the key doesn't exist.", strings::setnx),
    cmd("setrange", 4, WRITE | DENYOOM, (1, 1, 1), Str, "2.2.0", "O(1), not counting the time taken to copy the new string in place.", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", strings::setrange),
    cmd("shoal.consistency", -1, NOSCRIPT | LOADING | STALE | FAST, (0, 0, 0), Conn, "0.1.0", "O(1)", "Shows or sets the read and write consistency levels (ONE, QUORUM, ALL) of the connection.", conn::consistency),
    cmd("shoal.localget", 2, READONLY | FAST, (1, 1, 1), Srv, "0.1.0", "O(1)", "Returns this node's own copy of a key (value or marker) with its version vector, without asking other replicas.", keyspace::localget),
    cmd("shoal.members", 1, READONLY | LOADING | STALE, (0, 0, 0), Srv, "0.1.0", "O(N) where N is the number of known members", "Lists the cluster members this node knows: name, addresses, state, incarnation.", keyspace::members),
    cmd("shoal.owners", 2, READONLY | FAST, (1, 1, 1), Srv, "0.1.0", "O(log N)", "Returns the key's replicas (its preference list) as this node's ring sees it.", keyspace::owners),
    cmd("shoal.ready", 1, READONLY | LOADING | STALE | FAST, (0, 0, 0), Srv, "0.1.0", "O(1)", "Returns whether this node is ready: joined, and every range it owns synced once with another owner since it started.", keyspace::ready),
    cmd("strlen", 2, READONLY | FAST, (1, 1, 1), Str, "2.2.0", "O(1)", "Returns the length of a string value.", strings::strlen),
    cmd("time", 1, LOADING | STALE | FAST, (0, 0, 0), Srv, "2.6.0", "O(1)", "Returns the server time.", conn::time),
    cmd("touch", -2, READONLY | FAST, (1, -1, 1), Gen, "3.2.1", "O(N) where N is the number of keys that will be touched.", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", keyspace::touch),
    cmd("ttl", 2, READONLY | FAST, (1, 1, 1), Gen, "1.0.0", "O(1)", "Returns the expiration time in seconds of a key.", keyspace::ttl),
    cmd("type", 2, READONLY | FAST, (1, 1, 1), Gen, "1.0.0", "O(1)", "Determines the type of value stored at a key.", keyspace::key_type),
    cmd("unlink", -2, WRITE | FAST, (1, -1, 1), Gen, "4.0.0", "O(1) for each key removed regardless of its size.", "Asynchronously deletes one or more keys.", keyspace::del),
];

/// CLIENT subcommands, sorted by name.
#[rustfmt::skip]
static CLIENT: &[CommandSpec] = &[
    cmd("client|getname", 2, NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "2.6.9", "O(1)", "Returns the name of the connection.", conn::client_getname),
    cmd("client|help", 2, LOADING | STALE, (0, 0, 0), Conn, "5.0.0", "O(1)", "Returns helpful text about the different subcommands.", conn::client_help),
    cmd("client|id", 2, NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "5.0.0", "O(1)", "Returns the unique client ID of the connection.", conn::client_id),
    cmd("client|info", 2, NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "6.2.0", "O(1)", "Returns information about the connection.", conn::client_info),
    cmd("client|list", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "2.4.0", "O(N) where N is the number of client connections", "Lists open connections.", conn::client_list),
    cmd("client|no-evict", 3, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "7.0.0", "O(1)", "Sets the client eviction mode of the connection.", conn::client_no_evict),
    cmd("client|no-touch", 3, NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "7.2.0", "O(1)", "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.", conn::client_no_touch),
    cmd("client|setinfo", 4, NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "7.2.0", "O(1)", "Sets information specific to the client or connection.", conn::client_setinfo),
    cmd("client|setname", 3, NOSCRIPT | LOADING | STALE, (0, 0, 0), Conn, "2.6.9", "O(1)", "Sets the connection name.", conn::client_setname),
];

/// CLUSTER subcommands, sorted by name.
#[rustfmt::skip]
static CLUSTER: &[CommandSpec] = &[
    cmd("cluster|countkeysinslot", 3, 0, (0, 0, 0), Srv, "3.0.0", "O(N) where N is the number of keys in the slot", "Returns the number of keys in a hash slot held by this node.", cluster::countkeysinslot),
    cmd("cluster|getkeysinslot", 4, 0, (0, 0, 0), Srv, "3.0.0", "O(N) where N is the number of keys in the slot", "Returns the key names in a hash slot held by this node.", cluster::getkeysinslot),
    cmd("cluster|help", 2, LOADING | STALE, (0, 0, 0), Srv, "5.0.0", "O(1)", "Returns helpful text about the different subcommands.", cluster::help),
    cmd("cluster|info", 2, LOADING | STALE, (0, 0, 0), Srv, "3.0.0", "O(1)", "Returns information about the state of a node.", cluster::info),
    cmd("cluster|keyslot", 3, LOADING | STALE, (0, 0, 0), Srv, "3.0.0", "O(N) where N is the number of bytes in the key", "Returns the hash slot for a key.", cluster::keyslot),
    cmd("cluster|myid", 2, LOADING | STALE, (0, 0, 0), Srv, "3.0.0", "O(1)", "Returns the ID of a node.", cluster::myid),
    cmd("cluster|nodes", 2, LOADING | STALE, (0, 0, 0), Srv, "3.0.0", "O(N) where N is the total number of Cluster nodes", "Returns the cluster configuration for a node.", cluster::nodes),
    cmd("cluster|shards", 2, LOADING | STALE, (0, 0, 0), Srv, "7.0.0", "O(N) where N is the total number of cluster nodes", "Returns the mapping of cluster slots to shards.", cluster::shards),
    cmd("cluster|slots", 2, LOADING | STALE, (0, 0, 0), Srv, "3.0.0", "O(N) where N is the total number of Cluster nodes", "Returns the mapping of cluster slots to nodes.", cluster::slots),
];

/// COMMAND subcommands, sorted by name.
#[rustfmt::skip]
static COMMAND: &[CommandSpec] = &[
    cmd("command|count", 2, LOADING | STALE, (0, 0, 0), Srv, "2.8.13", "O(1)", "Returns a count of commands.", conn::command_count),
    cmd("command|docs", -2, LOADING | STALE, (0, 0, 0), Srv, "7.0.0", "O(N) where N is the number of commands to look up", "Returns documentary information about one, multiple or all commands.", conn::command_docs),
    cmd("command|help", 2, LOADING | STALE, (0, 0, 0), Srv, "5.0.0", "O(1)", "Returns helpful text about the different subcommands.", conn::command_help),
    cmd("command|info", -2, LOADING | STALE, (0, 0, 0), Srv, "2.8.13", "O(N) where N is the number of commands to look up", "Returns information about one, multiple or all commands.", conn::command_info),
    cmd("command|list", -2, LOADING | STALE, (0, 0, 0), Srv, "7.0.0", "O(N) where N is the total number of Redis commands", "Returns a list of command names.", conn::command_list),
];

/// CONFIG subcommands, sorted by name.
#[rustfmt::skip]
static CONFIG: &[CommandSpec] = &[
    cmd("config|get", -3, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), Srv, "2.0.0", "O(N) when N is the number of configuration parameters provided", "Returns the effective values of configuration parameters.", conn::config_get),
    cmd("config|help", 2, LOADING | STALE, (0, 0, 0), Srv, "5.0.0", "O(1)", "Returns helpful text about the different subcommands.", conn::config_help),
    cmd("config|resetstat", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), Srv, "2.0.0", "O(1)", "Resets the server's statistics.", conn::config_resetstat),
    cmd("config|rewrite", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), Srv, "2.8.0", "O(1)", "Persists the effective configuration to file.", conn::config_rewrite),
    cmd("config|set", -4, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), Srv, "2.0.0", "O(N) when N is the number of configuration parameters provided", "Sets configuration parameters in-flight.", conn::config_set),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn all_sorted(table: &[CommandSpec]) -> bool {
        table.windows(2).all(|w| w[0].short_name() < w[1].short_name())
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(all_sorted(COMMANDS));
        for spec in COMMANDS {
            assert!(all_sorted(spec.subcommands), "{}", spec.name);
            for sub in spec.subcommands {
                assert_eq!(sub.name.split_once('|').map(|(c, _)| c), Some(spec.name));
            }
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").map(|s| s.name), Some("get"));
        assert_eq!(lookup(b"APPEND").map(|s| s.name), Some("append"));
        assert_eq!(lookup(b"unlink").map(|s| s.name), Some("unlink"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"").is_none());
        assert_eq!(lookup(b"client").and_then(|c| c.subcommand(b"SETNAME")).map(|s| s.name), Some("client|setname"));
    }

    #[test]
    fn arity_follows_redis() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
    }

    #[test]
    fn acl_categories_follow_flags_and_group() {
        assert_eq!(lookup(b"get").unwrap().acl_categories(), ["@read", "@string", "@fast"]);
        assert_eq!(lookup(b"flushall").unwrap().acl_categories(), ["@keyspace", "@write", "@slow", "@dangerous"]);
        assert_eq!(lookup(b"ping").unwrap().acl_categories(), ["@fast", "@connection"]);
    }

    /// An invocation of every keyed command in the table, to parse into the core's `Command`.
    fn example(name: &str) -> Option<&'static [&'static str]> {
        let args: &'static [&'static str] = match name {
            "append" => &["append", "k", "v"],
            "decr" => &["decr", "k"],
            "decrby" => &["decrby", "k", "2"],
            "del" => &["del", "k"],
            "exists" => &["exists", "k"],
            "expire" => &["expire", "k", "10"],
            "expireat" => &["expireat", "k", "2000000000"],
            "expiretime" => &["expiretime", "k"],
            "get" => &["get", "k"],
            "getdel" => &["getdel", "k"],
            // GETEX without options only reads (the core routes it as a read); Redis flags it WRITE for its options.
            "getex" => &["getex", "k", "ex", "10"],
            "getrange" => &["getrange", "k", "0", "1"],
            "getset" => &["getset", "k", "v"],
            "incr" => &["incr", "k"],
            "incrby" => &["incrby", "k", "2"],
            "incrbyfloat" => &["incrbyfloat", "k", "1.5"],
            "mget" => &["mget", "k"],
            "mset" => &["mset", "k", "v"],
            "msetnx" => &["msetnx", "k", "v"],
            "persist" => &["persist", "k"],
            "pexpire" => &["pexpire", "k", "10"],
            "pexpireat" => &["pexpireat", "k", "2000000000000"],
            "pexpiretime" => &["pexpiretime", "k"],
            "psetex" => &["psetex", "k", "100", "v"],
            "pttl" => &["pttl", "k"],
            "set" => &["set", "k", "v"],
            "setex" => &["setex", "k", "10", "v"],
            "setnx" => &["setnx", "k", "v"],
            "setrange" => &["setrange", "k", "1", "v"],
            "strlen" => &["strlen", "k"],
            "touch" => &["touch", "k"],
            "ttl" => &["ttl", "k"],
            "type" => &["type", "k"],
            "unlink" => &["unlink", "k"],
            _ => return None,
        };
        Some(args)
    }

    #[test]
    fn table_flags_and_core_classifiers_agree() {
        // The table's flags (what COMMAND reports, what OOM refuses) and the core's classifiers (what routes a
        // read to any replica, what refuses under memory pressure) must say the same of every keyed data command.
        // A new keyed command fails here until it has an example.
        for spec in COMMANDS.iter().filter(|s| s.first_key > 0) {
            let parsed = match example(spec.name) {
                Some(args) => (spec.parse)(args.iter().map(|a| Bytes::from_static(a.as_bytes())).collect()),
                None if matches!(spec.group, Group::Server) => continue, // LOCK.* and SHOAL.*: not data commands.
                None => panic!("{}: give it an example invocation in this test", spec.name),
            };
            let Ok(Parsed::Data(cmd)) = parsed else { panic!("{}: the example parses to a data command", spec.name) };
            let readonly = spec.flags & READONLY != 0;
            assert_eq!(cmd.is_read(), readonly, "{}: READONLY flag vs Command::is_read", spec.name);
            assert_eq!(spec.flags & WRITE != 0, !readonly, "{}: exactly one of WRITE and READONLY", spec.name);
            let denyoom = spec.flags & DENYOOM != 0;
            assert_eq!(cmd.may_grow(), denyoom, "{}: DENYOOM flag vs Command::may_grow", spec.name);
            if readonly {
                assert!(!cmd.may_grow(), "{}: a read never grows memory", spec.name);
            }
        }
    }
}
