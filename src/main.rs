//! The `shoal` binary: parses flags, config file and environment, then hands over to the runtime.

fn main() {}
