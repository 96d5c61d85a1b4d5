//! Command line: `egret run | exec | apply | get | delete | create | label | status | monitor | cleanup | waypoint`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod cleanup;
pub mod create;
pub mod delete;
pub mod drain;
pub mod exec;
pub mod get;
pub mod label;
pub mod limits;
pub mod monitor;
pub mod proxy_args;
pub mod run;
pub mod status;
pub mod waypoint;

/// Where the manifests live when `--config-dir` is not given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/egret/config";

/// egret: eBPF-accelerated egress enforcement for Istio ambient mesh.
#[derive(Debug, Parser)]
#[command(name = "egret", version, about)]
pub struct Cli {
    /// Folder of manifests the agent runs on; every command addresses the
    /// agent of this folder (like kubectl's --kubeconfig).
    #[arg(long, global = true, env = "EGRET_CONFIG_DIR", default_value = DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent: eBPF capture, DNS proxy and waypoint.
    Run(Box<run::RunArgs>),
    /// Run a command as a mesh workload of a namespace and service account.
    Exec(exec::ExecArgs),
    /// Create or update objects from a file, a folder, or stdin (-).
    Apply(apply::ApplyArgs),
    /// Show objects, with their status.
    Get(get::GetArgs),
    /// Delete objects.
    Delete(delete::DeleteArgs),
    /// Create an object (namespace).
    Create(create::CreateArgs),
    /// Add, change or remove labels.
    Label(label::LabelArgs),
    /// What the running agent has in force: config, kernel maps, workloads.
    Status(status::StatusArgs),
    /// Run a standalone waypoint: HBONE server and L7 pipeline, no eBPF.
    Waypoint(Box<waypoint::WaypointArgs>),
    /// Watch the kernel's verdicts live: denied connects (and redirects).
    Monitor(monitor::MonitorArgs),
    /// Remove everything an agent left behind: pinned kernel programs and
    /// maps, `egret exec` workloads, the pod network.
    Cleanup(cleanup::CleanupArgs),
}

/// Private state of the agent serving `config_dir` (ignored as config).
pub fn state_dir(config_dir: &Path) -> PathBuf {
    config_dir.join(".egret")
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_dir = cli.config_dir;
    let state = state_dir(&config_dir);
    let result = match cli.command {
        Command::Run(a) => run::run(&config_dir, &state, *a).map(|()| ExitCode::SUCCESS),
        Command::Exec(a) => exec::run(&config_dir, &state, a),
        Command::Apply(a) => apply::run(&config_dir, a).map(|()| ExitCode::SUCCESS),
        Command::Get(a) => get::run(&config_dir, a).map(|()| ExitCode::SUCCESS),
        Command::Delete(a) => delete::run(&config_dir, a).map(|()| ExitCode::SUCCESS),
        Command::Create(a) => create::run(&config_dir, a).map(|()| ExitCode::SUCCESS),
        Command::Label(a) => label::run(&config_dir, a).map(|()| ExitCode::SUCCESS),
        Command::Status(a) => status::run(&config_dir, &state, a).map(|()| ExitCode::SUCCESS),
        Command::Waypoint(a) => waypoint::run(&config_dir, &state, *a).map(|()| ExitCode::SUCCESS),
        Command::Monitor(a) => monitor::run(&config_dir, &state, a).map(|()| ExitCode::SUCCESS),
        Command::Cleanup(a) => cleanup::run(&config_dir, &state, a).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}
