//! Host names as the mesh compares them: ServiceEntry and DestinationRule
//! hosts, VirtualService hosts and destinations, `Host`/`:authority`, TLS
//! server names, DNS questions. DNS names are case-insensitive (RFC 4343),
//! so a [`HostName`] is ASCII case-folded once, when it is made from text,
//! and then compared and hashed as plain bytes.

use std::fmt;
use std::ops::Deref;

/// An ASCII case-folded host name, possibly a wildcard (`*.example.com`, `*`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HostName(Box<str>);

impl HostName {
    /// The name `text` names, case-folded; nothing else changes. A trailing
    /// dot stays: a `Host: a.com.` does not name `a.com` (Envoy compares
    /// hosts as sent unless told to strip the dot), and config hosts and
    /// TLS server names with one are refused where they are validated.
    pub fn new(text: &str) -> Self {
        HostName(text.to_ascii_lowercase().into_boxed_str())
    }

    /// A name as DNS reads it, case-folded: trailing dots (the root) are
    /// dropped, so `a.com.` is `a.com`. For DNS questions, VirtualService
    /// hosts and the hosts routes are looked up by.
    pub fn fully_qualified(text: &str) -> Self {
        Self::new(text.trim_end_matches('.'))
    }

    /// The name as text, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is a wildcard (`*` or `*.suffix`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with('*')
    }

    /// Whether `name` is this host or, for a wildcard, a name under it:
    /// `*` covers every name; `*.a.com` covers `x.a.com`, `x.y.a.com` and
    /// the narrower wildcard `*.x.a.com`, never `a.com` itself.
    pub fn covers(&self, name: &HostName) -> bool {
        match self.0.strip_prefix('*') {
            Some("") => true,
            Some(suffix) => name.0.len() > suffix.len() && name.0.ends_with(suffix),
            None => self.0 == name.0,
        }
    }
}

impl Deref for HostName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for HostName {
    /// Byte equality with already lowercase text (tests, constants).
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for HostName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl From<&str> for HostName {
    /// [`HostName::new`].
    fn from(text: &str) -> Self {
        HostName::new(text)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for HostName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for HostName {
    /// Stored names (the address allocations) are folded again on load.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(HostName::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::HostName;
    use std::collections::HashSet;

    #[test]
    fn case_folded_once_then_equal_and_hashed_alike() {
        let a = HostName::new("API.Example.COM");
        assert_eq!(a, HostName::new("api.example.com"));
        assert_eq!(a.as_str(), "api.example.com");
        let set: HashSet<HostName> = ["A.com", "a.COM", "a.com"]
            .into_iter()
            .map(HostName::new)
            .collect();
        assert_eq!(set.len(), 1);
        // Only ASCII folds (hosts on the wire are ASCII or punycode).
        assert_ne!(HostName::new("É.com"), HostName::new("é.com"));
    }

    #[test]
    fn a_trailing_dot_counts_only_where_dns_reads_the_name() {
        assert_ne!(HostName::new("a.com."), HostName::new("a.com"));
        assert_eq!(HostName::fully_qualified("A.com."), HostName::new("a.com"));
        assert_eq!(HostName::fully_qualified("a.com"), HostName::new("a.com"));
    }

    #[test]
    fn wildcards_cover_the_names_under_them_only() {
        let cover = |pattern: &str, name: &str| HostName::new(pattern).covers(&HostName::new(name));
        assert!(cover("httpbin.org", "httpbin.org"));
        assert!(cover("httpbin.org", "HTTPBIN.org"));
        assert!(!cover("httpbin.org", "evil.test"));
        assert!(!cover("httpbin.org", "www.httpbin.org"));
        assert!(cover("*.example.test", "a.example.test"));
        assert!(cover("*.example.test", "a.b.Example.Test"));
        assert!(cover("*.example.test", "*.a.example.test"));
        assert!(!cover("*.example.test", "example.test"));
        assert!(!cover("*.example.test", "aexample.test"));
        assert!(!cover("*.example.test", "a.example.test.evil"));
        assert!(cover("*", "anything.at.all"));
        assert!(cover("*", ""));
        assert!(HostName::new("*.a.com").is_wildcard() && !HostName::new("a.com").is_wildcard());
    }
}
