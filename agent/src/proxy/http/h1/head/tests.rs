//! What a request head may be: Envoy's HTTP/1 codec rules, cases taken from
//! its codec tests and RFC 9112.

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 1024,
    max_headers: 4,
};

fn parse_str(text: &str) -> Result<Parsed, HeadError> {
    parse(text.as_bytes(), &LIMITS)
}

fn body_of(text: &str) -> BodyLength {
    match parse_str(text) {
        Ok(Parsed::Complete(h)) => {
            assert_eq!(h.len, text.find("\r\n\r\n").unwrap() + 4);
            h.body
        }
        other => panic!("{text:?}: {other:?}"),
    }
}

#[test]
fn framing_follows_content_length_and_chunked() {
    assert_eq!(
        body_of("GET / HTTP/1.1\r\nhost: a\r\n\r\n"),
        BodyLength::Empty
    );
    assert_eq!(
        body_of("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\nbody"),
        BodyLength::Fixed(12)
    );
    assert_eq!(
        body_of("POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n"),
        BodyLength::Fixed(3)
    );
    assert_eq!(
        body_of("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
        BodyLength::Chunked
    );
}

#[test]
fn partial_heads_wait_for_more() {
    assert_eq!(
        parse_str("GET / HTTP/1.1\r\nhost: a\r\n"),
        Ok(Parsed::Partial)
    );
    assert_eq!(parse_str("GE"), Ok(Parsed::Partial));
}

#[test]
fn malformed_heads_are_refused() {
    for text in [
        // Header names: space, empty, non-token characters.
        "GET / HTTP/1.1\r\nbad header: x\r\n\r\n",
        "GET / HTTP/1.1\r\nhost : x\r\n\r\n",
        "GET / HTTP/1.1\r\n: x\r\n\r\n",
        "GET / HTTP/1.1\r\nx(y): z\r\n\r\n",
        // NUL and other controls.
        "GET / HTTP/1.1\r\nx: a\0b\r\n\r\n",
        "GET /a\0b HTTP/1.1\r\n\r\n",
        "G\0T / HTTP/1.1\r\n\r\n",
        // Obsolete line folding.
        "GET / HTTP/1.1\r\nx: a\r\n b\r\n\r\n",
        // Request line.
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / FOO\r\n\r\n",
        "GET\r\n\r\n",
        "GET /a#frag HTTP/1.1\r\n\r\n",
        "GET nopath HTTP/1.1\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
        "CONNECT /x HTTP/1.1\r\n\r\n",
        // Framing Envoy refuses.
        "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: +3\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: 3, 3\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: 99999999999999999999\r\n\r\n",
    ] {
        let got = parse_str(text);
        assert!(
            matches!(got, Err(HeadError::Malformed(_))),
            "{text:?}: {got:?}"
        );
    }
}

#[test]
fn only_chunked_transfer_coding_is_supported() {
    for te in ["gzip", "gzip, chunked", "chunked, chunked", "identity"] {
        let text = format!("POST / HTTP/1.1\r\ntransfer-encoding: {te}\r\n\r\n");
        assert_eq!(
            parse_str(&text),
            Err(HeadError::UnsupportedTransferEncoding(te.into()))
        );
    }
    let two_fields =
        "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n";
    assert!(matches!(
        parse_str(two_fields),
        Err(HeadError::UnsupportedTransferEncoding(_))
    ));
}

#[test]
fn limits_give_too_large_and_too_many() {
    let big = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(1100));
    assert_eq!(parse_str(&big), Err(HeadError::TooLarge { limit: 1024 }));
    // Still incomplete but already over the limit.
    assert_eq!(
        parse_str(&big[..1050]),
        Err(HeadError::TooLarge { limit: 1024 })
    );
    let many = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n";
    assert_eq!(parse_str(many), Err(HeadError::TooMany { limit: 4 }));
    let four = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
    assert!(matches!(parse_str(four), Ok(Parsed::Complete(_))));
}

#[test]
fn other_targets_hyper_accepts_pass() {
    for target in ["*", "http://example.com/a?b", "/a/%2f?x=%00", "/a;b=c"] {
        let text = format!("OPTIONS {target} HTTP/1.1\r\n\r\n");
        assert!(
            matches!(parse_str(&text), Ok(Parsed::Complete(_))),
            "{target}"
        );
    }
    let connect = "CONNECT example.com:443 HTTP/1.1\r\n\r\n";
    assert!(matches!(parse_str(connect), Ok(Parsed::Complete(_))));
}

#[test]
fn summary_reads_what_it_can() {
    let s = Summary::of(b"get /x HTTP/1.1\r\nHost: a.b\r\nbad header: 1\r\nUser-Agent: c\r\n");
    assert_eq!(s.method.as_deref(), Some("get"));
    assert_eq!(s.target.as_deref(), Some("/x"));
    assert_eq!(s.host.as_deref(), Some("a.b"));
    assert_eq!(s.user_agent.as_deref(), Some("c"));
    assert_eq!(Summary::of(b"\0\0"), Summary::default());
}
