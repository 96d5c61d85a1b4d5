//! ClientHello parser tests: real hellos from rustls, re-framed and cut
//! every way, hand-made malformed ones, and random bytes.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rustls::pki_types::ServerName;

use super::*;

/// The first flight of a rustls client for `name` (a DNS name or an IP).
fn rustls_hello(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// The handshake bytes of a single-record hello.
fn handshake_of(hello: &[u8]) -> Vec<u8> {
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    hello[5..5 + len].to_vec()
}

/// `handshake` split into records of at most `size` bytes.
fn reframe(handshake: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in handshake.chunks(size) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A minimal ClientHello whose extensions block is `extensions`.
fn hello_with_extensions(extensions: &[u8]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // session_id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    reframe(&handshake, MAX_RECORD_LEN)
}

/// A `server_name` extension naming `names` (type host_name).
fn sni_extension(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(0);
        list.extend_from_slice(&(name.len() as u16).to_be_bytes());
        list.extend_from_slice(name);
    }
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
    ext.extend_from_slice(&data);
    ext
}

fn sni(buf: &[u8]) -> Option<String> {
    parse(buf)
        .unwrap()
        .unwrap()
        .server_name
        .map(|h| h.to_string())
}

#[test]
fn finds_the_server_name_of_a_real_client_hello() {
    let hello = rustls_hello("Denied.Example.test");
    assert_eq!(sni(&hello).as_deref(), Some("denied.example.test"));
    // Application data after the hello is left alone.
    let mut more = hello.clone();
    more.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
    assert_eq!(sni(&more).as_deref(), Some("denied.example.test"));
}

#[test]
fn a_hello_without_server_name_parses_to_none() {
    // rustls sends no SNI to an IP address.
    assert_eq!(sni(&rustls_hello("192.0.2.10")), None);
    // Nor does a hello without any extensions.
    let mut bare = hello_with_extensions(&[]);
    // Drop the (empty) extensions block entirely: lengths shrink by 2.
    bare.truncate(bare.len() - 2);
    bare[4] -= 2;
    bare[8] -= 2;
    assert_eq!(sni(&bare), None);
}

#[test]
fn every_prefix_asks_for_more() {
    let hello = rustls_hello("httpbin.org");
    for cut in 0..hello.len() {
        assert_eq!(parse(&hello[..cut]), Ok(None), "prefix of {cut} bytes");
    }
}

#[test]
fn a_hello_fragmented_across_records_is_reassembled() {
    let handshake = handshake_of(&rustls_hello("a.example.test"));
    for size in [1, 2, 3, 4, 5, 17, 100, handshake.len() - 1] {
        let framed = reframe(&handshake, size);
        assert_eq!(sni(&framed).as_deref(), Some("a.example.test"), "{size}");
        for cut in 0..framed.len() {
            assert_eq!(parse(&framed[..cut]), Ok(None), "{size}/{cut}");
        }
    }
}

#[test]
fn anything_but_a_tls_handshake_is_refused_at_the_first_byte() {
    assert_eq!(parse(b"G"), Err(HelloError::NotHandshake(b'G')));
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\n\r\n"),
        Err(HelloError::NotHandshake(b'G'))
    );
    // SSLv2-compatible hello.
    assert_eq!(
        parse(&[0x80, 0x2e, 1, 3, 1]),
        Err(HelloError::NotHandshake(0x80))
    );
    // Application data or an alert first.
    assert_eq!(parse(&[23, 3, 3]), Err(HelloError::NotHandshake(23)));
    assert_eq!(parse(&[22, 2]), Err(HelloError::BadVersion(0x0201)));
    assert_eq!(
        parse(&[22, 4, 0, 0, 1]),
        Err(HelloError::BadVersion(0x0400))
    );
}

#[test]
fn bad_records_and_handshakes_are_refused() {
    assert_eq!(
        parse(&[22, 3, 1, 0, 0]),
        Err(HelloError::BadRecordLength(0))
    );
    assert_eq!(
        parse(&[22, 3, 1, 0x40, 0x01]),
        Err(HelloError::BadRecordLength(0x4001))
    );
    // A ServerHello first.
    assert_eq!(
        parse(&[22, 3, 3, 0, 1, 2]),
        Err(HelloError::NotClientHello(2))
    );
    // A ClientHello announcing 1 MiB.
    assert_eq!(
        parse(&[22, 3, 1, 0, 4, 1, 0x10, 0, 0]),
        Err(HelloError::TooLarge(4 + 0x10_0000))
    );
    // A non-handshake record in the middle of the hello.
    let handshake = handshake_of(&rustls_hello("x.test"));
    let mut framed = reframe(&handshake[..10], 10);
    framed.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
    assert_eq!(parse(&framed), Err(HelloError::NotHandshake(23)));
}

#[test]
fn malformed_lengths_inside_the_hello_are_refused() {
    // The extension claims more bytes than the block holds.
    let mut ext = sni_extension(&[b"a.test"]);
    ext[3] += 1;
    assert!(matches!(
        parse(&hello_with_extensions(&ext)),
        Err(HelloError::Malformed(_))
    ));
    // Two server_name extensions.
    let mut twice = sni_extension(&[b"a.test"]);
    twice.extend(sni_extension(&[b"b.test"]));
    assert_eq!(
        parse(&hello_with_extensions(&twice)),
        Err(HelloError::Malformed("duplicate server_name extension"))
    );
    // Two host names in one list.
    assert_eq!(
        parse(&hello_with_extensions(&sni_extension(&[
            b"a.test", b"b.test"
        ]))),
        Err(HelloError::Malformed("two host names"))
    );
    // An empty server_name extension (what servers send back) from a client.
    assert!(matches!(
        parse(&hello_with_extensions(&[0, 0, 0, 0])),
        Err(HelloError::Malformed(_))
    ));
}

#[test]
fn server_names_must_be_host_names() {
    let name = |n: &[u8]| parse(&hello_with_extensions(&sni_extension(&[n])));
    assert_eq!(
        name(b"Svc_1.Example-Test.io").unwrap().unwrap().server_name,
        Some("svc_1.example-test.io".into())
    );
    for bad in [
        &b""[..],
        b"a.test.",
        b".a.test",
        b"a..test",
        b"a test",
        b"a.test\0evil.test",
        b"a/b",
        "bücher.test".as_bytes(),
        &[b'a'; 64],
        &[b'a'; 300],
    ] {
        assert!(
            matches!(name(bad), Err(HelloError::BadServerName(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5e9e7);
    let hello = rustls_hello("fuzz.example.test");
    for _ in 0..20_000 {
        let mut buf = if rng.gen_bool(0.5) {
            hello.clone()
        } else {
            let len = rng.gen_range(0..600);
            let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // Often start like a handshake so the parser gets deep.
            if rng.gen_bool(0.7) && b.len() >= 6 {
                b[..6].copy_from_slice(&[22, 3, 1, 0x02, 0x00, 1]);
            }
            b
        };
        for _ in 0..rng.gen_range(0..8) {
            if buf.is_empty() {
                break;
            }
            let i = rng.gen_range(0..buf.len());
            buf[i] = rng.gen();
        }
        let cut = rng.gen_range(0..=buf.len());
        let _ = parse(&buf[..cut]);
    }
}
