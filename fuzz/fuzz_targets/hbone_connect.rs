//! An HBONE CONNECT request as the waypoint's HBONE server reads it: method,
//! `:authority` target, `forwarded` and `baggage` headers, NUL-separated.
#![no_main]

use egret::hbone::request::{baggage_workload_name, forwarded_for, target};
use http::{HeaderName, HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let method = parts.next().unwrap_or("CONNECT");
    let authority = parts.next().unwrap_or_default();
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut builder = Request::builder().method(method).uri(authority);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            builder = builder.header(n, v);
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    if let Ok(addr) = target(&request) {
        assert!(request.method() == Method::CONNECT, "{addr}");
    }
    let _ = forwarded_for(request.headers());
    let _ = baggage_workload_name(request.headers());
});
