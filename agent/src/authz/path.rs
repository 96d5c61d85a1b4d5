//! `paths` / `notPaths` values: Istio string forms, or Envoy URI templates
//! when the value holds `{*}` (one segment) or `{**}` (any rest, last operator).

use regex::Regex;

use super::value_pattern::ValuePattern;

/// `{*}`: exactly one non-empty path segment.
const MATCH_ONE: &str = "{*}";
/// `{**}`: zero or more characters including `/`.
const MATCH_ANY: &str = "{**}";
/// RFC 3986 pchar minus `*` — what Envoy's URI templates accept as a literal.
const PCHAR: &str = r"a-zA-Z0-9\-._~%!$&'()+,;:@=";

/// One compiled path value.
#[derive(Clone, Debug)]
pub enum PathMatch {
    /// Plain Istio string value.
    Str(ValuePattern),
    /// A URI template, compiled once to an anchored regex.
    Template(Regex),
}

impl PathMatch {
    /// Validates and compiles a path value; the error says why it is invalid.
    pub fn compile(value: &str) -> Result<Self, String> {
        let template = value.contains(MATCH_ONE) || value.contains(MATCH_ANY);
        let mut seen_any = false;
        for glob in value.trim_matches('/').split('/') {
            if glob == MATCH_ONE || glob == MATCH_ANY {
                if seen_any {
                    return Err(format!(
                        "invalid path template {value:?}: {{**}} must be the last operator"
                    ));
                }
                seen_any = glob == MATCH_ANY;
                continue;
            }
            if glob.contains(['{', '}']) {
                return Err(format!(
                    "invalid path {value:?}: '{{' or '}}' outside a supported path template \
                     ({{*}} or {{**}} as a whole segment)"
                ));
            }
            if template && !is_literal(glob) {
                return Err(format!(
                    "invalid path template {value:?}: segment {glob:?} is not a valid literal"
                ));
            }
        }
        if !template {
            return Ok(PathMatch::Str(ValuePattern::parse(value)));
        }
        let mut re = String::from("^");
        let mut rest = value;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix(MATCH_ANY) {
                re.push_str(&format!("[{PCHAR}/]*"));
                rest = r;
            } else if let Some(r) = rest.strip_prefix(MATCH_ONE) {
                re.push_str(&format!("[{PCHAR}]+"));
                rest = r;
            } else {
                let end = rest.find('{').unwrap_or(rest.len()).max(1);
                re.push_str(&regex::escape(&rest[..end]));
                rest = &rest[end..];
            }
        }
        re.push('$');
        Regex::new(&re)
            .map(PathMatch::Template)
            .map_err(|e| format!("invalid path template {value:?}: {e}"))
    }

    /// Whether the request path (no query string) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Str(s) => s.matches(path.as_bytes()),
            PathMatch::Template(re) => re.is_match(path),
        }
    }
}

/// Envoy's literal check for template segments: non-empty pchar.
fn is_literal(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::PathMatch;

    #[test]
    fn paths_and_templates() {
        // (pattern, path, expected) — from the AuthorizationPolicy reference and Envoy's
        // uri_template semantics.
        let table = [
            ("/get", "/get", true),
            ("/get", "/get/", false),
            ("/get", "/post", false),
            ("/api/*", "/api/v1/x", true),
            ("/api/*", "/apiv1", false),
            ("*.html", "/a/b.html", true),
            ("*", "/", true),
            ("/foo/{*}", "/foo/bar", true),
            ("/foo/{*}", "/foo/bar/baz", false),
            ("/foo/{*}", "/foo/", false),
            ("/foo/{**}", "/foo/bar/baz.txt", true),
            ("/foo/{**}", "/foo/", true),
            ("/foo/{**}", "/foo", false),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/baz", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/qux/baz", false),
            ("/{*}/x.txt", "/a/x.txt", true),
            ("/{*}/x.txt", "/a/xytxt", false),
        ];
        for (pattern, path, want) in table {
            let m = PathMatch::compile(pattern).unwrap();
            assert_eq!(m.matches(path), want, "{pattern:?} vs {path:?}");
        }
    }

    #[test]
    fn invalid_templates() {
        for bad in [
            "/*/baz/{*}",
            "/**/baz/{*}",
            "/{**}/foo/{*}",
            "/foo/{*}.txt",
            "/foo/{bar}",
            "/foo//{*}",
        ] {
            assert!(
                PathMatch::compile(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
