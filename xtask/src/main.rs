//! `cargo xtask build-ebpf | test | demo | bench | fuzz`: the tasks' one
//! entry. `build-ebpf`, `test` and `fuzz` run here; the demo and the bench
//! live in crates of their own (they need the agent and the end-to-end
//! harness, which `build-ebpf` must not compile), and run through `cargo run`.

mod delegate;
mod fuzz;
mod test;

use std::process::ExitCode;

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
    /// Run the benchmarks (egret next to iptables, nginx, haproxy); `--help` for options.
    #[command(disable_help_flag = true)]
    Bench {
        /// Passed to the bench as given: [--quick | --full] [--case NAME]...
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz the parsers and the policy engine (cargo-fuzz, nightly).
    Fuzz(fuzz::Args),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().task {
        Task::BuildEbpf => {
            let object = xtask::build_ebpf::run()?;
            println!("eBPF object: {}", object.display());
            Ok(ExitCode::SUCCESS)
        }
        Task::Test => test::run().map(|()| ExitCode::SUCCESS),
        Task::Demo => delegate::run("egret-demo", &[]),
        Task::Bench { args } => delegate::run("egret-bench", &args),
        Task::Fuzz(args) => fuzz::run(args).map(|()| ExitCode::SUCCESS),
    }
}
