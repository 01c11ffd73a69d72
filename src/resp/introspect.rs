//! Replies to COMMAND, COMMAND INFO / COUNT / LIST / DOCS and the HELP subcommands, built from `table`.
//!
//! The shapes are Redis 7's, because clients read them: redis-cli calls `COMMAND DOCS` at start-up and asserts
//! that every key and string in it is a bulk string; cluster-aware clients read the key positions from
//! `COMMAND`. Maps are `Reply::Map`, so a RESP2 connection gets the flattened arrays Redis sends.

use bytes::Bytes;

use super::command::ConnCommand;
use super::table::{lookup, CommandSpec, COMMANDS, READONLY, WRITE};
use crate::core::reply::Reply;

/// The reply to a COMMAND or HELP connection command; `None` for any other command.
pub fn command_reply(command: &ConnCommand) -> Option<Reply> {
    Some(match command {
        ConnCommand::CommandInfo(names) if names.is_empty() => Reply::Array(COMMANDS.iter().map(info).collect()),
        ConnCommand::CommandInfo(names) => {
            Reply::Array(names.iter().map(|name| find(name).map_or(Reply::Nil, info)).collect())
        }
        ConnCommand::CommandCount => Reply::Int(COMMANDS.len() as i64),
        ConnCommand::CommandList => Reply::Array(COMMANDS.iter().map(|spec| bulk(spec.name)).collect()),
        ConnCommand::CommandDocs(names) if names.is_empty() => Reply::Map(COMMANDS.iter().map(docs_entry).collect()),
        ConnCommand::CommandDocs(names) => {
            Reply::Map(names.iter().filter_map(|name| find(name)).map(docs_entry).collect())
        }
        ConnCommand::Help(lines) => Reply::Array(lines.iter().map(|&line| Reply::simple(line)).collect()),
        _ => return None,
    })
}

/// A command by its full name (`get`, `client|setname`), any case.
fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
        None => lookup(name),
    }
}

/// A bulk string from static text.
fn bulk(text: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(text.as_bytes()))
}

/// A map with bulk-string keys.
fn map(pairs: Vec<(&'static str, Reply)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(key, value)| (bulk(key), value)).collect())
}

/// One COMMAND entry: name, arity, flags, first key, last key, step, ACL categories, tips, key specs, subcommands.
fn info(spec: &'static CommandSpec) -> Reply {
    Reply::Array(vec![
        bulk(spec.name),
        Reply::Int(spec.arity.into()),
        Reply::Set(spec.flag_names().map(Reply::simple).collect()),
        Reply::Int(spec.first_key.into()),
        Reply::Int(spec.last_key.into()),
        Reply::Int(spec.key_step.into()),
        Reply::Set(spec.acl_categories().into_iter().map(Reply::simple).collect()),
        Reply::Set(Vec::new()),
        Reply::Array(key_specs(spec)),
        Reply::Array(spec.subcommands.iter().map(info).collect()),
    ])
}

/// Redis 7 key specs, derived from the first/last/step positions.
fn key_specs(spec: &CommandSpec) -> Vec<Reply> {
    if spec.first_key == 0 {
        return Vec::new();
    }
    let flags: &[&'static str] = match spec.flags {
        f if f & WRITE != 0 => &["RW", "update"],
        f if f & READONLY != 0 => &["RO", "access"],
        _ => &[],
    };
    let last_key = if spec.last_key < 0 { spec.last_key } else { spec.last_key - spec.first_key };
    vec![map(vec![
        ("flags", Reply::Set(flags.iter().map(|&f| Reply::simple(f)).collect())),
        (
            "begin_search",
            map(vec![("type", bulk("index")), ("spec", map(vec![("index", Reply::Int(spec.first_key.into()))]))]),
        ),
        (
            "find_keys",
            map(vec![
                ("type", bulk("range")),
                (
                    "spec",
                    map(vec![
                        ("lastkey", Reply::Int(last_key.into())),
                        ("keystep", Reply::Int(spec.key_step.into())),
                        ("limit", Reply::Int(0)),
                    ]),
                ),
            ]),
        ),
    ])]
}

/// One COMMAND DOCS entry: the name, and a map of summary, since, group, complexity and subcommands.
fn docs_entry(spec: &'static CommandSpec) -> (Reply, Reply) {
    let mut fields = vec![
        ("summary", bulk(spec.summary)),
        ("since", bulk(spec.since)),
        ("group", bulk(spec.group.name())),
        ("complexity", bulk(spec.complexity)),
    ];
    if !spec.subcommands.is_empty() {
        fields.push(("subcommands", Reply::Map(spec.subcommands.iter().map(docs_entry).collect())));
    }
    (bulk(spec.name), map(fields))
}
