//! nginx and haproxy as egress proxies doing the walkthrough's job (only
//! GET /get allowed, `my-added-header: added-value` added, access log on),
//! each on one core, in the node namespace next to the egret agent.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use egret_e2e::node::{in_netns, EXTERNAL_ADDR, NODE_ADDR};
use egret_e2e::process::Background;
use egret_e2e::Node;

use crate::procfs;
use crate::upstream::SIZES;

/// The core the proxies (and the agent) are pinned to; wrk gets the other.
pub const PROXY_CPU: &str = "1";

/// A running proxy: its process, pid, and the port per upstream port.
pub struct Proxy {
    _process: Background,
    pub pid: u32,
    /// Added to the upstream port to get the proxy's port.
    pub port_offset: u16,
}

/// nginx's main-context lines for a server named `name` under `dir`.
pub fn nginx_main(dir: &Path, name: &str, workers: u32) -> String {
    let d = dir.display();
    format!(
        "daemon off; master_process on; user root; worker_processes {workers}; worker_rlimit_nofile 20000;\n\
         pid {d}/{name}.pid; error_log {d}/{name}-error.log warn;\n\
         events {{ worker_connections 9000; }}"
    )
}

/// nginx: `limit_except GET` + an exact `/get` location, header added with
/// proxy_set_header, keep-alive upstream pool, one worker process.
pub fn start_nginx(node: &Node, dir: &Path) -> anyhow::Result<Proxy> {
    let offset = 10_000;
    let d = dir.display();
    let mut http = format!("access_log {d}/nginx-access.log;\n");
    for (_, port, _) in SIZES {
        http.push_str(&format!(
            "upstream u{port} {{ server {EXTERNAL_ADDR}:{port}; keepalive 64; }}\n\
             server {{ listen {NODE_ADDR}:{listen}; keepalive_requests 1000000;\n\
               location = /get {{ limit_except GET {{ deny all; }}\n\
                 proxy_pass http://u{port}; proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
                 proxy_set_header my-added-header added-value; }}\n\
               location / {{ return 403; }} }}\n",
            listen = port + offset
        ));
    }
    let conf = format!("{}\nhttp {{ {http} }}\n", nginx_main(dir, "nginx", 1));
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = in_netns(&node.node_ns, "taskset");
    cmd.args(["-c", PROXY_CPU, "nginx", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&path);
    let process = Background::spawn("nginx proxy", cmd, &dir.join("nginx.log"))?;
    wait_port(&node.node_ns, NODE_ADDR, SIZES[0].1 + offset)?;
    let pid = pid_with(&path)?;
    Ok(Proxy {
        _process: process,
        pid,
        port_offset: offset,
    })
}

/// haproxy: `http-request deny unless { method GET } { path /get }`,
/// `http-request add-header`, server connection reuse, one thread.
pub fn start_haproxy(node: &Node, dir: &Path) -> anyhow::Result<Proxy> {
    let offset = 20_000;
    let mut conf = String::from(
        "global\n  nbthread 1\n  maxconn 9000\n  log stdout format raw local0\n\
         defaults\n  mode http\n  log global\n  option httplog\n  http-reuse always\n\
           timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n",
    );
    for (_, port, _) in SIZES {
        conf.push_str(&format!(
            "frontend f{port}\n  bind {NODE_ADDR}:{listen}\n\
               http-request deny unless {{ method GET }} {{ path /get }}\n\
               http-request add-header my-added-header added-value\n  default_backend b{port}\n\
             backend b{port}\n  server s1 {EXTERNAL_ADDR}:{port}\n",
            listen = port + offset
        ));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let mut cmd = in_netns(&node.node_ns, "taskset");
    cmd.args(["-c", PROXY_CPU, "haproxy", "-db", "-f"])
        .arg(&path);
    let process = Background::spawn("haproxy", cmd, &dir.join("haproxy.log"))?;
    wait_port(&node.node_ns, NODE_ADDR, SIZES[0].1 + offset)?;
    let pid = pid_with(&path)?;
    Ok(Proxy {
        _process: process,
        pid,
        port_offset: offset,
    })
}

/// The pid of the process whose command line names `config`.
fn pid_with(config: &Path) -> anyhow::Result<u32> {
    let text = config.to_string_lossy().into_owned();
    // nginx rewrites its command line into one "master process …" string.
    procfs::find_pid(|args| args.join(" ").contains(&text))
        .ok_or_else(|| anyhow::anyhow!("no process runs {text}"))
}

/// Waits (10 s at most) until `http://addr:port/get` answers in `ns`.
pub fn wait_port(ns: &str, addr: &str, port: u16) -> anyhow::Result<()> {
    let url = format!("http://{addr}:{port}/get");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ok = in_netns(ns, "curl")
            .args(["-s", "-o", "/dev/null", "-m", "1", &url])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing answered {url} in {ns} within 10 s")
}
