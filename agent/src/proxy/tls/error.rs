//! Why TLS toward an upstream could not be set up or failed.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A TLS origination failure. Each names the DestinationRule or peer and
/// the reason, since it ends up in a 503 and in the log.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("DestinationRule {rule}: reading {field} {path}: {source}")]
    ReadFile {
        /// `namespace/name` of the rule.
        rule: String,
        /// The field naming the file (`caCertificates`…).
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A file or Secret value is not the PEM it should be.
    #[error("DestinationRule {rule}: {what}: {reason}")]
    BadPem {
        /// `namespace/name` of the rule.
        rule: String,
        /// Where the PEM came from (`caCertificates /etc/ca.pem`, `Secret ns/name cert`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `credentialName` names a Secret that is not applied.
    #[error("DestinationRule {rule}: credentialName: Secret {namespace}/{name} not found")]
    SecretMissing {
        /// `namespace/name` of the rule.
        rule: String,
        /// Namespace looked in (the rule's).
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret lacks a key the mode needs.
    #[error("DestinationRule {rule}: Secret {secret} has no {needed} (keys {keys})")]
    SecretIncomplete {
        /// `namespace/name` of the rule.
        rule: String,
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is missing.
        needed: &'static str,
        /// The keys that would hold it.
        keys: &'static str,
    },
    /// ISTIO_MUTUAL needs the mesh identity, which upstream origination
    /// does not have.
    #[error("DestinationRule {rule}: mode ISTIO_MUTUAL toward external hosts is not supported (use SIMPLE or MUTUAL)")]
    IstioMutual {
        /// `namespace/name` of the rule.
        rule: String,
    },
    /// No server name to send (a wildcard host and a request without Host).
    #[error("DestinationRule {rule}: no server name for TLS to {host}: set spec.trafficPolicy.tls.sni or send a Host header")]
    NoServerName {
        /// `namespace/name` of the rule.
        rule: String,
        /// The service host.
        host: String,
    },
    /// A name is not usable as a TLS server name.
    #[error("DestinationRule {rule}: \"{name}\" is not a valid TLS server name")]
    InvalidName {
        /// `namespace/name` of the rule.
        rule: String,
        /// The name.
        name: String,
    },
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    #[error("DestinationRule {rule}: {source}")]
    Config {
        /// `namespace/name` of the rule.
        rule: String,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// The `--ca-roots` file is unusable.
    #[error("--ca-roots {path}: {reason}")]
    ExtraRoots {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The handshake with the upstream failed (verification included).
    #[error("TLS handshake with {addr} (server name {server_name}): {source}")]
    Handshake {
        /// The upstream endpoint.
        addr: SocketAddr,
        /// The SNI sent.
        server_name: String,
        /// rustls' error, inside io::Error.
        #[source]
        source: io::Error,
    },
    /// The handshake did not finish in time.
    #[error("TLS handshake with {addr} (server name {server_name}): no answer within {timeout:?}")]
    Timeout {
        /// The upstream endpoint.
        addr: SocketAddr,
        /// The SNI sent.
        server_name: String,
        /// The limit.
        timeout: std::time::Duration,
    },
}

impl TlsError {
    /// Envoy's "transport failure reason" for the 503 body. Setup errors
    /// name config (files, Secrets) the workload has no business seeing:
    /// their detail goes to the log only.
    pub fn transport_reason(&self) -> String {
        match self {
            TlsError::Handshake { source, .. } => format!("TLS error: {source}"),
            TlsError::Timeout { .. } => "TLS error: handshake timeout".to_string(),
            _ => "TLS setup error".to_string(),
        }
    }
}
