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
///
/// Sets and arrays where Redis 7 uses them (only RESP3 tells them apart).
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
        Reply::Set(key_specs(spec)),
        match spec.subcommands {
            [] => Reply::Set(Vec::new()),
            subs => Reply::Array(subs.iter().map(info).collect()),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode::{encode, Protocol};
    use crate::resp::value::{decode, Value};
    use bytes::BytesMut;

    fn wire(reply: &Reply, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(reply, proto, &mut out);
        out.to_vec()
    }

    fn reply(command: ConnCommand) -> Reply {
        command_reply(&command).unwrap()
    }

    fn names(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|n| Bytes::copy_from_slice(n.as_bytes())).collect()
    }

    /// Walks a decoded reply and checks that every map key is a bulk string, as redis-cli asserts.
    fn map_keys_are_bulk(value: &Value) -> bool {
        match value {
            Value::Map(pairs) => pairs.iter().all(|(k, v)| matches!(k, Value::Bulk(_)) && map_keys_are_bulk(v)),
            Value::Array(items) | Value::Set(items) => items.iter().all(map_keys_are_bulk),
            _ => true,
        }
    }

    #[test]
    fn command_info_get_is_byte_identical_to_redis_7() {
        // Redis 7.0.15's answer to `HELLO 3` then `COMMAND INFO get nope`.
        let redis = concat!(
            "*2\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n",
            "~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n",
            "$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n",
            "$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n",
            "$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n_\r\n",
        );
        let ours = wire(&reply(ConnCommand::CommandInfo(names(&["GET", "nope"]))), Protocol::Resp3);
        assert_eq!(String::from_utf8(ours).unwrap(), redis);
    }

    #[test]
    fn command_lists_every_command_once() {
        let Reply::Array(all) = reply(ConnCommand::CommandInfo(vec![])) else { panic!("COMMAND is an array") };
        assert_eq!(reply(ConnCommand::CommandCount), Reply::Int(all.len() as i64));
        let Reply::Array(list) = reply(ConnCommand::CommandList) else { panic!("COMMAND LIST is an array") };
        assert_eq!(list.len(), all.len());
        assert!(list.contains(&Reply::bulk(b"get")) && list.contains(&Reply::bulk(b"client")));
        let Reply::Array(client) = reply(ConnCommand::CommandInfo(names(&["client|setname"]))) else { panic!() };
        assert!(matches!(&client[0], Reply::Array(fields) if fields[0] == Reply::bulk(b"client|setname")));
    }

    #[test]
    fn command_docs_has_the_shape_redis_cli_reads() {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let bytes = wire(&reply(ConnCommand::CommandDocs(vec![])), proto);
            let (value, _) = decode(&bytes).unwrap().unwrap();
            assert!(map_keys_are_bulk(&value));
            let pairs = match (proto, value) {
                (Protocol::Resp3, Value::Map(pairs)) => pairs,
                (Protocol::Resp2, Value::Array(flat)) => {
                    flat.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect()
                }
                (_, other) => panic!("COMMAND DOCS is a map, got {other:?}"),
            };
            assert_eq!(pairs.len(), COMMANDS.len());
            for (name, docs) in pairs {
                assert!(matches!(name, Value::Bulk(_)));
                assert!(matches!(docs, Value::Map(_) | Value::Array(_)));
            }
        }
        let Reply::Map(docs) = reply(ConnCommand::CommandDocs(names(&["get", "nope", "CLIENT"]))) else { panic!() };
        assert_eq!(docs.len(), 2, "unknown names are left out");
        assert_eq!(docs[0].0, Reply::bulk(b"get"));
        assert!(
            matches!(&docs[1].1, Reply::Map(fields) if fields.iter().any(|(k, _)| *k == Reply::bulk(b"subcommands")))
        );
    }

    #[test]
    fn help_is_simple_strings_and_others_are_not_ours() {
        assert_eq!(reply(ConnCommand::Help(&["a", "b"])), Reply::Array(vec![Reply::simple("a"), Reply::simple("b")]));
        assert_eq!(command_reply(&ConnCommand::Ping(None)), None);
    }
}
