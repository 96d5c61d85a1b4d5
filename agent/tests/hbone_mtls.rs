//! The mutual TLS of HBONE, handshake by handshake over an in-memory pipe:
//! who is accepted and who is refused, on either side.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use egret::identity::{client_config, CertSource, Identity, IdentityStore, LocalCa, ServerTls};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn id(td: &str, ns: &str, sa: &str) -> Identity {
    Identity {
        trust_domain: td.into(),
        namespace: ns.into(),
        service_account: sa.into(),
    }
}

fn store(dir: &std::path::Path, td: &str) -> Arc<IdentityStore> {
    let ca = LocalCa::load_or_create(dir).unwrap();
    Arc::new(IdentityStore::new(td, CertSource::Ca(ca.signer())).unwrap())
}

fn waypoint() -> Identity {
    id("cluster.local", "istio-egress", "egress-waypoint")
}

fn workload() -> Identity {
    id("cluster.local", "bookinfo", "productpage")
}

/// Runs one handshake; returns the server's view (peer identity) or the
/// errors of both sides.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> Result<Option<Identity>, String> {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let server_side = tokio::spawn(async move {
        let mut tls = tokio_rustls::TlsAcceptor::from(server)
            .accept(s)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let peer = egret::identity::tls::peer_identity(
            tls.get_ref().1.peer_certificates(),
            "cluster.local",
        );
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte)
            .await
            .map_err(|e| format!("server read: {e}"))?;
        tls.write_all(&byte)
            .await
            .map_err(|e| format!("server write: {e}"))?;
        Ok::<_, String>(peer)
    });
    let client_side = async move {
        let name = ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into());
        let mut tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, c)
            .await
            .map_err(|e| format!("client: {e}"))?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(b"x")
            .await
            .map_err(|e| format!("client write: {e}"))?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte)
            .await
            .map_err(|e| format!("client read: {e}"))?;
        Ok::<_, String>(())
    };
    let client_result = client_side.await;
    let server_result = server_side.await.unwrap();
    match (client_result, server_result) {
        (Ok(()), Ok(peer)) => Ok(peer),
        (c, s) => Err(format!("{:?} / {:?}", c.err(), s.err())),
    }
}

#[tokio::test]
async fn same_root_and_trust_domain_handshake_and_name_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), "cluster.local");
    let server = ServerTls::new(store.clone()).config(&waypoint()).unwrap();
    let client = client_config(&store, &workload(), vec![waypoint()]).unwrap();
    assert_eq!(handshake(server, client).await.unwrap(), Some(workload()));
}

#[tokio::test]
async fn client_of_another_trust_domain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Same root, so only the trust domain check can refuse it.
    let server_store = store(dir.path(), "cluster.local");
    let client_store = store(dir.path(), "other.local");
    let server = ServerTls::new(server_store).config(&waypoint()).unwrap();
    let client = client_config(
        &client_store,
        &id("other.local", "bookinfo", "productpage"),
        vec![waypoint()],
    )
    .unwrap();
    let err = handshake(server, client).await.unwrap_err();
    assert!(err.contains("not of trust domain cluster.local"), "{err}");
}

#[tokio::test]
async fn client_of_another_root_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let server = ServerTls::new(store(a.path(), "cluster.local"))
        .config(&waypoint())
        .unwrap();
    // The client trusts both roots, so only the server's check can fail.
    let client_store = store(b.path(), "cluster.local");
    let mut roots = (*client_store.bundle().roots).clone();
    roots
        .add(LocalCa::load_or_create(a.path()).unwrap().root().clone())
        .unwrap();
    let cred = client_store.credential(&workload()).unwrap();
    let client = client_with_roots(Arc::new(roots), &cred, vec![waypoint()]);
    let err = handshake(server, client).await.unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown"),
        "{err}"
    );
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), "cluster.local");
    let server = ServerTls::new(store.clone()).config(&waypoint()).unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    let day = Duration::from_secs(86400);
    let now = SystemTime::now();
    let expired = ca
        .signer()
        .issue_between(&workload(), now - 2 * day, now - day)
        .unwrap();
    let client = client_with(&store, &expired, vec![waypoint()]);
    let err = handshake(server, client).await.unwrap_err();
    assert!(err.to_lowercase().contains("expired"), "{err}");
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), "cluster.local");
    let server = ServerTls::new(store.clone()).config(&waypoint()).unwrap();
    let provider = egret::identity::tls::provider();
    let verifier = egret::identity::verify::SpiffeServerVerifier::new(
        store.bundle().roots,
        vec![waypoint()],
        &provider,
    );
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let err = handshake(server, Arc::new(client)).await.unwrap_err();
    assert!(
        err.contains("CertificateRequired") || err.contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn server_with_an_unexpected_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), "cluster.local");
    let impostor = id("cluster.local", "istio-egress", "someone-else");
    let server = ServerTls::new(store.clone()).config(&impostor).unwrap();
    let client = client_config(&store, &workload(), vec![waypoint()]).unwrap();
    let err = handshake(server, client).await.unwrap_err();
    assert!(
        err.contains(
            "are not the expected [spiffe://cluster.local/ns/istio-egress/sa/egress-waypoint]"
        ),
        "{err}"
    );
}

/// A client config presenting `cred` (whatever its validity).
fn client_with(
    store: &IdentityStore,
    cred: &egret::identity::Credential,
    expected: Vec<Identity>,
) -> Arc<rustls::ClientConfig> {
    client_with_roots(store.bundle().roots, cred, expected)
}

/// A client config trusting `roots` and presenting `cred`.
fn client_with_roots(
    roots: Arc<rustls::RootCertStore>,
    cred: &egret::identity::Credential,
    expected: Vec<Identity>,
) -> Arc<rustls::ClientConfig> {
    let provider = egret::identity::tls::provider();
    let verifier = egret::identity::verify::SpiffeServerVerifier::new(roots, expected, &provider);
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(Fixed(cred.certified.clone())));
    client.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(client)
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
