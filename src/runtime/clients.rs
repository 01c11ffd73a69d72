//! The list of connected clients, for CLIENT LIST. Touched on connect, disconnect and CLIENT SETNAME only.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use bytes::Bytes;

use crate::core::ConnId;
use crate::resp::encode::Protocol;

#[derive(Debug, Clone)]
struct Client {
    addr: String,
    name: Option<Bytes>,
}

/// Connected clients by id.
#[derive(Debug, Default)]
pub struct Clients {
    // A std mutex: held for a map insert or a short format, never across an await.
    inner: Mutex<BTreeMap<ConnId, Client>>,
}

impl Clients {
    /// Record a new connection.
    pub fn open(&self, id: ConnId, addr: &str) {
        self.lock().insert(id, Client { addr: addr.to_string(), name: None });
    }

    /// Forget a connection.
    pub fn close(&self, id: ConnId) {
        self.lock().remove(&id);
    }

    /// Set or clear a connection's name.
    pub fn set_name(&self, id: ConnId, name: Option<Bytes>) {
        if let Some(c) = self.lock().get_mut(&id) {
            c.name = name;
        }
    }

    /// CLIENT LIST text: one line per client.
    pub fn list(&self, _proto: Protocol) -> String {
        let mut out = String::new();
        for (id, c) in self.lock().iter() {
            let name = c.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
            let _ = writeln!(out, "id={id} addr={} name={name} db=0", c.addr);
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ConnId, Client>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
