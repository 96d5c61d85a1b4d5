//! The default trust anchors: the system's roots plus any `--ca-roots`
//! files, used when a DestinationRule names no `caCertificates`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::error::TlsError;
use super::material::parse_certificates;

/// Extra roots given at startup; set once.
static EXTRA: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
/// System + extra roots, built on first use.
static DEFAULT: OnceLock<Arc<RootCertStore>> = OnceLock::new();

/// Adds the certificates of `paths` to the default roots (the agent's
/// `--ca-roots`). Call once, before the first upstream TLS connection; a
/// file that does not hold PEM certificates is an error naming it.
pub fn install_extra_roots(paths: &[PathBuf]) -> Result<usize, TlsError> {
    let mut certs = Vec::new();
    for path in paths {
        certs.extend(read_roots(path)?);
    }
    let count = certs.len();
    if EXTRA.set(certs).is_err() {
        tracing::warn!("extra CA roots were already installed; ignoring the second set");
    }
    Ok(count)
}

fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::ExtraRoots {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_certificates(&bytes).map_err(|reason| TlsError::ExtraRoots {
        path: path.to_path_buf(),
        reason,
    })
}

/// The system's roots plus the extra ones. A system store that cannot be
/// read leaves only the extra roots (logged once).
pub fn default_roots() -> Arc<RootCertStore> {
    DEFAULT
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "reading system CA roots");
            }
            let (added, ignored) = store.add_parsable_certificates(native.certs);
            let extra = EXTRA.get().cloned().unwrap_or_default();
            let (extra_added, extra_ignored) = store.add_parsable_certificates(extra);
            tracing::debug!(
                system = added,
                system_ignored = ignored,
                extra = extra_added,
                extra_ignored,
                "default CA roots loaded"
            );
            Arc::new(store)
        })
        .clone()
}
