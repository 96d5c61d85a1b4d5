//! `principals` / `source.principal` and `namespaces` / `source.namespace`
//! values, compiled the way Istio's RBAC generator turns them into Envoy
//! matchers (istio/istio `pilot/pkg/security/authz/model/generator.go`):
//!
//! - a principal value is matched against `spiffe://<principal>`: `*` is
//!   "present", `abc*` a prefix, other values exact (a `*` inside is a plain
//!   character), and a leading `*` makes the rest a regular expression after
//!   `spiffe://.*` — not escaped, so `*.local/ns/a/sa/b` treats `.` as any
//!   character, as Envoy does with Istio's config;
//! - a namespace value becomes the regular expression `.*/ns/<value>/.*`
//!   over the principal, every `*` in it turned into `.*`, wherever it is.
//!
//! Both need a verified peer identity: without mTLS nothing matches.
//! A value that does not make a valid regular expression is refused.

use regex::Regex;

use super::value_pattern::ValuePattern;

/// One compiled principal value.
#[derive(Clone, Debug)]
pub(crate) enum PrincipalMatch {
    /// `*`, `abc*` or exact.
    Str(ValuePattern),
    /// `*rest`: `spiffe://.*rest`, full match.
    Regex(Regex),
}

impl PrincipalMatch {
    /// Compiles a value; the error says why it is invalid.
    pub fn compile(value: &str) -> Result<Self, String> {
        match value.strip_prefix('*') {
            Some(rest) if !rest.is_empty() => {
                anchored(&format!(".*{rest}"), value).map(PrincipalMatch::Regex)
            }
            _ => Ok(PrincipalMatch::Str(ValuePattern::parse(value))),
        }
    }

    /// Whether `principal` (`td/ns/<ns>/sa/<sa>`, no `spiffe://`) matches.
    pub fn matches(&self, principal: &str) -> bool {
        match self {
            PrincipalMatch::Str(m) => m.matches(principal.as_bytes()),
            // `spiffe://.*rest` over `spiffe://<principal>` is `.*rest` over
            // the principal alone.
            PrincipalMatch::Regex(re) => re.is_match(principal),
        }
    }
}

/// One compiled namespace value: `.*/ns/<value>/.*` over the principal.
#[derive(Clone, Debug)]
pub(crate) struct NamespaceMatch(Regex);

impl NamespaceMatch {
    /// Compiles a value; the error says why it is invalid.
    pub fn compile(value: &str) -> Result<Self, String> {
        let body = value.replace('*', ".*");
        anchored(&format!(".*/ns/{body}/.*"), value).map(NamespaceMatch)
    }

    /// Whether the peer with `principal` is in a matching namespace.
    pub fn matches(&self, principal: &str) -> bool {
        self.0.is_match(principal)
    }
}

/// Envoy's `safe_regex` matches the whole input.
fn anchored(re: &str, value: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{re})$"))
        .map_err(|e| format!("{value:?} does not make a valid regular expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTPAGE: &str = "cluster.local/ns/bookinfo/sa/bookinfo-productpage";

    #[test]
    fn principals_as_istio_generates_them() {
        let table = [
            ("cluster.local/ns/bookinfo/sa/bookinfo-productpage", true),
            ("cluster.local/ns/bookinfo/*", true),
            ("*/sa/bookinfo-productpage", true),
            ("*", true),
            // A `*` that is neither first nor last is a plain character.
            ("cluster.local/ns/*/sa/bookinfo-productpage", false),
            // After a leading `*` the rest is a regular expression.
            ("*/ns/book.nfo/sa/bookinfo-productpage", true),
            ("*/ns/bookinfo/sa/bookinfo-productpage*", true),
            ("*/sa/bookinfo-product", false),
            ("*/sa/(bookinfo|other)-productpage", true),
            ("other/*", false),
        ];
        for (value, want) in table {
            let m = PrincipalMatch::compile(value).unwrap();
            assert_eq!(m.matches(PRODUCTPAGE), want, "{value}");
        }
        // Istio's regex for `*abc*` ends in `c*`: zero or more `c`, not a suffix.
        let m = PrincipalMatch::compile("*/sa/bookinfo-productpage*").unwrap();
        assert!(m.matches("td/ns/x/sa/bookinfo-productpag"));
        assert!(!m.matches("td/ns/x/sa/bookinfo-productpage-v2"));
        assert!(PrincipalMatch::compile("*/sa/(unclosed").is_err());
    }

    #[test]
    fn namespaces_take_a_star_anywhere() {
        let table = [
            ("bookinfo", true),
            ("book*", true),
            ("*info", true),
            ("b*nfo", true),
            ("*", true),
            ("book", false),
            ("other*", false),
            ("b*x", false),
            // The value is a regular expression, as in Istio's generator.
            ("book.nfo", true),
        ];
        for (value, want) in table {
            let m = NamespaceMatch::compile(value).unwrap();
            assert_eq!(m.matches(PRODUCTPAGE), want, "{value}");
        }
        assert!(NamespaceMatch::compile("a[").is_err());
    }
}
