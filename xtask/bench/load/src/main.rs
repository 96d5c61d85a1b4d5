//! `egret-load`: the bench's own load tools, run inside the namespaces the
//! bench creates (`cargo xtask bench` starts them; nothing here picks a
//! destination by itself). Every loop stops at a count and at a deadline,
//! and every tool prints one JSON object on stdout.

mod connect;
mod dns;
mod hold;
mod orig_dst;
mod serve;

use clap::{Parser, Subcommand};

/// Load generators and trivial servers for `cargo xtask bench`.
#[derive(Parser)]
#[command(name = "egret-load")]
struct Cli {
    #[command(subcommand)]
    tool: Tool,
}

/// One tool.
#[derive(Subcommand)]
enum Tool {
    /// Connection rate and connect latency (SO_LINGER 0 closes, no TIME_WAIT).
    Connect(connect::Args),
    /// A TCP listener that accepts and closes, until its deadline.
    Accept(serve::AcceptArgs),
    /// A UDP server that echoes every datagram, until its deadline.
    UdpEcho(serve::UdpEchoArgs),
    /// Unconnected UDP request/reply round trips (drives sendmsg/recvmsg hooks).
    Udp(dns::UdpArgs),
    /// Queries a name until the resolver answers it with an address.
    DnsWait(dns::WaitArgs),
    /// Holds N idle connections, then times fresh HTTP requests beside them.
    Hold(hold::Args),
}

fn main() -> anyhow::Result<()> {
    let out = match Cli::parse().tool {
        Tool::Connect(a) => connect::run(a)?,
        Tool::Accept(a) => serve::accept(a)?,
        Tool::UdpEcho(a) => serve::udp_echo(a)?,
        Tool::Udp(a) => dns::udp(a)?,
        Tool::DnsWait(a) => dns::wait(a)?,
        Tool::Hold(a) => hold::run(a)?,
    };
    println!("{out}");
    Ok(())
}
