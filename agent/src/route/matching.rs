//! HTTP match conditions of a route and the request view they are checked on.
//! Entries in `match` OR; fields inside one entry AND.

use std::borrow::Cow;

use http::header::HeaderName;
use http::HeaderMap;
use regex::Regex;

/// What route matching looks at; borrowed from the proxy's request, no copies.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequestView<'a> {
    /// Request method.
    pub method: &'a str,
    /// Path with the query string, as sent.
    pub path_and_query: &'a str,
    /// `:authority` / `Host` as sent, including any port.
    pub authority: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Destination port the client dialled.
    pub port: u16,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Namespace of the verified peer identity, if any.
    pub source_namespace: Option<&'a str>,
}

impl<'a> HttpRequestView<'a> {
    /// The path without the query string.
    pub fn path(&self) -> &'a str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query, |(p, _)| p)
    }

    fn query(&self) -> &'a str {
        self.path_and_query.split_once('?').map_or("", |(_, q)| q)
    }
}

/// An Istio `StringMatch`, compiled. Regexes are anchored (Envoy full-matches).
#[derive(Clone, Debug)]
pub enum StringMatcher {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Full regex match.
    Regex(Regex),
    /// Present, any value (`{}`, empty exact/prefix, or regex `*`).
    Present,
}

impl StringMatcher {
    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(e) => value == e,
            StringMatcher::Prefix(p) => value.starts_with(p.as_str()),
            StringMatcher::Regex(r) => r.is_match(value),
            StringMatcher::Present => true,
        }
    }
}

/// `match[].uri`.
#[derive(Clone, Debug)]
pub enum UriMatch {
    /// Whole path.
    Exact(String),
    /// Path prefix.
    Prefix(String),
    /// Full regex on the path (`ignoreUriCase` does not apply, as in Envoy).
    Regex(Regex),
}

/// A `headers` / `withoutHeaders` key: a header field, or one of the
/// pseudo-headers Istio lets a route match (`:method`, `:scheme`,
/// `:authority`, `:path`, `:status`), which Envoy keeps in the header map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderKey {
    /// A header field.
    Field(HeaderName),
    /// `:method`.
    Method,
    /// `:scheme`.
    Scheme,
    /// `:authority` (the Host of HTTP/1.1).
    Authority,
    /// `:path`: path and query.
    Path,
    /// `:status`: never on a request.
    Status,
}

impl HeaderKey {
    /// The key a (lower-cased) VirtualService header name stands for.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            ":method" => HeaderKey::Method,
            ":scheme" => HeaderKey::Scheme,
            ":authority" => HeaderKey::Authority,
            ":path" => HeaderKey::Path,
            ":status" => HeaderKey::Status,
            _ => HeaderKey::Field(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("invalid header name {name:?}"))?,
            ),
        })
    }
}

/// One compiled `match[]` entry.
#[derive(Clone, Debug, Default)]
pub struct CompiledMatch {
    pub(crate) uri: Option<UriMatch>,
    pub(crate) ignore_uri_case: bool,
    pub(crate) scheme: Option<StringMatcher>,
    pub(crate) method: Option<StringMatcher>,
    pub(crate) authority: Option<StringMatcher>,
    pub(crate) headers: Vec<(HeaderKey, StringMatcher)>,
    pub(crate) without_headers: Vec<(HeaderKey, StringMatcher)>,
    pub(crate) query_params: Vec<(String, StringMatcher)>,
    pub(crate) port: Option<u16>,
    pub(crate) source_namespace: Option<String>,
}

impl CompiledMatch {
    /// If the entry matches, the length of the path prefix it matched (what
    /// `rewrite.uri` replaces): the prefix for prefix matches, the whole path for
    /// exact and regex matches, `/` when the entry has no `uri`.
    pub fn matches(&self, req: &HttpRequestView<'_>) -> Option<usize> {
        let path = req.path();
        let matched = match &self.uri {
            None => 1,
            Some(UriMatch::Exact(e)) => {
                let ok = if self.ignore_uri_case {
                    path.eq_ignore_ascii_case(e)
                } else {
                    path == e
                };
                if !ok {
                    return None;
                }
                path.len()
            }
            Some(UriMatch::Prefix(p)) => {
                let ok = path.len() >= p.len()
                    && if self.ignore_uri_case {
                        path.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                    } else {
                        path.starts_with(p.as_str())
                    };
                if !ok {
                    return None;
                }
                p.len()
            }
            Some(UriMatch::Regex(r)) => {
                if !r.is_match(path) {
                    return None;
                }
                path.len()
            }
        };
        let field = |m: &Option<StringMatcher>, v: &str| m.as_ref().is_none_or(|m| m.matches(v));
        let ok = field(&self.scheme, req.scheme)
            && field(&self.method, req.method)
            && field(&self.authority, req.authority)
            && self.port.is_none_or(|p| p == req.port)
            && self
                .source_namespace
                .as_ref()
                .is_none_or(|ns| req.source_namespace == Some(ns.as_str()))
            && self
                .headers
                .iter()
                .all(|(k, m)| header(req, k).is_some_and(|v| m.matches(&v)))
            && self
                .without_headers
                .iter()
                .all(|(k, m)| !without_header_hit(req, k, m))
            && self
                .query_params
                .iter()
                .all(|(n, m)| query_param(req.query(), n).is_some_and(|v| m.matches(v)));
        ok.then_some(matched)
    }
}

/// The value a header key has on the request: pseudo-headers from the
/// request line; a repeated field as Envoy matches it, its values joined by
/// `,`. Non-UTF-8 values never match a string condition.
fn header<'h>(req: &HttpRequestView<'h>, key: &HeaderKey) -> Option<Cow<'h, str>> {
    let field = match key {
        HeaderKey::Method => return Some(Cow::Borrowed(req.method)),
        HeaderKey::Scheme => return Some(Cow::Borrowed(req.scheme)),
        HeaderKey::Authority => return Some(Cow::Borrowed(req.authority)),
        HeaderKey::Path => return Some(Cow::Borrowed(req.path_and_query)),
        HeaderKey::Status => return None,
        HeaderKey::Field(name) => name,
    };
    let text = |v: &'h http::HeaderValue| v.to_str().unwrap_or("\u{fffd}");
    let mut values = req.headers.get_all(field).iter();
    let first = text(values.next()?);
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first},{}", text(second));
            for v in values {
                joined.push(',');
                joined.push_str(text(v));
            }
            Some(Cow::Owned(joined))
        }
    }
}

/// `withoutHeaders` inverts the match; a missing header counts as an empty value,
/// except for "present" conditions (Envoy's treat_missing_header_as_empty).
fn without_header_hit(req: &HttpRequestView<'_>, key: &HeaderKey, m: &StringMatcher) -> bool {
    match (header(req, key), m) {
        (None, StringMatcher::Present) => false,
        (None, m) => m.matches(""),
        (Some(v), m) => m.matches(&v),
    }
}

/// First value of query parameter `name` (a parameter without `=` has an empty value).
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
