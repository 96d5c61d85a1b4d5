//! `egret status`: what the running agent has in force (config generation,
//! kernel map entries, workloads), as YAML or JSON, and the objects it
//! refused with what runs in their place (from its state folder).

use std::path::Path;

use anyhow::bail;

use crate::control::{ControlClient, Request, Response};

/// Arguments of `egret status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format: yaml or json.
    #[arg(short = 'o', long, default_value = "yaml")]
    pub output: String,
    /// Print only the generation of the config in force.
    #[arg(long)]
    pub generation: bool,
}

/// Prints the agent's status.
pub fn run(config_dir: &Path, state_dir: &Path, args: StatusArgs) -> anyhow::Result<()> {
    let mut client = ControlClient::connect(config_dir, state_dir)?;
    if args.generation {
        let Response::Generation { generation } = client.call(&Request::Generation)? else {
            bail!("agent answered the generation request with something else");
        };
        println!("{generation}");
        return Ok(());
    }
    let Response::Status(status) = client.call(&Request::Status)? else {
        bail!("agent answered the status request with something else");
    };
    let mut status = serde_json::to_value(status)?;
    if let Some(map) = status.as_object_mut() {
        let refused = crate::config::refused::read(state_dir);
        map.insert("refused".into(), serde_json::to_value(refused)?);
    }
    match args.output.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&status)?),
        "yaml" => print!("{}", serde_yaml::to_string(&status)?),
        other => bail!("unknown output format `{other}` (yaml or json)"),
    }
    Ok(())
}
