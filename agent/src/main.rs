//! egret: eBPF-accelerated egress enforcement for Istio ambient mesh.

mod cli;
mod config;
mod control;
mod dns;
mod kernel;
mod logging;
mod proxy;
mod workload;

fn main() -> std::process::ExitCode {
    cli::main()
}
