//! Why an identity could not be loaded, issued or checked.

use std::path::PathBuf;

use super::spiffe::Identity;

/// Failures of the identity module; each names the file or identity involved.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file of the CA folder or of `--cert-chain`/`--key`/`--ca-bundle`.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was missing or wrong.
        reason: String,
    },
    /// The local CA could not be created or loaded.
    #[error("local CA in {}: {source}", dir.display())]
    Ca {
        /// The CA folder.
        dir: PathBuf,
        /// The generator's error.
        #[source]
        source: rcgen::Error,
    },
    /// A CA's certificate, key or chain cannot be used to issue
    /// certificates peers accept.
    #[error("{origin}: {reason}")]
    CaCertificate {
        /// Where the CA came from (a folder, a Secret).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A leaf certificate could not be issued.
    #[error("issuing a certificate for {identity}: {source}")]
    Issue {
        /// The identity asked for.
        identity: Identity,
        /// The generator's error.
        #[source]
        source: rcgen::Error,
    },
    /// The certificate files hold another identity than the one asked for.
    #[error("certificate {} is for {have}, not {want}", path.display())]
    WrongIdentity {
        /// The certificate chain file.
        path: PathBuf,
        /// The identity asked for.
        want: Identity,
        /// What the certificate holds.
        have: String,
    },
    /// rustls refused a key, a root or a configuration.
    #[error("TLS setup for {what}: {source}")]
    Tls {
        /// What was being set up.
        what: String,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built from the bundle.
    #[error("trust bundle: {0}")]
    Bundle(String),
}
