//! The replies of the commands that describe a node itself: SHOAL.MEMBERS, SHOAL.OWNERS, SHOAL.LOCALGET and
//! SHOAL.READY (INFO is rendered by `core::info`). They read the whole node, standalone or clustered.

use std::net::SocketAddr;

use bytes::Bytes;

use super::Node;
use crate::core::replication::{EntryKind, ReadyState};
use crate::core::reply::Reply;
use crate::core::Millis;

impl Node {
    /// SHOAL.MEMBERS: one map per known member (this node alone when it runs without a cluster).
    pub(crate) fn members_reply(&self) -> Reply {
        let Some(m) = self.membership() else {
            return Reply::Array(vec![]);
        };
        let text = |s: String| Reply::Bulk(Bytes::from(s));
        let field = |k: &'static str, v: Reply| (Reply::simple(k), v);
        Reply::Array(
            m.members()
                .into_iter()
                .map(|info| {
                    Reply::Map(vec![
                        field("name", text(info.name.clone())),
                        field("cluster_addr", text(info.gossip_addr.to_string())),
                        field("client_addr", text(info.client_addr.to_string())),
                        field("state", Reply::Bulk(Bytes::from_static(info.state.as_str().as_bytes()))),
                        field("incarnation", Reply::Int(info.incarnation as i64)),
                    ])
                })
                .collect(),
        )
    }

    /// SHOAL.READY: `ready` (1 or 0), `reason` and `ready_after_ms` (-1 until ready).
    pub(crate) fn ready_reply(&self) -> Reply {
        let state = self.ready_state();
        let after = self.ready_after_ms().map_or(-1, |ms| ms as i64);
        Reply::Map(vec![
            (Reply::simple("ready"), Reply::Int(i64::from(state == ReadyState::Ready))),
            (Reply::simple("reason"), Reply::Bulk(Bytes::from(state.reason()))),
            (Reply::simple("ready_after_ms"), Reply::Int(after)),
        ])
    }
    pub(crate) fn owners_reply(&self, key: &[u8]) -> Reply {
        let members = self.membership().map(|m| m.live_members()).unwrap_or_default();
        let text = |s: String| Reply::Bulk(Bytes::from(s));
        Reply::Array(
            self.owners(key)
                .into_iter()
                .map(|name| {
                    let info = members.iter().find(|m| m.name == name);
                    let addr = |f: fn(&crate::core::membership::MemberInfo) -> SocketAddr| {
                        info.map_or(Reply::Nil, |m| text(f(m).to_string()))
                    };
                    Reply::Map(vec![
                        (Reply::simple("name"), text(name.clone())),
                        (Reply::simple("cluster_addr"), addr(|m| m.gossip_addr)),
                        (Reply::simple("client_addr"), addr(|m| m.client_addr)),
                    ])
                })
                .collect(),
        )
    }

    pub(crate) fn local_get_reply(&self, key: &[u8], now: Millis) -> Reply {
        let Some(e) = self.local.store.view(key, now) else { return Reply::Nil };
        let kind = match e.kind {
            EntryKind::Value => "value",
            EntryKind::Tombstone => "tombstone",
            EntryKind::Evicted => "evicted",
        };
        let version: Vec<String> = e.vector.entries().iter().map(|(n, t)| format!("{:016x}:{}", n.0, t.0)).collect();
        Reply::Map(vec![
            (Reply::simple("kind"), Reply::simple(kind)),
            (Reply::simple("value"), if e.is_value() { Reply::Bulk(e.value.clone()) } else { Reply::Nil }),
            (Reply::simple("version"), Reply::Bulk(Bytes::from(version.join(",")))),
            (Reply::simple("expire_at_ms"), Reply::Int(e.expire_at_ms as i64)),
        ])
    }
}
