//! The fast upstream of the HTTP cases: nginx in the "external" namespace
//! serving a fixed body at `/get`, 1 KiB on :8001 and 64 KiB on :8064.

use std::path::Path;

use egret_e2e::node::{in_netns, EXTERNAL_ADDR};
use egret_e2e::process::Background;
use egret_e2e::Node;

/// Response sizes and the upstream port that serves each.
pub const SIZES: [(&str, u16, usize); 2] = [("1 KiB", 8001, 1024), ("64 KiB", 8064, 65536)];
/// The bulk transfer of the HBONE case: 64 MiB on this port.
pub const BULK: (&str, u16, usize) = ("64 MiB", 8099, 64 << 20);

/// Starts the upstream nginx (stopped when the returned process drops).
pub fn start(node: &Node, dir: &Path) -> anyhow::Result<Background> {
    let mut servers = String::new();
    for (_, port, bytes) in SIZES.into_iter().chain([BULK]) {
        let root = dir.join(format!("body{port}"));
        std::fs::create_dir_all(&root)?;
        std::fs::write(root.join("get"), vec![b'x'; bytes])?;
        servers.push_str(&format!(
            "server {{ listen {EXTERNAL_ADDR}:{port} reuseport; root {}; keepalive_requests 1000000; location / {{ default_type text/plain; }} }}\n",
            root.display()
        ));
    }
    let conf = format!(
        "{}\nhttp {{ access_log off; {servers} }}\n",
        crate::proxies::nginx_main(dir, "upstream", 2)
    );
    let path = dir.join("upstream.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = in_netns(&node.ext_ns, "nginx");
    cmd.arg("-p").arg(dir).arg("-c").arg(&path);
    let bg = Background::spawn("upstream nginx", cmd, &dir.join("upstream.log"))?;
    crate::proxies::wait_port(&node.ext_ns, EXTERNAL_ADDR, SIZES[0].1)?;
    Ok(bg)
}
