//! The Redis protocol (RESP2 and RESP3): request framing, command parsing and reply encoding, all pure.
