//! SPIFFE IDs in Istio's form, `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`:
//! parsing, and reading them out of a certificate's URI SANs.

use std::fmt;
use std::str::FromStr;

use rustls::pki_types::CertificateDer;

/// A SPIFFE identity `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SPIFFE_PREFIX}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

/// The URI scheme prefix of every SPIFFE ID.
pub const SPIFFE_PREFIX: &str = "spiffe://";

/// Why a string or certificate does not carry an Istio SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    /// The string is not `spiffe://<td>/ns/<ns>/sa/<sa>`.
    #[error("`{0}` is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<ns>/sa/<sa>")]
    Malformed(String),
    /// The certificate could not be parsed as X.509.
    #[error("certificate is not valid X.509: {0}")]
    BadCertificate(String),
}

impl FromStr for Identity {
    type Err = SpiffeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || SpiffeError::Malformed(text.to_string());
        let rest = text.strip_prefix(SPIFFE_PREFIX).ok_or_else(malformed)?;
        let mut parts = rest.split('/');
        let (Some(td), Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        if [td, ns, sa].iter().any(|p| p.is_empty()) {
            return Err(malformed());
        }
        Ok(Identity {
            trust_domain: td.to_string(),
            namespace: ns.to_string(),
            service_account: sa.to_string(),
        })
    }
}

/// The SPIFFE identities in a certificate's URI SANs (others are ignored,
/// as ztunnel ignores them).
pub fn identities_in(cert: &CertificateDer<'_>) -> Result<Vec<Identity>, SpiffeError> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| SpiffeError::BadCertificate(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| SpiffeError::BadCertificate(e.to_string()))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => uri.parse::<Identity>().ok(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_istio_ids() {
        let id: Identity = "spiffe://cluster.local/ns/bookinfo/sa/productpage"
            .parse()
            .unwrap();
        assert_eq!(id.trust_domain, "cluster.local");
        assert_eq!(id.namespace, "bookinfo");
        assert_eq!(id.service_account, "productpage");
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/bookinfo/sa/productpage"
        );
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/sa/b/ns/a",
            "spiffe://cluster.local/ns/a/sa/b/extra",
            "spiffe:///ns/a/sa/b",
            "https://cluster.local/ns/a/sa/b",
        ] {
            assert!(bad.parse::<Identity>().is_err(), "{bad} accepted");
        }
    }
}
