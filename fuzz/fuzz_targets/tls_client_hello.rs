//! The first bytes of a TLS passthrough connection, read for the SNI.
#![no_main]

use egret::proxy::passthrough::client_hello::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(hello)) = parse(data) {
        if let Some(name) = hello.server_name {
            assert!(!name.is_empty() && name.len() <= 253, "{name:?}");
            assert_eq!(name.as_str(), name.to_ascii_lowercase());
        }
    }
    // Any prefix of a whole hello is either incomplete or the same verdict.
    if data.len() > 1 {
        let _ = parse(&data[..data.len() / 2]);
    }
});
