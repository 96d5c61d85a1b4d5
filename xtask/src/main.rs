//! `cargo xtask build-ebpf | test | demo | bench | fuzz`.
mod bench;
mod build_ebpf;
mod demo;
mod fuzz;
mod prereq;
mod test;

use clap::{Parser, Subcommand};

/// egret's development tasks.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "egret's build, test, demo and bench tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// One task.
#[derive(Subcommand)]
enum Task {
    /// Build the kernel programs (provisions nightly rust-src and bpf-linker first).
    BuildEbpf,
    /// Run every test.
    Test,
    /// Run the walkthrough on a built-in example.
    Demo,
    /// Run the benchmarks (egret next to iptables, nginx, haproxy).
    Bench(bench::Args),
    /// Fuzz the parsers and the policy engine (cargo-fuzz, nightly).
    Fuzz(fuzz::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::BuildEbpf => build_ebpf::run().map(|object| {
            println!("eBPF object: {}", object.display());
        }),
        Task::Test => test::run(),
        Task::Demo => demo::run(),
        Task::Bench(args) => bench::run(args),
        Task::Fuzz(args) => fuzz::run(args),
    }
}
