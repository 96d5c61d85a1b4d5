//! Request path normalization before policy, as Envoy does for Istio
//! (RFC 3986 section 6.2.2: percent-decoding of unreserved characters and
//! dot-segment removal), so `/get/../admin` cannot slip past a DENY on
//! `/admin` and then be normalized by the upstream.

use std::borrow::Cow;

/// Whether a path needed normalizing.
pub enum NormalizedPath {
    /// Already normal.
    Unchanged,
    /// The normal form.
    Changed(String),
}

/// Classifies `path`, giving the normal form only when it differs.
pub fn classify(path: &str) -> NormalizedPath {
    match normalize_path(path) {
        Cow::Owned(normal) if normal != path => NormalizedPath::Changed(normal),
        _ => NormalizedPath::Unchanged,
    }
}

/// The normalized form of `path` (no query); borrowed when already normal.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') && !has_dot_segment(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    Cow::Owned(remove_dot_segments(&decoded))
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

/// Decodes `%XX` only where XX is an unreserved character (ALPHA, DIGIT,
/// `-._~`); other escapes (like `%2F`) keep their meaning, upper-cased.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(value) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
                    out.push(value);
                } else {
                    out.push(b'%');
                    out.extend(bytes[i + 1..i + 3].to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII was inserted in place of ASCII escapes, so UTF-8 stays valid.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// RFC 3986 section 5.2.4 on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash = path.ends_with("/.") || path.ends_with("/..") || path.ends_with('/');
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || (trailing_slash && !out.ends_with('/')) {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn paths_normalize_like_envoy() {
        let cases = [
            ("/get", "/get"),
            ("/", "/"),
            ("/get/../admin", "/admin"),
            ("/./get", "/get"),
            ("/a/b/../../c", "/c"),
            ("/../../x", "/x"),
            ("/a/./", "/a/"),
            ("/a/..", "/"),
            ("/%61dmin", "/admin"),
            ("/a%2fb", "/a%2Fb"),
            ("/%2e%2e/admin", "/admin"),
            ("/trailing%", "/trailing%"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input), want, "{input}");
        }
    }
}
