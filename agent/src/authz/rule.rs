//! Compiled rules and how one is checked against a request.
//!
//! A rule matches when one of its `from` entries, one of its `to` entries and
//! every `when` condition match (an absent list matches anything). Each entry is
//! a list of [`Check`]s that all must hold.

use http::header::HeaderName;
use ipnet::IpNet;

use super::identity::{NamespaceMatch, PrincipalMatch};
use super::path::PathMatch;
use super::request::{HttpAttrs, PrincipalParts, RequestAttrs};
use super::value_pattern::ValuePattern;

/// Positive and negative values of one attribute: any of `any_of` (when given)
/// and none of `none_of`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Values<T> {
    /// Values of the positive field (`paths`, `values`).
    pub any_of: Vec<T>,
    /// Values of the negative field (`notPaths`, `notValues`).
    pub none_of: Vec<T>,
}

impl<T> Values<T> {
    fn eval(&self, mut hit: impl FnMut(&T) -> bool) -> bool {
        (self.any_of.is_empty() || self.any_of.iter().any(&mut hit))
            && !self.none_of.iter().any(&mut hit)
    }
}

/// A `request.headers[...]` value: Istio turns `*` into "header present".
#[derive(Clone, Debug)]
pub(crate) enum HeaderMatch {
    /// Present, whatever the value (even empty).
    Present,
    /// Exact, prefix or suffix on the value.
    Value(ValuePattern),
}

/// One attribute constraint.
#[derive(Clone, Debug)]
pub(crate) enum Check {
    /// `principals`, `source.principal`.
    Principal(Values<PrincipalMatch>),
    /// `trustDomains`, `source.trustDomain`.
    TrustDomain(Values<ValuePattern>),
    /// `serviceAccounts`, `source.serviceAccount`: (namespace, name).
    ServiceAccount(Values<(Box<str>, Box<str>)>),
    /// `namespaces`, `source.namespace` (matched on the principal, as Istio does).
    Namespace(Values<NamespaceMatch>),
    /// `ipBlocks`, `source.ip`.
    SourceIp(Values<IpNet>),
    /// `remoteIpBlocks`, `remote.ip`.
    RemoteIp(Values<IpNet>),
    /// `destination.ip`.
    DestinationIp(Values<IpNet>),
    /// `ports`, `destination.port`.
    DestinationPort(Values<u16>),
    /// `connection.sni`.
    Sni(Values<ValuePattern>),
    /// `hosts` (HTTP only), case-insensitive on `:authority`.
    Host(Values<ValuePattern>),
    /// `methods` (HTTP only).
    Method(Values<ValuePattern>),
    /// `paths` (HTTP only).
    Path(Values<PathMatch>),
    /// `request.headers[name]` (HTTP only).
    Header(HeaderName, Values<HeaderMatch>),
    /// `requestPrincipals`, `request.auth.*` (HTTP only). egret does not validate
    /// JWTs yet, so the attribute is always absent: values never match.
    RequestAuth(Values<ValuePattern>),
}

impl Check {
    /// Whether the attribute exists only on HTTP requests.
    pub fn http_only(&self) -> bool {
        matches!(
            self,
            Check::Host(_)
                | Check::Method(_)
                | Check::Path(_)
                | Check::Header(..)
                | Check::RequestAuth(_)
        )
    }

    /// Evaluates the check. On TCP an HTTP-only check is dropped (holds), which
    /// is Istio's DENY/AUDIT behaviour; ALLOW rules holding one never get here.
    fn eval(&self, req: &RequestAttrs<'_>) -> bool {
        let identity = || req.source_principal.and_then(PrincipalParts::parse);
        match self {
            Check::Principal(v) => v.eval(|m| req.source_principal.is_some_and(|p| m.matches(p))),
            Check::TrustDomain(v) => {
                v.eval(|m| identity().is_some_and(|id| m.matches(id.trust_domain.as_bytes())))
            }
            Check::ServiceAccount(v) => v.eval(|(ns, sa)| {
                identity().is_some_and(|id| id.namespace == &**ns && id.service_account == &**sa)
            }),
            Check::Namespace(v) => v.eval(|m| req.source_principal.is_some_and(|p| m.matches(p))),
            // IPv4-mapped IPv6 addresses compare as IPv4, as in Envoy's CIDR matcher.
            Check::SourceIp(v) => v.eval(|net| net.contains(&req.source_ip.to_canonical())),
            Check::RemoteIp(v) => v.eval(|net| net.contains(&req.remote_ip.to_canonical())),
            Check::DestinationIp(v) => {
                v.eval(|net| net.contains(&req.destination.ip().to_canonical()))
            }
            Check::DestinationPort(v) => v.eval(|p| *p == req.destination.port()),
            Check::Sni(v) => v.eval(|m| req.sni.is_some_and(|s| m.matches(s.as_bytes()))),
            _ => match &req.http {
                Some(http) => self.eval_http(http),
                None => true,
            },
        }
    }

    fn eval_http(&self, http: &HttpAttrs<'_>) -> bool {
        match self {
            Check::Host(v) => v.eval(|m| m.matches_ignore_case(http.authority.as_bytes())),
            Check::Method(v) => v.eval(|m| m.matches(http.method.as_bytes())),
            Check::Path(v) => v.eval(|m| m.matches(http.path)),
            Check::Header(name, v) => v.eval(|m| header_matches(http, name, m)),
            Check::RequestAuth(v) => v.eval(|_| false),
            _ => unreachable!("eval_http called for an L4 check"),
        }
    }
}

/// Envoy matches a repeated header against its values joined with `,`.
fn header_matches(http: &HttpAttrs<'_>, name: &HeaderName, m: &HeaderMatch) -> bool {
    let mut values = http.headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return false;
    };
    let m = match m {
        HeaderMatch::Present => return true,
        HeaderMatch::Value(m) => m,
    };
    match values.next() {
        None => m.matches(first.as_bytes()),
        // Rare: only repeated headers pay for the join.
        Some(second) => {
            let mut joined = [first.as_bytes(), b",", second.as_bytes()].concat();
            for v in values {
                joined.push(b',');
                joined.extend_from_slice(v.as_bytes());
            }
            m.matches(&joined)
        }
    }
}

/// One compiled `rules[]` entry.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompiledRule {
    /// One check list per `from` entry; empty = any source.
    pub from: Vec<Vec<Check>>,
    /// One check list per `to` entry; empty = any operation.
    pub to: Vec<Vec<Check>>,
    /// The `when` conditions, all required.
    pub when: Vec<Check>,
    /// Whether any check is HTTP-only (an ALLOW rule then never matches TCP).
    pub http_only: bool,
}

impl CompiledRule {
    /// Builds a rule and records whether it uses HTTP-only attributes.
    pub fn new(from: Vec<Vec<Check>>, to: Vec<Vec<Check>>, when: Vec<Check>) -> Self {
        let http_only = from
            .iter()
            .chain(to.iter())
            .flatten()
            .chain(when.iter())
            .any(Check::http_only);
        CompiledRule {
            from,
            to,
            when,
            http_only,
        }
    }

    /// Whether the rule matches. `narrow_on_tcp` is set for ALLOW policies: on TCP a
    /// rule with HTTP-only attributes is dropped whole (Istio's checkError).
    pub fn matches(&self, req: &RequestAttrs<'_>, narrow_on_tcp: bool) -> bool {
        if narrow_on_tcp && self.http_only && req.http.is_none() {
            return false;
        }
        let group = |entries: &[Vec<Check>]| {
            entries.is_empty() || entries.iter().any(|e| e.iter().all(|c| c.eval(req)))
        };
        group(&self.from) && group(&self.to) && self.when.iter().all(|c| c.eval(req))
    }
}
