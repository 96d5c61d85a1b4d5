//! Expectations from Istio's normalization integration test
//! (tests/integration/security/normalization_test.go) and Envoy's
//! path_utility tests, per MeshConfig mode.

use super::{normalize, PathError};
use crate::config::mesh::PathNormalization::{self, *};

fn check(mode: PathNormalization, table: &[(&str, &str)]) {
    for (input, want) in table {
        assert_eq!(
            normalize(input, mode).as_deref(),
            Ok(*want),
            "{mode:?}: {input}"
        );
    }
}

/// Cases every mode of Istio's table runs.
const INPUTS: [&str; 15] = [
    "/",
    "/app/",
    "/app/../admin",
    "/app",
    "/app//",
    "/app/%2f",
    "/app%2f/",
    "/xyz%30..//abc",
    "/app/%2E./admin",
    r"/app\admin",
    r"/app/\/\/\admin",
    r"/%2Fapp%5cadmin%5Cabc",
    r"/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc",
    "/app//../admin",
    "/app//../../admin",
];

fn table(outputs: [&'static str; 15]) -> Vec<(&'static str, &'static str)> {
    INPUTS.into_iter().zip(outputs).collect()
}

#[test]
fn none_leaves_the_path_as_sent() {
    check(None, &table(INPUTS));
}

#[test]
fn base_is_envoys_normalize_path() {
    check(
        Base,
        &table([
            "/",
            "/app/",
            "/admin",
            "/app",
            "/app//",
            "/app/%2f",
            "/app%2f/",
            "/xyz0..//abc",
            "/admin",
            "/app/admin",
            "/app//////admin",
            r"/%2Fapp%5cadmin%5Cabc",
            r"/%5Capp%2f%5c%2F..%2fadmin%5c/abc",
            "/app/admin",
            "/admin",
        ]),
    );
}

#[test]
fn merge_slashes_merges_after_base() {
    check(
        MergeSlashes,
        &table([
            "/",
            "/app/",
            "/admin",
            "/app",
            "/app/",
            "/app/%2f",
            "/app%2f/",
            "/xyz0../abc",
            "/admin",
            "/app/admin",
            "/app/admin",
            r"/%2Fapp%5cadmin%5Cabc",
            r"/%5Capp%2f%5c%2F..%2fadmin%5c/abc",
            "/app/admin",
            "/admin",
        ]),
    );
}

#[test]
fn decode_and_merge_slashes_decodes_escaped_slashes_first() {
    check(
        DecodeAndMergeSlashes,
        &table([
            "/",
            "/app/",
            "/admin",
            "/app",
            "/app/",
            "/app/",
            "/app/",
            "/xyz0../abc",
            "/admin",
            "/app/admin",
            "/app/admin",
            "/app/admin/abc",
            "/app/admin/abc",
            "/app/admin",
            "/admin",
        ]),
    );
    check(
        DecodeAndMergeSlashes,
        &[
            ("/%c0%2e%c0%2e/admin", "/%c0.%c0./admin"),
            ("/%c0%2fadmin", "/%c0/admin"),
        ],
    );
}

#[test]
fn look_alikes_are_not_normalized() {
    // Istio's "NotNormalized" group: double encodings, overlong UTF-8,
    // `;` parameters and case stay as sent.
    for path in [
        "/0x2e0x2e/admin",
        "/%25c0%25ae%25c1%259cadmin",
        "/%252e%252e/admin",
        "/%c1%9cadmin",
        "/%c0%ae%c0%ae/admin",
        "/%c0%afadmin",
        "/.../admin",
        "/..../admin",
        "/..;/admin",
        "/;/admin",
        "/admin;a=b/xyz",
        "/admin,a=b/xyz",
        "/Admin",
        "/ADMIN",
    ] {
        for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
            assert_eq!(normalize(path, mode).as_deref(), Ok(path), "{mode:?}");
        }
    }
}

#[test]
fn single_escapes_decode_per_istios_table() {
    // `/admin%XX` for every XX but 00: unreserved characters decode, `%2f`
    // and `%5c` decode only under DECODE_AND_MERGE_SLASHES (and `\` then
    // reads as `/`), everything else is kept exactly as sent.
    for byte in 1u8..=0xff {
        for hex in [format!("{byte:02x}"), format!("{byte:02X}")] {
            let input = format!("/admin%{hex}");
            let unreserved = byte.is_ascii_alphanumeric() || b"-._~".contains(&byte);
            let base = if unreserved {
                format!("/admin{}", byte as char)
            } else {
                input.clone()
            };
            assert_eq!(normalize(&input, Base).as_deref(), Ok(base.as_str()));
            let decoded = match byte {
                b'/' | b'\\' => "/admin/".to_string(),
                _ => base,
            };
            assert_eq!(
                normalize(&input, DecodeAndMergeSlashes).as_deref(),
                Ok(decoded.as_str()),
                "{input}"
            );
        }
    }
}

#[test]
fn nul_is_refused_in_every_mode() {
    for mode in [None, Base, MergeSlashes, DecodeAndMergeSlashes] {
        for path in [
            "/admin%00",
            "/xyz/.%00../abc",
            "/xyz/%00.%00./abc",
            "/xyz/AAAAA%%0000/abc",
            "/a\0b",
        ] {
            assert!(
                matches!(normalize(path, mode), Err(PathError::Nul(_))),
                "{mode:?}: {path:?}"
            );
        }
    }
}

#[test]
fn envoys_canonical_path_cases() {
    check(
        Base,
        &[
            ("/xyz", "/xyz"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/./c", "/a/b/c"),
            ("/a/b/../../../../c", "/c"),
            (r"/a/..\c", "/c"),
            ("/%c0%af", "/%c0%af"),
            ("/%5c%25", "/%5c%25"),
            ("/a/b/%2E%2E/c", "/a/c"),
            ("/a/b/%2E./c", "/a/c"),
            ("/a/b/%2E/c", "/a/b/c"),
            ("/../a/b", "/a/b"),
            ("/./a/b", "/a/b"),
            ("/A/B/C", "/A/B/C"),
            ("/a/%2F%2f/c", "/a/%2F%2f/c"),
            ("/a/./", "/a/"),
            ("/a/..", "/"),
            ("/%61dmin", "/admin"),
            ("/trailing%", "/trailing%"),
            // Characters a URL may not hold raw are percent-encoded.
            ("/a b\"<>`{|}^", "/a%20b%22%3C%3E%60%7B%7C%7D%5E"),
            ("/é", "/%C3%A9"),
            // A stray `%` cannot combine with decoded digits into a new escape.
            ("/%%30%30", "/%2500"),
            ("/%%3041", "/%25041"),
        ],
    );
}

#[test]
fn merge_slashes_keeps_leading_and_trailing_slash() {
    // Envoy's mergeSlashes table.
    for (input, want) in [
        ("//a/b/c", "/a/b/c"),
        ("/a//b/c/", "/a/b/c/"),
        ("/a/b/c//", "/a/b/c/"),
        ("/a////b/c", "/a/b/c"),
        ("/a", "/a"),
    ] {
        assert_eq!(super::merge_slashes(input), want, "{input}");
    }
}

#[test]
fn unchanged_paths_are_borrowed() {
    assert!(matches!(
        normalize("/get", Base),
        Ok(std::borrow::Cow::Borrowed("/get"))
    ));
}
