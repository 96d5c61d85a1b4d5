//! The identity store: hands out a current certificate for an identity and
//! the current trust bundle, whichever source they come from. Certificates
//! are renewed lazily, at half-life, when a handshake asks for one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::RootCertStore;

use super::credential::Credential;
use super::error::IdentityError;
use super::files::{CertFiles, LoadedFiles};
use super::signer::{CaSigner, LEAF_LIFETIME};
use super::spiffe::Identity;

/// How often the files are checked for a change, at most.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Where certificates come from.
#[derive(Debug)]
pub enum CertSource {
    /// Issued on demand by a CA (this host's, or the cluster's), for any
    /// identity.
    Ca(Arc<CaSigner>),
    /// One certificate from files, for the identity it holds.
    Files(CertFiles),
}

/// The current trust bundle; `generation` changes whenever it does.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// Increases with every reload of the bundle.
    pub generation: u64,
    /// The roots.
    pub roots: Arc<RootCertStore>,
}

/// Certificates and trust bundle of one agent or waypoint.
#[derive(Debug)]
pub struct IdentityStore {
    trust_domain: String,
    source: CertSource,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    leaves: HashMap<Identity, Arc<Credential>>,
    bundle: Bundle,
    /// What the files held when last read, and when they were last checked.
    files: Option<(LoadedFiles, Instant)>,
}

impl IdentityStore {
    /// A store over `source` for identities of `trust_domain`.
    pub fn new(trust_domain: &str, source: CertSource) -> Result<Self, IdentityError> {
        let (roots, files) = match &source {
            CertSource::Ca(ca) => (ca.roots().to_vec(), None),
            CertSource::Files(f) => {
                let loaded = f.load()?;
                (loaded.roots.clone(), Some((loaded, Instant::now())))
            }
        };
        let bundle = Bundle {
            generation: 1,
            roots: Arc::new(root_store(&roots, &source)?),
        };
        Ok(IdentityStore {
            trust_domain: trust_domain.to_string(),
            source,
            state: Mutex::new(State {
                leaves: HashMap::new(),
                bundle,
                files,
            }),
        })
    }

    /// The trust domain peers must belong to.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// A certificate for `identity`, valid for at least half its lifetime.
    pub fn credential(&self, identity: &Identity) -> Result<Arc<Credential>, IdentityError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &self.source {
            CertSource::Ca(ca) => {
                let now = SystemTime::now();
                if let Some(c) = state.leaves.get(identity) {
                    if !c.needs_refresh(now) {
                        return Ok(c.clone());
                    }
                }
                let fresh = Arc::new(ca.issue(identity, LEAF_LIFETIME)?);
                tracing::debug!(%identity, "issued a workload certificate");
                state.leaves.insert(identity.clone(), fresh.clone());
                Ok(fresh)
            }
            CertSource::Files(files) => {
                self.reload_files(files, &mut state);
                let (loaded, _) = state.files.as_ref().expect("files are loaded at start");
                if &loaded.credential.identity != identity {
                    return Err(IdentityError::WrongIdentity {
                        path: files.cert_chain.clone(),
                        want: identity.clone(),
                        have: loaded.credential.identity.to_string(),
                    });
                }
                Ok(Arc::new(loaded.credential.clone()))
            }
        }
    }

    /// The current trust bundle.
    pub fn bundle(&self) -> Bundle {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let CertSource::Files(files) = &self.source {
            self.reload_files(files, &mut state);
        }
        state.bundle.clone()
    }

    /// Re-reads the files when they changed; a bad rotation keeps the last
    /// good set in force (and says so).
    fn reload_files(&self, files: &CertFiles, state: &mut State) {
        let Some((loaded, checked)) = state.files.as_mut() else {
            return;
        };
        if checked.elapsed() < FILE_CHECK_INTERVAL {
            return;
        }
        *checked = Instant::now();
        if files.stamp() == loaded.stamp {
            return;
        }
        match files
            .load()
            .and_then(|l| root_store(&l.roots, &self.source).map(|r| (l, r)))
        {
            Ok((fresh, roots)) => {
                tracing::info!(identity = %fresh.credential.identity, cert = %files.cert_chain.display(), "certificate files reloaded");
                *loaded = fresh;
                state.bundle = Bundle {
                    generation: state.bundle.generation + 1,
                    roots: Arc::new(roots),
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "certificate files changed but cannot be used; keeping the previous ones");
                loaded.stamp = files.stamp();
            }
        }
    }
}

fn root_store(
    roots: &[rustls::pki_types::CertificateDer<'static>],
    source: &CertSource,
) -> Result<RootCertStore, IdentityError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(|source_err| {
            let what = match source {
                CertSource::Ca(ca) => format!("root of the {}", ca.origin()),
                CertSource::Files(f) => format!("CA bundle {}", f.ca_bundle.display()),
            };
            IdentityError::Tls {
                what,
                source: source_err,
            }
        })?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ca::{LocalCa, ROOT_CERT_FILE};

    fn id(sa: &str) -> Identity {
        Identity {
            trust_domain: "cluster.local".into(),
            namespace: "istio-egress".into(),
            service_account: sa.into(),
        }
    }

    /// Writes a leaf for `sa` as the cert-chain and key files.
    fn write_leaf(ca: &LocalCa, files: &CertFiles, sa: &str) {
        let (cert, key) = ca.signer().issue_pem(&id(sa), LEAF_LIFETIME).unwrap();
        std::fs::write(&files.cert_chain, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
    }

    #[test]
    fn certificate_files_are_reloaded_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
        let files = CertFiles {
            cert_chain: dir.path().join("cert-chain.pem"),
            key: dir.path().join("key.pem"),
            ca_bundle: dir.path().join("ca").join(ROOT_CERT_FILE),
        };
        write_leaf(&ca, &files, "first");
        let store = IdentityStore::new("cluster.local", CertSource::Files(files.clone())).unwrap();
        assert_eq!(
            store.credential(&id("first")).unwrap().identity,
            id("first")
        );
        let err = store.credential(&id("second")).unwrap_err().to_string();
        assert!(
            err.contains("is for spiffe://cluster.local/ns/istio-egress/sa/first"),
            "{err}"
        );

        // Rotated (mtime moves on), picked up after the check interval.
        std::thread::sleep(Duration::from_millis(20));
        write_leaf(&ca, &files, "second");
        std::thread::sleep(FILE_CHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(
            store.credential(&id("second")).unwrap().identity,
            id("second")
        );

        // A broken rotation keeps the last good certificate.
        std::fs::write(&files.cert_chain, "garbage").unwrap();
        std::thread::sleep(FILE_CHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(
            store.credential(&id("second")).unwrap().identity,
            id("second")
        );
    }

    #[test]
    fn local_ca_leaves_are_cached_per_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(dir.path()).unwrap();
        let store = IdentityStore::new("cluster.local", CertSource::Ca(ca.signer())).unwrap();
        let a = store.credential(&id("a")).unwrap();
        assert!(Arc::ptr_eq(&a, &store.credential(&id("a")).unwrap()));
        assert!(!Arc::ptr_eq(&a, &store.credential(&id("b")).unwrap()));
    }
}
