//! Walkthrough Steps 4a and 4b on a sealed test node: AuthorizationPolicy and
//! VirtualService at the waypoint, with the walkthrough's manifests byte for
//! byte, real curl and a real httpbin.

use std::time::Duration;

use egret_e2e::manifests::{AUTHORIZATION_POLICY, SERVICE_ENTRY, VIRTUAL_SERVICE};
use egret_e2e::walkthrough::mesh_with_waypoint;
use egret_e2e::{Node, NodeOptions};

/// Steps 1–3: namespaces, waypoint, ServiceEntry.
fn walkthrough_through_step3() -> anyhow::Result<Node> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    Ok(node)
}

struct Reply {
    status_line: String,
    headers: String,
    body: String,
}

/// `curl -sik` from the walkthrough's workload; `extra` are more curl args.
fn curl(node: &Node, url: &str, extra: &[&str]) -> anyhow::Result<Reply> {
    let mut args = vec!["curl", "-sik", "-m", "10"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = node.exec("bookinfo", "bookinfo-productpage", &args)?;
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    Ok(Reply {
        status_line: head.lines().next().unwrap_or_default().to_string(),
        headers: head.to_string(),
        body: body.to_string(),
    })
}

/// Waits until the agent's config generation passes `after`.
fn wait_applied(node: &Node, after: u64) {
    node.wait_until(Duration::from_secs(5), || {
        node.status()
            .map(|s| s["generation"].as_u64().unwrap_or(0) > after)
            .unwrap_or(false)
    });
}

fn generation(node: &Node) -> anyhow::Result<u64> {
    Ok(node.status()?["generation"].as_u64().unwrap_or(0))
}

#[test]
fn step4a_only_get_of_get_is_allowed() -> anyhow::Result<()> {
    let node = walkthrough_through_step3()?;
    let g = generation(&node)?;
    node.apply(AUTHORIZATION_POLICY)?;
    wait_applied(&node, g);

    let post = curl(&node, "httpbin.org/post", &["-X", "POST"])?;
    assert_eq!(
        post.status_line.trim(),
        "HTTP/1.1 403 Forbidden",
        "{}",
        post.headers
    );
    for header in [
        "content-length: 19",
        "content-type: text/plain",
        "server: istio-envoy",
    ] {
        assert!(
            post.headers.contains(header),
            "missing {header}: {}",
            post.headers
        );
    }
    assert_eq!(post.body, "RBAC: access denied");
    // GET of a path the rule does not name is denied too.
    let other = curl(&node, "httpbin.org/headers", &[])?;
    assert!(other.status_line.contains("403"), "{}", other.status_line);
    // A dot-segment path cannot dodge the policy.
    let sneaky = curl(
        &node,
        "httpbin.org/get/../post",
        &["--path-as-is", "-X", "POST"],
    )?;
    assert!(sneaky.status_line.contains("403"), "{}", sneaky.status_line);

    let get = curl(&node, "httpbin.org/get", &[])?;
    assert_eq!(get.status_line.trim(), "HTTP/1.1 200 OK", "{}", get.headers);

    let log = node.agent_log();
    assert!(
        log.lines().any(|l| l.contains("response_code=403")
            && l.contains("authz.decision=\"deny\"")
            && l.contains("response_flags=RBAC")),
        "no deny access line:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("response_code=200")
            && l.contains("authz.policy=\"istio-egress/httpbin\"")),
        "no allow line naming the policy:\n{log}"
    );

    // Deleting the policy restores Step 3's behaviour.
    let g = generation(&node)?;
    node.egret_ok(&[
        "delete",
        "authorizationpolicy",
        "httpbin",
        "-n",
        "istio-egress",
    ])?;
    wait_applied(&node, g);
    let post = curl(&node, "httpbin.org/post", &["-X", "POST"])?;
    assert!(post.status_line.contains("200"), "{}", post.headers);
    Ok(())
}

#[test]
fn step4b_adds_the_request_header_and_deleting_removes_it() -> anyhow::Result<()> {
    let node = walkthrough_through_step3()?;
    let g = generation(&node)?;
    node.apply(VIRTUAL_SERVICE)?;
    wait_applied(&node, g);
    let get = curl(&node, "httpbin.org/get", &[])?;
    assert!(get.status_line.contains("200"), "{}", get.headers);
    let json: serde_json::Value = serde_json::from_str(&get.body)?;
    assert_eq!(
        json["headers"]["My-Added-Header"], "added-value",
        "{}",
        get.body
    );

    let g = generation(&node)?;
    node.egret_ok(&["delete", "virtualservice", "httpbin", "-n", "istio-egress"])?;
    wait_applied(&node, g);
    let get = curl(&node, "httpbin.org/get", &[])?;
    let json: serde_json::Value = serde_json::from_str(&get.body)?;
    assert!(
        json["headers"].get("My-Added-Header").is_none(),
        "{}",
        get.body
    );
    Ok(())
}

#[test]
fn deny_beats_allow_audit_changes_nothing_dry_run_is_not_enforced() -> anyhow::Result<()> {
    let node = walkthrough_through_step3()?;
    let g = generation(&node)?;
    node.apply(AUTHORIZATION_POLICY)?;
    node.apply(
        r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: no-get
  namespace: istio-egress
spec:
  targetRefs:
  - kind: Gateway
    name: egress-waypoint
    group: gateway.networking.k8s.io
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/get"]
        methods: ["GET"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: audit-all
  namespace: istio-egress
spec:
  targetRefs:
  - kind: Gateway
    name: egress-waypoint
    group: gateway.networking.k8s.io
  action: AUDIT
  rules:
  - {}
"#,
    )?;
    wait_applied(&node, g);
    let get = curl(&node, "httpbin.org/get", &[])?;
    assert!(
        get.status_line.contains("403"),
        "DENY did not beat ALLOW: {}",
        get.headers
    );
    let log = node.agent_log();
    assert!(
        log.lines()
            .any(|l| l.contains("authz.policy=\"istio-egress/no-get\"")
                && l.contains("authz.audit=\"istio-egress/audit-all\"")),
        "deny line should name the DENY policy and the AUDIT one:\n{log}"
    );

    // The same DENY in dry-run is logged, not enforced.
    let g = generation(&node)?;
    let dry = node.egret_ok(&[
        "get",
        "authorizationpolicy",
        "no-get",
        "-n",
        "istio-egress",
        "-o",
        "yaml",
    ])?;
    let dry = dry.replace(
        "  name: no-get\n",
        "  name: no-get\n  annotations:\n    istio.io/dry-run: \"true\"\n",
    );
    node.apply(&dry)?;
    wait_applied(&node, g);
    let get = curl(&node, "httpbin.org/get", &[])?;
    assert!(
        get.status_line.contains("200"),
        "dry-run policy was enforced: {}",
        get.headers
    );
    assert!(
        node.agent_log()
            .lines()
            .any(|l| l.contains("authz.dry_run=\"istio-egress/no-get:would-deny\"")),
        "dry-run outcome not logged:\n{}",
        node.agent_log()
    );
    Ok(())
}

#[test]
fn invalid_policies_are_rejected_with_their_name() -> anyhow::Result<()> {
    let node = walkthrough_through_step3()?;
    let cases = [
        (
            AUTHORIZATION_POLICY.replace("action: ALLOW", "action: PERMIT"),
            "PERMIT",
        ),
        (
            AUTHORIZATION_POLICY.replace(
                "    - operation:",
                "    - operation:\n        notPorts: [\"x\"]",
            ),
            "httpbin",
        ),
        (
            AUTHORIZATION_POLICY.replace("action: ALLOW", "action: CUSTOM"),
            "CUSTOM",
        ),
        (
            VIRTUAL_SERVICE.replace(
                "  - route:",
                "  - match:\n    - uri:\n        regex: \"(\"\n    route:",
            ),
            "regex",
        ),
    ];
    for (yaml, needle) in cases {
        let out = node.egret_stdin(&["apply", "-f", "-"], Some(&yaml))?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{yaml}");
        assert!(
            err.contains(needle),
            "error `{err}` does not name `{needle}`"
        );
    }
    // Nothing was installed: requests still flow as in Step 3.
    let get = curl(&node, "httpbin.org/post", &["-X", "POST"])?;
    assert!(get.status_line.contains("200"), "{}", get.headers);
    Ok(())
}

/// A TCP port of a waypoint-bound ServiceEntry: raw bytes to httpbin.
const TCP_SERVICE: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: raw
  namespace: istio-egress
spec:
  hosts:
  - raw.example.test
  ports:
  - number: 8080
    name: tcp
    protocol: TCP
    targetPort: 80
  resolution: STATIC
  endpoints:
  - address: 192.0.2.10
"#;

#[test]
fn tcp_connections_are_authorized_per_connection() -> anyhow::Result<()> {
    let node = walkthrough_through_step3()?;
    let g = generation(&node)?;
    node.apply(TCP_SERVICE)?;
    wait_applied(&node, g);
    let url = "http://raw.example.test:8080/get";
    let open = curl(&node, url, &[])?;
    assert!(
        open.status_line.contains("200"),
        "TCP port not proxied: {}",
        open.headers
    );
    assert!(
        !open.headers.contains("istio-envoy"),
        "TCP port went through L7: {}",
        open.headers
    );

    // A DENY on the port closes the connection.
    let g = generation(&node)?;
    node.apply(
        r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: no-8080
  namespace: istio-egress
spec:
  targetRefs:
  - kind: Gateway
    name: egress-waypoint
    group: gateway.networking.k8s.io
  action: DENY
  rules:
  - to:
    - operation:
        ports: ["8080"]
"#,
    )?;
    wait_applied(&node, g);
    let denied = curl(&node, url, &[])?;
    assert!(
        denied.status_line.is_empty(),
        "denied TCP connection answered: {}",
        denied.headers
    );
    assert!(
        node.agent_log()
            .lines()
            .any(|l| l.contains("connection complete") && l.contains("response_flags=RBAC")),
        "no RBAC connection line:\n{}",
        node.agent_log()
    );
    // HTTP to port 80 is untouched by a port-8080 DENY.
    let http = curl(&node, "httpbin.org/get", &[])?;
    assert!(http.status_line.contains("200"), "{}", http.headers);

    // Step 4a's ALLOW has only HTTP rules: on TCP they are dropped whole, so
    // nothing allows the TCP connection (Istio's semantics).
    let g = generation(&node)?;
    node.egret_ok(&[
        "delete",
        "authorizationpolicy",
        "no-8080",
        "-n",
        "istio-egress",
    ])?;
    node.apply(AUTHORIZATION_POLICY)?;
    wait_applied(&node, g + 1);
    let denied = curl(&node, url, &[])?;
    assert!(
        denied.status_line.is_empty(),
        "HTTP-only ALLOW admitted TCP: {}",
        denied.headers
    );
    Ok(())
}

#[test]
fn http2_prior_knowledge_from_the_workload_gets_the_same_policy() -> anyhow::Result<()> {
    let node = walkthrough_through_step3()?;
    let g = generation(&node)?;
    node.apply(AUTHORIZATION_POLICY)?;
    node.apply(VIRTUAL_SERVICE)?;
    wait_applied(&node, g + 1);
    let get = curl(&node, "httpbin.org/get", &["--http2-prior-knowledge"])?;
    assert_eq!(get.status_line.trim(), "HTTP/2 200", "{}", get.headers);
    assert!(
        get.headers.contains("server: istio-envoy"),
        "{}",
        get.headers
    );
    let json: serde_json::Value = serde_json::from_str(&get.body)?;
    assert_eq!(
        json["headers"]["My-Added-Header"], "added-value",
        "{}",
        get.body
    );
    let post = curl(
        &node,
        "httpbin.org/post",
        &["--http2-prior-knowledge", "-X", "POST"],
    )?;
    assert_eq!(post.status_line.trim(), "HTTP/2 403", "{}", post.headers);
    assert_eq!(post.body, "RBAC: access denied");
    assert!(
        node.agent_log()
            .lines()
            .any(|l| l.contains("protocol=HTTP2") && l.contains("response_code=403")),
        "no HTTP2 access line:\n{}",
        node.agent_log()
    );
    Ok(())
}

fn virtual_service_with(route_extras: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
  namespace: istio-egress
spec:
  hosts:
  - httpbin.org
  http:
  - route:
    - destination:
        host: httpbin.org
{route_extras}"#
    )
}

fn upstream_hits(node: &Node, path: &str) -> usize {
    node.httpbin_log()
        .lines()
        .filter(|l| l.contains(&format!("\"GET {path} ")))
        .count()
}

#[test]
fn retries_timeouts_and_faults_follow_the_route() -> anyhow::Result<()> {
    let node = walkthrough_through_step3()?;
    let g = generation(&node)?;
    node.apply(&virtual_service_with(
        "    retries:\n      attempts: 3\n      retryOn: 5xx\n    timeout: 2s\n",
    ))?;
    wait_applied(&node, g);
    let failing = curl(&node, "httpbin.org/status/503", &[])?;
    assert!(failing.status_line.contains("503"), "{}", failing.headers);
    assert!(
        node.wait_until(Duration::from_secs(3), || upstream_hits(
            &node,
            "/status/503"
        ) == 4),
        "expected 1 try + 3 retries, httpbin saw {}",
        upstream_hits(&node, "/status/503")
    );
    // The route timeout bounds the whole exchange.
    let slow = curl(&node, "httpbin.org/delay/5", &[])?;
    assert!(slow.status_line.contains("504"), "{}", slow.headers);
    assert_eq!(slow.body, "upstream request timeout");

    // attempts: 0 turns retries off.
    let g = generation(&node)?;
    node.apply(&virtual_service_with("    retries:\n      attempts: 0\n"))?;
    wait_applied(&node, g);
    let before = upstream_hits(&node, "/status/500");
    let failing = curl(&node, "httpbin.org/status/500", &[])?;
    assert!(failing.status_line.contains("500"), "{}", failing.headers);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(upstream_hits(&node, "/status/500") - before, 1);

    // A fault abort answers without going upstream.
    let g = generation(&node)?;
    node.apply(&virtual_service_with(
        "    fault:\n      abort:\n        httpStatus: 418\n        percentage:\n          value: 100\n",
    ))?;
    wait_applied(&node, g);
    let before = upstream_hits(&node, "/get");
    let aborted = curl(&node, "httpbin.org/get", &[])?;
    assert!(aborted.status_line.contains("418"), "{}", aborted.headers);
    assert_eq!(upstream_hits(&node, "/get"), before);
    Ok(())
}
