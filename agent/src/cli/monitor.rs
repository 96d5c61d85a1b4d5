//! `egret monitor`: the kernel's verdicts as they happen, like `cilium
//! monitor --type drop` / `hubble observe`: every denied connect, send or
//! packet with its workload and identity; redirects with `--redirects`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context};

use crate::control::protocol::SOCKET_NAME;
use crate::control::{Request, Response};

/// Arguments of `egret monitor`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// Also show connects and DNS queries redirected to the agent.
    #[arg(long)]
    pub redirects: bool,
    /// Output: `text` (one line per verdict) or `json` (one object per line).
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: MonitorFormat,
    /// Stop after this many verdicts.
    #[arg(long)]
    pub count: Option<u64>,
}

/// `-o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MonitorFormat {
    Text,
    Json,
}

/// Streams verdicts until interrupted (or `--count` is reached).
pub fn run(config_dir: &Path, state_dir: &Path, args: MonitorArgs) -> anyhow::Result<()> {
    let socket = state_dir.join(SOCKET_NAME);
    let mut stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "no egret agent is running on {} (nothing answers on {})",
            config_dir.display(),
            socket.display()
        )
    })?;
    let mut request = serde_json::to_string(&Request::Monitor {
        redirects: args.redirects,
    })?;
    request.push('\n');
    stream.write_all(request.as_bytes())?;
    let mut out = std::io::stdout().lock();
    let mut seen = 0u64;
    for line in BufReader::new(stream).lines() {
        let line = line.context("reading from the agent")?;
        match serde_json::from_str::<Response>(&line)? {
            Response::Event(e) => {
                let text = match args.output {
                    MonitorFormat::Text => crate::verdicts::text_line(&e),
                    MonitorFormat::Json => serde_json::to_string(&e)?,
                };
                writeln!(out, "{text}")?;
                out.flush()?;
                seen += 1;
                if args.count.is_some_and(|n| seen >= n) {
                    return Ok(());
                }
            }
            Response::Error { message } => bail!("agent: {message}"),
            _ => {}
        }
    }
    Ok(())
}
