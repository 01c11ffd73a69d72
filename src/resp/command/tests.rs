//! Unit tests for command parsing: every Redis error text, and the mapping of each command's options.

use bytes::Bytes;

use super::*;
use crate::core::command::{ExpireAt, ExpireCond, GetExTtl, SetCond, SetTtl, TimeUnit};

fn run(line: &str) -> Parsed {
    parse(line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect())
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn error(line: &str) -> String {
    match run(line) {
        Parsed::Error(Reply::Error(text)) => text.into_owned(),
        other => panic!("{line}: expected an error, got {other:?}"),
    }
}

fn data(line: &str) -> Command {
    match run(line) {
        Parsed::Data(command) => command,
        other => panic!("{line}: expected a data command, got {other:?}"),
    }
}

fn conn(line: &str) -> ConnCommand {
    match run(line) {
        Parsed::Conn(command) => command,
        other => panic!("{line}: expected a connection command, got {other:?}"),
    }
}

fn set(key: &str, value: &str, cond: SetCond, ttl: SetTtl, get: bool) -> Command {
    Command::Set { key: b(key), value: b(value), cond, ttl, get, reply_int: false }
}

#[test]
fn unknown_commands_show_their_first_args() {
    assert_eq!(error("foo a b"), "ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
    assert_eq!(error("foo"), "ERR unknown command 'foo', with args beginning with: ");
    assert_eq!(parse(vec![]), Parsed::Error(Reply::err("ERR unknown command '', with args beginning with: ")));
    let long = format!("foo {} {}", "x".repeat(100), "y".repeat(100));
    let expected =
        format!("ERR unknown command 'foo', with args beginning with: '{}' '{}' ", "x".repeat(100), "y".repeat(25));
    assert_eq!(error(&long), expected);
    let name = "z".repeat(200);
    assert!(error(&name).starts_with(&format!("ERR unknown command '{}',", "z".repeat(128))));
}

#[test]
fn wrong_arity_uses_the_lower_case_name() {
    assert_eq!(error("GET"), "ERR wrong number of arguments for 'get' command");
    assert_eq!(error("GET a b"), "ERR wrong number of arguments for 'get' command");
    assert_eq!(error("SET a"), "ERR wrong number of arguments for 'set' command");
    assert_eq!(error("PING a b"), "ERR wrong number of arguments for 'ping' command");
    assert_eq!(error("CLIENT"), "ERR wrong number of arguments for 'client' command");
    assert_eq!(error("client setname"), "ERR wrong number of arguments for 'client|setname' command");
    assert_eq!(error("MSET a b c"), "ERR wrong number of arguments for 'mset' command");
    assert_eq!(error("MSETNX a"), "ERR wrong number of arguments for 'msetnx' command");
}

#[test]
fn unknown_subcommands_point_to_help() {
    assert_eq!(error("CLIENT x"), "ERR unknown subcommand 'x'. Try CLIENT HELP.");
    assert_eq!(error("config foo bar"), "ERR unknown subcommand 'foo'. Try CONFIG HELP.");
    assert_eq!(error("command nope"), "ERR unknown subcommand 'nope'. Try COMMAND HELP.");
    assert!(matches!(conn("client help"), ConnCommand::Help(lines) if lines[0].starts_with("CLIENT")));
}

#[test]
fn names_ignore_case() {
    assert_eq!(data("gEt k"), Command::Get { key: b("k") });
    assert_eq!(data("GET k"), Command::Get { key: b("k") });
}

#[test]
fn set_options() {
    use ExpireAt::{AtMs, InMs};
    let plain = |cond, ttl| set("k", "v", cond, ttl, false);
    assert_eq!(data("SET k v"), plain(SetCond::Always, SetTtl::Clear));
    assert_eq!(data("SET k v nx"), plain(SetCond::IfAbsent, SetTtl::Clear));
    assert_eq!(data("SET k v XX"), plain(SetCond::IfPresent, SetTtl::Clear));
    assert_eq!(data("SET k v EX 10"), plain(SetCond::Always, SetTtl::At(InMs(10_000))));
    assert_eq!(data("SET k v px 10"), plain(SetCond::Always, SetTtl::At(InMs(10))));
    assert_eq!(data("SET k v EXAT 10"), plain(SetCond::Always, SetTtl::At(AtMs(10_000))));
    assert_eq!(data("SET k v PXAT 10"), plain(SetCond::Always, SetTtl::At(AtMs(10))));
    assert_eq!(data("SET k v KEEPTTL"), plain(SetCond::Always, SetTtl::Keep));
    assert_eq!(data("SET k v EX 1 EX 2"), plain(SetCond::Always, SetTtl::At(InMs(2_000))));
    assert_eq!(data("SET k v NX GET"), set("k", "v", SetCond::IfAbsent, SetTtl::Clear, true));
    assert_eq!(data("GETSET k v"), set("k", "v", SetCond::Always, SetTtl::Clear, true));
    assert_eq!(
        data("SETNX k v"),
        Command::Set {
            key: b("k"),
            value: b("v"),
            cond: SetCond::IfAbsent,
            ttl: SetTtl::Clear,
            get: false,
            reply_int: true
        }
    );
    assert_eq!(data("SETEX k 5 v"), plain(SetCond::Always, SetTtl::At(InMs(5_000))));
    assert_eq!(data("PSETEX k 5 v"), plain(SetCond::Always, SetTtl::At(InMs(5))));
}

#[test]
fn set_errors() {
    for line in [
        "SET k v NX XX",
        "SET k v XX NX",
        "SET k v EX 1 PX 1",
        "SET k v KEEPTTL EX 1",
        "SET k v EX 1 KEEPTTL",
        "SET k v EX",
        "SET k v PERSIST",
        "SET k v foo",
        "SET k v EX notanumber PX 1",
    ] {
        assert_eq!(error(line), "ERR syntax error", "{line}");
    }
    assert_eq!(error("SET k v EX 1.5"), "ERR value is not an integer or out of range");
    assert_eq!(error("SET k v EX 0"), "ERR invalid expire time in 'set' command");
    assert_eq!(error("SET k v PX -1"), "ERR invalid expire time in 'set' command");
    assert_eq!(error("SET k v EX 9223372036854776"), "ERR invalid expire time in 'set' command");
    assert!(matches!(data("SET k v EX 9223372036854775"), Command::Set { .. }));
    assert_eq!(error("SETEX k 0 v"), "ERR invalid expire time in 'setex' command");
    assert_eq!(error("SETEX k x v"), "ERR value is not an integer or out of range");
    assert_eq!(error("PSETEX k -5 v"), "ERR invalid expire time in 'psetex' command");
}

#[test]
fn getex_options() {
    let getex = |ttl| Command::GetEx { key: b("k"), ttl };
    assert_eq!(data("GETEX k"), getex(GetExTtl::Keep));
    assert_eq!(data("GETEX k PERSIST"), getex(GetExTtl::Persist));
    assert_eq!(data("GETEX k EX 3"), getex(GetExTtl::At(ExpireAt::InMs(3000))));
    assert_eq!(data("GETEX k PXAT 3"), getex(GetExTtl::At(ExpireAt::AtMs(3))));
    assert_eq!(error("GETEX k PERSIST EX 3"), "ERR syntax error");
    assert_eq!(error("GETEX k EX 3 PERSIST"), "ERR syntax error");
    assert_eq!(error("GETEX k NX"), "ERR syntax error");
    assert_eq!(error("GETEX k KEEPTTL"), "ERR syntax error");
    assert_eq!(error("GETEX k EX 0"), "ERR invalid expire time in 'getex' command");
}

#[test]
fn expire_family() {
    let expire = |at, cond| Command::Expire { key: b("k"), at, cond };
    assert_eq!(data("EXPIRE k 10"), expire(ExpireAt::InMs(10_000), ExpireCond::Always));
    assert_eq!(data("EXPIRE k -1"), expire(ExpireAt::InMs(-1_000), ExpireCond::Always));
    assert_eq!(data("PEXPIRE k 10 nx"), expire(ExpireAt::InMs(10), ExpireCond::IfNoTtl));
    assert_eq!(data("EXPIREAT k 10 XX"), expire(ExpireAt::AtMs(10_000), ExpireCond::IfTtl));
    assert_eq!(data("EXPIRE k 10 XX LT"), expire(ExpireAt::InMs(10_000), ExpireCond::IfTtlAndLess));
    assert_eq!(data("PEXPIREAT k 10 GT"), expire(ExpireAt::AtMs(10), ExpireCond::Greater));
    assert_eq!(data("EXPIRE k 10 LT"), expire(ExpireAt::InMs(10_000), ExpireCond::Less));
    assert_eq!(data("EXPIRE k 10 XX GT"), expire(ExpireAt::InMs(10_000), ExpireCond::Greater));
    let nx_err = "ERR NX and XX, GT or LT options at the same time are not compatible";
    assert_eq!(error("EXPIRE k 10 NX XX"), nx_err);
    assert_eq!(error("EXPIRE k 10 NX GT"), nx_err);
    assert_eq!(error("EXPIRE k 10 LT NX"), nx_err);
    assert_eq!(error("EXPIRE k 10 GT LT"), "ERR GT and LT options at the same time are not compatible");
    assert_eq!(error("EXPIRE k 10 FOO"), "ERR Unsupported option FOO");
    assert_eq!(error("EXPIRE k 10 NX FOO"), "ERR Unsupported option FOO");
    assert_eq!(error("EXPIRE k abc NX XX"), nx_err, "options are checked before the number");
    assert_eq!(error("EXPIRE k abc"), "ERR value is not an integer or out of range");
    assert_eq!(error("EXPIRE k 9223372036854776"), "ERR invalid expire time in 'expire' command");
    assert_eq!(error("EXPIREAT k -9223372036854776"), "ERR invalid expire time in 'expireat' command");
    assert_eq!(data("PEXPIRE k 9223372036854775807"), expire(ExpireAt::InMs(i64::MAX), ExpireCond::Always));
}

#[test]
fn counters() {
    let incr = |delta| Command::IncrBy { key: b("k"), delta };
    assert_eq!(data("INCR k"), incr(1));
    assert_eq!(data("DECR k"), incr(-1));
    assert_eq!(data("INCRBY k -5"), incr(-5));
    assert_eq!(data("DECRBY k 5"), incr(-5));
    assert_eq!(data("DECRBY k 9223372036854775807"), incr(-i64::MAX));
    assert_eq!(error("DECRBY k -9223372036854775808"), "ERR decrement would overflow");
    assert_eq!(error("INCRBY k 1x"), "ERR value is not an integer or out of range");
    assert_eq!(error("INCRBY k 01"), "ERR value is not an integer or out of range");
    assert_eq!(data("INCRBYFLOAT k 1.5"), Command::IncrByFloat { key: b("k"), delta: 1.5 });
    assert_eq!(error("INCRBYFLOAT k nan"), "ERR value is not a valid float");
    assert_eq!(error("INCRBYFLOAT k x"), "ERR value is not a valid float");
}

#[test]
fn ranges() {
    assert_eq!(data("GETRANGE k 0 -1"), Command::GetRange { key: b("k"), start: 0, end: -1 });
    assert_eq!(error("GETRANGE k a 1"), "ERR value is not an integer or out of range");
    assert_eq!(data("SETRANGE k 5 v"), Command::SetRange { key: b("k"), offset: 5, value: b("v") });
    assert_eq!(error("SETRANGE k -1 v"), "ERR offset is out of range");
    assert_eq!(error("SETRANGE k x v"), "ERR value is not an integer or out of range");
}

#[test]
fn multi_key_commands() {
    assert_eq!(data("MGET a b"), Command::MGet { keys: vec![b("a"), b("b")] });
    assert_eq!(data("DEL a b"), Command::Del { keys: vec![b("a"), b("b")] });
    assert_eq!(data("UNLINK a"), Command::Del { keys: vec![b("a")] });
    assert_eq!(data("EXISTS a a"), Command::Exists { keys: vec![b("a"), b("a")] });
    assert_eq!(data("TOUCH a"), Command::Touch { keys: vec![b("a")] });
    assert_eq!(
        data("MSET a 1 b 2"),
        Command::MSet { pairs: vec![(b("a"), b("1")), (b("b"), b("2"))], if_none_exist: false }
    );
    assert_eq!(data("MSETNX a 1"), Command::MSet { pairs: vec![(b("a"), b("1"))], if_none_exist: true });
}

#[test]
fn simple_keyspace_commands() {
    assert_eq!(data("GETDEL k"), Command::GetDel { key: b("k") });
    assert_eq!(data("APPEND k v"), Command::Append { key: b("k"), value: b("v") });
    assert_eq!(data("STRLEN k"), Command::StrLen { key: b("k") });
    assert_eq!(data("TTL k"), Command::Ttl { key: b("k"), unit: TimeUnit::Seconds });
    assert_eq!(data("PTTL k"), Command::Ttl { key: b("k"), unit: TimeUnit::Millis });
    assert_eq!(data("EXPIRETIME k"), Command::ExpireTime { key: b("k"), unit: TimeUnit::Seconds });
    assert_eq!(data("PEXPIRETIME k"), Command::ExpireTime { key: b("k"), unit: TimeUnit::Millis });
    assert_eq!(data("PERSIST k"), Command::Persist { key: b("k") });
    assert_eq!(data("TYPE k"), Command::Type { key: b("k") });
    assert_eq!(data("DBSIZE"), Command::DbSize);
    assert_eq!(data("RANDOMKEY"), Command::RandomKey);
    assert_eq!(data("KEYS a*"), Command::Keys { pattern: b("a*") });
    assert_eq!(data("FLUSHALL"), Command::FlushAll);
    assert_eq!(data("FLUSHDB async"), Command::FlushAll);
    assert_eq!(data("FLUSHALL SYNC"), Command::FlushAll);
    assert_eq!(error("FLUSHALL now"), "ERR syntax error");
    assert_eq!(error("FLUSHALL ASYNC SYNC"), "ERR syntax error");
}

#[test]
fn scan_options() {
    let scan = |cursor, pattern: Option<&str>, count, type_filter: Option<&str>| Command::Scan {
        cursor,
        pattern: pattern.map(b),
        count,
        type_filter: type_filter.map(b),
    };
    assert_eq!(data("SCAN 0"), scan(0, None, 10, None));
    assert_eq!(data("SCAN 42 MATCH a* COUNT 100 TYPE string"), scan(42, Some("a*"), 100, Some("string")));
    assert_eq!(data("SCAN 0 match *"), scan(0, None, 10, None));
    assert_eq!(error("SCAN x"), "ERR invalid cursor");
    assert_eq!(error("SCAN 18446744073709551616"), "ERR invalid cursor");
    assert_eq!(error("SCAN 0 COUNT 0"), "ERR syntax error");
    assert_eq!(error("SCAN 0 COUNT -1"), "ERR syntax error");
    assert_eq!(error("SCAN 0 COUNT x"), "ERR value is not an integer or out of range");
    assert_eq!(error("SCAN 0 COUNT"), "ERR syntax error");
    assert_eq!(error("SCAN 0 FOO bar"), "ERR syntax error");
}

#[test]
fn connection_commands() {
    assert_eq!(conn("PING"), ConnCommand::Ping(None));
    assert_eq!(conn("PING hi"), ConnCommand::Ping(Some(b("hi"))));
    assert_eq!(conn("ECHO hi"), ConnCommand::Echo(b("hi")));
    assert_eq!(conn("SELECT 0"), ConnCommand::Select(0));
    assert_eq!(error("SELECT x"), "ERR value is not an integer or out of range");
    assert_eq!(conn("QUIT"), ConnCommand::Quit);
    assert_eq!(conn("RESET"), ConnCommand::Reset);
    assert_eq!(conn("TIME"), ConnCommand::Time);
    assert_eq!(conn("AUTH pw"), ConnCommand::Auth { user: None, pass: b("pw") });
    assert_eq!(conn("AUTH u pw"), ConnCommand::Auth { user: Some(b("u")), pass: b("pw") });
    assert_eq!(error("AUTH a b c"), "ERR syntax error");
    assert_eq!(conn("INFO Server CLIENTS"), ConnCommand::Info(vec!["server".into(), "clients".into()]));
    assert_eq!(conn("INFO"), ConnCommand::Info(vec![]));
}

#[test]
fn hello() {
    let hello = |proto, auth: Option<(&str, &str)>, setname: Option<&str>| ConnCommand::Hello {
        proto,
        auth: auth.map(|(u, p)| (b(u), b(p))),
        setname: setname.map(b),
    };
    assert_eq!(conn("HELLO"), hello(None, None, None));
    assert_eq!(conn("HELLO 3"), hello(Some(3), None, None));
    assert_eq!(conn("HELLO 2 AUTH u p SETNAME me"), hello(Some(2), Some(("u", "p")), Some("me")));
    assert_eq!(error("HELLO 4"), "NOPROTO unsupported protocol version");
    assert_eq!(error("HELLO x"), "ERR Protocol version is not an integer or out of range");
    assert_eq!(error("HELLO 3 AUTH u"), "ERR Syntax error in HELLO option 'AUTH'");
    assert_eq!(error("HELLO 3 FOO"), "ERR Syntax error in HELLO option 'FOO'");
}

#[test]
fn client_subcommands() {
    assert_eq!(conn("CLIENT SETNAME me"), ConnCommand::ClientSetName(b("me")));
    assert_eq!(conn("client getname"), ConnCommand::ClientGetName);
    assert_eq!(conn("CLIENT ID"), ConnCommand::ClientId);
    assert_eq!(conn("CLIENT INFO"), ConnCommand::ClientInfo);
    assert_eq!(conn("CLIENT LIST"), ConnCommand::ClientList);
    assert_eq!(
        conn("CLIENT SETINFO lib-name redis-rs"),
        ConnCommand::ClientSetInfo { attr: ClientAttr::LibName, value: b("redis-rs") }
    );
    assert_eq!(
        conn("CLIENT SETINFO LIB-VER 1.0"),
        ConnCommand::ClientSetInfo { attr: ClientAttr::LibVer, value: b("1.0") }
    );
    assert_eq!(error("CLIENT SETINFO foo x"), "ERR Unrecognized option 'foo'");
    assert_eq!(conn("CLIENT NO-EVICT on"), ConnCommand::ClientNoEvict(true));
    assert_eq!(conn("CLIENT NO-TOUCH OFF"), ConnCommand::ClientNoTouch(false));
    assert_eq!(error("CLIENT NO-EVICT maybe"), "ERR syntax error");
    let bad_name = parse(vec![b("CLIENT"), b("SETNAME"), b("a b")]);
    assert_eq!(
        bad_name,
        Parsed::Error(Reply::err("ERR Client names cannot contain spaces, newlines or special characters."))
    );
}

#[test]
fn command_and_config_subcommands() {
    assert_eq!(conn("COMMAND"), ConnCommand::CommandInfo(vec![]));
    assert_eq!(conn("COMMAND COUNT"), ConnCommand::CommandCount);
    assert_eq!(conn("COMMAND LIST"), ConnCommand::CommandList);
    assert_eq!(conn("COMMAND INFO get set"), ConnCommand::CommandInfo(vec![b("get"), b("set")]));
    assert_eq!(conn("COMMAND DOCS"), ConnCommand::CommandDocs(vec![]));
    assert_eq!(conn("COMMAND DOCS get"), ConnCommand::CommandDocs(vec![b("get")]));
    assert_eq!(conn("CONFIG GET maxmemory save"), ConnCommand::ConfigGet(vec![b("maxmemory"), b("save")]));
    assert_eq!(conn("CONFIG SET maxmemory 1"), ConnCommand::ConfigSet);
    assert_eq!(conn("CONFIG RESETSTAT"), ConnCommand::ConfigResetStat);
    assert_eq!(conn("CONFIG REWRITE"), ConnCommand::ConfigRewrite);
    assert_eq!(error("CONFIG GET"), "ERR wrong number of arguments for 'config|get' command");
}

#[test]
fn shoal_consistency() {
    use crate::core::replication::{Consistency, Levels};
    assert_eq!(conn("SHOAL.CONSISTENCY"), ConnCommand::Consistency(None));
    let all_one = Levels { read: Consistency::All, write: Consistency::One };
    assert_eq!(conn("shoal.consistency all One"), ConnCommand::Consistency(Some(all_one)));
    assert_eq!(
        error("SHOAL.CONSISTENCY two QUORUM"),
        "ERR unknown consistency level 'two' (expected ONE, QUORUM or ALL)"
    );
    assert_eq!(error("SHOAL.CONSISTENCY ONE x"), "ERR unknown consistency level 'x' (expected ONE, QUORUM or ALL)");
    assert_eq!(error("SHOAL.CONSISTENCY ONE"), "ERR wrong number of arguments for 'shoal.consistency' command");
    assert_eq!(error("SHOAL.CONSISTENCY ONE ONE ONE"), "ERR wrong number of arguments for 'shoal.consistency' command");
}
