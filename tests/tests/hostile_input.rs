//! Hostile HTTP from a real workload through the real agent to the real
//! httpbin, on a sealed test node: the default (BASE) path normalization is
//! what both the policy and the upstream see, and malformed or oversized
//! requests get egret's own 400/431 without ever reaching httpbin.

use std::time::Duration;

use egret_e2e::manifests::SERVICE_ENTRY;
use egret_e2e::walkthrough::{mesh_with_waypoint, WORKLOAD_NS, WORKLOAD_SA};
use egret_e2e::{Node, NodeOptions};

/// Sends raw bytes to httpbin.org:80 from the workload and returns what came
/// back before the connection closed (at most 10 s). `@BIG@` in the request
/// becomes `argv[2]` bytes of `a` (the command line cannot hold them).
const RAW_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("httpbin.org", 80), timeout=10)
request = bytes.fromhex(sys.argv[1]).replace(b"@BIG@", b"a" * int(sys.argv[2]))
s.sendall(request)
out = b""
while True:
    try:
        d = s.recv(65536)
    except socket.timeout:
        break
    if not d:
        break
    out += d
sys.stdout.buffer.write(out)
"#;

fn raw(node: &Node, request: &[u8]) -> anyhow::Result<String> {
    let hex: String = request.iter().map(|b| format!("{b:02x}")).collect();
    let big = (100 * 1024).to_string();
    let out = node.exec(
        WORKLOAD_NS,
        WORKLOAD_SA,
        &["python3", "-c", RAW_CLIENT, &hex, &big],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const DENY_ADMIN: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: no-admin
  namespace: istio-egress
spec:
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: egress-waypoint
  action: DENY
  rules:
  - to:
    - operation:
        paths: [\"/anything/admin*\"]
";

#[test]
fn hostile_requests_are_read_as_envoy_reads_them() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    let before = node.generation().unwrap_or(0);
    node.apply(DENY_ADMIN)?;
    node.wait_until(Duration::from_secs(5), || {
        node.generation().is_some_and(|g| g > before)
    });

    // BASE: `\` is `/`, dot segments go, unreserved escapes decode, the
    // rest (and the query) stay exactly as sent; httpbin logs what it got.
    let ok = raw(
        &node,
        b"GET /anything/x/..\\y/%2fz/%61?q=%2F HTTP/1.1\r\nHost: httpbin.org\r\nConnection: close\r\n\r\n",
    )?;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    let upstream_saw = "\"GET /anything/y/%2fz/a?q=%2F HTTP/1.1\"";
    assert!(
        node.httpbin_log().contains(upstream_saw),
        "httpbin did not get {upstream_saw}:\n{}",
        node.httpbin_log()
    );
    // The DENY cannot be dodged by a spelling the upstream would normalize.
    for target in [
        "/anything/public/..\\admin",
        "/anything/%61dmin",
        "/anything/./x/%2e%2e/admin",
    ] {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: httpbin.org\r\nConnection: close\r\n\r\n");
        let reply = raw(&node, request.as_bytes())?;
        assert!(
            reply.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{target}: {reply}"
        );
    }

    // Malformed and oversized requests: egret answers, httpbin never sees them.
    let big = "GET /anything/big HTTP/1.1\r\nHost: httpbin.org\r\nX-Big: @BIG@\r\n\r\n";
    for (request, status_line) in [
        (
            b"GET /anything/bad HTTP/1.1\r\nHost: httpbin.org\r\nBad Header: x\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            b"get /anything/lower HTTP/1.1\r\nHost: httpbin.org\r\nConnection: close\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            b"GET /anything/nul%00 HTTP/1.1\r\nHost: httpbin.org\r\nConnection: close\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            b"POST /anything/smuggle HTTP/1.1\r\nHost: httpbin.org\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            big.as_bytes().to_vec(),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        ),
    ] {
        let reply = raw(&node, &request)?;
        assert!(reply.starts_with(status_line), "{reply}");
        assert!(reply.contains("\r\nserver: istio-envoy\r\n"), "{reply}");
    }
    let httpbin = node.httpbin_log();
    for refused in [
        "/anything/bad",
        "/anything/lower",
        "/anything/nul",
        "/anything/smuggle",
        "/anything/big",
        "admin",
    ] {
        assert!(
            !httpbin.contains(refused),
            "httpbin got {refused}:\n{httpbin}"
        );
    }
    let log = node.agent_log();
    for code in ["400", "431", "403"] {
        assert!(
            log.lines().any(|l| l.contains(" request complete ")
                && l.contains(&format!("response_code={code} "))),
            "no {code} request line:\n{log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("response_code=431") && l.contains("response_flags=DPE")),
        "no 431 DPE line:\n{log}"
    );
    Ok(())
}

/// MeshConfig in istiod's ConfigMap: merge slashes after BASE.
const MESH_MERGE_SLASHES: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    pathNormalization:
      normalization: MERGE_SLASHES
";

#[test]
fn mesh_config_path_normalization_is_honoured() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    let request =
        b"GET /anything//merged///x HTTP/1.1\r\nHost: httpbin.org\r\nConnection: close\r\n\r\n";
    // BASE keeps the slashes (httpbin answers a redirect to its own form).
    raw(&node, request)?;
    assert!(
        node.httpbin_log()
            .contains("\"GET /anything//merged///x HTTP/1.1\""),
        "{}",
        node.httpbin_log()
    );
    let before = node.generation().unwrap_or(0);
    node.apply(MESH_MERGE_SLASHES)?;
    node.wait_until(Duration::from_secs(5), || {
        node.generation().is_some_and(|g| g > before)
    });
    let reply = raw(&node, request)?;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        node.httpbin_log()
            .contains("\"GET /anything/merged/x HTTP/1.1\""),
        "{}",
        node.httpbin_log()
    );
    Ok(())
}
