//! Mesh identity: SPIFFE IDs, the workloads that hold them, the
//! certificates that prove them, and the TLS configurations HBONE runs on.
//!
//! [`spiffe`] parses IDs; a [`signer::CaSigner`] issues leaves with a CA,
//! either the single-host one of [`ca`] or a cluster CA in Istio's plug-in
//! format ([`cacerts`]); [`files`] is the file-mounted alternative; all sit
//! behind the [`store::IdentityStore`]. [`verify`] checks peers as ztunnel
//! does and [`tls`] builds rustls configs.

pub mod ca;
pub mod ca_key;
pub mod cacerts;
pub mod credential;
pub mod error;
pub mod files;
pub mod signer;
pub mod spiffe;
pub mod store;
pub mod tls;
pub mod verify;
pub mod workload;

pub use self::ca::LocalCa;
pub use self::cacerts::CaCerts;
pub use self::credential::Credential;
pub use self::error::IdentityError;
pub use self::files::CertFiles;
pub use self::signer::CaSigner;
pub use self::spiffe::{Identity, SpiffeError};
pub use self::store::{CertSource, IdentityStore};
pub use self::tls::{client_config, ServerTls};
pub use self::workload::WorkloadInfo;

/// The CA folder inside an agent's state folder.
pub const CA_DIR: &str = "ca";
