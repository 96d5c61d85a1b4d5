//! HBONE in-process on loopback: the real client (pool, mTLS, CONNECT) to
//! the real server (TLS, h2, CONNECT handling) to small upstreams. Covers
//! the CONNECT answers (400 / 401 / 503 / 200), L4 and L7 through a tunnel,
//! and pooling. No traffic off 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egret::config::snapshot::{Protocol, Service, Snapshot};
use egret::hbone::pool::HbonePoolKey;
use egret::hbone::server::{bind, HboneServer};
use egret::hbone::{request, HboneClient, HboneError};
use egret::identity::WorkloadInfo;
use egret::identity::{CertSource, Identity, IdentityStore, LocalCa, ServerTls};
use egret::proxy::{Inbound, ProxyContext, Serves};
use egret::testing::fixtures::{self, waypoint_ref, ServiceFixture};
use egret::testing::resolver::StaticDns;
use egret::testing::upstream::{dead_port, echo_tcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[path = "support/log_capture.rs"]
mod log_capture;

const TCP_VIP: &str = "240.240.0.9";
const HTTP_VIP: &str = "240.240.0.10";
const DEAD_VIP: &str = "240.240.0.11";
const UNBOUND_VIP: &str = "240.240.0.12";
const LIMIT: Duration = Duration::from_secs(20);

fn waypoint_id() -> Identity {
    Identity {
        trust_domain: "cluster.local".into(),
        namespace: "istio-egress".into(),
        service_account: "egress-waypoint".into(),
    }
}

fn workload() -> WorkloadInfo {
    WorkloadInfo {
        name: "productpage-v1".into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
        ip: "127.0.0.1".parse().unwrap(),
        netns_cookie: 0,
    }
}

fn service(host: &str, vip: &str, protocol: Protocol, port: u16, bound: bool) -> Arc<Service> {
    let service = ServiceFixture::new(host)
        .vip(vip)
        .port(80, "p", protocol)
        .endpoint("127.0.0.1")
        .target_port(port);
    if bound { service.bound() } else { service }.build()
}

/// The services, and the waypoint reached on 127.0.0.1.
fn snapshot(services: Vec<Arc<Service>>) -> Snapshot {
    let mut s = fixtures::snapshot(services);
    for waypoint in s.waypoints.values_mut() {
        waypoint.address = Some("127.0.0.1".parse().unwrap());
    }
    s
}

/// Answers every HTTP/1.1 request head with `200 ok`.
async fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        buf.clear();
                        let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// An AuthorizationPolicy denying everything at the waypoint.
fn deny_all() -> Arc<egret::authz::PolicySet> {
    let spec: egret::authz::AuthorizationPolicySpec = serde_yaml::from_str(
        "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}]\n\
         action: DENY\nrules: [{}]\n",
    )
    .unwrap();
    let deny =
        egret::authz::compile("istio-egress", "deny-all", &Default::default(), &spec).unwrap();
    Arc::new(egret::authz::PolicySet::new(
        vec![Arc::new(deny)],
        "istio-system",
    ))
}

struct Setup {
    _dir: tempfile::TempDir,
    /// The waypoint's config; a test may put a new one in force.
    config: watch::Sender<Arc<Snapshot>>,
    client: HboneClient,
    server: SocketAddr,
}

/// The waypoint and a client; `policies` in force at the waypoint, if any.
async fn setup(policies: Option<Arc<egret::authz::PolicySet>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    let store = Arc::new(IdentityStore::new("cluster.local", CertSource::Ca(ca.signer())).unwrap());
    let dead = dead_port();
    let mut snap = snapshot(vec![
        service("echo.test", TCP_VIP, Protocol::Tcp, echo_tcp().await, true),
        service(
            "web.test",
            HTTP_VIP,
            Protocol::Http,
            http_server().await,
            true,
        ),
        service("dead.test", DEAD_VIP, Protocol::Tcp, dead, true),
        service("unbound.test", UNBOUND_VIP, Protocol::Tcp, dead, false),
    ]);
    if let Some(p) = policies {
        snap.authz = p;
    }
    let (config, rx) = watch::channel(Arc::new(snap));
    let proxy = Arc::new(ProxyContext::new(rx, StaticDns::none(), "cluster.local"));
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let server = Arc::new(HboneServer::new(
        Arc::new(Inbound::new(proxy, Serves::Waypoint(waypoint_ref()))),
        Arc::new(ServerTls::new(store.clone())),
    ));
    tokio::spawn(server.run(listener));
    Setup {
        _dir: dir,
        config,
        client: HboneClient::new(store),
        server: server_addr,
    }
}

impl Setup {
    fn key(&self) -> HbonePoolKey {
        HbonePoolKey {
            src: workload().identity("cluster.local"),
            dst: waypoint_id(),
            addr: self.server,
        }
    }

    async fn open(&self, vip: &str) -> Result<egret::hbone::stream::H2Stream, HboneError> {
        let target = SocketAddr::new(vip.parse().unwrap(), 80);
        let req = request::build(
            target,
            "127.0.0.1:40000".parse().unwrap(),
            None,
            &workload(),
        );
        tokio::time::timeout(LIMIT, self.client.open(&self.key(), req))
            .await
            .expect("no answer in time")
    }
}

fn status(r: Result<egret::hbone::stream::H2Stream, HboneError>) -> u16 {
    match r {
        Err(HboneError::Refused { status, .. }) => status.as_u16(),
        Err(e) => panic!("not an HTTP refusal: {e}"),
        Ok(_) => 200,
    }
}

#[tokio::test]
async fn tcp_through_the_tunnel_and_streams_share_a_connection() {
    let s = setup(None).await;
    let mut a = s.open(TCP_VIP).await.unwrap();
    let mut b = s.open(TCP_VIP).await.unwrap();
    for (stream, msg) in [(&mut a, &b"ping-a"[..]), (&mut b, &b"ping-b"[..])] {
        stream.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(LIMIT, stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg);
    }
    assert_eq!(s.client.pool().connections(&s.key()), 1);
    // Half-close travels as END_STREAM: the echo ends, so does the stream.
    a.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, a.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn http_through_the_tunnel_runs_the_l7_pipeline() {
    let s = setup(None).await;
    let mut t = s.open(HTTP_VIP).await.unwrap();
    t.write_all(b"GET /get HTTP/1.1\r\nhost: web.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("\r\n\r\nok") {
        let n = tokio::time::timeout(LIMIT, t.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "tunnel closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    // Added by the waypoint's pipeline, not by the upstream.
    assert!(got.contains("server: istio-envoy"), "{got}");
}

#[tokio::test]
async fn upstream_failure_is_503() {
    let s = setup(None).await;
    assert_eq!(status(s.open(DEAD_VIP).await), 503);
}

#[tokio::test]
async fn a_target_this_waypoint_does_not_serve_is_400() {
    let s = setup(None).await;
    assert_eq!(status(s.open(UNBOUND_VIP).await), 400);
    assert_eq!(status(s.open("192.0.2.99").await), 400);
}

#[tokio::test]
async fn rbac_deny_is_401() {
    let s = setup(Some(deny_all())).await;
    assert_eq!(status(s.open(TCP_VIP).await), 401);
}

#[tokio::test]
async fn an_open_tunnel_a_new_l4_deny_covers_is_closed_within_a_second() {
    let s = setup(None).await;
    let mut t = s.open(TCP_VIP).await.unwrap();
    t.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    tokio::time::timeout(LIMIT, t.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();

    let mut next = s.config.borrow().as_ref().clone();
    next.generation += 1;
    next.authz = deny_all();
    s.config.send_replace(Arc::new(next));

    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), t.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the tunnel is closed within a second");
    assert!(rest.is_empty());
    // New tunnels are refused as before.
    assert_eq!(status(s.open(TCP_VIP).await), 401);
}

/// Raw h2 over the client's TLS: requests the client itself never sends.
async fn raw(s: &Setup, req: http::Request<()>) -> u16 {
    raw_stream(s, req).await.0
}

/// Like [`raw`], and keeps the stream open: (status, request body sender,
/// response body).
async fn raw_stream(
    s: &Setup,
    req: http::Request<()>,
) -> (u16, h2::SendStream<bytes::Bytes>, h2::RecvStream) {
    let store = s.client_store();
    let config = egret::identity::client_config(
        &store,
        &workload().identity("cluster.local"),
        vec![waypoint_id()],
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(s.server).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::IpAddress(s.server.ip().into()),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let (resp, send) = sender.send_request(req, false).unwrap();
    let resp = tokio::time::timeout(LIMIT, resp).await.unwrap().unwrap();
    (resp.status().as_u16(), send, resp.into_body())
}

impl Setup {
    fn client_store(&self) -> Arc<IdentityStore> {
        self.client.store().clone()
    }
}

#[tokio::test]
async fn bad_method_is_400() {
    let s = setup(None).await;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("https://{TCP_VIP}:80/"))
        .body(())
        .unwrap();
    assert_eq!(raw(&s, req).await, 400);
}

#[tokio::test]
async fn bad_authority_is_400() {
    let s = setup(None).await;
    let req = http::Request::builder()
        .method("CONNECT")
        .uri("echo.test:80")
        .body(())
        .unwrap();
    assert_eq!(raw(&s, req).await, 400);
}

#[tokio::test]
async fn ztunnel_baggage_names_the_deployment_as_the_source_workload() {
    log_capture::logs();
    let s = setup(None).await;
    // As ztunnel sends it for a pod of Deployment productpage-v1.
    let src = "127.0.0.1:40123";
    let req = http::Request::builder()
        .method("CONNECT")
        .uri(format!("{TCP_VIP}:80"))
        .header("forwarded", format!("for=\"{src}\""))
        .header(
            "baggage",
            "k8s.cluster.name=Kubernetes,k8s.namespace.name=bookinfo,k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1",
        )
        .body(())
        .unwrap();
    let (status, mut send, mut body) = raw_stream(&s, req).await;
    assert_eq!(status, 200);
    send.send_data(bytes::Bytes::from_static(b"hi"), true)
        .unwrap();
    let echoed = tokio::time::timeout(LIMIT, body.data())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&echoed[..], b"hi");
    drop((send, body));
    let line = connection_line(src).await;
    assert!(line.contains("src.workload=\"productpage-v1\""), "{line}");
}

/// The `connection complete` line of the stream whose `forwarded: for=` is `src`.
async fn connection_line(src: &str) -> String {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let lines = log_capture::lines_for(src.parse().unwrap());
        if let Some(l) = lines
            .into_iter()
            .find(|l| l.contains("connection complete"))
        {
            return l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no access log line for {src}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_rbac_deny_is_logged_with_its_rbac_flag() {
    log_capture::logs();
    let s = setup(Some(deny_all())).await;
    let src = "127.0.0.1:40124";
    let req = http::Request::builder()
        .method("CONNECT")
        .uri(format!("{TCP_VIP}:80"))
        .header("forwarded", format!("for=\"{src}\""))
        .body(())
        .unwrap();
    assert_eq!(raw(&s, req).await, 401);
    let line = connection_line(src).await;
    assert!(line.contains(" response_flags=RBAC "), "{line}");
    assert!(line.contains("error=\"RBAC: access denied: "), "{line}");
}
