//! A manifest file as `egret apply` or the folder watcher reads it: YAML
//! documents of any kind, validated, then every valid object compiled into
//! a snapshot (policies, routes, services, TLS settings).
#![no_main]

use std::collections::HashMap;

use egret::config::compile::compile;
use egret::config::parse::parse_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(documents) = parse_text(text, "fuzz.yaml", "default") else {
        return;
    };
    let objects: Vec<_> = documents
        .iter()
        .flat_map(|d| d.objects.iter())
        .filter_map(|o| o.as_ref().ok())
        .collect();
    let snapshot = compile(objects, &HashMap::new());
    let _ = snapshot.dns_lookup("httpbin.org");
});
