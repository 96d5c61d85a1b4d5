//! An HTTP/1.1 request as the waypoint reads it: the head judged whole
//! (request line, request target, fields, framing), the body followed to
//! its end, and the path normalized in every MeshConfig mode.
#![no_main]

use egret::config::mesh::PathNormalization;
use egret::proxy::http::h1::framing::Body;
use egret::proxy::http::h1::head::{self, Parsed, Summary};
use egret::proxy::http::h1::limits::HeadLimits;
use egret::proxy::http::normalize::{normalize, PathError};
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 8192,
    max_headers: 32,
};

fuzz_target!(|data: &[u8]| {
    let _ = Summary::of(data);
    if let Ok(Parsed::Complete(h)) = head::parse(data, &LIMITS) {
        assert!(h.len <= data.len() && h.len <= LIMITS.max_bytes);
        let rest = &data[h.len..];
        let mut body = Body::start(h.body);
        if let Ok(used) = body.advance(rest, LIMITS.max_bytes) {
            assert!(used <= rest.len());
            assert!(body.is_done() || used == rest.len());
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Paths reach the normalizer without their query, starting with `/`.
    let path = format!("/{}", text.split('?').next().unwrap_or_default());
    for mode in [
        PathNormalization::None,
        PathNormalization::Base,
        PathNormalization::MergeSlashes,
        PathNormalization::DecodeAndMergeSlashes,
    ] {
        match normalize(&path, mode) {
            Ok(normal) => {
                assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
                assert!(!normal.contains("%00"), "{path:?} -> {normal:?}");
                if mode == PathNormalization::Base {
                    let again = normalize(&normal, mode).expect("a normal path stays valid");
                    assert_eq!(again, normal, "normalizing twice changed {path:?}");
                }
            }
            Err(PathError::Nul(_)) => assert!(path.contains("%00") || path.contains('\0')),
        }
    }
});
