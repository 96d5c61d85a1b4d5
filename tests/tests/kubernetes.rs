//! The walkthrough on "Kubernetes", with no cluster: a fake API server in
//! the node's namespace, the real `egret run --kubernetes` on node A (eBPF,
//! a pod made as kubelet would), and the waypoint Deployment the agent
//! creates run as kubelet would run it, on a second node. One cluster CA,
//! from a `cacerts` Secret of a CA egret did not make. Steps 3–4c go from
//! the pod through HBONE to the waypoint and out to httpbin; both
//! identities show in the logs. Real curl, httpbin, dnsmasq; nothing leaves
//! the namespaces made here.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use egret_e2e::cluster::fake_pod::FakePod;
use egret_e2e::cluster::{run_deployment, Api};
use egret_e2e::manifests::{
    AUTHORIZATION_POLICY, BOOKINFO_NAMESPACE, GATEWAY, SERVICE_ENTRY, TLS_ORIGINATION,
    VIRTUAL_SERVICE,
};
use egret_e2e::node::NODE_ADDR;
use egret_e2e::tls::TestCa;
use egret_e2e::two_nodes::{WaypointNode, LINK_ADDR};
use egret_e2e::walkthrough::{curl_result, CURL_WITH_STATUS};
use egret_e2e::{Node, NodeOptions, TlsHttpbin};
use serde_json::{json, Value};

const NS: &str = "istio-egress";
const GW: &str = "egress-waypoint";
const POD: &str = "productpage-v1-5f9d7c8b6-x7k2p";
const POD_IP: &str = "10.244.0.9";
const POD_IP6: &str = "fd00:10:244::9";
const POD_ID: &str = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage";
const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/istio-egress/sa/egress-waypoint";

/// `kubectl create secret generic cacerts -n egret-system --from-file=…`
/// for a root made outside egret: it is the signing CA and the root.
fn cacerts(ca: &TestCa) -> Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": "cacerts", "namespace": "egret-system"},
           "data": {"ca-cert.pem": b64(&ca.cert_pem()), "ca-key.pem": b64(&ca.key_pem()),
                    "root-cert.pem": b64(&ca.cert_pem()), "cert-chain.pem": ""}})
}

/// The app's pod: kubelet's namespace and cgroup, an interface with its
/// dual-stack addresses (and no route off the pod), a resolv.conf naming
/// the node's resolver.
struct AppPod {
    pod: FakePod,
}

impl AppPod {
    fn start() -> anyhow::Result<AppPod> {
        let uid = format!("4c1d7f0e-9a2b-4c3d-8e5f-{:012x}", std::process::id());
        let pod = FakePod::start(&uid, "kpp");
        pod.wait_ready();
        let ns = pod.netns_name().to_string();
        for args in [
            // A veth whose peer stays in the pod: an interface to hold the
            // addresses, with no way out (the kernel has no dummy driver here).
            vec![
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "cni0",
            ],
            vec!["-n", &ns, "link", "set", "cni0", "up"],
            vec![
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{POD_IP}/32"),
                "dev",
                "eth0",
            ],
            vec![
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{POD_IP6}/128"),
                "dev",
                "eth0",
                "nodad",
            ],
            vec!["-n", &ns, "link", "set", "eth0", "up"],
        ] {
            egret_e2e::process::must("ip", &args)?;
        }
        let etc = Path::new("/etc/netns").join(&ns);
        std::fs::create_dir_all(&etc)?;
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {NODE_ADDR}\n"))?;
        Ok(AppPod { pod })
    }

    fn object(&self, uid: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": POD, "namespace": "bookinfo", "uid": uid,
                         "labels": {"app": "productpage", "version": "v1", "pod-template-hash": "5f9d7c8b6"}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "bookinfo-productpage",
                     "containers": [{"name": "productpage", "image": "docker.io/istio/examples-bookinfo-productpage-v1"}]},
            "status": {"phase": "Running", "podIP": POD_IP,
                       "podIPs": [{"ip": POD_IP}, {"ip": POD_IP6}]}})
    }

    /// `curl ARGS` in the pod: (status, body, stderr).
    fn curl(&self, args: &[&str]) -> anyhow::Result<(u16, String, String)> {
        let out = Command::new("ip")
            .args(["netns", "exec", self.pod.netns_name()])
            .args(CURL_WITH_STATUS)
            .args(args)
            .output()?;
        Ok(curl_result(&out))
    }
}

impl Drop for AppPod {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(self.pod.netns_name()));
    }
}

/// Curls until the answer is `status` with `needle` in the body (config
/// reaches agent and waypoint through their watches).
fn expect(
    pod: &AppPod,
    args: &[&str],
    status: u16,
    needle: &str,
    logs: &dyn Fn() -> String,
) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body, stderr) = pod.curl(args)?;
        if code == status && body.contains(needle) {
            return Ok((body, stderr));
        }
        if Instant::now() > deadline {
            panic!(
                "{args:?}: want {status} with {needle:?}, got {code}: {body}\n{stderr}\n{}",
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn line_with<'a>(log: &'a str, needles: &[&str]) -> Option<&'a str> {
    log.lines()
        .rev()
        .find(|l| needles.iter().all(|n| l.contains(n)))
}

#[test]
fn walkthrough_on_kubernetes_through_a_waypoint_deployment() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    let web_ca = TestCa::new(certs.path(), "httpbin")?;
    let server = web_ca.server("httpbin", &["httpbin.org"])?;
    let mut node = Node::start(NodeOptions {
        tls_httpbins: vec![TlsHttpbin {
            port: 443,
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }],
        defer_agent: true,
        ..NodeOptions::default()
    })?;
    let api = Api::start_in(&node)?;
    let mesh_ca = TestCa::new(&certs.path().join("mesh"), "Example Corp Mesh Root")?;
    api.fake.apply(cacerts(&mesh_ca));
    // Steps 1–2 as `kubectl apply`, `create`, `label` leave them.
    api.apply_yaml(BOOKINFO_NAMESPACE);
    api.fake.apply(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS,
        "labels": {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": GW}}}),
    );
    api.apply_yaml(GATEWAY);
    let app = AppPod::start()?;
    let uid = format!("4c1d7f0e-9a2b-4c3d-8e5f-{:012x}", std::process::id());
    api.fake.apply(app.object(&uid));

    let kubeconfig = api.kubeconfig(&node.config_dir().join("kube"), "127.0.0.1")?;
    let kubeconfig = kubeconfig.display().to_string();
    node.start_agent_with(&[
        "--kubernetes",
        "--kubeconfig",
        &kubeconfig,
        "--node-name",
        "node-a",
        "--status-writer",
        "always",
        "--waypoint-image",
        "egret:e2e",
    ])?;

    // Step 2: `kubectl rollout status deployment/egress-waypoint` has a
    // Deployment to wait for; run it as kubelet would.
    let deployment = api.wait_for("the waypoint Deployment", |f| f.get("deployments", NS, GW))?;
    api.wait_for("the waypoint's identity Secret", |f| {
        f.get("secrets", NS, "egress-waypoint-identity")
    })?;
    let service = api.wait_for("the waypoint Service", |f| f.get("services", NS, GW))?;
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    let mut wp = WaypointNode::linked(&node)?;
    wp.add_address(&node, &cluster_ip)?;
    let wp_kubeconfig = api.kubeconfig(&wp.config.path().join("kube"), LINK_ADDR)?;
    let pod_files = wp.config.path().join("pod");
    run_deployment(
        &api,
        &deployment,
        &mut wp,
        &pod_files,
        &[
            "--kubeconfig".into(),
            wp_kubeconfig.display().to_string(),
            // What the pod's cluster DNS and image roots would give it.
            "--dns-upstream".into(),
            NODE_ADDR.into(),
            "--ca-roots".into(),
            web_ca.cert_path().display().to_string(),
        ],
    )?;
    let gateway = api.wait_for("Programmed with the Service's address", |f| {
        let gw = f.get("gateways", NS, GW)?;
        let programmed = gw["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Programmed" && c["status"] == "True");
        (programmed && gw["status"]["addresses"][0]["value"] == cluster_ip.as_str()).then_some(gw)
    })?;
    assert_eq!(gateway["status"]["addresses"][0]["type"], "IPAddress");
    let logs = || {
        format!(
            "agent log:\n{}\nwaypoint log:\n{}",
            node.agent_log(),
            wp.log()
        )
    };

    // Step 3: through HBONE to the waypoint Deployment.
    api.apply_yaml(SERVICE_ENTRY);
    let (body, headers) = expect(
        &app,
        &["-4", "httpbin.org/get"],
        200,
        "\"http://httpbin.org/get\"",
        &logs,
    )?;
    assert!(headers.contains("< server: istio-envoy"), "{headers}");
    assert!(body.contains("\"url\""), "{body}");
    let wp_log = wp.log();
    let request = line_with(&wp_log, &["request complete", "response_code=200"])
        .unwrap_or_else(|| panic!("no request at the waypoint:\n{}", logs()));
    for field in [
        format!("src.identity=\"{POD_ID}\""),
        format!("dst.identity=\"{WAYPOINT_ID}\""),
        "dst.hbone_addr=240.240.0.2:80".to_string(),
        "dst.service=\"httpbin.org\"".to_string(),
        format!("src.addr={POD_IP}:"),
        format!("src.workload=\"{POD}\""),
    ] {
        assert!(request.contains(&field), "missing {field}: {request}");
    }
    let tunnelled = node.wait_until(Duration::from_secs(5), || {
        line_with(
            &node.agent_log(),
            &[
                "connection complete",
                &format!("dst.addr={cluster_ip}:15008"),
                &format!("src.identity=\"{POD_ID}\""),
            ],
        )
        .is_some()
    });
    assert!(tunnelled, "no tunnel line on the node:\n{}", logs());
    assert!(
        !node.agent_log().contains("request complete"),
        "the node served L7 itself:\n{}",
        logs()
    );

    // The pod's IPv6 address, over IPv6 (the VIP's AAAA).
    expect(
        &app,
        &["-6", "httpbin.org/get"],
        200,
        "\"http://httpbin.org/get\"",
        &logs,
    )?;
    let v6 = format!("src.addr=[{POD_IP6}]:");
    assert!(
        line_with(&wp.log(), &["request complete", &v6]).is_some(),
        "no IPv6 request at the waypoint:\n{}",
        logs()
    );

    // Step 4a: only GET /get is allowed, at the waypoint.
    api.apply_yaml(AUTHORIZATION_POLICY);
    expect(&app, &["httpbin.org/ip"], 403, "RBAC: access denied", &logs)?;
    expect(
        &app,
        &["httpbin.org/get"],
        200,
        "\"http://httpbin.org/get\"",
        &logs,
    )?;
    assert!(
        line_with(
            &wp.log(),
            &["response_code=403", &format!("src.identity=\"{POD_ID}\"")]
        )
        .is_some(),
        "the waypoint did not deny by the pod's identity:\n{}",
        logs()
    );

    // Step 4b: the header added at the waypoint.
    api.apply_yaml(VIRTUAL_SERVICE);
    expect(&app, &["httpbin.org/get"], 200, "added-value", &logs)?;

    // Step 4c: plain HTTP from the pod, TLS from the waypoint.
    api.apply_yaml(TLS_ORIGINATION);
    let (body, _) = expect(
        &app,
        &["httpbin.org/get"],
        200,
        "\"https://httpbin.org/get\"",
        &logs,
    )?;
    let json: Value = serde_json::from_str(&body)?;
    assert_eq!(json["headers"]["My-Added-Header"], "added-value", "{body}");
    assert!(
        line_with(
            &wp.log(),
            &[
                "request complete",
                "response_code=200",
                "dst.addr=192.0.2.10:443"
            ]
        )
        .is_some(),
        "the waypoint did not originate TLS:\n{}",
        logs()
    );
    Ok(())
}
