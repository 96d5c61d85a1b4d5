//! Request path normalization, as Istio configures Envoy for each MeshConfig
//! `pathNormalization.normalization` (istio/istio `pilot/pkg/networking/core`
//! listener builder): `NONE` leaves the path alone; `BASE` is Envoy's
//! `normalize_path` (RFC 3986 with Chromium's URL path canonicalizer:
//! unreserved escapes decoded, `\` read as `/`, dot segments removed, other
//! escapes kept exactly as sent); `MERGE_SLASHES` adds `merge_slashes`;
//! `DECODE_AND_MERGE_SLASHES` also decodes `%2F`/`%5C` first
//! (`path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`).
//!
//! The result is what policy sees and what goes upstream, so `/get/../admin`
//! cannot pass a DENY on `/admin` and then be normalized by the upstream.
//! A path the canonicalizer refuses (`%00`, a raw NUL) is rejected with 400,
//! in every mode: Istio's reference says `%00` is always rejected.

use std::borrow::Cow;

use crate::config::mesh::PathNormalization;

/// Why a path was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A NUL, raw or as `%00`.
    #[error("path {0:?} holds a NUL character")]
    Nul(String),
}

/// The normal form of `path` (no query) under `mode`; borrowed when unchanged.
pub fn normalize(path: &str, mode: PathNormalization) -> Result<Cow<'_, str>, PathError> {
    if has_nul(path) {
        return Err(PathError::Nul(path.to_string()));
    }
    let merge = match mode {
        PathNormalization::None => return Ok(Cow::Borrowed(path)),
        PathNormalization::Base => false,
        PathNormalization::MergeSlashes | PathNormalization::DecodeAndMergeSlashes => true,
    };
    let decoded = if mode == PathNormalization::DecodeAndMergeSlashes {
        unescape_slashes(path)
    } else {
        Cow::Borrowed(path)
    };
    let canonical = canonicalize(&decoded);
    let merged = if merge {
        merge_slashes(&canonical)
    } else {
        canonical
    };
    Ok(if merged == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(merged)
    })
}

/// `%00` in any case, or a raw NUL.
fn has_nul(path: &str) -> bool {
    path.contains('\0') || path.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Envoy's `unescapeSlashes`: `%2F`, `%2f`, `%5C`, `%5c` decoded in one pass.
fn unescape_slashes(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes.get(i..i + 3) {
            Some(b"%2F" | b"%2f") => Some('/'),
            Some(b"%5C" | b"%5c") => Some('\\'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                i += 3;
            }
            None => {
                let len = utf8_len(bytes[i]);
                out.push_str(&path[i..i + len]);
                i += len;
            }
        }
    }
    Cow::Owned(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// How Chromium's path canonicalizer treats a byte, raw or decoded from `%XX`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Copied as is; kept escaped when sent escaped.
    Pass,
    /// Percent-encoded in the output (upper-case hex); kept as sent when escaped.
    Escape,
    /// Unreserved: decoded when sent escaped.
    Unescape,
    /// Refused (NUL).
    Invalid,
}

/// Chromium's `kPathCharLookup` as Envoy ships it.
fn class(b: u8) -> Class {
    match b {
        0 => Class::Invalid,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'~' => Class::Unescape,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'/' | b':' | b';'
        | b'=' | b'@' | b'[' | b']' => Class::Pass,
        // Controls, space, `"#%<>?\^`{|}`, DEL and every high byte. `.` is
        // handled as a dot before it gets here; `%` and `\` too.
        _ => Class::Escape,
    }
}

/// `.` or `%2e`/`%2E` at `i`: the length it takes, or 0.
fn dot_len(s: &[u8], i: usize) -> usize {
    match s.get(i..) {
        Some([b'.', ..]) => 1,
        Some([b'%', b'2', b'e' | b'E', ..]) => 3,
        _ => 0,
    }
}

fn is_slash(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The byte `%XX` at `i` stands for, when XX are two hex digits.
fn decode_at(s: &[u8], i: usize) -> Option<u8> {
    match s.get(i..i + 3) {
        Some([b'%', h, l]) => Some(hex(*h)? << 4 | hex(*l)?),
        _ => None,
    }
}

/// What a dot segment does (Chromium's `ClassifyAfterDot`).
enum Dot {
    /// Part of a name.
    Name,
    /// `.`: skip `consumed` more bytes.
    Current(usize),
    /// `..`: drop the last segment, skip `consumed` more bytes.
    Up(usize),
}

fn classify_after_dot(s: &[u8], after: usize) -> Dot {
    if after == s.len() {
        return Dot::Current(0);
    }
    if is_slash(s[after]) {
        return Dot::Current(1);
    }
    let second = dot_len(s, after);
    if second > 0 {
        let next = after + second;
        if next == s.len() {
            return Dot::Up(second);
        }
        if is_slash(s[next]) {
            return Dot::Up(second + 1);
        }
    }
    Dot::Name
}

/// Envoy's `normalize_path` on an origin-form path (Chromium's `DoPartialPath`).
/// NULs are refused before this runs.
fn canonicalize(path: &str) -> String {
    let s = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len() + 8);
    if !s.first().is_some_and(|b| is_slash(*b)) {
        out.push(b'/');
    }
    // Index in `out` of a `%` that did not start a valid escape.
    let mut bad_percent: Option<usize> = None;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let dot = dot_len(s, i);
        if dot > 0 {
            if out.last() == Some(&b'/') {
                match classify_after_dot(s, i + dot) {
                    Dot::Name => out.push(b'.'),
                    Dot::Current(consumed) => i += consumed,
                    Dot::Up(consumed) => {
                        back_up_to_previous_slash(&mut out);
                        i += consumed;
                    }
                }
            } else {
                out.push(b'.');
            }
            i += dot;
            continue;
        }
        match b {
            b'\\' => out.push(b'/'),
            b'%' => match decode_at(s, i) {
                Some(value) if class(value) == Class::Unescape => {
                    out.push(value);
                    i += 2;
                    if let Some(p) = bad_percent.filter(|p| *p + 3 >= out.len()) {
                        fix_nested_escape(s, i + 1, p, &mut out);
                    }
                }
                // Kept exactly as sent: the server may care about hex case.
                Some(_) => {
                    out.extend_from_slice(&s[i..i + 3]);
                    i += 2;
                }
                None => {
                    bad_percent = Some(out.len());
                    out.push(b'%');
                }
            },
            _ => match class(b) {
                Class::Escape | Class::Invalid => escape(b, &mut out),
                Class::Pass | Class::Unescape => out.push(b),
            },
        }
        i += 1;
    }
    // Only ASCII went in where the input had ASCII; multi-byte characters
    // were percent-encoded byte by byte.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn escape(b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
}

/// Drops the last segment of `out`, which ends with `/`; never above the root.
fn back_up_to_previous_slash(out: &mut Vec<u8>) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    if last == 0 {
        return;
    }
    let mut i = last - 1;
    while i > 0 && out[i] != b'/' {
        i -= 1;
    }
    out.truncate(i + 1);
}

/// Chromium's `CheckForNestedEscapes`: after decoding right behind a stray
/// `%` (`%%30%30`), the output must not read as a new escape (`%00`); the `%`
/// becomes `%25`. `next` is the next unread input byte.
fn fix_nested_escape(s: &[u8], next: usize, percent: usize, out: &mut Vec<u8>) {
    let length = out.len();
    let last = out[length - 1];
    let appended = percent + 2 == length;
    if appended {
        match s.get(next) {
            Some(&b) if b < 0x80 => out.push(b),
            _ => return,
        }
    }
    if decode_at(out, percent).is_some() {
        if !appended {
            out.push(out[percent + 1]);
        }
        out[percent + 1] = b'2';
        out[percent + 2] = b'5';
        out.push(last);
    } else if appended {
        out.truncate(length);
    }
}

/// Envoy's `merge_slashes`: runs of `/` become one, keeping a leading and a
/// trailing slash.
fn merge_slashes(path: &str) -> String {
    if !path.contains("//") {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    let mut first = true;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if !first {
            out.push('/');
        }
        out.push_str(segment);
        first = false;
    }
    if path.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests;
