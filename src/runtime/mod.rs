//! The tokio driver: sockets, timers and the client server around a `core::Node`.
