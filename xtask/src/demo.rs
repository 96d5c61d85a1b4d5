//! `cargo xtask demo`: the walkthrough's Steps 2–3 on this host, with a
//! built-in example. A sealed "node" network namespace holds the agent and a
//! dnsmasq that answers httpbin.org with a local httpbin in a second
//! namespace; nothing leaves the machine. Prints what the user would see.

use std::process::Output;

use anyhow::bail;
use egret_e2e::manifests::{BOOKINFO_NAMESPACE, GATEWAY, SERVICE_ENTRY};
use egret_e2e::{Node, NodeOptions};

use crate::prereq::{cargo, ensure_packages, require_root, workspace_root, PACKAGES};

/// Runs the demo.
pub fn run() -> anyhow::Result<()> {
    require_root("the demo")?;
    ensure_packages(PACKAGES)?;
    crate::build_ebpf::run()?;
    cargo(&["build", "-p", "egret"], &[])?;
    std::env::set_var("EGRET_BIN", workspace_root().join("target/debug/egret"));

    banner("Starting a sealed node: egret agent + dnsmasq; httpbin.org played by a local httpbin");
    let node = Node::start(NodeOptions::default())?;
    println!("config folder: {}", node.config_dir().display());

    banner("Step 1: the app's namespace joins the mesh");
    show_apply(&node, BOOKINFO_NAMESPACE)?;

    banner("Step 2: the egress waypoint");
    for args in [
        &["create", "namespace", "istio-egress"][..],
        &[
            "label",
            "ns",
            "istio-egress",
            "istio.io/dataplane-mode=ambient",
        ],
        &[
            "label",
            "ns",
            "istio-egress",
            "istio.io/use-waypoint=egress-waypoint",
        ],
    ] {
        show(&node, args)?;
    }
    show_apply(&node, GATEWAY)?;
    show(
        &node,
        &[
            "get",
            "gateway",
            "egress-waypoint",
            "-n",
            "istio-egress",
            "-o",
            "yaml",
        ],
    )?;

    banner("Step 3: route httpbin.org through the waypoint");
    show_apply(&node, SERVICE_ENTRY)?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    show(
        &node,
        &[
            "get",
            "serviceentry",
            "httpbin.org",
            "-n",
            "istio-egress",
            "-o",
            "yaml",
        ],
    )?;
    let curl = ["curl", "-sik", "httpbin.org/get"];
    println!(
        "$ egret exec -n bookinfo --service-account bookinfo-productpage -- {}",
        curl.join(" ")
    );
    let out = node.exec("bookinfo", "bookinfo-productpage", &curl)?;
    print_output(&out);
    if !String::from_utf8_lossy(&out.stdout).contains("server: istio-envoy") {
        bail!(
            "the request did not go through the waypoint; agent log:\n{}",
            node.agent_log()
        );
    }

    banner("The agent's access log for that request");
    std::thread::sleep(std::time::Duration::from_millis(200));
    for line in node.agent_log().lines().filter(|l| l.contains("access")) {
        println!("{line}");
    }
    banner("Kernel maps and workloads in force (egret status)");
    show(&node, &["status"])?;
    banner("Done: the node and everything in it are removed");
    Ok(())
}

fn banner(text: &str) {
    println!("\n=== {text}");
}

fn show(node: &Node, args: &[&str]) -> anyhow::Result<()> {
    println!("$ egret {}", args.join(" "));
    let out = node.egret(args)?;
    print_output(&out);
    if !out.status.success() {
        bail!("egret {} failed", args.join(" "));
    }
    Ok(())
}

fn show_apply(node: &Node, yaml: &str) -> anyhow::Result<()> {
    println!("$ egret apply -f - <<EOF\n{}EOF", yaml);
    print!("{}", node.apply(yaml)?);
    Ok(())
}

fn print_output(out: &Output) {
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
}
