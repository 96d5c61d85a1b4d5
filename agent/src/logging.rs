//! Log output: ztunnel-style `key=value` lines, or JSON.
