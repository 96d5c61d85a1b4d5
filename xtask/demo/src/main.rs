//! `cargo xtask demo`: the whole walkthrough (Steps 1–4c and the cleanup) on
//! this host, with a built-in example. A sealed "node" network namespace
//! holds the agent and a dnsmasq that answers httpbin.org with a local
//! httpbin (plain on 80, TLS on 443 under a demo CA) in a second namespace;
//! nothing leaves the machine. Prints what the user would see and checks it.

use std::process::Output;
use std::time::Duration;

use anyhow::{bail, ensure};
use egret_e2e::manifests::{
    AUTHORIZATION_POLICY, BOOKINFO_NAMESPACE, GATEWAY, SERVICE_ENTRY, TLS_ORIGINATION,
    VIRTUAL_SERVICE,
};
use egret_e2e::tls::TestCa;
use egret_e2e::{Node, NodeOptions, TlsHttpbin};

use xtask::prereq::{cargo, ensure_packages, require_root, workspace_root, PACKAGES};

/// Runs the demo and fails at the first step that does not behave as the walkthrough says.
fn main() -> anyhow::Result<()> {
    require_root("the demo")?;
    ensure_packages(PACKAGES)?;
    xtask::build_ebpf::run()?;
    cargo(&["build", "-p", "egret"], &[])?;
    std::env::set_var("EGRET_BIN", workspace_root().join("target/debug/egret"));

    banner("Starting a sealed node: egret agent + dnsmasq; httpbin.org played by a local httpbin");
    let certs = tempfile::tempdir()?;
    let ca = TestCa::new(certs.path(), "demo")?;
    let server = ca.server("httpbin", &["httpbin.org"])?;
    let node = Node::start(NodeOptions {
        tls_httpbins: vec![TlsHttpbin {
            port: 443,
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }],
        // Step 4c's DestinationRule trusts the system roots; the demo CA
        // stands in for a public one.
        ca_roots: vec![ca.cert_path()],
        ..NodeOptions::default()
    })?;
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
    settle();
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
    let out = curl(&node, &["curl", "-sik", "httpbin.org/get"])?;
    ensure!(
        out.contains("server: istio-envoy"),
        "the request did not go through the waypoint; agent log:\n{}",
        node.agent_log()
    );
    banner("The agent's access log for that request");
    settle();
    for line in node.agent_log().lines().filter(|l| l.contains("access")) {
        println!("{line}");
    }

    banner("Step 4a: AuthorizationPolicy — only GET /get");
    show_apply(&node, AUTHORIZATION_POLICY)?;
    settle();
    let denied = curl(&node, &["curl", "-sik", "-X", "POST", "httpbin.org/post"])?;
    ensure!(
        denied.contains("403 Forbidden") && denied.contains("RBAC: access denied"),
        "POST was not denied"
    );
    let allowed = curl(&node, &["curl", "-sik", "httpbin.org/get"])?;
    ensure!(allowed.contains("200 OK"), "GET /get was not allowed");

    banner("Step 4b: VirtualService — add a request header");
    show_apply(&node, VIRTUAL_SERVICE)?;
    settle();
    let echoed = curl(&node, &["curl", "-s", "httpbin.org/get"])?;
    ensure!(
        echoed.contains("\"My-Added-Header\": \"added-value\"")
            || echoed.contains("\"My-Added-Header\":\"added-value\""),
        "header not added"
    );

    banner("Step 4c: TLS origination — the app still speaks plain HTTP");
    show_apply(&node, TLS_ORIGINATION)?;
    settle();
    let tls = curl(&node, &["curl", "-s", "httpbin.org/get"])?;
    ensure!(
        tls.contains("https://httpbin.org/get"),
        "TLS was not originated"
    );

    banner("Cleanup: each delete takes its behaviour away at once");
    for args in [
        &[
            "delete",
            "authorizationpolicy",
            "httpbin",
            "-n",
            "istio-egress",
        ][..],
        &["delete", "virtualservice", "httpbin", "-n", "istio-egress"],
        &[
            "delete",
            "serviceentry",
            "httpbin.org",
            "-n",
            "istio-egress",
        ],
        &[
            "delete",
            "destinationrule",
            "httpbin.org-tls",
            "-n",
            "istio-egress",
        ],
        &["delete", "gateway", "egress-waypoint", "-n", "istio-egress"],
        &["delete", "namespace", "istio-egress"],
    ] {
        show(&node, args)?;
    }
    settle();
    banner("Kernel maps and workloads in force after cleanup (egret status)");
    show(&node, &["status"])?;
    let direct = curl(&node, &["curl", "-si", "httpbin.org/get"])?;
    ensure!(
        !direct.contains("istio-envoy"),
        "traffic still went through the waypoint"
    );
    banner("Done: the node and everything in it are removed");
    Ok(())
}

/// Config applies asynchronously (inotify, then one compile): a short pause
/// keeps the demo's output in step with what the user would see.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

fn banner(text: &str) {
    println!("\n=== {text}");
}

fn curl(node: &Node, cmd: &[&str]) -> anyhow::Result<String> {
    println!(
        "$ egret exec -n bookinfo --service-account bookinfo-productpage -- {}",
        cmd.join(" ")
    );
    let out = node.exec("bookinfo", "bookinfo-productpage", cmd)?;
    print_output(&out);
    println!();
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
