//! TLS origination and the shared upstream pool, in-process on loopback: a
//! workload connection handed to `handle_outbound`, a rustls + hyper
//! upstream on 127.0.0.1 with a test CA (HTTP/1.1, or HTTP/2 chosen by ALPN),
//! a DestinationRule in the snapshot.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egret::config::snapshot::{DestinationPolicy, TlsMode, UpstreamTls};
use egret::identity::WorkloadInfo;
use egret::proxy::tls::{read_extra_roots, DefaultRoots, TlsOrigin};
use egret::proxy::{handle_outbound, ProxyContext};
use egret::testing::fixtures::{self, ServiceFixture};
use egret::testing::resolver::StaticDns;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const VIP: &str = "240.240.0.9";

/// A test CA and a server certificate for `names`, as files and rustls values.
struct Pki {
    dir: tempfile::TempDir,
    server: rustls::ServerConfig,
}

impl Pki {
    fn new(names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        Pki { dir, server }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// Accepts TLS connections under `config` and hands each, with the SNI it
/// saw, to `serve`; counts the TCP connections it accepted.
async fn tls_listener<F, Fut>(
    config: rustls::ServerConfig,
    serve: F,
) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let serve = serve.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_string();
                serve(tls, sni).await;
            });
        }
    });
    (addr, accepted)
}

/// A TLS upstream answering every request with the SNI it saw; counts the
/// TCP connections it accepted.
async fn tls_upstream(config: rustls::ServerConfig) -> (SocketAddr, Arc<AtomicUsize>) {
    tls_listener(config, |tls, sni| async move {
        let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
            let body = Bytes::from(format!("sni={sni}"));
            async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .await;
    })
    .await
}

/// A TLS upstream that speaks only HTTP/2 (ALPN `h2`), answering every
/// request after `delay` with the protocol version and SNI it saw; counts
/// the TCP connections it accepted.
async fn h2_upstream(
    mut config: rustls::ServerConfig,
    delay: Duration,
) -> (SocketAddr, Arc<AtomicUsize>) {
    config.alpn_protocols = vec![b"h2".to_vec()];
    tls_listener(config, move |tls, sni| async move {
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let body = format!(
                "{:?} {} sni={sni}",
                req.version(),
                req.uri().authority().map_or("-", |a| a.as_str())
            );
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        });
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(TokioIo::new(tls), service)
            .await;
    })
    .await
}

/// A snapshot with `host` on [`VIP`]:80, endpoint `upstream`, and a
/// DestinationRule with `tls`.
fn context(host: &str, upstream: SocketAddr, tls: UpstreamTls) -> Arc<ProxyContext> {
    Arc::new(proxy(host, upstream, tls))
}

/// Like [`context`], not yet shared.
fn proxy(host: &str, upstream: SocketAddr, tls: UpstreamTls) -> ProxyContext {
    let service = ServiceFixture::new(host)
        .vip(VIP)
        .endpoint(&upstream.ip().to_string())
        .target_port(upstream.port())
        .bound()
        .build();
    let mut snapshot = fixtures::snapshot([service]);
    snapshot.destination_rules.push(Arc::new(DestinationPolicy {
        namespace: "istio-egress".into(),
        name: "dr".into(),
        host: host.into(),
        tls: Some(tls),
        port_tls: vec![],
    }));
    // Never asked: endpoints are IP literals.
    fixtures::proxy(snapshot, StaticDns::none())
}

fn simple(ca: Option<PathBuf>) -> UpstreamTls {
    UpstreamTls {
        mode: TlsMode::Simple,
        client_certificate: None,
        private_key: None,
        ca_certificates: ca,
        credential_name: None,
        sni: None,
        subject_alt_names: vec![],
        insecure_skip_verify: false,
    }
}

/// One workload connection with one GET; returns (status, body).
async fn request(ctx: &Arc<ProxyContext>, host: &str) -> (u16, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, src) = listener.accept().await.unwrap();
    let workload = Arc::new(WorkloadInfo {
        name: "productpage".into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
        ip: "127.0.0.1".parse().unwrap(),
        netns_cookie: 1,
    });
    let orig_dst = SocketAddr::new(VIP.parse().unwrap(), 80);
    let task = tokio::spawn(handle_outbound(
        ctx.clone(),
        accepted,
        workload,
        src,
        orig_dst,
    ));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let response = sender
        .send_request(
            Request::get("/get")
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    // The workload hangs up: its upstream connection goes to the pool.
    drop(sender);
    let _ = conn.await;
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn originates_tls_with_the_host_as_sni_and_pools_across_workloads() {
    let pki = Pki::new(&["api.pool.test"]);
    let (upstream, accepted) = tls_upstream(pki.server.clone()).await;
    let ctx = context("api.pool.test", upstream, simple(Some(pki.ca_path())));

    for _ in 0..3 {
        let (status, body) = request(&ctx, "api.pool.test").await;
        assert_eq!((status, body.as_str()), (200, "sni=api.pool.test"));
    }
    // Three workload connections, one upstream connection.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_untrusted_upstream_is_a_503_and_never_pooled() {
    let pki = Pki::new(&["bad.pool.test"]);
    let other = Pki::new(&["bad.pool.test"]);
    let (upstream, accepted) = tls_upstream(pki.server.clone()).await;
    let ctx = context("bad.pool.test", upstream, simple(Some(other.ca_path())));
    for _ in 0..2 {
        let (status, body) = request(&ctx, "bad.pool.test").await;
        assert_eq!(status, 503);
        assert!(
            body.contains("transport failure reason: TLS error"),
            "{body}"
        );
        assert!(body.contains("invalid peer certificate"), "{body}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_bad_ca_file_is_a_503_and_a_fixed_file_is_picked_up() {
    let pki = Pki::new(&["reload.pool.test"]);
    let (upstream, _) = tls_upstream(pki.server.clone()).await;
    let bad = pki.dir.path().join("later.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let ctx = context("reload.pool.test", upstream, simple(Some(bad.clone())));
    let (status, body) = request(&ctx, "reload.pool.test").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("TLS setup error"), "{body}");

    std::fs::copy(pki.ca_path(), &bad).unwrap();
    let (status, body) = request(&ctx, "reload.pool.test").await;
    assert_eq!((status, body.as_str()), (200, "sni=reload.pool.test"));
}

#[tokio::test]
async fn an_upstream_choosing_h2_gets_http2_on_one_shared_connection() {
    let pki = Pki::new(&["h2.pool.test"]);
    let (upstream, accepted) = h2_upstream(pki.server.clone(), Duration::from_millis(300)).await;
    let ctx = context("h2.pool.test", upstream, simple(Some(pki.ca_path())));

    let (status, body) = request(&ctx, "h2.pool.test").await;
    assert_eq!(status, 200, "{body}");
    // HTTP/2 with the Host as :authority; the workload still got HTTP/1.1.
    assert_eq!(body, "HTTP/2.0 h2.pool.test sni=h2.pool.test");

    // Workloads at the same time share the pooled connection: with
    // HTTP/1.1 each would need its own while the slow responses last.
    let concurrent: Vec<_> = (0..4)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move { request(&ctx, "h2.pool.test").await })
        })
        .collect();
    for task in concurrent {
        let (status, body) = task.await.unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "HTTP/2.0 h2.pool.test sni=h2.pool.test")
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn each_proxy_trusts_its_own_ca_roots_where_a_rule_names_none() {
    let pki = Pki::new(&["roots.pool.test"]);
    let (upstream, _) = tls_upstream(pki.server.clone()).await;
    // `--ca-roots` of one agent: the test CA, besides the system's roots.
    let extra = read_extra_roots(&[pki.ca_path()]).unwrap();
    let trusting = Arc::new(
        proxy("roots.pool.test", upstream, simple(None))
            .with_tls(TlsOrigin::new(DefaultRoots::with_extra(extra))),
    );
    let (status, body) = request(&trusting, "roots.pool.test").await;
    assert_eq!((status, body.as_str()), (200, "sni=roots.pool.test"));
    // Another proxy in the same process, without them, does not trust it.
    let other = context("roots.pool.test", upstream, simple(None));
    let (status, body) = request(&other, "roots.pool.test").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("invalid peer certificate"), "{body}");
}

#[tokio::test]
async fn each_proxy_pools_its_own_upstream_connections() {
    let pki = Pki::new(&["own.pool.test"]);
    let (upstream, accepted) = tls_upstream(pki.server.clone()).await;
    let one = context("own.pool.test", upstream, simple(Some(pki.ca_path())));
    let other = context("own.pool.test", upstream, simple(Some(pki.ca_path())));
    for ctx in [&one, &one, &other, &other] {
        let (status, body) = request(ctx, "own.pool.test").await;
        assert_eq!((status, body.as_str()), (200, "sni=own.pool.test"));
    }
    // One upstream connection per proxy, reused by its own workloads only.
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
