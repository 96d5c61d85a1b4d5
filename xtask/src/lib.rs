//! What every `cargo xtask` task shares: the machine's prerequisites and
//! the kernel programs' build. The demo and bench crates use it too.

pub mod build_ebpf;
pub mod prereq;
