//! Istio's policy string values: `abc` exact, `abc*` prefix, `*abc` suffix,
//! `*` present and non-empty. Parsed once; matching never allocates.

/// An AuthorizationPolicy string value, compiled: exact, prefix, suffix or presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValuePattern {
    /// The whole value.
    Exact(Box<str>),
    /// `abc*`.
    Prefix(Box<str>),
    /// `*abc`.
    Suffix(Box<str>),
    /// `*`: any non-empty value.
    Presence,
}

impl ValuePattern {
    /// Parses a value the way Istio does: `*` first, then a leading `*`
    /// (suffix), then a trailing `*` (prefix); any other `*` is literal.
    pub fn parse(value: &str) -> Self {
        if value == "*" {
            ValuePattern::Presence
        } else if let Some(rest) = value.strip_prefix('*') {
            ValuePattern::Suffix(rest.into())
        } else if let Some(rest) = value.strip_suffix('*') {
            ValuePattern::Prefix(rest.into())
        } else {
            ValuePattern::Exact(value.into())
        }
    }

    /// Like [`ValuePattern::parse`], for values compared case-insensitively (hosts).
    pub fn parse_ignore_case(value: &str) -> Self {
        Self::parse(&value.to_ascii_lowercase())
    }

    /// Whether `value` matches, byte for byte.
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValuePattern::Exact(e) => value == e.as_bytes(),
            ValuePattern::Prefix(p) => value.starts_with(p.as_bytes()),
            ValuePattern::Suffix(s) => value.ends_with(s.as_bytes()),
            ValuePattern::Presence => !value.is_empty(),
        }
    }

    /// Whether `value` matches ignoring ASCII case; the pattern is already lowercase.
    pub fn matches_ignore_case(&self, value: &[u8]) -> bool {
        match self {
            ValuePattern::Exact(e) => value.eq_ignore_ascii_case(e.as_bytes()),
            ValuePattern::Prefix(p) => {
                value.len() >= p.len() && value[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            ValuePattern::Suffix(s) => {
                value.len() >= s.len()
                    && value[value.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            ValuePattern::Presence => !value.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ValuePattern;

    #[test]
    fn string_forms() {
        // (pattern, value, expected) — ztunnel's and Istio's string tables.
        let table = [
            ("foo", "foo", true),
            ("foo", "not", false),
            ("foo", "", false),
            ("foo*", "foobar", true),
            ("foo*", "foo", true),
            ("foo*", "notfoo", false),
            ("foo*", "", false),
            ("*foo", "barfoo", true),
            ("*foo", "foonot", false),
            ("*foo", "", false),
            ("*", "foo", true),
            ("*", "", false),
            ("a*b", "a*b", true),
            ("a*b", "axb", false),
            ("*foo*", "xfoo*", true),
            ("*foo*", "xfoox", false),
        ];
        for (pattern, value, want) in table {
            assert_eq!(
                ValuePattern::parse(pattern).matches(value.as_bytes()),
                want,
                "{pattern:?} vs {value:?}"
            );
        }
    }

    #[test]
    fn ignore_case() {
        let table = [
            ("Example.COM", "example.com", true),
            ("example.com", "EXAMPLE.com", true),
            ("*.Example.com", "api.EXAMPLE.COM", true),
            ("example.*", "EXAMPLE.org", true),
            ("example.com", "example.com:80", false),
            ("example.com:*", "example.com:8080", true),
        ];
        for (pattern, value, want) in table {
            assert_eq!(
                ValuePattern::parse_ignore_case(pattern).matches_ignore_case(value.as_bytes()),
                want,
                "{pattern:?} vs {value:?}"
            );
        }
    }
}
