//! The guard between the workload's bytes and hyper.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::*;

fn limits() -> Limits {
    Limits {
        max_request_headers_bytes: 256,
        max_request_headers: 4,
        ..Limits::default()
    }
}

async fn through(wire: &[u8]) -> (Vec<u8>, Option<Stop>) {
    let mut guard = Guard::new(wire, &limits());
    assert_eq!(guard.sniff().await.unwrap(), SniffedProtocol::Http1);
    let out = read_all(&mut guard).await.unwrap();
    (out, guard.into_parts().1)
}

#[tokio::test]
async fn valid_pipelined_requests_pass_unchanged() {
    let wire = b"POST /a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
    let (out, stop) = through(wire).await;
    assert_eq!(out, wire);
    assert_eq!(stop, None);
}

#[tokio::test]
async fn a_bad_head_stops_the_stream_before_it() {
    let first = b"GET /ok HTTP/1.1\r\n\r\n".as_slice();
    let wire = [first, b"GET / HTTP/1.1\r\nbad header: x\r\n\r\n"].concat();
    let (out, stop) = through(&wire).await;
    assert_eq!(out, first, "hyper never sees the refused head");
    let Some(Stop::Refused { error, summary }) = stop else {
        panic!("{stop:?}")
    };
    assert!(matches!(error, HeadError::Malformed(_)), "{error}");
    assert_eq!(summary.target.as_deref(), Some("/"));
}

#[tokio::test]
async fn a_head_after_a_chunked_body_is_judged_too() {
    let first =
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n".as_slice();
    let smuggled =
        b"GET /admin HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n";
    let (out, stop) = through(&[first, smuggled].concat()).await;
    assert_eq!(out, first);
    assert!(
        matches!(
            stop,
            Some(Stop::Refused {
                error: HeadError::Malformed(_),
                ..
            })
        ),
        "{stop:?}"
    );
}

#[tokio::test]
async fn oversized_and_overcounted_heads_are_refused() {
    let big = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(300));
    let (out, stop) = through(big.as_bytes()).await;
    assert!(out.is_empty());
    assert!(
        matches!(
            stop,
            Some(Stop::Refused {
                error: HeadError::TooLarge { .. },
                ..
            })
        ),
        "{stop:?}"
    );
    let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n";
    let (_, stop) = through(many).await;
    assert!(
        matches!(
            stop,
            Some(Stop::Refused {
                error: HeadError::TooMany { .. },
                ..
            })
        ),
        "{stop:?}"
    );
}

#[tokio::test]
async fn broken_chunked_coding_is_an_error_for_hyper() {
    let wire = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
    let mut guard = Guard::new(wire.as_slice(), &limits());
    guard.sniff().await.unwrap();
    let err = read_all(&mut guard).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn the_http2_preface_switches_to_passthrough() {
    let wire = [H2_PREFACE, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00anything"].concat();
    let mut guard = Guard::new(wire.as_slice(), &limits());
    assert_eq!(guard.sniff().await.unwrap(), SniffedProtocol::Http2);
    assert_eq!(read_all(&mut guard).await.unwrap(), wire);
}

#[tokio::test(start_paused = true)]
async fn a_slow_head_times_out_and_an_idle_connection_closes() {
    let (mut client, server) = tokio::io::duplex(1024);
    let limits = Limits {
        request_headers_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let mut guard = Guard::new(server, &limits);
    client
        .write_all(b"GET /slow HTTP/1.1\r\nx: ")
        .await
        .unwrap();
    guard.sniff().await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(read_all(&mut guard).await.unwrap().is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert!(
        matches!(guard.stop(), Some(Stop::HeaderTimeout { summary }) if summary.target.as_deref() == Some("/slow")),
        "{:?}",
        guard.stop()
    );

    let (_client, server) = tokio::io::duplex(1024);
    let mut guard = Guard::new(server, &limits);
    let started = tokio::time::Instant::now();
    assert!(guard.sniff().await.is_err());
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert_eq!(guard.stop(), Some(&Stop::Idle));
}

#[tokio::test]
async fn a_head_sent_byte_by_byte_passes_once_whole() {
    let (mut client, server) = tokio::io::duplex(64);
    let wire = b"GET /trickle HTTP/1.1\r\nhost: a\r\nx-y: z\r\n\r\n";
    let writer = tokio::spawn(async move {
        for b in wire {
            client.write_all(std::slice::from_ref(b)).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut guard = Guard::new(server, &limits());
    guard.sniff().await.unwrap();
    writer.await.unwrap();
    let out = read_all(&mut guard).await.unwrap();
    assert_eq!(out, wire);
    assert_eq!(guard.stop(), None);
}
