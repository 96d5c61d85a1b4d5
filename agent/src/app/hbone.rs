//! The HBONE server in front of the proxy, and the identities it presents.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::identity::{CertFiles, CertSource, IdentityStore, LocalCa, ServerTls, CA_DIR};
use crate::proxy::{Inbound, ProxyContext, Serves};

/// Where HBONE is served when not told otherwise (all addresses, 15008).
pub const DEFAULT_HBONE_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), crate::hbone::HBONE_PORT);

/// The identity store of a node agent: its local CA in `<state>/ca`.
pub fn local_identities(
    state_dir: &Path,
    trust_domain: &str,
) -> anyhow::Result<Arc<IdentityStore>> {
    identities(trust_domain, None, &state_dir.join(CA_DIR))
}

/// Certificates from `files`, or else issued by the local CA in `ca_dir`.
pub fn identities(
    trust_domain: &str,
    files: Option<CertFiles>,
    ca_dir: &Path,
) -> anyhow::Result<Arc<IdentityStore>> {
    let source = match files {
        Some(f) => CertSource::Files(f),
        None => CertSource::Ca(
            LocalCa::load_or_create(ca_dir)
                .context("loading the local CA")?
                .signer(),
        ),
    };
    Ok(Arc::new(
        IdentityStore::new(trust_domain, source).context("loading certificates")?,
    ))
}

/// Starts the HBONE server for `proxy` in the background, serving the
/// waypoints `serves` names, until the proxy drains.
pub fn spawn(
    proxy: Arc<ProxyContext>,
    identities: Arc<IdentityStore>,
    serves: Serves,
    listen: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    let drain = proxy.drain.clone();
    let inbound = Arc::new(Inbound::new(proxy, serves));
    let tls = Arc::new(ServerTls::new(identities));
    crate::hbone::server::spawn(inbound, tls, listen, drain)
}
