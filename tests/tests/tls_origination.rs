//! TLS origination (walkthrough Step 4c and the verification matrix): the
//! workload speaks plain HTTP, the waypoint speaks TLS to an httpbin behind
//! a test CA in the external namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use egret_e2e::manifests::{SERVICE_ENTRY, TLS_ORIGINATION};
use egret_e2e::node::EXTERNAL_ADDR;
use egret_e2e::tls::{LeafFiles, TestCa};
use egret_e2e::walkthrough::{
    curl_result, mesh_with_waypoint, CURL_WITH_STATUS, WORKLOAD_NS, WORKLOAD_SA,
};
use egret_e2e::{Node, NodeOptions, TlsHttpbin};

/// The TLS httpbin that wants a client certificate.
const MUTUAL_PORT: u16 = 8443;

/// `curl http://URL` from the workload: (status, body, curl's stderr).
fn curl(node: &Node, url: &str) -> anyhow::Result<(u16, String, String)> {
    let mut cmd = CURL_WITH_STATUS.to_vec();
    cmd.push(url);
    Ok(curl_result(&node.exec(WORKLOAD_NS, WORKLOAD_SA, &cmd)?))
}

/// Curls until the status is `status` and the body contains `needle`
/// (config is applied asynchronously); panics with the agent log if not.
fn expect(node: &Node, url: &str, status: u16, needle: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body, stderr) = curl(node, url)?;
        if code == status && body.contains(needle) {
            return Ok(body);
        }
        if Instant::now() > deadline {
            panic!(
                "{url}: want {status} with {needle:?}, got {code}: {body}\n{stderr}\nagent log:\n{}",
                node.agent_log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A ServiceEntry `host` (port 80, HTTP) whose endpoints listen on `target`.
fn service_entry(host: &str, target: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {host}\n  namespace: istio-egress\nspec:\n  hosts: [{host}]\n  ports:\n  - {{number: 80, name: http, protocol: HTTP, targetPort: {target}}}\n  resolution: DNS\n"
    )
}

/// A DestinationRule for `host` with `tls` (YAML lines under `tls:`).
fn destination_rule(host: &str, tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {host}-tls\n  namespace: istio-egress\nspec:\n  host: {host}\n  trafficPolicy:\n    tls:\n{tls}"
    )
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}\n"))
        .collect::<String>()
}

/// A Secret holding a client certificate in Istio's key names.
fn client_secret(name: &str, leaf: &LeafFiles) -> anyhow::Result<String> {
    let cert = std::fs::read_to_string(&leaf.cert)?;
    let key = std::fs::read_to_string(&leaf.key)?;
    Ok(format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: istio-egress\ntype: Opaque\nstringData:\n  cert: |\n{}  key: |\n{}",
        indent(&cert, "    "),
        indent(&key, "    ")
    ))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn step4c_plain_http_from_the_workload_is_tls_to_httpbin() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    let ca = TestCa::new(certs.path(), "test")?;
    let server = ca.server("httpbin", &["httpbin.org"])?;
    let node = Node::start(NodeOptions {
        tls_httpbins: vec![TlsHttpbin {
            port: 443,
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }],
        ca_roots: vec![ca.cert_path()],
        ..NodeOptions::default()
    })?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    expect(&node, "httpbin.org/get", 200, "\"http://httpbin.org/get\"")?;

    // Step 4c, byte for byte.
    node.apply(TLS_ORIGINATION)?;
    let body = expect(&node, "httpbin.org/get", 200, "\"https://httpbin.org/get\"")?;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(json["url"], "https://httpbin.org/get", "{body}");
    assert_eq!(json["headers"]["Host"], "httpbin.org", "{body}");

    let log = node.agent_log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("request complete") && l.contains("response_code=200"))
        .unwrap_or_else(|| panic!("no request line:\n{log}"));
    assert!(
        line.contains(&format!("dst.addr={EXTERNAL_ADDR}:443")),
        "{line}"
    );
    assert!(line.contains("dst.service=\"httpbin.org\""), "{line}");

    // Deleting the DestinationRule puts plain text back at once (to 443,
    // where a TLS server does not answer HTTP).
    node.egret_ok(&[
        "delete",
        "destinationrule",
        "httpbin.org-tls",
        "-n",
        "istio-egress",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body, _) = curl(&node, "httpbin.org/get")?;
        if !body.contains("https://httpbin.org/get") {
            assert_ne!(code, 200, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the DestinationRule stayed in force"
        );
    }
    Ok(())
}

#[test]
#[allow(clippy::needless_update)]
fn verification_matrix() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    let ca = TestCa::new(certs.path(), "trusted")?;
    let other_ca = TestCa::new(certs.path(), "other")?;
    let server = ca.server("httpbin", &["httpbin.org", "mtls.test"])?;
    let client = ca.client("client", "client.test")?;
    let stranger = other_ca.client("stranger", "client.test")?;
    let node = Node::start(NodeOptions {
        dns_records: vec![
            ("mismatch.test".into(), EXTERNAL_ADDR.into()),
            ("mtls.test".into(), EXTERNAL_ADDR.into()),
        ],
        tls_httpbins: vec![
            TlsHttpbin {
                port: 443,
                cert: server.cert.clone(),
                key: server.key.clone(),
                client_ca: None,
            },
            TlsHttpbin {
                port: MUTUAL_PORT,
                cert: server.cert.clone(),
                key: server.key.clone(),
                client_ca: Some(ca.cert_path()),
            },
        ],
        ca_roots: vec![ca.cert_path()],
        // Options added to the harness later keep their defaults.
        ..NodeOptions::default()
    })?;
    mesh_with_waypoint(&node)?;
    let https = |host: &str| format!("\"https://{host}/get\"");

    // Wrong CA: 503 with the TLS reason, flagged UF, and logged.
    node.apply(&service_entry("httpbin.org", 443))?;
    node.apply(&destination_rule(
        "httpbin.org",
        &format!(
            "      mode: SIMPLE\n      caCertificates: {}\n",
            path(&other_ca.cert_path())
        ),
    ))?;
    let body = expect(
        &node,
        "httpbin.org/get",
        503,
        "transport failure reason: TLS error",
    )?;
    assert!(body.contains("UnknownIssuer"), "{body}");
    let log = node.agent_log();
    assert!(
        log.lines().any(|l| l.contains("TLS origination failed")
            && l.contains("destination_rule=istio-egress/httpbin.org-tls")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("request complete")
            && l.contains("response_code=503")
            && l.contains("response_flags=UF")),
        "{log}"
    );

    // The right CA by file.
    node.apply(&destination_rule(
        "httpbin.org",
        &format!(
            "      mode: SIMPLE\n      caCertificates: {}\n",
            path(&ca.cert_path())
        ),
    ))?;
    expect(&node, "httpbin.org/get", 200, &https("httpbin.org"))?;

    // SAN mismatch: the certificate does not name what the rule wants.
    node.apply(&destination_rule(
        "httpbin.org",
        "      mode: SIMPLE\n      subjectAltNames: [api.other.test]\n",
    ))?;
    expect(
        &node,
        "httpbin.org/get",
        503,
        "certificate not valid for name",
    )?;
    // Any one of the names is enough.
    node.apply(&destination_rule(
        "httpbin.org",
        "      mode: SIMPLE\n      subjectAltNames: [api.other.test, mtls.test]\n",
    ))?;
    expect(&node, "httpbin.org/get", 200, &https("httpbin.org"))?;

    // A host the certificate does not name: refused, unless verification is off.
    node.apply(&service_entry("mismatch.test", 443))?;
    node.apply(&destination_rule("mismatch.test", "      mode: SIMPLE\n"))?;
    expect(
        &node,
        "mismatch.test/get",
        503,
        "certificate not valid for name",
    )?;
    node.apply(&destination_rule(
        "mismatch.test",
        "      mode: SIMPLE\n      insecureSkipVerify: true\n",
    ))?;
    expect(&node, "mismatch.test/get", 200, &https("mismatch.test"))?;

    // MUTUAL: the upstream requires a client certificate.
    node.apply(&service_entry("mtls.test", MUTUAL_PORT))?;
    node.apply(&destination_rule("mtls.test", "      mode: SIMPLE\n"))?;
    // TLS 1.3 reports a refused client certificate after the handshake.
    expect(&node, "mtls.test/get", 503, "upstream connect error")?;
    node.apply(&destination_rule(
        "mtls.test",
        &format!(
            "      mode: MUTUAL\n      clientCertificate: {}\n      privateKey: {}\n",
            path(&client.cert),
            path(&client.key)
        ),
    ))?;
    expect(&node, "mtls.test/get", 200, &https("mtls.test"))?;

    // The client files are re-read when they change: garbage keeps the
    // last good certificate in force, a certificate of another CA is
    // picked up (and refused by the server).
    std::fs::write(&client.cert, "garbage, not a certificate")?;
    expect(&node, "mtls.test/get", 200, &https("mtls.test"))?;
    assert!(
        node.agent_log().contains("TLS file rejected"),
        "{}",
        node.agent_log()
    );
    std::fs::copy(&stranger.cert, &client.cert)?;
    std::fs::copy(&stranger.key, &client.key)?;
    expect(&node, "mtls.test/get", 503, "upstream connect error")?;

    // credentialName: a missing Secret is a 503, an applied one works.
    node.apply(&destination_rule(
        "mtls.test",
        "      mode: MUTUAL\n      credentialName: mtls-client\n",
    ))?;
    expect(
        &node,
        "mtls.test/get",
        503,
        "transport failure reason: TLS setup error",
    )?;
    assert!(
        node.agent_log()
            .contains("credentialName: Secret istio-egress/mtls-client not found"),
        "{}",
        node.agent_log()
    );
    let good = ca.client("good-client", "client.test")?;
    node.apply(&client_secret("mtls-client", &good)?)?;
    expect(&node, "mtls.test/get", 200, &https("mtls.test"))?;
    Ok(())
}

#[test]
fn a_bad_secret_is_refused_and_the_previous_stays() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    let bad = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: mtls-client\n  namespace: istio-egress\nstringData:\n  cert: not a certificate\n";
    let out = node.egret_stdin(&["apply", "-f", "-"], Some(bad))?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Secret istio-egress/mtls-client")
            && err.contains("data[cert]: no PEM certificate"),
        "{err}"
    );
    Ok(())
}
