//! What a policy check looks at: borrowed views of the connection and, for
//! HTTP, the request. Building one allocates nothing.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// Attributes of one request (HTTP) or connection (TCP) at the waypoint.
#[derive(Clone, Copy, Debug)]
pub struct RequestAttrs<'a> {
    /// Verified peer identity without `spiffe://`: `td/ns/<ns>/sa/<sa>`; `None` without mTLS.
    pub source_principal: Option<&'a str>,
    /// Address the connection came from (`source.ip`, `ipBlocks`).
    pub source_ip: IpAddr,
    /// Original client address (`remote.ip`, `remoteIpBlocks`); the source IP when unknown.
    pub remote_ip: IpAddr,
    /// Original destination: the service address and port the client dialled.
    pub destination: SocketAddr,
    /// TLS server name seen on the connection, if any (`connection.sni`).
    pub sni: Option<&'a str>,
    /// HTTP attributes; `None` for TCP traffic.
    pub http: Option<HttpAttrs<'a>>,
}

/// HTTP-only attributes.
#[derive(Clone, Copy, Debug)]
pub struct HttpAttrs<'a> {
    /// `:authority` / `Host` as sent, including any port.
    pub authority: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Path without the query string (already normalized by the proxy).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// The pieces of a SPIFFE principal `td/ns/<ns>/sa/<sa>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrincipalParts<'a> {
    /// Trust domain.
    pub trust_domain: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Service account.
    pub service_account: &'a str,
}

impl<'a> PrincipalParts<'a> {
    /// Splits a principal; `None` when it is not in Istio's SPIFFE form.
    pub fn parse(principal: &'a str) -> Option<Self> {
        let (trust_domain, rest) = principal.split_once("/ns/")?;
        let (namespace, rest) = rest.split_once('/')?;
        let service_account = rest.strip_prefix("sa/")?;
        if trust_domain.is_empty() || namespace.is_empty() || service_account.is_empty() {
            return None;
        }
        Some(PrincipalParts {
            trust_domain,
            namespace,
            service_account,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PrincipalParts;

    #[test]
    fn identity_parts() {
        let id =
            PrincipalParts::parse("cluster.local/ns/bookinfo/sa/bookinfo-productpage").unwrap();
        assert_eq!(id.trust_domain, "cluster.local");
        assert_eq!(id.namespace, "bookinfo");
        assert_eq!(id.service_account, "bookinfo-productpage");
        assert_eq!(PrincipalParts::parse("cluster.local/sa/x"), None);
        assert_eq!(PrincipalParts::parse("/ns/a/sa/b"), None);
    }
}
