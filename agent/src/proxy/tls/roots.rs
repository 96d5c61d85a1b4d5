//! The default trust anchors: the system's roots plus any `--ca-roots`
//! files, used when a DestinationRule names no `caCertificates`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::error::TlsError;
use super::material::parse_certificates;

/// The system's roots and the extra ones, read from the system on first use.
#[derive(Debug, Default)]
pub struct DefaultRoots {
    extra: Vec<CertificateDer<'static>>,
    store: OnceLock<Arc<RootCertStore>>,
}

impl DefaultRoots {
    /// The system's roots plus `extra` (the agent's `--ca-roots`).
    pub fn with_extra(extra: Vec<CertificateDer<'static>>) -> Self {
        DefaultRoots {
            extra,
            store: OnceLock::new(),
        }
    }

    /// The store. A system store that cannot be read leaves only the extra
    /// roots (logged once).
    pub fn get(&self) -> Arc<RootCertStore> {
        self.store
            .get_or_init(|| {
                let mut store = RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    tracing::warn!(error = %e, "reading system CA roots");
                }
                let (added, ignored) = store.add_parsable_certificates(native.certs);
                let (extra_added, extra_ignored) =
                    store.add_parsable_certificates(self.extra.iter().cloned());
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
}

/// The certificates of `paths` (the agent's `--ca-roots`); a file that does
/// not hold PEM certificates is an error naming it.
pub fn read_extra_roots(paths: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs = Vec::new();
    for path in paths {
        certs.extend(read_roots(path)?);
    }
    Ok(certs)
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
