//! A sealed node (the e2e harness's: agent + dnsmasq in one namespace, an
//! "external" one behind it) running the bench's release agent, with the
//! walkthrough's mesh set up.

use egret_e2e::node::EXTERNAL_ADDR;
use egret_e2e::{Node, NodeOptions};

use crate::agent::BenchAgent;
use crate::manifests::mesh_base;
use crate::Ctx;

/// The node and its agent. Field order is drop order: the agent stops
/// before the namespaces go.
pub struct MeshNode {
    pub agent: BenchAgent,
    pub node: Node,
}

impl MeshNode {
    /// Starts a node where `hosts` resolve (dnsmasq) to the external host,
    /// with Steps 1–2 applied.
    pub fn start(ctx: &Ctx, tag: &str, hosts: &[&str]) -> anyhow::Result<MeshNode> {
        std::env::set_var("EGRET_BIN", &ctx.built.egret);
        let opts = NodeOptions {
            dns_records: hosts
                .iter()
                .map(|h| (h.to_string(), EXTERNAL_ADDR.to_string()))
                .collect(),
            ..NodeOptions::default()
        };
        let mut node = Node::start(opts)?;
        let agent = BenchAgent::start(
            &mut node,
            &ctx.built.egret,
            &ctx.logs.join(format!("{tag}-agent.log")),
        )?;
        node.apply(&mesh_base())?;
        Ok(MeshNode { agent, node })
    }
}
