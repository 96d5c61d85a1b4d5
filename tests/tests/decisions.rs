//! Decisions that hold (issue 10), on a sealed test node with the real
//! agent, real eBPF capture and a real httpbin: connections opened before a
//! config change get the new config's answers; a request cannot name
//! another service; after a restart, an invalid source runs on its last good
//! version, and an invalid ALLOW with none fails closed.

use std::time::Duration;

use egret_e2e::held::Held;
use egret_e2e::manifests::{AUTHORIZATION_POLICY, SERVICE_ENTRY};
use egret_e2e::node::{in_netns, EXTERNAL_ADDR, LOG_SETTLE};
use egret_e2e::process::Background;
use egret_e2e::walkthrough::{mesh_with_waypoint, WORKLOAD_NS, WORKLOAD_SA};
use egret_e2e::{Node, NodeOptions};

/// The workload that holds one connection across config changes.
const CLIENT: &str = env!("CARGO_BIN_EXE_e2e-client");

fn node_with(records: &[&str]) -> anyhow::Result<Node> {
    let node = Node::start(NodeOptions {
        dns_records: records
            .iter()
            .map(|name| (name.to_string(), EXTERNAL_ADDR.to_string()))
            .collect(),
        ..NodeOptions::default()
    })?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    Ok(node)
}

/// A ServiceEntry for `host` (which dnsmasq resolves to the external host).
fn service_entry(host: &str, port: u16, protocol: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {host}
  namespace: istio-egress
spec:
  hosts: [{host}]
  ports:
  - {{name: p, number: {port}, protocol: {protocol}}}
  resolution: DNS
"
    )
}

/// `egret` that changes the config, then waits until the agent has it in force.
fn change(node: &Node, args: &[&str]) -> anyhow::Result<()> {
    let before = node.generation().unwrap_or(0);
    node.egret_ok(args)?;
    wait_for_generation(node, before)
}

fn wait_for_generation(node: &Node, before: u64) -> anyhow::Result<()> {
    let moved = node.wait_until(Duration::from_secs(5), || {
        node.generation().is_some_and(|g| g > before)
    });
    anyhow::ensure!(moved, "the agent did not take the change up within 5 s");
    Ok(())
}

/// How many requests for `path` httpbin has served.
fn served(node: &Node, path: &str) -> usize {
    std::thread::sleep(LOG_SETTLE);
    node.httpbin_log()
        .lines()
        .filter(|l| l.contains(&format!(" {path} HTTP/1.1\"")))
        .count()
}

/// The workload's `curl -sik`: the status line.
fn curl(node: &Node, url: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["curl", "-sik", "-m", "10"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = node.exec(WORKLOAD_NS, WORKLOAD_SA, &args)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

#[test]
fn connections_opened_before_step4a_get_its_403_and_lose_a_deleted_service() -> anyhow::Result<()> {
    let node = node_with(&[])?;
    let steps = [
        "req:POST:/post",
        "wait:policy",
        "req:POST:/post",
        "req:GET:/get",
        "wait:deleted",
        "req:GET:/get",
    ];
    let mut h1_args = vec!["h1", "httpbin.org", "80"];
    h1_args.extend(steps);
    let mut h2_args = vec!["h2", "httpbin.org", "80"];
    h2_args.extend(steps);
    let h1 = Held::start(&node, CLIENT.as_ref(), &h1_args)?;
    let h2 = Held::start(&node, CLIENT.as_ref(), &h2_args)?;
    for held in [&h1, &h2] {
        assert_eq!(held.next()?, "status 200", "{}", node.agent_log());
    }

    // Step 4a with both connections open: the next POST on each is denied.
    node.apply(AUTHORIZATION_POLICY)?;
    for held in [&h1, &h2] {
        held.open("policy")?;
        assert_eq!(held.next()?, "status 403", "{}", node.agent_log());
        assert_eq!(held.next()?, "status 200", "GET /get is still allowed");
    }
    assert_eq!(served(&node, "/post"), 2, "the denied POSTs never left");

    // The ServiceEntry deleted: nothing more reaches httpbin on them.
    let gets = served(&node, "/get");
    change(
        &node,
        &[
            "delete",
            "serviceentry",
            "httpbin.org",
            "-n",
            "istio-egress",
        ],
    )?;
    for held in [&h1, &h2] {
        held.open("deleted")?;
        let last = held.next()?;
        assert!(
            last.starts_with("error") || last == "status 404",
            "{last}\n{}",
            node.agent_log()
        );
    }
    assert_eq!(served(&node, "/get"), gets);
    let log = node.agent_log();
    let closed = log
        .lines()
        .filter(|l| {
            l.contains("connection complete")
                && l.contains("response_flags=NR")
                && l.contains("no service has address")
                && l.contains("open connection closed")
        })
        .count();
    assert_eq!(
        closed, 2,
        "one line per closed connection, saying why:\n{log}"
    );
    Ok(())
}

/// An echo server on the external host, port `port`.
fn echo_server(node: &Node, port: u16) -> anyhow::Result<Background> {
    let script = format!(
        "import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('{EXTERNAL_ADDR}', {port}))
s.listen()
def serve(c):
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"
    );
    let mut cmd = in_netns(&node.ext_ns, "python3");
    cmd.args(["-c", &script]);
    let log = node.config_dir().join(".logs").join("echo.log");
    let server = Background::spawn("echo server", cmd, &log)?;
    let up = node.wait_until(Duration::from_secs(10), || {
        node.on_node(
            "python3",
            &[
                "-c",
                &format!("import socket; socket.create_connection(('{EXTERNAL_ADDR}', {port}), 1)"),
            ],
        )
        .is_ok_and(|o| o.status.success())
    });
    anyhow::ensure!(up, "echo server did not come up");
    Ok(server)
}

/// An L4 DENY of every connection to ServiceEntry `name`.
fn deny_service(name: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-{name}
  namespace: istio-egress
spec:
  targetRefs:
  - {{kind: ServiceEntry, group: networking.istio.io, name: {name}}}
  action: DENY
  rules:
  - {{}}
"
    )
}

#[test]
fn a_tcp_connection_a_new_l4_deny_covers_is_closed_within_a_second() -> anyhow::Result<()> {
    let node = node_with(&["db.test", "cache.test"])?;
    let _echo = echo_server(&node, 9000)?;
    node.apply(&service_entry("db.test", 9000, "TCP"))?;
    node.apply(&service_entry("cache.test", 9000, "TCP"))?;
    let denied = Held::start(
        &node,
        CLIENT.as_ref(),
        &[
            "tcp",
            "db.test",
            "9000",
            "echo:hello",
            "wait:deny",
            "closed:1000",
        ],
    )?;
    let kept = Held::start(
        &node,
        CLIENT.as_ref(),
        &[
            "tcp",
            "cache.test",
            "9000",
            "echo:hello",
            "wait:deny",
            "closed:1500",
            "echo:again",
        ],
    )?;
    for held in [&denied, &kept] {
        assert_eq!(held.next()?, "echo ok", "{}", node.agent_log());
    }

    node.apply(&deny_service("db.test"))?;
    denied.open("deny")?;
    kept.open("deny")?;
    assert_eq!(denied.next()?, "closed", "{}", node.agent_log());
    assert_eq!(
        kept.next()?,
        "open",
        "a connection the policy does not cover"
    );
    assert_eq!(kept.next()?, "echo ok");
    let log = node.agent_log();
    assert!(
        log.lines().any(|l| l.contains("connection complete")
            && l.contains("dst.service=\"db.test\"")
            && l.contains("response_flags=RBAC")
            && l.contains("RBAC: access denied: denied_by_policy by istio-egress/deny-db.test")
            && l.contains("open connection closed")),
        "{log}"
    );
    Ok(())
}

#[test]
fn a_request_naming_another_service_reaches_no_upstream() -> anyhow::Result<()> {
    let node = node_with(&["other.test"])?;
    node.apply(&service_entry("other.test", 80, "HTTP"))?;
    node.apply(AUTHORIZATION_POLICY)?;
    let before = served(&node, "/get");

    // Allowed by Step 4a as httpbin.org, sent to other.test's address.
    let confused = curl(&node, "http://other.test/get", &["-H", "Host: httpbin.org"])?;
    assert_eq!(confused, "HTTP/1.1 404 Not Found", "{}", node.agent_log());
    let out = node.exec(
        WORKLOAD_NS,
        WORKLOAD_SA,
        &[
            CLIENT,
            "h1",
            "other.test",
            "80",
            "raw:GET http://httpbin.org/get HTTP/1.1\\r\\nHost: httpbin.org\\r\\n\\r\\n",
            "raw:GET /get HTTP/1.1\\r\\nHost: httpbin.org\\r\\nHost: httpbin.org\\r\\n\\r\\n",
            "raw:GET /get HTTP/1.1\\r\\nHost: other.test\\r\\nHost: httpbin.org\\r\\n\\r\\n",
        ],
    )?;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 400 Bad Request"
        ],
        "{}",
        node.agent_log()
    );
    assert_eq!(served(&node, "/get"), before, "nothing reached httpbin");
    // The request the host names is still served.
    assert_eq!(curl(&node, "httpbin.org/get", &[])?, "HTTP/1.1 200 OK");

    let log = node.agent_log();
    for (code, flag) in [("404", "NR"), ("400", "DPE")] {
        assert!(
            log.lines().any(|l| l.contains("request complete")
                && l.contains("dst.service=\"other.test\"")
                && l.contains(&format!("response_code={code}"))
                && l.contains(&format!("response_flags={flag}"))),
            "no {code} {flag} line:\n{log}"
        );
    }
    let metrics = node.on_node("curl", &["-s", "-m", "5", "http://127.0.0.1:15000/metrics"])?;
    let page = String::from_utf8_lossy(&metrics.stdout);
    for (code, flag) in [("404", "NR"), ("400", "DPE")] {
        assert!(
            page.lines().any(|l| l.starts_with("istio_requests_total{")
                && l.contains("destination_service=\"other.test\"")
                && l.contains(&format!("response_code=\"{code}\""))
                && l.contains(&format!("response_flags=\"{flag}\""))),
            "no {code} {flag} series:\n{page}"
        );
    }
    Ok(())
}

/// Denies DELETE at the waypoint.
const DENY_DELETE: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: no-delete
  namespace: istio-egress
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}
  action: DENY
  rules:
  - to:
    - operation: {methods: [DELETE]}
";

/// Where `egret apply` keeps object `name` of kind AuthorizationPolicy.
fn policy_file(node: &Node, name: &str) -> std::path::PathBuf {
    node.config_dir()
        .join(format!("authorizationpolicy.istio-egress.{name}.yaml"))
}

#[test]
fn after_a_restart_invalid_sources_run_on_their_last_good_versions() -> anyhow::Result<()> {
    let mut node = node_with(&[])?;
    node.apply(DENY_DELETE)?;
    node.apply(AUTHORIZATION_POLICY)?;
    let expect = |node: &Node| -> anyhow::Result<()> {
        let delete = curl(node, "httpbin.org/delete", &["-X", "DELETE"])?;
        assert_eq!(delete, "HTTP/1.1 403 Forbidden", "{}", node.agent_log());
        let headers = curl(node, "httpbin.org/headers", &[])?;
        assert_eq!(headers, "HTTP/1.1 403 Forbidden", "{}", node.agent_log());
        let get = curl(node, "httpbin.org/get", &[])?;
        assert_eq!(get, "HTTP/1.1 200 OK", "{}", node.agent_log());
        Ok(())
    };
    expect(&node)?;

    // Both files replaced by invalid versions while the agent is down: a
    // bad value, and text that is not even YAML.
    assert!(node.stop_agent(), "the agent stops cleanly");
    std::fs::write(
        policy_file(&node, "no-delete"),
        DENY_DELETE.replace("action: DENY", "action: DENIED"),
    )?;
    std::fs::write(policy_file(&node, "httpbin"), "kind: [")?;
    node.start_agent()?;
    expect(&node)?;

    let log = node.agent_log();
    assert!(
        log.lines()
            .any(|l| l.contains("spec.action: unknown action \"DENIED\"")
                && l.contains("the last good version (accepted ")),
        "{log}"
    );
    let got = node.egret_ok(&["get", "ap", "no-delete", "-n", "istio-egress", "-o", "yaml"])?;
    assert!(got.contains("action: DENY\n"), "{got}");
    assert!(
        got.contains("type: Accepted") && got.contains("reason: Invalid"),
        "{got}"
    );
    let status = node.status()?;
    assert_eq!(
        status["refused"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    Ok(())
}

#[test]
fn an_invalid_allow_with_no_last_good_version_denies_instead_of_allowing_all() -> anyhow::Result<()>
{
    let mut node = node_with(&[])?;
    assert_eq!(curl(&node, "httpbin.org/get", &[])?, "HTTP/1.1 200 OK");
    // Never valid, so never accepted: written straight into the folder.
    let before = node.generation().unwrap_or(0);
    std::fs::write(
        policy_file(&node, "httpbin"),
        AUTHORIZATION_POLICY.replace("methods: [\"GET\"]", "methods: 42"),
    )?;
    wait_for_generation(&node, before)?;
    let denied = curl(&node, "httpbin.org/get", &[])?;
    assert_eq!(denied, "HTTP/1.1 403 Forbidden", "{}", node.agent_log());
    let log = node.agent_log();
    assert!(
        log.lines().any(
            |l| l.contains("AuthorizationPolicy istio-egress/httpbin: spec.rules[0]")
                && l.contains("it denies every request and connection to what it targets")
        ),
        "{log}"
    );
    // And so it stays across a restart.
    assert!(node.stop_agent());
    node.start_agent()?;
    let denied = curl(&node, "httpbin.org/get", &[])?;
    assert_eq!(denied, "HTTP/1.1 403 Forbidden", "{}", node.agent_log());
    Ok(())
}
