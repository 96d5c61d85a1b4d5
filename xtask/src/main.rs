//! `cargo xtask build-ebpf | test | demo | bench`.
mod demo;
mod test;
fn main() {}
