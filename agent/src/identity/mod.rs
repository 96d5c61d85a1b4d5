//! Mesh identity: SPIFFE IDs, the certificates that prove them, and the TLS
//! configurations HBONE runs on.
//!
//! [`spiffe`] parses IDs; [`ca`] is the single-host CA and [`files`] the
//! file-mounted alternative, both behind the [`store::IdentityStore`];
//! [`verify`] checks peers as ztunnel does and [`tls`] builds rustls configs.

pub mod ca;
pub mod credential;
pub mod error;
pub mod files;
pub mod spiffe;
pub mod store;
pub mod tls;
pub mod verify;

pub use self::ca::LocalCa;
pub use self::credential::Credential;
pub use self::error::IdentityError;
pub use self::files::CertFiles;
pub use self::spiffe::{Identity, SpiffeError};
pub use self::store::{CertSource, IdentityStore};
pub use self::tls::{client_config, ServerTls};

/// The CA folder inside an agent's state folder.
pub const CA_DIR: &str = "ca";
