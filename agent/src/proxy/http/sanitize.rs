//! Checks every request passes before policy, HTTP/1.1 and HTTP/2 alike,
//! following Istio's "Authorization Policy Normalization" reference: the
//! method must be upper case, the path is normalized per MeshConfig
//! `pathNormalization` (and refused when it holds a NUL), and the headers
//! stay within the limits. The normalized path is what policy, routing and
//! the upstream see; the query goes on exactly as sent.

use http::request;

use super::normalize::{self, PathError};
use super::reply::LocalReply;
use crate::config::mesh::PathNormalization;
use crate::proxy::limits::Limits;

/// Why a request was refused before policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The method has lower-case letters (Istio answers 400).
    #[error("method {0:?} is not upper case")]
    Method(String),
    /// The path cannot be normalized.
    #[error(transparent)]
    Path(#[from] PathError),
    /// More header fields than allowed.
    #[error("{count} header fields, more than the limit of {limit}")]
    HeaderCount {
        /// Fields received.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Request line and headers larger than allowed.
    #[error("request headers of {size} bytes, more than the limit of {limit}")]
    HeaderSize {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl Rejection {
    /// The reply the workload gets.
    pub fn reply(&self) -> LocalReply {
        match self {
            Rejection::Method(_) | Rejection::Path(_) => LocalReply::bad_request(),
            Rejection::HeaderCount { .. } | Rejection::HeaderSize { .. } => {
                LocalReply::header_fields_too_large()
            }
        }
    }
}

/// Checks `head` and puts the normalized path in it.
pub fn check(
    head: &mut request::Parts,
    limits: &Limits,
    mode: PathNormalization,
) -> Result<(), Rejection> {
    check_headers(head, limits)?;
    let method = head.method.as_str();
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Rejection::Method(method.to_string()));
    }
    normalize_uri(head, mode)
}

/// HTTP/1.1 heads were measured on the wire already; HTTP/2 ones are
/// measured here, as the bytes of their pseudo-headers and fields.
fn check_headers(head: &request::Parts, limits: &Limits) -> Result<(), Rejection> {
    let count = head.headers.len();
    if count > limits.max_request_headers {
        return Err(Rejection::HeaderCount {
            count,
            limit: limits.max_request_headers,
        });
    }
    let size = head.method.as_str().len()
        + head.uri.to_string().len()
        + head
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum::<usize>();
    if size > limits.max_request_headers_bytes {
        return Err(Rejection::HeaderSize {
            size,
            limit: limits.max_request_headers_bytes,
        });
    }
    Ok(())
}

/// Normalizes the path of an origin- or absolute-form target in place. A
/// target that is no path (`*`, CONNECT's authority) is left alone.
fn normalize_uri(head: &mut request::Parts, mode: PathNormalization) -> Result<(), Rejection> {
    let Some(pq) = head.uri.path_and_query() else {
        return Ok(());
    };
    let path = pq.path();
    if !path.starts_with('/') {
        return Ok(());
    }
    let normal = match normalize::normalize(path, mode)? {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(normal) => normal,
    };
    let mut path_and_query = normal;
    if let Some(query) = pq.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    let mut parts = head.uri.clone().into_parts();
    // The normal form only holds characters a URI may: it parses.
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        head.uri = uri;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, uri: &str) -> request::Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn lower_case_methods_are_refused() {
        for method in ["get", "Get", "gET", "post"] {
            let mut h = head(method, "/");
            let err = check(&mut h, &Limits::default(), PathNormalization::Base).unwrap_err();
            assert_eq!(err, Rejection::Method(method.into()));
            assert_eq!(err.reply().status, 400);
        }
        for method in ["GET", "PURGE", "M-SEARCH"] {
            let mut h = head(method, "/");
            assert_eq!(
                check(&mut h, &Limits::default(), PathNormalization::Base),
                Ok(())
            );
        }
    }

    #[test]
    fn path_is_normalized_and_query_kept_as_sent() {
        let mut h = head("GET", "/a/../b%2f%41?x=%2e%2E&y=..");
        check(&mut h, &Limits::default(), PathNormalization::Base).unwrap();
        assert_eq!(h.uri, "/b%2fA?x=%2e%2E&y=..");
        let mut h = head("GET", "http://example.com/a//b/../c?q");
        check(&mut h, &Limits::default(), PathNormalization::MergeSlashes).unwrap();
        assert_eq!(h.uri, "http://example.com/a/c?q");
        let mut h = head("OPTIONS", "*");
        check(&mut h, &Limits::default(), PathNormalization::Base).unwrap();
        assert_eq!(h.uri, "*");
    }

    #[test]
    fn nul_in_the_path_is_a_400_even_without_normalization() {
        let mut h = head("GET", "/admin%00?x");
        let err = check(&mut h, &Limits::default(), PathNormalization::None).unwrap_err();
        assert!(matches!(err, Rejection::Path(PathError::Nul(_))), "{err}");
        assert_eq!(err.reply().status, 400);
    }

    #[test]
    fn header_limits_give_431() {
        let limits = Limits {
            max_request_headers: 3,
            max_request_headers_bytes: 64,
            ..Limits::default()
        };
        let (mut h, ()) = http::Request::get("/")
            .header("a", "1")
            .header("b", "2")
            .header("c", "3")
            .header("d", "4")
            .body(())
            .unwrap()
            .into_parts();
        let err = check(&mut h, &limits, PathNormalization::Base).unwrap_err();
        assert_eq!(err, Rejection::HeaderCount { count: 4, limit: 3 });
        assert_eq!(err.reply().status, 431);
        let (mut h, ()) = http::Request::get("/")
            .header("big", "x".repeat(60))
            .body(())
            .unwrap()
            .into_parts();
        let err = check(&mut h, &limits, PathNormalization::Base).unwrap_err();
        assert!(
            matches!(err, Rejection::HeaderSize { limit: 64, .. }),
            "{err}"
        );
        assert_eq!(err.reply().status, 431);
    }
}
