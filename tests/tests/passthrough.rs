//! TLS passthrough: the workload speaks HTTPS itself to a TLS ServiceEntry
//! port bound to the waypoint; the waypoint reads the SNI, applies
//! `connection.sni` policy, refuses names outside the entry, and carries the
//! bytes untouched (the workload sees the upstream's own certificate).

use std::time::{Duration, Instant};

use egret_e2e::node::EXTERNAL_ADDR;
use egret_e2e::tls::TestCa;
use egret_e2e::walkthrough::{mesh_with_waypoint, WORKLOAD_NS, WORKLOAD_SA};
use egret_e2e::{Node, NodeOptions, TlsHttpbin};

/// What one `curl -sv` from the workload gave.
struct Curl {
    /// `%{http_code}`: 0 when no response came.
    status: u16,
    body: String,
    /// curl's verbose trace (TLS handshake, headers).
    trace: String,
}

/// `curl -sv --cacert CA URL` from the workload, plus `extra` options.
fn curl(node: &Node, ca: &str, url: &str, extra: &[&str]) -> anyhow::Result<Curl> {
    let mut cmd = vec![
        "curl",
        "-sv",
        "-m",
        "10",
        "--cacert",
        ca,
        "-w",
        "\n%{http_code}",
    ];
    cmd.extend_from_slice(extra);
    cmd.push(url);
    let out = node.exec(WORKLOAD_NS, WORKLOAD_SA, &cmd)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Ok(Curl {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
        trace: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Curls until `done` holds (config applies asynchronously); panics with
/// the agent log if it never does.
fn until(
    node: &Node,
    ca: &str,
    url: &str,
    extra: &[&str],
    what: &str,
    done: impl Fn(&Curl) -> bool,
) -> anyhow::Result<Curl> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = curl(node, ca, url, extra)?;
        if done(&got) {
            return Ok(got);
        }
        if Instant::now() > deadline {
            panic!(
                "{url}: want {what}, got {}: {}\n{}\nagent log:\n{}",
                got.status,
                got.body,
                got.trace,
                node.agent_log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `connection complete` lines carrying `sni="<sni>"`.
fn connection_lines(node: &Node, sni: &str) -> Vec<String> {
    node.agent_log()
        .lines()
        .filter(|l| l.contains("connection complete") && l.contains(&format!("sni=\"{sni}\"")))
        .map(str::to_string)
        .collect()
}

/// A ServiceEntry `name` for `host` with port 443 as TLS.
fn tls_service_entry(name: &str, host: &str, resolution: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: istio-egress
spec:
  hosts: ['{host}']
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: {resolution}
"
    )
}

/// The upstream's second TLS listener, reached only through a `tls` route.
const ALT_PORT: u16 = 8443;

const ALT_SERVICE_ENTRY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: alt
  namespace: istio-egress
spec:
  hosts: [alt.upstream.test]
  ports:
  - {number: 443, name: tls, protocol: TLS, targetPort: 8443}
  resolution: STATIC
  endpoints:
  - address: 192.0.2.10
";

const TLS_ROUTES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: example-tls
  namespace: istio-egress
spec:
  hosts: ['*.example.test']
  tls:
  - match: [{sniHosts: [a.example.test], port: 443}]
    route:
    - destination: {host: alt.upstream.test, port: {number: 443}}
";

const DENY_SNI: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-sni
  namespace: istio-egress
spec:
  targetRefs:
  - kind: Gateway
    name: egress-waypoint
    group: gateway.networking.k8s.io
  action: DENY
  rules:
  - when:
    - key: connection.sni
      values: [denied.example.test]
";

#[test]
#[allow(clippy::needless_update)]
fn https_from_the_workload_passes_through_by_sni() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    let ca = TestCa::new(certs.path(), "passthrough")?;
    let server = ca.server("upstream", &["httpbin.org", "*.example.test"])?;
    let node = Node::start(NodeOptions {
        dns_records: ["a.example.test", "b.example.test", "denied.example.test"]
            .iter()
            .map(|h| (h.to_string(), EXTERNAL_ADDR.to_string()))
            .collect(),
        tls_httpbins: [443, ALT_PORT]
            .into_iter()
            .map(|port| TlsHttpbin {
                port,
                cert: server.cert.clone(),
                key: server.key.clone(),
                client_ca: None,
            })
            .collect(),
        // Options added to the harness later keep their defaults.
        ..NodeOptions::default()
    })?;
    let ca_file = ca.cert_path();
    let ca_file = ca_file.to_str().expect("temp paths are UTF-8");
    mesh_with_waypoint(&node)?;

    // A plain host: the workload's own TLS reaches httpbin, whose
    // certificate (issued by the test CA) arrives unchanged.
    node.apply(&tls_service_entry("httpbin-tls", "httpbin.org", "DNS"))?;
    let ok = until(
        &node,
        ca_file,
        "https://httpbin.org/get",
        &[],
        "200 through the waypoint",
        |c| c.status == 200 && !connection_lines(&node, "httpbin.org").is_empty(),
    )?;
    let json: serde_json::Value = serde_json::from_str(&ok.body)?;
    assert_eq!(json["url"], "https://httpbin.org/get", "{}", ok.body);
    assert!(ok.trace.contains("issuer: CN=passthrough"), "{}", ok.trace);
    assert!(ok.trace.contains("subject: CN=httpbin.org"), "{}", ok.trace);
    // The waypoint never saw the HTTP inside: none of its headers.
    assert!(!ok.trace.contains("istio-envoy"), "{}", ok.trace);
    // It went to the VIP, i.e. through the waypoint.
    assert!(ok.trace.contains("Trying 240.240."), "{}", ok.trace);
    let line = connection_lines(&node, "httpbin.org").remove(0);
    assert!(line.contains("dst.service=\"httpbin.org\""), "{line}");
    assert!(
        line.contains(&format!("dst.addr={EXTERNAL_ADDR}:443")),
        "{line}"
    );
    assert!(!line.contains("response_flags"), "{line}");

    // A workload cannot steer the waypoint elsewhere: an SNI that is not
    // the entry's host, sent to its VIP, is closed.
    let steered = curl(
        &node,
        ca_file,
        "https://evil.test/get",
        &["--connect-to", "evil.test:443:httpbin.org:443"],
    )?;
    assert_eq!(steered.status, 0, "{}", steered.body);
    let lines = connection_lines(&node, "evil.test");
    assert_eq!(lines.len(), 1, "{}", node.agent_log());
    assert!(lines[0].contains("response_flags=NR"), "{}", lines[0]);
    assert!(
        lines[0].contains("is not a name of service httpbin.org"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("dst.addr="), "{}", lines[0]);

    // A wildcard with DYNAMIC_DNS: each SNI is resolved on its own.
    node.apply(&tls_service_entry(
        "example-tls",
        "*.example.test",
        "DYNAMIC_DNS",
    ))?;
    for host in ["a.example.test", "b.example.test"] {
        let url = format!("https://{host}/get");
        let got = until(&node, ca_file, &url, &[], "200", |c| c.status == 200)?;
        let json: serde_json::Value = serde_json::from_str(&got.body)?;
        assert_eq!(json["url"], url, "{}", got.body);
        let lines = connection_lines(&node, host);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("dst.service=\"*.example.test\"")
                    && l.contains(&format!("dst.addr={EXTERNAL_ADDR}:443"))
                    && !l.contains("response_flags")),
            "{host}: {lines:?}"
        );
    }

    // VirtualService `tls` routes by SNI: a.example.test goes to another
    // service port (the same server's second listener); a name no route
    // matches is closed.
    node.apply(ALT_SERVICE_ENTRY)?;
    node.apply(TLS_ROUTES)?;
    until(
        &node,
        ca_file,
        "https://a.example.test/get",
        &[],
        "200 from the routed port",
        |c| {
            c.status == 200
                && connection_lines(&node, "a.example.test")
                    .iter()
                    .any(|l| l.contains(&format!("dst.addr={EXTERNAL_ADDR}:{ALT_PORT}")))
        },
    )?;
    let unrouted = curl(&node, ca_file, "https://b.example.test/get", &[])?;
    assert_eq!(unrouted.status, 0, "{}", unrouted.body);
    let last = connection_lines(&node, "b.example.test").pop().unwrap();
    assert!(last.contains("response_flags=NR"), "{last}");
    assert!(last.contains("no VirtualService tls route"), "{last}");
    node.egret_ok(&[
        "delete",
        "virtualservice",
        "example-tls",
        "-n",
        "istio-egress",
    ])?;
    until(
        &node,
        ca_file,
        "https://denied.example.test/get",
        &[],
        "200 without routes",
        |c| c.status == 200,
    )?;

    // Policy on the SNI: one name is closed, its neighbour still passes.
    node.apply(DENY_SNI)?;
    until(
        &node,
        ca_file,
        "https://denied.example.test/get",
        &[],
        "closed by policy",
        |c| c.status == 0,
    )?;
    let denied = connection_lines(&node, "denied.example.test");
    let last = denied.last().expect("a line for the denied SNI");
    assert!(last.contains("response_flags=RBAC"), "{last}");
    assert!(last.contains("deny-sni"), "{last}");
    let allowed = curl(&node, ca_file, "https://a.example.test/get", &[])?;
    assert_eq!(allowed.status, 200, "{}", allowed.trace);
    Ok(())
}
