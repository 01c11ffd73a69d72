//! The checkers catch planted violations (and pass clean states), so a checker that cannot fail cannot hide.

use super::*;
use shoal::core::membership::view::live_digest;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i as u8], 7946))
}

fn info(i: usize, incarnation: u64, state: MemberState) -> MemberInfo {
    MemberInfo {
        name: format!("n{i}"),
        gossip_addr: addr(i),
        client_addr: SocketAddr::from(([10, 0, 0, 1 + i as u8], 6379)),
        incarnation,
        state,
    }
}

/// Three running nodes that all see each other alive at incarnation 100 + i.
fn agreed() -> Vec<Observed> {
    let view: Vec<MemberInfo> = (0..3).map(|i| info(i, 100 + i as u64, MemberState::Alive)).collect();
    (0..3)
        .map(|i| Observed {
            name: format!("n{i}"),
            addr: addr(i),
            live: Some(LiveNode { incarnation: 100 + i as u64, view: view.clone(), digest: live_digest(&view) }),
        })
        .collect()
}

fn kinds(found: &[Violation]) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = found.iter().map(|v| v.kind).collect();
    kinds.dedup();
    kinds
}

fn set_view(node: &mut Observed, view: Vec<MemberInfo>) {
    let live = node.live.as_mut().expect("running");
    live.digest = live_digest(&view);
    live.view = view;
}

#[test]
fn an_agreed_cluster_passes() {
    assert_eq!(membership_converged(0, &agreed()), vec![]);
    assert_eq!(membership_safe(0, &agreed(), &[100, 101, 102]), vec![]);
}

#[test]
fn a_member_stuck_down_is_flagged() {
    let mut nodes = agreed();
    let mut view = nodes[0].live.as_ref().expect("running").view.clone();
    view[2].state = MemberState::Down;
    set_view(&mut nodes[0], view);
    let found = membership_converged(7, &nodes);
    assert_eq!(kinds(&found), [Kind::MemberDown, Kind::DigestMismatch]);
    assert!(found[0].detail.contains("n0 sees n2"));
}

#[test]
fn differing_digests_alone_are_flagged() {
    let mut nodes = agreed();
    nodes[1].live.as_mut().expect("running").digest ^= 1;
    assert_eq!(kinds(&membership_converged(0, &nodes)), [Kind::DigestMismatch]);
}

#[test]
fn a_restart_seen_under_the_old_incarnation_is_flagged() {
    let mut nodes = agreed();
    nodes[2].live.as_mut().expect("running").incarnation = 500;
    assert!(kinds(&membership_converged(0, &nodes)).contains(&Kind::StaleIncarnation));
}

#[test]
fn a_crashed_node_seen_live_is_a_ghost_and_a_missing_one_is_flagged() {
    let mut nodes = agreed();
    nodes[2].live = None;
    assert_eq!(kinds(&membership_converged(0, &nodes)), [Kind::GhostMember]);
    let mut nodes = agreed();
    let mut view = nodes[1].live.as_ref().expect("running").view.clone();
    view.remove(0);
    set_view(&mut nodes[1], view);
    assert!(kinds(&membership_converged(0, &nodes)).contains(&Kind::MemberMissing));
}

#[test]
fn safety_flags_self_down_and_invented_incarnations() {
    let mut nodes = agreed();
    let mut view = nodes[0].live.as_ref().expect("running").view.clone();
    view[0].state = MemberState::Suspect;
    view[1].incarnation = 999;
    set_view(&mut nodes[0], view);
    assert_eq!(kinds(&membership_safe(0, &nodes, &[100, 101, 102])), [Kind::SelfNotAlive, Kind::InventedIncarnation]);
}

fn op(node: usize, generation: u64, node_now: Millis, kind: OpKind, reply: Reply) -> Op {
    Op {
        client: 0,
        conn: 0,
        node,
        generation,
        kind,
        levels: Default::default(),
        invoked_at: node_now,
        executed: true,
        executed_at: node_now,
        node_now,
        node_clock_max: node_now,
        completed_at: Some(node_now),
        outcome: Outcome::Replied(reply),
    }
}

fn bulk(v: u64) -> Reply {
    Reply::Bulk(v.to_string().into())
}

#[test]
fn a_lost_write_is_flagged() {
    let ops = vec![
        op(0, 1, 10, OpKind::Set { key: 1, value: 7, ttl_ms: None, size: 0 }, Reply::Ok),
        op(0, 1, 20, OpKind::Get { key: 1 }, Reply::Nil),
    ];
    assert_eq!(kinds(&history(&ops)), [Kind::LostWrite]);
}

#[test]
fn a_stale_read_is_flagged() {
    let ops = vec![
        op(0, 1, 10, OpKind::Set { key: 1, value: 7, ttl_ms: None, size: 0 }, Reply::Ok),
        op(0, 1, 11, OpKind::Set { key: 1, value: 8, ttl_ms: None, size: 0 }, Reply::Ok),
        op(0, 1, 20, OpKind::Get { key: 1 }, bulk(7)),
    ];
    assert_eq!(kinds(&history(&ops)), [Kind::WrongReply]);
}

#[test]
fn crashes_deletes_and_expiry_excuse_a_missing_value() {
    let ops = vec![
        op(0, 1, 10, OpKind::Set { key: 1, value: 7, ttl_ms: None, size: 0 }, Reply::Ok),
        op(0, 2, 20, OpKind::Get { key: 1 }, Reply::Nil),
        op(1, 1, 10, OpKind::Set { key: 1, value: 8, ttl_ms: Some(100), size: 0 }, Reply::Ok),
        op(1, 1, 50, OpKind::Get { key: 1 }, bulk(8)),
        op(1, 1, 110, OpKind::Get { key: 1 }, Reply::Nil),
        op(1, 1, 120, OpKind::Set { key: 2, value: 9, ttl_ms: None, size: 0 }, Reply::Ok),
        op(1, 1, 121, OpKind::Del { key: 2 }, Reply::Int(1)),
        op(1, 1, 122, OpKind::Get { key: 2 }, Reply::Nil),
        op(1, 1, 123, OpKind::Set { key: 3, value: 10, ttl_ms: None, size: 0 }, Reply::Ok),
        op(1, 1, 124, OpKind::Expire { key: 3, ttl_ms: 5 }, Reply::Int(1)),
        op(1, 1, 130, OpKind::Get { key: 3 }, Reply::Nil),
    ];
    assert_eq!(history(&ops), vec![]);
}

#[test]
fn a_value_that_outlives_its_ttl_is_flagged_unless_the_clock_went_back() {
    let mut ops = vec![
        op(0, 1, 10, OpKind::Set { key: 1, value: 7, ttl_ms: Some(100), size: 0 }, Reply::Ok),
        op(0, 1, 200, OpKind::Get { key: 1 }, bulk(7)),
    ];
    assert_eq!(kinds(&history(&ops)), [Kind::WrongReply]);
    // The clock showed 200 once, then jumped back to 50: the key may or may not be gone.
    ops[1].node_now = 50;
    ops[1].node_clock_max = 200;
    assert_eq!(history(&ops), vec![]);
    ops[1].outcome = Outcome::Replied(Reply::Nil);
    assert_eq!(history(&ops), vec![]);
}

#[test]
fn an_older_own_identity_kept_down_is_history_not_a_violation() {
    let mut nodes = agreed();
    let mut view = nodes[0].live.as_ref().expect("running").view.clone();
    view.push(info(0, 90, MemberState::Down));
    view.sort();
    set_view(&mut nodes[0], view);
    assert_eq!(membership_safe(0, &nodes, &[100, 101, 102]), vec![]);
    assert_eq!(membership_converged(0, &nodes), vec![]);
}
