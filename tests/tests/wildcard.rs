//! Wildcard hosts with `resolution: DYNAMIC_DNS`: every name under
//! `*.example.test` resolves to the entry's one VIP, the waypoint picks the
//! real upstream by the request's Host (plain HTTP, and TLS-originated with
//! the Host as SNI), and names outside the wildcard are not captured.

use std::time::{Duration, Instant};

use egret_e2e::node::EXTERNAL_ADDR;
use egret_e2e::tls::TestCa;
use egret_e2e::walkthrough::{curl_sv as curl, mesh_with_waypoint};
use egret_e2e::{Node, NodeOptions, TlsHttpbin};

/// Curls until the body contains `needle` (config applies asynchronously).
fn expect(node: &Node, url: &str, needle: &str) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (body, headers) = curl(node, url)?;
        if body.contains(needle) {
            return Ok((body, headers));
        }
        if Instant::now() > deadline {
            panic!(
                "{url}: want {needle:?}, got {body}\n{headers}\nagent log:\n{}",
                node.agent_log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const WILDCARD: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: example-test
  namespace: istio-egress
spec:
  hosts:
  - '*.example.test'
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DYNAMIC_DNS
";

#[test]
#[allow(clippy::needless_update)]
fn hosts_under_a_dynamic_dns_wildcard_go_through_the_waypoint() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    let ca = TestCa::new(certs.path(), "test")?;
    let server = ca.server("wild", &["*.example.test"])?;
    let node = Node::start(NodeOptions {
        dns_records: vec![
            ("a.example.test".into(), EXTERNAL_ADDR.into()),
            ("b.example.test".into(), EXTERNAL_ADDR.into()),
            ("outside.test".into(), EXTERNAL_ADDR.into()),
        ],
        tls_httpbins: vec![TlsHttpbin {
            port: 443,
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }],
        ca_roots: vec![ca.cert_path()],
        // Options added to the harness later keep their defaults.
        ..NodeOptions::default()
    })?;
    mesh_with_waypoint(&node)?;
    node.apply(WILDCARD)?;

    for host in ["a.example.test", "b.example.test"] {
        let (body, headers) = expect(&node, &format!("{host}/get"), "\"url\"")?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        assert_eq!(json["url"], format!("http://{host}/get"), "{body}");
        assert!(headers.contains("< server: istio-envoy"), "{headers}");
        // Both names got the wildcard's one VIP.
        assert!(headers.contains("Trying 240.240.0.2:80"), "{headers}");
    }
    let log = node.agent_log();
    for host in ["a.example.test", "b.example.test"] {
        assert!(
            log.lines().any(|l| l.contains("request complete")
                && l.contains(&format!("host=\"{host}\""))
                && l.contains("dst.service=\"*.example.test\"")
                && l.contains("response_code=200")),
            "{host}: {log}"
        );
    }

    // A name outside the wildcard is answered by the real DNS and not
    // captured: no waypoint headers.
    let (body, headers) = expect(&node, "outside.test/get", "\"url\"")?;
    assert!(!headers.contains("istio-envoy"), "{headers}");
    assert!(
        headers.contains(&format!("Trying {EXTERNAL_ADDR}:80")),
        "{headers}"
    );
    assert!(body.contains("http://outside.test/get"), "{body}");

    // With TLS origination (DestinationRule on the wildcard), each name is
    // its own SNI and verified against the server's wildcard certificate.
    node.apply(&WILDCARD.replace(
        "    protocol: HTTP\n",
        "    protocol: HTTP\n    targetPort: 443\n",
    ))?;
    node.apply(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: example-test
  namespace: istio-egress
spec:
  host: '*.example.test'
  trafficPolicy:
    tls:
      mode: SIMPLE
",
    )?;
    for host in ["a.example.test", "b.example.test"] {
        expect(
            &node,
            &format!("{host}/get"),
            &format!("https://{host}/get"),
        )?;
    }
    Ok(())
}
