//! Embeds the kernel programs when `cargo xtask build-ebpf` has built them.
//!
//! With `<workspace>/target/ebpf/bpfel-unknown-none/release/egret-ebpf`
//! present, sets cfg `egret_bpf_embedded` and `EGRET_BPF_EMBED_PATH` so
//! `kernel::loader` includes it; without it the agent still builds and
//! `Kernel::load(None)` says how to get the programs.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(egret_bpf_embedded)");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let object = Path::new(&manifest).join("../target/ebpf/bpfel-unknown-none/release/egret-ebpf");
    // Watched even while missing (cargo then reruns this script each build),
    // so building the programs later is picked up without a clean.
    println!("cargo::rerun-if-changed={}", object.display());
    if object.is_file() {
        let object = object.canonicalize().expect("the eBPF object exists");
        println!("cargo::rustc-cfg=egret_bpf_embedded");
        println!("cargo::rustc-env=EGRET_BPF_EMBED_PATH={}", object.display());
    }
}
