//! Unit tests of the node on hand-built commands: Redis semantics, TTLs, active expiry, eviction, versions.

use bytes::Bytes;

use super::*;
use crate::core::command::{ExpireAt, ExpireCond, GetExTtl, SetCond, SetTtl, TimeUnit};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn node() -> Node {
    Node::new(NodeConfig::default(), 42)
}

fn set(key: &str, val: &str) -> Command {
    Command::Set { key: b(key), value: b(val), cond: SetCond::Always, ttl: SetTtl::Clear, get: false, reply_int: false }
}

fn get(key: &str) -> Command {
    Command::Get { key: b(key) }
}

fn ttl(key: &str) -> Command {
    Command::Ttl { key: b(key), unit: TimeUnit::Millis }
}

const T0: Millis = 1_700_000_000_000;

#[test]
fn set_then_get_returns_the_value() {
    let mut n = node();
    assert_eq!(n.execute(T0, set("k", "v")), Reply::Ok);
    assert_eq!(n.execute(T0, get("k")), Reply::Bulk(b("v")));
    assert_eq!(n.execute(T0, get("missing")), Reply::Nil);
    assert_eq!((n.stats().keyspace_hits, n.stats().keyspace_misses), (1, 1));
}

#[test]
fn set_nx_xx_get_and_keepttl() {
    let mut n = node();
    let with = |cond, ttl, get| Command::Set { key: b("k"), value: b("2"), cond, ttl, get, reply_int: false };
    assert_eq!(n.execute(T0, with(SetCond::IfPresent, SetTtl::Clear, false)), Reply::Nil);
    assert_eq!(n.execute(T0, with(SetCond::IfAbsent, SetTtl::At(ExpireAt::InMs(5_000)), false)), Reply::Ok);
    assert_eq!(n.execute(T0, with(SetCond::IfAbsent, SetTtl::Clear, true)), Reply::Bulk(b("2")));
    assert_eq!(
        n.execute(
            T0,
            Command::Set {
                key: b("k"),
                value: b("3"),
                cond: SetCond::IfPresent,
                ttl: SetTtl::Keep,
                get: true,
                reply_int: false
            }
        ),
        Reply::Bulk(b("2"))
    );
    assert_eq!(n.execute(T0 + 1_000, ttl("k")), Reply::Int(4_000));
    assert_eq!(n.execute(T0, set("k", "4")), Reply::Ok);
    assert_eq!(n.execute(T0, ttl("k")), Reply::Int(-1), "plain SET clears the TTL");
}

#[test]
fn setnx_answers_integers() {
    let mut n = node();
    let nx = Command::Set {
        key: b("k"),
        value: b("v"),
        cond: SetCond::IfAbsent,
        ttl: SetTtl::Clear,
        get: false,
        reply_int: true,
    };
    assert_eq!(n.execute(T0, nx.clone()), Reply::Int(1));
    assert_eq!(n.execute(T0, nx), Reply::Int(0));
}

#[test]
fn expired_keys_are_never_returned() {
    let mut n = node();
    n.execute(
        T0,
        Command::Set {
            key: b("k"),
            value: b("v"),
            cond: SetCond::Always,
            ttl: SetTtl::At(ExpireAt::InMs(100)),
            get: false,
            reply_int: false,
        },
    );
    assert_eq!(n.execute(T0 + 99, get("k")), Reply::Bulk(b("v")));
    assert_eq!(n.execute(T0 + 100, get("k")), Reply::Nil);
    assert_eq!(n.execute(T0 + 100, ttl("k")), Reply::Int(-2));
    assert_eq!(n.execute(T0 + 100, Command::Exists { keys: vec![b("k")] }), Reply::Int(0));
}

#[test]
fn active_expiry_reclaims_keys_nobody_reads() {
    let mut n = node();
    let mut out = Outbox::new();
    n.handle(T0, Input::Start, &mut out);
    assert!(matches!(out.drain().next(), Some(Output::Schedule { timer: TimerId::ActiveExpire, .. })));
    for i in 0..5_000 {
        let k = format!("k{i}");
        n.execute(
            T0,
            Command::Set {
                key: b(&k),
                value: b("v"),
                cond: SetCond::Always,
                ttl: SetTtl::At(ExpireAt::InMs(50)),
                get: false,
                reply_int: false,
            },
        );
    }
    n.execute(T0, set("keep", "v"));
    // A pass removes at most active_expire_keys_max keys and then asks to run again almost at once.
    n.handle(T0 + 60, Input::Timer(TimerId::ActiveExpire), &mut out);
    let next: Vec<_> = out.drain().collect();
    assert_eq!(next, vec![Output::Schedule { after_ms: 1, timer: TimerId::ActiveExpire }]);
    n.handle(T0 + 61, Input::Timer(TimerId::ActiveExpire), &mut out);
    n.handle(T0 + 62, Input::Timer(TimerId::ActiveExpire), &mut out);
    assert_eq!(n.store().len(), 1);
    assert_eq!(n.store().stats().expired_keys, 5_000);
}

#[test]
fn expire_options_follow_redis() {
    let mut n = node();
    n.execute(T0, set("k", "v"));
    let exp = |ms, cond| Command::Expire { key: b("k"), at: ExpireAt::InMs(ms), cond };
    assert_eq!(n.execute(T0, exp(10_000, ExpireCond::IfTtl)), Reply::Int(0));
    assert_eq!(n.execute(T0, exp(10_000, ExpireCond::Less)), Reply::Int(1), "no TTL counts as infinite");
    assert_eq!(n.execute(T0, exp(20_000, ExpireCond::Less)), Reply::Int(0));
    assert_eq!(n.execute(T0, exp(20_000, ExpireCond::Greater)), Reply::Int(1));
    assert_eq!(n.execute(T0, exp(5_000, ExpireCond::IfNoTtl)), Reply::Int(0));
    assert_eq!(n.execute(T0, exp(30_000, ExpireCond::IfTtlAndLess)), Reply::Int(0));
    assert_eq!(n.execute(T0, exp(15_000, ExpireCond::IfTtlAndLess)), Reply::Int(1));
    assert_eq!(n.execute(T0, ttl("k")), Reply::Int(15_000));
    assert_eq!(n.execute(T0, Command::Persist { key: b("k") }), Reply::Int(1));
    assert_eq!(n.execute(T0, Command::Persist { key: b("k") }), Reply::Int(0));
    assert_eq!(n.execute(T0, exp(-1, ExpireCond::Always)), Reply::Int(1), "a past time deletes");
    assert_eq!(n.execute(T0, get("k")), Reply::Nil);
    assert_eq!(n.execute(T0, exp(10, ExpireCond::Always)), Reply::Int(0), "missing key");
}

#[test]
fn getex_and_getdel() {
    let mut n = node();
    n.execute(T0, set("k", "v"));
    let gx = |ttl| Command::GetEx { key: b("k"), ttl };
    assert_eq!(n.execute(T0, gx(GetExTtl::At(ExpireAt::InMs(1_000)))), Reply::Bulk(b("v")));
    assert_eq!(n.execute(T0, ttl("k")), Reply::Int(1_000));
    assert_eq!(n.execute(T0, gx(GetExTtl::Persist)), Reply::Bulk(b("v")));
    assert_eq!(n.execute(T0, ttl("k")), Reply::Int(-1));
    assert_eq!(n.execute(T0, Command::GetDel { key: b("k") }), Reply::Bulk(b("v")));
    assert_eq!(n.execute(T0, Command::GetDel { key: b("k") }), Reply::Nil);
}

#[test]
fn counters_keep_ttl_and_reject_non_integers_and_overflow() {
    let mut n = node();
    let incr = |d| Command::IncrBy { key: b("c"), delta: d };
    assert_eq!(n.execute(T0, incr(5)), Reply::Int(5));
    n.execute(T0, Command::Expire { key: b("c"), at: ExpireAt::InMs(9_000), cond: ExpireCond::Always });
    assert_eq!(n.execute(T0, incr(-7)), Reply::Int(-2));
    assert_eq!(n.execute(T0, Command::Ttl { key: b("c"), unit: TimeUnit::Millis }), Reply::Int(9_000));
    n.execute(T0, set("c", &i64::MAX.to_string()));
    assert_eq!(n.execute(T0, incr(1)), Reply::err(crate::core::reply::ERR_OVERFLOW));
    n.execute(T0, set("c", "abc"));
    assert_eq!(n.execute(T0, incr(1)), Reply::err(crate::core::reply::ERR_NOT_INTEGER));
    n.execute(T0, set("f", "10.5"));
    assert_eq!(n.execute(T0, Command::IncrByFloat { key: b("f"), delta: 0.1 }), Reply::Bulk(b("10.6")));
}

#[test]
fn append_strlen_setrange_getrange() {
    let mut n = node();
    assert_eq!(n.execute(T0, Command::Append { key: b("s"), value: b("Hello") }), Reply::Int(5));
    assert_eq!(n.execute(T0, Command::Append { key: b("s"), value: b(" World") }), Reply::Int(11));
    assert_eq!(n.execute(T0, Command::StrLen { key: b("s") }), Reply::Int(11));
    assert_eq!(n.execute(T0, Command::SetRange { key: b("s"), offset: 6, value: b("Redis") }), Reply::Int(11));
    assert_eq!(n.execute(T0, get("s")), Reply::Bulk(b("Hello Redis")));
    assert_eq!(n.execute(T0, Command::SetRange { key: b("z"), offset: 3, value: b("x") }), Reply::Int(4));
    assert_eq!(n.execute(T0, get("z")), Reply::Bulk(Bytes::from_static(b"\0\0\0x")));
    assert_eq!(n.execute(T0, Command::GetRange { key: b("s"), start: -5, end: -1 }), Reply::Bulk(b("Redis")));
}

#[test]
fn mset_mget_msetnx_del_exists() {
    let mut n = node();
    let pairs = vec![(b("a"), b("1")), (b("b"), b("2"))];
    assert_eq!(n.execute(T0, Command::MSet { pairs, if_none_exist: false }), Reply::Ok);
    assert_eq!(
        n.execute(T0, Command::MGet { keys: vec![b("a"), b("x"), b("b")] }),
        Reply::Array(vec![Reply::Bulk(b("1")), Reply::Nil, Reply::Bulk(b("2"))])
    );
    assert_eq!(
        n.execute(T0, Command::MSet { pairs: vec![(b("a"), b("9")), (b("c"), b("3"))], if_none_exist: true }),
        Reply::Int(0)
    );
    assert_eq!(n.execute(T0, get("c")), Reply::Nil);
    assert_eq!(n.execute(T0, Command::Exists { keys: vec![b("a"), b("a"), b("x")] }), Reply::Int(2));
    assert_eq!(n.execute(T0, Command::Del { keys: vec![b("a"), b("x"), b("b")] }), Reply::Int(2));
    assert_eq!(n.execute(T0, Command::DbSize), Reply::Int(0));
}

#[test]
fn keys_and_scan_match() {
    let mut n = node();
    for i in 0..300 {
        n.execute(T0, set(&format!("user:{i}"), "x"));
    }
    n.execute(T0, set("other", "x"));
    let Reply::Array(keys) = n.execute(T0, Command::Keys { pattern: b("user:1*") }) else { panic!() };
    assert_eq!(keys.len(), 111);
    let mut cursor = 0;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let r = n.execute(T0, Command::Scan { cursor, pattern: Some(b("user:*")), count: 10, type_filter: None });
        let Reply::Array(parts) = r else { panic!() };
        let Reply::Bulk(c) = &parts[0] else { panic!() };
        let Reply::Array(ks) = &parts[1] else { panic!() };
        seen.extend(ks.iter().map(|k| format!("{k:?}")));
        cursor = std::str::from_utf8(c).unwrap().parse().unwrap();
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
}

#[test]
fn maxmemory_evicts_instead_of_growing_and_noeviction_refuses() {
    let cfg = NodeConfig { maxmemory_bytes: Some(100_000), ..NodeConfig::default() };
    let mut n = Node::new(cfg, 1);
    for i in 0..5_000 {
        assert_eq!(n.execute(T0 + i, set(&format!("k{i}"), &"x".repeat(100))), Reply::Ok);
    }
    assert!(n.store().used_bytes() <= 100_000);
    assert!(n.store().stats().evicted_keys > 4_000);
    assert_eq!(n.execute(T0 + 5_000, get("k4999")), Reply::Bulk(b(&"x".repeat(100))), "recent keys survive");

    let cfg = NodeConfig {
        maxmemory_bytes: Some(10_000),
        eviction: crate::core::store::EvictionPolicy::NoEviction,
        ..NodeConfig::default()
    };
    let mut n = Node::new(cfg, 1);
    let mut oom = 0;
    for i in 0..200 {
        if n.execute(T0, set(&format!("k{i}"), &"x".repeat(100))).is_error() {
            oom += 1;
        }
    }
    assert!(oom > 100);
    assert_eq!(n.execute(T0, get("k0")), Reply::Bulk(b(&"x".repeat(100))), "reads still work");
    assert_eq!(n.execute(T0, Command::Del { keys: vec![b("k0")] }), Reply::Int(1), "deletes still work");
}

#[test]
fn oversized_values_are_refused_without_touching_data() {
    let cfg = NodeConfig { value_bytes_max: 10, ..NodeConfig::default() };
    let mut n = Node::new(cfg, 1);
    n.execute(T0, set("k", "small"));
    assert!(n.execute(T0, set("k", "this is far too long")).is_error());
    assert!(n.execute(T0, Command::Append { key: b("k"), value: b("123456") }).is_error());
    assert_eq!(n.execute(T0, get("k")), Reply::Bulk(b("small")));
}

#[test]
fn versions_increase_even_when_the_clock_goes_back() {
    let mut n = node();
    n.execute(T0, set("k", "1"));
    let v1 = n.store().peek(b"k", T0).unwrap().vector.clone();
    n.execute(T0 - 60_000, set("k", "2"));
    let v2 = n.store().peek(b"k", T0).unwrap().vector.clone();
    assert_eq!(v2.compare(&v1), crate::core::vversion::Relation::After);
}

#[test]
fn same_seed_same_inputs_same_state() {
    let run = || {
        let cfg = NodeConfig { maxmemory_bytes: Some(20_000), ..NodeConfig::default() };
        let mut n = Node::new(cfg, 9);
        for i in 0..1_000 {
            n.execute(T0 + i, set(&format!("k{}", i % 300), "0123456789"));
        }
        let Reply::Array(keys) = n.execute(T0 + 2_000, Command::Keys { pattern: b("*") }) else { panic!() };
        keys
    };
    assert_eq!(run(), run());
}
