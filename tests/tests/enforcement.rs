//! End to end: egret as an enforcement point, tried the way an attacker
//! workload would. REGISTRY_ONLY in the kernel (mesh-wide and per
//! namespace), DNS only through egret, no exemption by mark or capability,
//! the control socket out of reach, and the agent's crash, restart and
//! upgrade without a gap. Real agent, real eBPF, real curl/httpbin/dnsmasq,
//! in sealed namespaces.

use std::time::{Duration, Instant};

use egret_e2e::manifests::{AUTHORIZATION_POLICY, SERVICE_ENTRY};
use egret_e2e::node::{EXTERNAL_ADDR, NODE_ADDR};
use egret_e2e::walkthrough::{mesh_with_waypoint, status_code, WORKLOAD_NS, WORKLOAD_SA};
use egret_e2e::workload::LongWorkload;
use egret_e2e::{Node, NodeOptions};

/// MeshConfig in istiod's ConfigMap: REGISTRY_ONLY mesh-wide.
const MESH_REGISTRY_ONLY: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    accessLogFile: /dev/stdout
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
";

/// A second ambient namespace, for per-namespace overrides.
const OTHER_NAMESPACE: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: other
  labels:
    istio.io/dataplane-mode: ambient
";

fn sidecar(namespace: &str, mode: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: {namespace}
spec:
  outboundTrafficPolicy:
    mode: {mode}
"
    )
}

/// Tries one way of reaching an address and prints `ok` or the errno name:
/// `probe.py tcp|udp|udp-connect|tfo IP PORT [MARK]`, or
/// `probe.py dns SERVER PORT NAME` (prints the A records, or the errno).
const PROBE: &str = r#"
import errno, socket, struct, sys
def err(e):
    print(errno.errorcode.get(e.errno, str(e.errno)))
    sys.exit(0)
mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if mode == "dns":
        name = sys.argv[4]
        q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        q += struct.pack(">HH", 1, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(q, (ip, port))
        r, _ = s.recvfrom(4096)
        an = struct.unpack(">H", r[6:8])[0]
        i = len(q)
        out = []
        for _ in range(an):
            i += 2
            t, c, ttl, rdlen = struct.unpack(">HHIH", r[i:i + 10])
            i += 10
            if t == 1:
                out.append(".".join(str(b) for b in r[i:i + rdlen]))
            i += rdlen
        print(" ".join(out) or "no-answer")
        sys.exit(0)
    kind = socket.SOCK_STREAM if mode in ("tcp", "tfo") else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(3)
    if len(sys.argv) > 4:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, int(sys.argv[4], 0))
    if mode == "tcp":
        s.connect((ip, port))
    elif mode == "tfo":
        s.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, (ip, port))
    elif mode == "udp":
        s.sendto(b"x", (ip, port))
    elif mode == "udp-connect":
        s.connect((ip, port))
        s.send(b"x")
    print("ok")
except OSError as e:
    err(e)
"#;

/// Runs the probe as a fresh workload of `namespace` (service account
/// `probe`) and returns what it printed.
fn probe(node: &Node, namespace: &str, args: &[&str]) -> String {
    let mut cmd = vec!["python3", "-c", PROBE];
    cmd.extend_from_slice(args);
    let out = node.exec(namespace, "probe", &cmd).expect("egret exec");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "probe {args:?} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn direct(node: &Node, namespace: &str) -> String {
    probe(node, namespace, &["tcp", EXTERNAL_ADDR, "80"])
}

/// `curl httpbin.org/get` as the walkthrough's workload: the status code.
fn through_waypoint(node: &Node) -> String {
    status_code(node, WORKLOAD_NS, WORKLOAD_SA, "http://httpbin.org/get").expect("egret exec curl")
}

fn walkthrough_node() -> Node {
    let node = Node::start(NodeOptions::default()).expect("node");
    mesh_with_waypoint(&node).expect("steps 1-2");
    node.apply(SERVICE_ENTRY).expect("step 3");
    node
}

/// The agent's /metrics, fetched on the node (the admin port is bound there).
fn metrics(node: &Node) -> String {
    let out = node
        .on_node("curl", &["-s", "-m", "5", "http://127.0.0.1:15000/metrics"])
        .expect("curl metrics");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn registry_only_refuses_what_is_outside_the_registry_mesh_wide_and_per_namespace() {
    let node = walkthrough_node();
    node.apply(OTHER_NAMESPACE).unwrap();

    // ALLOW_ANY (Istio's default): an external address is reachable directly.
    assert_eq!(direct(&node, WORKLOAD_NS), "ok");

    // REGISTRY_ONLY from MeshConfig: refused in the kernel, every way.
    node.apply(MESH_REGISTRY_ONLY).unwrap();
    let started = Instant::now();
    assert_eq!(direct(&node, WORKLOAD_NS), "EPERM", "TCP connect");
    assert_eq!(
        probe(&node, WORKLOAD_NS, &["tfo", EXTERNAL_ADDR, "80"]),
        "EPERM",
        "TFO"
    );
    assert_eq!(
        probe(&node, WORKLOAD_NS, &["udp", EXTERNAL_ADDR, "9"]),
        "EPERM",
        "UDP sendto"
    );
    assert_eq!(
        probe(&node, WORKLOAD_NS, &["udp-connect", EXTERNAL_ADDR, "9"]),
        "EPERM",
        "connected UDP"
    );
    assert_eq!(
        probe(&node, WORKLOAD_NS, &["tcp", NODE_ADDR, "22"]),
        "EPERM",
        "the node's own address"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refusals are immediate"
    );
    // The mesh service still works, through the waypoint.
    assert_eq!(through_waypoint(&node), "200");
    // A workload of a namespace outside the mesh is untouched.
    assert_eq!(direct(&node, "plain"), "ok");

    // Seen: the access log names the workload; metrics count by namespace.
    let log = node.agent_log();
    let line = log
        .lines()
        .find(|l| {
            l.contains("connection denied by the kernel")
                && l.contains("src.namespace=\"bookinfo\"")
        })
        .unwrap_or_else(|| panic!("no denial line in:\n{log}"));
    assert!(
        line.contains("src.identity=\"spiffe://cluster.local/ns/bookinfo/sa/probe\""),
        "{line}"
    );
    assert!(
        line.contains(&format!("dst.addr={EXTERNAL_ADDR}:80")),
        "{line}"
    );
    assert!(line.contains("reason=\"not_in_registry\""), "{line}");
    let m = metrics(&node);
    let count: u64 = m
        .lines()
        .find(|l| {
            l.starts_with(
                "egret_kernel_denials_total{namespace=\"bookinfo\",reason=\"not_in_registry\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no denial counter in:\n{m}"));
    assert!(count >= 5, "{count}");

    // The change in force decides: back to ALLOW_ANY.
    node.egret_ok(&["delete", "configmap", "istio", "-n", "istio-system"])
        .unwrap();
    assert_eq!(direct(&node, WORKLOAD_NS), "ok");

    // A namespace's Sidecar: REGISTRY_ONLY for bookinfo only.
    node.apply(&sidecar("bookinfo", "REGISTRY_ONLY")).unwrap();
    assert_eq!(direct(&node, WORKLOAD_NS), "EPERM");
    assert_eq!(direct(&node, "other"), "ok");
    // The root namespace's Sidecar is everyone's default; bookinfo's own wins.
    node.apply(&sidecar("bookinfo", "ALLOW_ANY")).unwrap();
    node.apply(&sidecar("istio-system", "REGISTRY_ONLY"))
        .unwrap();
    assert_eq!(direct(&node, WORKLOAD_NS), "ok");
    assert_eq!(direct(&node, "other"), "EPERM");
}

#[test]
fn dns_answers_come_from_egret_only() {
    let node = walkthrough_node();
    // A resolver on another port that would hand out the real address.
    let pid_file = format!(
        "--pid-file={}/.logs/dnsmasq-alt.pid",
        node.config_dir().display()
    );
    let _alt = node
        .spawn_on_node(
            "dnsmasq-alt",
            "dnsmasq",
            &[
                "-k",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--listen-address={NODE_ADDR}"),
                "--port=5353",
                "--user=root",
                &pid_file,
                &format!("--address=/httpbin.org/{EXTERNAL_ADDR}"),
            ],
        )
        .unwrap();
    // On the node (not enrolled) it answers the real address: it works.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = node
            .on_node(
                "python3",
                &["-c", PROBE, "dns", NODE_ADDR, "5353", "httpbin.org"],
            )
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == EXTERNAL_ADDR {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alternate resolver never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Port 53, any server: egret answers with the mesh VIP.
    let vip = probe(&node, WORKLOAD_NS, &["dns", NODE_ADDR, "53", "httpbin.org"]);
    assert_eq!(vip, "240.240.0.2");
    let vip = probe(
        &node,
        WORKLOAD_NS,
        &["dns", "203.0.113.53", "53", "httpbin.org"],
    );
    assert_eq!(vip, "240.240.0.2", "a resolver that does not even exist");
    // Another port (ALLOW_ANY): the query never leaves, no real answer.
    let other = probe(
        &node,
        WORKLOAD_NS,
        &["dns", NODE_ADDR, "5353", "httpbin.org"],
    );
    assert_eq!(other, "EPERM");
    // REGISTRY_ONLY: the resolver is outside the registry too.
    node.apply(MESH_REGISTRY_ONLY).unwrap();
    let other = probe(
        &node,
        WORKLOAD_NS,
        &["dns", NODE_ADDR, "5353", "httpbin.org"],
    );
    assert_eq!(other, "EPERM");
    let log = node.agent_log();
    assert!(
        log.lines()
            .any(|l| l.contains("connection denied by the kernel")
                && l.contains("reason=\"dns_elsewhere\"")),
        "{log}"
    );
}

#[test]
fn no_exemption_a_workload_can_claim() {
    let node = walkthrough_node();
    node.apply(MESH_REGISTRY_ONLY).unwrap();

    // A pod's capabilities: no NET_ADMIN (marks), SYS_ADMIN, BPF, PTRACE...
    let caps = node
        .exec(
            WORKLOAD_NS,
            WORKLOAD_SA,
            &["sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"],
        )
        .unwrap();
    let caps = String::from_utf8_lossy(&caps.stdout).into_owned();
    assert!(caps.contains("CapEff:\t00000000a00425fb"), "{caps}");
    assert!(caps.contains("CapBnd:\t00000000a00425fb"), "{caps}");
    let marked = probe(&node, WORKLOAD_NS, &["tcp", EXTERNAL_ADDR, "80", "0x539"]);
    assert_eq!(marked, "EPERM", "SO_MARK needs CAP_NET_ADMIN");
    let escape = node
        .exec(
            WORKLOAD_NS,
            WORKLOAD_SA,
            &["nsenter", "--net=/proc/1/ns/net", "true"],
        )
        .unwrap();
    assert!(
        !escape.status.success(),
        "entered another network namespace"
    );
    let unshare = node
        .exec(WORKLOAD_NS, WORKLOAD_SA, &["unshare", "-n", "true"])
        .unwrap();
    assert!(!unshare.status.success(), "made a network namespace");
    let bpf = node
        .exec(
            WORKLOAD_NS,
            WORKLOAD_SA,
            &["python3", "-c", "import ctypes,os; l=ctypes.CDLL(None,use_errno=True); a=ctypes.create_string_buffer(128); r=l.syscall(321, 11, a, 128); print(r, ctypes.get_errno())"],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&bpf.stdout).trim(),
        format!("-1 {}", libc::EPERM),
        "bpf(BPF_PROG_GET_NEXT_ID) must be refused"
    );
    // The agent's config, state and kernel objects are read-only; its
    // control socket answers the node only.
    let config = node.config_dir().to_string_lossy().into_owned();
    let write = node
        .exec(
            WORKLOAD_NS,
            WORKLOAD_SA,
            &["sh", "-c", &format!("echo x > {config}/evil.yaml")],
        )
        .unwrap();
    assert!(!write.status.success(), "wrote into the config folder");
    let status = node
        .exec(
            WORKLOAD_NS,
            WORKLOAD_SA,
            &[
                &egret_e2e::bin::egret().to_string_lossy(),
                "--config-dir",
                &config,
                "status",
            ],
        )
        .unwrap();
    assert!(!status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("another network namespace"),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    // Opted in to NET_ADMIN, a workload sets egret's mark, or any mark:
    // still captured (the VIP reaches the waypoint) and still refused.
    let mut w =
        LongWorkload::start(&node, WORKLOAD_NS, WORKLOAD_SA, &["--cap-add", "NET_ADMIN"]).unwrap();
    for mark in ["0x539", "0x1"] {
        let r = w
            .run(&format!(
                "python3 -c '{}' tcp {EXTERNAL_ADDR} 80 {mark}",
                PROBE.replace('\'', "'\\''")
            ))
            .unwrap();
        assert_eq!(r.stdout.trim(), "EPERM", "mark {mark}: {r:?}");
    }
    let vip = w
        .run("python3 -c 'import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x539); s.settimeout(5); s.connect((\"240.240.0.2\", 80)); s.sendall(b\"GET /get HTTP/1.1\\r\\nHost: httpbin.org\\r\\nConnection: close\\r\\n\\r\\n\"); print(s.recv(200).split(b\"\\r\\n\")[0].decode())'")
        .unwrap();
    assert_eq!(vip.stdout.trim(), "HTTP/1.1 200 OK", "{vip:?}");
    assert!(node
        .agent_log()
        .contains("src.identity=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\""));
}

#[test]
fn agent_crash_fails_closed_and_a_new_agent_takes_the_workload_over() {
    let mut node = walkthrough_node();
    node.apply(MESH_REGISTRY_ONLY).unwrap();
    let mut w = LongWorkload::start(&node, WORKLOAD_NS, WORKLOAD_SA, &[]).unwrap();
    let curl = |w: &mut LongWorkload, url: &str| {
        w.run(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' -m 5 {url}; echo \" exit=$?\""
        ))
        .unwrap()
        .stdout
        .trim()
        .to_string()
    };
    let first = curl(&mut w, "http://httpbin.org/get");
    assert_eq!(first, "200 exit=0", "{}", node.agent_log());

    node.kill_agent();
    // No agent: mesh service and DNS refused at once; outside still refused.
    let t = Instant::now();
    assert_eq!(
        curl(&mut w, "http://240.240.0.2/get"),
        "000 exit=7",
        "VIP: connection refused"
    );
    assert_eq!(
        curl(&mut w, "http://httpbin.org/get"),
        "000 exit=6",
        "DNS: refused, no name"
    );
    assert_eq!(
        curl(&mut w, &format!("http://{EXTERNAL_ADDR}/get")),
        "000 exit=7",
        "direct: EPERM"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "fail fast: {:?}",
        t.elapsed()
    );
    let direct = w
        .run(&format!(
            "python3 -c '{}' tcp {EXTERNAL_ADDR} 80",
            PROBE.replace('\'', "'\\''")
        ))
        .unwrap();
    assert_eq!(direct.stdout.trim(), "EPERM");

    // A new agent on the same folder takes the running workload over.
    node.start_agent().unwrap();
    let log = node.agent_log();
    assert!(
        log.contains("workload taken over from an earlier agent"),
        "{log}"
    );
    assert!(log.contains("swapped=10"), "{log}");
    assert_eq!(curl(&mut w, "http://httpbin.org/get"), "200 exit=0");
    node.apply(AUTHORIZATION_POLICY).unwrap();
    assert_eq!(curl(&mut w, "http://httpbin.org/headers"), "403 exit=0");
    assert_eq!(curl(&mut w, "http://httpbin.org/get"), "200 exit=0");
    assert!(w.running());
    let status = node.status().unwrap();
    assert_eq!(status["workloads"][0]["adopted"], true, "{status}");
}

#[test]
fn upgrade_under_load_never_lets_a_denied_connect_through() {
    let mut node = walkthrough_node();
    node.apply(MESH_REGISTRY_ONLY).unwrap();
    let mut w = LongWorkload::start(&node, WORKLOAD_NS, WORKLOAD_SA, &[]).unwrap();
    // A loop in the workload: every 10 ms, a connect to the denied address
    // and one to the service; each outcome logged with a timestamp.
    let out = w.path("loop.log");
    let script = format!(
        r#"python3 -c '
import errno, socket, time
end = time.time() + 12
with open("{out}", "w") as f:
    while time.time() < end:
        for kind, addr in (("denied", ("{EXTERNAL_ADDR}", 80)), ("service", ("240.240.0.2", 80))):
            s = socket.socket(); s.settimeout(1)
            try:
                s.connect(addr); r = "ok"
            except OSError as e:
                r = errno.errorcode.get(e.errno, str(e.errno))
            s.close()
            f.write("%.3f %s %s\n" % (time.time(), kind, r)); f.flush()
        time.sleep(0.01)
' > /dev/null 2>&1 &"#,
        out = out.display()
    );
    w.run(&script).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // Replace the agent by one loading a rebuilt object from a file.
    let object = std::env::var("EGRET_BPF_OBJECT").unwrap_or_else(|_| {
        format!(
            "{}/../target/ebpf/bpfel-unknown-none/release/egret-ebpf",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    node.stop_agent();
    node.start_agent_with(&["--bpf-object", &object]).unwrap();
    assert!(
        node.agent_log().contains("swapped=10"),
        "{}",
        node.agent_log()
    );
    std::thread::sleep(Duration::from_secs(10));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<(f64, &str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some((p.next()?.parse().ok()?, p.next()?, p.next()?))
        })
        .collect();
    let denied: Vec<_> = rows.iter().filter(|r| r.1 == "denied").collect();
    assert!(denied.len() > 100, "the loop ran: {} rows", rows.len());
    assert!(
        denied.iter().all(|r| r.2 == "EPERM"),
        "a denied connect got through: {:?}",
        denied.iter().find(|r| r.2 != "EPERM")
    );
    // The service fails only while no listener is up: measure the gap.
    let service: Vec<_> = rows.iter().filter(|r| r.1 == "service").collect();
    let failed: Vec<f64> = service
        .iter()
        .filter(|r| r.2 != "ok")
        .map(|r| r.0)
        .collect();
    assert!(
        service.last().is_some_and(|r| r.2 == "ok"),
        "the service works after the upgrade"
    );
    assert!(failed.iter().all(|_| true));
    let gap_ms = match (failed.first(), failed.last()) {
        (Some(a), Some(b)) => (b - a) * 1000.0,
        _ => 0.0,
    };
    let kinds: std::collections::BTreeSet<&str> = service
        .iter()
        .filter(|r| r.2 != "ok")
        .map(|r| r.2)
        .collect();
    println!(
        "upgrade gap for the service: {gap_ms:.0} ms ({} failed connects: {kinds:?})",
        failed.len()
    );
    assert!(
        kinds.iter().all(|k| *k == "ECONNREFUSED"),
        "failures are refusals only: {kinds:?}"
    );
    assert!(gap_ms < 10_000.0, "{gap_ms} ms");
}

#[test]
fn egret_monitor_shows_a_denied_connect_with_the_workloads_identity() {
    let node = walkthrough_node();
    node.apply(MESH_REGISTRY_ONLY).unwrap();
    let _monitor = node
        .spawn_on_node(
            "monitor",
            &egret_e2e::bin::egret().to_string_lossy(),
            &[
                "--config-dir",
                &node.config_dir().to_string_lossy(),
                "monitor",
                "-o",
                "json",
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(direct(&node, WORKLOAD_NS), "EPERM");
    // The denial has happened; its record must be there within a second.
    let when = Instant::now();
    let mut seen = None;
    while when.elapsed() < Duration::from_secs(5) {
        if let Some(line) = node.log_of("monitor").lines().next().map(str::to_string) {
            seen = Some((line, when.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (line, after) = seen.expect("egret monitor printed the denial");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["verdict"], "denied", "{line}");
    assert_eq!(event["reason"], "not_in_registry", "{line}");
    assert_eq!(
        event["identity"], "spiffe://cluster.local/ns/bookinfo/sa/probe",
        "{line}"
    );
    assert_eq!(event["dst"], format!("{EXTERNAL_ADDR}:80"), "{line}");
    assert_eq!(event["comm"], "python3", "{line}");
    assert!(after < Duration::from_secs(1), "{after:?}");
}
