//! The DNS proxy and resolver end to end on loopback: a fake upstream
//! nameserver on 127.0.0.1 answers a small test zone, the proxy serves real
//! UDP and TCP sockets, and the snapshot comes through a watch channel as the
//! agent feeds it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egret::config::snapshot::Snapshot;
use egret::dns::{parse_resolv_conf, DnsProxy, Resolver, Transport};
use egret::testing::fixtures::{self, ServiceFixture};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

const HTTPBIN_V4: Ipv4Addr = Ipv4Addr::new(240, 240, 0, 2);
const HTTPBIN_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const EXAMPLE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

// ---------------------------------------------------------------- the zone

/// A nameserver on 127.0.0.1 (UDP and TCP, same port) answering a test zone
/// and remembering what it was asked.
struct Upstream {
    addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    asked: Arc<Mutex<Vec<String>>>,
    /// The last reply it sent, as bytes.
    last_reply: Arc<Mutex<Vec<u8>>>,
}

impl Upstream {
    async fn start() -> Self {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let upstream = Upstream {
            addr: udp.local_addr().unwrap(),
            udp_queries: Arc::default(),
            tcp_queries: Arc::default(),
            asked: Arc::default(),
            last_reply: Arc::default(),
        };
        let (count, asked, last) = (
            upstream.udp_queries.clone(),
            upstream.asked.clone(),
            upstream.last_reply.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = zone_reply(&buf[..n], &asked) {
                    *last.lock().unwrap() = reply.clone();
                    let _ = udp.send_to(&reply, from).await;
                }
            }
        });
        let (count, asked, last) = (
            upstream.tcp_queries.clone(),
            upstream.asked.clone(),
            upstream.last_reply.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let (count, asked, last) = (count.clone(), asked.clone(), last.clone());
                tokio::spawn(async move {
                    while let Some(query) = read_frame(&mut stream).await {
                        count.fetch_add(1, Ordering::SeqCst);
                        let Some(reply) = zone_reply(&query, &asked) else {
                            return;
                        };
                        *last.lock().unwrap() = reply.clone();
                        write_frame(&mut stream, &reply).await;
                    }
                });
            }
        });
        upstream
    }

    fn queries(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst) + self.tcp_queries.load(Ordering::SeqCst)
    }

    fn times_asked(&self, name: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }
}

/// The test zone's answer to `query`.
fn zone_reply(query: &[u8], asked: &Mutex<Vec<String>>) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let question = query.query()?.clone();
    let name = question.name().to_lowercase().to_ascii();
    asked.lock().unwrap().push(name.clone());
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .add_query(question.clone());
    let owner = question.name().clone();
    let record = |ttl, data| Record::from_rdata(owner.clone(), ttl, data);
    let v4 = |s: &str| RData::A(A(s.parse().unwrap()));
    let v6 = |s: &str| RData::AAAA(AAAA(s.parse().unwrap()));
    match (name.as_str(), question.query_type()) {
        ("example.test.", RecordType::A) => {
            reply.add_answer(record(300, RData::A(A(EXAMPLE_V4))));
        }
        ("example.test.", RecordType::AAAA) => {
            reply.add_answer(record(300, v6("2001:db8::10")));
        }
        ("cached.test.", RecordType::A) => {
            reply.add_answer(record(300, v4("192.0.2.20")));
        }
        ("cached.test.", RecordType::AAAA) => {
            reply.add_answer(record(300, v6("2001:db8::20")));
        }
        ("short.test.", RecordType::A) => {
            reply.add_answer(record(1, v4("192.0.2.30")));
        }
        ("short.test.", RecordType::AAAA) => {
            reply.add_answer(record(1, v6("2001:db8::30")));
        }
        ("big.test.", RecordType::TXT) => {
            // ~2 KiB whatever the client's size: the proxy must truncate.
            for i in 0..30 {
                let text = format!("{i:02}-{}", "x".repeat(60));
                reply.add_answer(record(300, RData::TXT(TXT::new(vec![text]))));
            }
        }
        ("example.test." | "cached.test." | "short.test." | "big.test.", _) => {}
        _ => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
    }
    reply.to_vec().ok()
}

// ---------------------------------------------------------------- the mesh

/// A snapshot holding `hosts` (name as written in the ServiceEntry, VIPs).
fn snapshot(hosts: &[(&str, &[&str])]) -> Arc<Snapshot> {
    let services = hosts.iter().map(|(host, vips)| {
        let service = ServiceFixture::new(&host.to_ascii_lowercase()).named(host);
        vips.iter().fold(service, |s, vip| s.vip(vip)).build()
    });
    Arc::new(fixtures::snapshot(services))
}

fn httpbin() -> Arc<Snapshot> {
    snapshot(&[
        ("httpbin.org", &["240.240.0.2", "2001:2::2"]),
        ("v4only.example", &["240.240.0.3"]),
    ])
}

/// The proxy serving real sockets on loopback, as the agent runs it.
struct Proxy {
    proxy: Arc<DnsProxy>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    udp: SocketAddr,
    tcp: SocketAddr,
}

impl Proxy {
    async fn start(snapshot: Arc<Snapshot>, upstreams: Vec<SocketAddr>) -> Self {
        let (snapshots, rx) = watch::channel(snapshot);
        let proxy = DnsProxy::new(rx, upstreams);
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let workload: Arc<str> = Arc::from("bookinfo/productpage");
        tokio::spawn(proxy.clone().serve_udp(udp, workload.clone()));
        tokio::spawn(proxy.clone().serve_tcp(tcp, workload));
        Proxy {
            proxy,
            snapshots,
            udp: udp_addr,
            tcp: tcp_addr,
        }
    }

    /// One query over UDP; `None` if no reply comes within `wait`.
    async fn udp_wait(&self, query: &[u8], wait: Duration) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(query, self.udp).await.unwrap();
        let mut buf = vec![0u8; 65_535];
        let (n, from) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        assert_eq!(from, self.udp);
        buf.truncate(n);
        Some(buf)
    }

    async fn udp(&self, query: &[u8]) -> Message {
        let reply = self
            .udp_wait(query, Duration::from_secs(10))
            .await
            .expect("the proxy replies over UDP");
        Message::from_vec(&reply).unwrap()
    }
}

// ---------------------------------------------------------------- helpers

fn ask(id: u16, name: &str, rtype: RecordType) -> Vec<u8> {
    ask_message(id, name, rtype).to_vec().unwrap()
}

fn ask_message(id: u16, name: &str, rtype: RecordType) -> Message {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message
}

fn addresses(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            Some(RData::A(a)) => Some(IpAddr::V4(a.0)),
            Some(RData::AAAA(a)) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = stream.read_u16().await.ok()?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await.ok()?;
    Some(message)
}

async fn write_frame(stream: &mut TcpStream, message: &[u8]) {
    let mut frame = (message.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(message);
    stream.write_all(&frame).await.unwrap();
}

/// A loopback UDP port with nothing behind it (queries get ICMP refused).
async fn dead_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.local_addr().unwrap()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn mesh_hosts_are_answered_locally_with_their_vips() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(httpbin(), vec![upstream.addr]).await;

    let reply = proxy.udp(&ask(0x1111, "httpbin.org.", RecordType::A)).await;
    assert_eq!(reply.id(), 0x1111);
    assert_eq!(reply.message_type(), MessageType::Response);
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert!(reply.authoritative());
    assert!(reply.recursion_desired(), "RD echoed");
    assert!(reply.recursion_available());
    assert_eq!(
        reply.queries(),
        ask_message(0, "httpbin.org.", RecordType::A).queries()
    );
    assert_eq!(addresses(&reply), vec![IpAddr::V4(HTTPBIN_V4)]);
    assert_eq!(reply.answers()[0].ttl(), 30);

    let reply = proxy
        .udp(&ask(0x2222, "httpbin.org.", RecordType::AAAA))
        .await;
    assert_eq!(reply.id(), 0x2222);
    assert_eq!(addresses(&reply), vec![IpAddr::V6(HTTPBIN_V6)]);
    assert_eq!(reply.answers()[0].ttl(), 30);

    assert_eq!(upstream.queries(), 0, "mesh hosts never reach the upstream");
    assert_eq!(proxy.proxy.stats().answered_local(), 2);
    assert_eq!(proxy.proxy.stats().forwarded(), 0);
}

#[tokio::test]
async fn names_match_in_any_case_with_or_without_the_final_dot() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(httpbin(), vec![upstream.addr]).await;
    // Wire names are always absolute; "HttpBin.ORG" without the dot must
    // encode and match the same way.
    for name in ["HttpBin.ORG.", "HTTPBIN.org", "httpbin.org"] {
        let query = ask_message(7, name, RecordType::A);
        let reply = proxy.udp(&query.to_vec().unwrap()).await;
        assert_eq!(addresses(&reply), vec![IpAddr::V4(HTTPBIN_V4)], "{name}");
        // The question comes back spelled as asked (0x20 case checks).
        let absolute = format!("{}.", name.trim_end_matches('.'));
        assert_eq!(reply.queries()[0].name().to_ascii(), absolute);
    }
    assert_eq!(upstream.queries(), 0);
}

#[tokio::test]
async fn mesh_host_without_the_family_or_type_gets_an_empty_noerror() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(httpbin(), vec![upstream.addr]).await;
    for (name, rtype) in [
        ("v4only.example.", RecordType::AAAA),
        ("httpbin.org.", RecordType::MX),
        ("httpbin.org.", RecordType::TXT),
    ] {
        let reply = proxy.udp(&ask(9, name, rtype)).await;
        assert_eq!(
            reply.response_code(),
            ResponseCode::NoError,
            "{name} {rtype}"
        );
        assert!(reply.answers().is_empty(), "{name} {rtype}");
        assert_eq!(reply.queries()[0].query_type(), rtype);
    }
    assert_eq!(upstream.queries(), 0, "not forwarded");
}

#[tokio::test]
async fn other_names_are_forwarded_and_relayed_with_the_clients_id() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(httpbin(), vec![upstream.addr]).await;

    let raw = proxy
        .udp_wait(
            &ask(0x1234, "example.test.", RecordType::A),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let sent = upstream.last_reply.lock().unwrap().clone();
    assert_eq!(raw[..2], [0x12, 0x34], "the client's ID");
    assert_eq!(raw[2..], sent[2..], "otherwise byte for byte");
    let reply = Message::from_vec(&raw).unwrap();
    assert_eq!(addresses(&reply), vec![IpAddr::V4(EXAMPLE_V4)]);
    assert!(!reply.authoritative(), "the upstream's flags, not ours");
    assert_eq!(upstream.times_asked("example.test."), 1);
    assert_eq!(upstream.udp_queries.load(Ordering::SeqCst), 1);

    let reply = proxy
        .udp(&ask(0x4321, "nowhere.test.", RecordType::A))
        .await;
    assert_eq!(reply.id(), 0x4321);
    assert_eq!(
        reply.response_code(),
        ResponseCode::NXDomain,
        "relayed as is"
    );
    assert_eq!(proxy.proxy.stats().forwarded(), 2);
}

#[tokio::test]
async fn a_new_snapshot_applies_to_the_next_query() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(snapshot(&[]), vec![upstream.addr]).await;

    let reply = proxy.udp(&ask(1, "example.test.", RecordType::A)).await;
    assert_eq!(addresses(&reply), vec![IpAddr::V4(EXAMPLE_V4)]);
    assert_eq!(upstream.queries(), 1);

    proxy
        .snapshots
        .send(snapshot(&[("example.test", &["240.240.0.9"])]))
        .unwrap();
    let reply = proxy.udp(&ask(2, "example.test.", RecordType::A)).await;
    assert_eq!(
        addresses(&reply),
        vec!["240.240.0.9".parse::<IpAddr>().unwrap()]
    );
    assert!(reply.authoritative());
    assert_eq!(upstream.queries(), 1, "now a mesh host");

    proxy.snapshots.send(snapshot(&[])).unwrap();
    let reply = proxy.udp(&ask(3, "example.test.", RecordType::A)).await;
    assert_eq!(addresses(&reply), vec![IpAddr::V4(EXAMPLE_V4)]);
    assert_eq!(upstream.queries(), 2, "forwarded again once removed");
}

#[tokio::test]
async fn tcp_serves_several_framed_queries_per_connection_and_forwards_over_tcp() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(httpbin(), vec![upstream.addr]).await;
    let mut stream = TcpStream::connect(proxy.tcp).await.unwrap();

    // Both queries in one write: the proxy must split on the length prefix.
    let mut frames = Vec::new();
    for query in [
        ask(10, "httpbin.org.", RecordType::A),
        ask(11, "example.test.", RecordType::A),
    ] {
        frames.extend_from_slice(&(query.len() as u16).to_be_bytes());
        frames.extend_from_slice(&query);
    }
    stream.write_all(&frames).await.unwrap();

    let first = Message::from_vec(&read_frame(&mut stream).await.unwrap()).unwrap();
    assert_eq!(first.id(), 10);
    assert_eq!(addresses(&first), vec![IpAddr::V4(HTTPBIN_V4)]);
    let second = Message::from_vec(&read_frame(&mut stream).await.unwrap()).unwrap();
    assert_eq!(second.id(), 11);
    assert_eq!(addresses(&second), vec![IpAddr::V4(EXAMPLE_V4)]);

    // The connection stays open for more.
    write_frame(&mut stream, &ask(12, "httpbin.org.", RecordType::AAAA)).await;
    let third = Message::from_vec(&read_frame(&mut stream).await.unwrap()).unwrap();
    assert_eq!(addresses(&third), vec![IpAddr::V6(HTTPBIN_V6)]);

    assert_eq!(upstream.tcp_queries.load(Ordering::SeqCst), 1);
    assert_eq!(upstream.udp_queries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn big_udp_replies_are_truncated_so_the_client_retries_over_tcp() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(httpbin(), vec![upstream.addr]).await;

    let raw = proxy
        .udp_wait(
            &ask(0x7777, "big.test.", RecordType::TXT),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(raw.len() <= 512, "{} bytes", raw.len());
    let reply = Message::from_vec(&raw).unwrap();
    assert_eq!(reply.id(), 0x7777);
    assert!(reply.truncated());
    assert!(reply.answers().is_empty());
    assert_eq!(reply.queries()[0].name().to_ascii(), "big.test.");

    // A client that advertises a bigger EDNS buffer gets it all over UDP.
    let mut query = ask_message(0x7778, "big.test.", RecordType::TXT);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    query.set_edns(edns);
    let reply = proxy.udp(&query.to_vec().unwrap()).await;
    assert!(!reply.truncated());
    assert_eq!(reply.answers().len(), 30);

    // And over TCP, whole.
    let mut stream = TcpStream::connect(proxy.tcp).await.unwrap();
    write_frame(&mut stream, &ask(0x7779, "big.test.", RecordType::TXT)).await;
    let raw = read_frame(&mut stream).await.unwrap();
    assert!(raw.len() > 512);
    let reply = Message::from_vec(&raw).unwrap();
    assert!(!reply.truncated());
    assert_eq!(reply.answers().len(), 30);
}

#[tokio::test]
async fn all_upstreams_down_gives_servfail() {
    let proxy = Proxy::start(httpbin(), vec![dead_port().await, dead_port().await]).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        let raw = proxy
            .proxy
            .answer(&ask(0x5555, "example.test.", RecordType::A), transport)
            .await
            .unwrap();
        let reply = Message::from_vec(&raw).unwrap();
        assert_eq!(reply.id(), 0x5555);
        assert_eq!(
            reply.response_code(),
            ResponseCode::ServFail,
            "{transport:?}"
        );
        assert_eq!(reply.queries()[0].name().to_ascii(), "example.test.");
    }
    let reply = proxy
        .udp(&ask(0x5556, "example.test.", RecordType::A))
        .await;
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    assert_eq!(proxy.proxy.stats().failed(), 3);
    // Mesh hosts still resolve.
    let reply = proxy.udp(&ask(1, "httpbin.org.", RecordType::A)).await;
    assert_eq!(addresses(&reply), vec![IpAddr::V4(HTTPBIN_V4)]);
}

#[tokio::test]
async fn the_next_upstream_is_tried_when_one_is_down_or_silent() {
    let upstream = Upstream::start().await;
    // Receives and never answers: costs the 2 s per-try timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(
        httpbin(),
        vec![
            dead_port().await,
            silent.local_addr().unwrap(),
            upstream.addr,
        ],
    )
    .await;
    let started = std::time::Instant::now();
    let reply = proxy.udp(&ask(3, "example.test.", RecordType::A)).await;
    assert_eq!(addresses(&reply), vec![IpAddr::V4(EXAMPLE_V4)]);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let mut buf = [0u8; 512];
    assert!(
        silent.try_recv_from(&mut buf).is_ok(),
        "the silent one was asked"
    );
}

#[tokio::test]
async fn garbage_is_dropped_or_answered_formerr_and_never_stops_the_server() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(httpbin(), vec![upstream.addr]).await;

    // Too short for a header: no ID to answer to, dropped.
    assert!(proxy
        .proxy
        .answer(b"\x01\x02\x03", Transport::Udp)
        .await
        .is_err());
    assert!(proxy.proxy.answer(b"", Transport::Tcp).await.is_err());
    assert!(proxy
        .udp_wait(b"\x01\x02\x03", Duration::from_millis(300))
        .await
        .is_none());

    // A valid header followed by a question that runs off the end: FORMERR.
    let mut broken = ask(0x0bad, "httpbin.org.", RecordType::A);
    broken.truncate(broken.len() - 3);
    let reply = Message::from_vec(
        &proxy
            .udp_wait(&broken, Duration::from_secs(5))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reply.id(), 0x0bad);
    assert_eq!(reply.response_code(), ResponseCode::FormErr);

    // Two questions in one message: FORMERR too.
    let mut two = ask_message(0x0bae, "httpbin.org.", RecordType::A);
    two.add_query(Query::query(
        Name::from_str("example.test.").unwrap(),
        RecordType::A,
    ));
    let reply = proxy.udp(&two.to_vec().unwrap()).await;
    assert_eq!(reply.response_code(), ResponseCode::FormErr);

    // A response sent to the proxy is not answered (no reflection loops).
    let mut response = ask_message(0x0baf, "httpbin.org.", RecordType::A);
    response.set_message_type(MessageType::Response);
    assert!(proxy
        .udp_wait(&response.to_vec().unwrap(), Duration::from_millis(300))
        .await
        .is_none());

    // Broken TCP framing closes that connection only.
    let mut stream = TcpStream::connect(proxy.tcp).await.unwrap();
    write_frame(&mut stream, b"\x00").await;
    assert!(read_frame(&mut stream).await.is_none());

    // Random bytes and mutated queries: never a panic, always a verdict.
    // A dead upstream keeps the mutants that decode as queries fast.
    let (_keep, rx) = watch::channel(httpbin());
    let fuzzed = DnsProxy::new(rx, vec![dead_port().await]);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = ask(1, "example.test.", RecordType::A);
    for round in 0..2000 {
        let mut message = if round % 2 == 0 {
            (0..next() % 64).map(|_| next() as u8).collect::<Vec<_>>()
        } else {
            let mut m = valid.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            m
        };
        // Only queries: responses are dropped before any work.
        if message.len() > 2 {
            message[2] &= 0x7f;
        }
        let transport = if round % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        if let Ok(reply) = fuzzed.answer(&message, transport).await {
            assert_eq!(reply[..2], message[..2], "replies carry the query's ID");
        }
    }

    // The server is still up.
    let reply = proxy.udp(&ask(2, "httpbin.org.", RecordType::A)).await;
    assert_eq!(addresses(&reply), vec![IpAddr::V4(HTTPBIN_V4)]);
    assert!(proxy.proxy.stats().malformed() >= 5);
}

#[tokio::test]
async fn resolver_resolves_through_the_upstream_and_caches_within_the_ttl() {
    let upstream = Upstream::start().await;
    let resolver = Resolver::new(vec![upstream.addr]).unwrap();

    let mut ips = resolver.lookup_ip("cached.test").await.unwrap();
    ips.sort();
    assert_eq!(
        ips,
        vec![
            "192.0.2.20".parse::<IpAddr>().unwrap(),
            "2001:db8::20".parse().unwrap()
        ]
    );
    let asked = upstream.times_asked("cached.test.");
    assert_eq!(asked, 2, "one A and one AAAA query");
    let mut again = resolver.lookup_ip("cached.test.").await.unwrap();
    again.sort();
    assert_eq!(again, ips);
    assert_eq!(
        upstream.times_asked("cached.test."),
        asked,
        "served from cache"
    );

    // A 1 s TTL expires: the next lookup asks again.
    resolver.lookup_ip("short.test").await.unwrap();
    let asked = upstream.times_asked("short.test.");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let ips = resolver.lookup_ip("short.test").await.unwrap();
    assert!(ips.contains(&"192.0.2.30".parse().unwrap()));
    assert!(upstream.times_asked("short.test.") > asked, "TTL respected");

    assert!(resolver.lookup_ip("nowhere.test").await.is_err());
    assert_eq!(
        resolver.lookup_ip("203.0.113.9").await.unwrap(),
        vec!["203.0.113.9".parse::<IpAddr>().unwrap()]
    );
}

#[tokio::test]
async fn resolver_never_applies_search_domains() {
    let upstream = Upstream::start().await;
    let resolver = Resolver::new(vec![upstream.addr]).unwrap();
    assert!(resolver.lookup_ip("example").await.is_err());
    let asked: HashMap<String, usize> =
        upstream
            .asked
            .lock()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut m, n| {
                *m.entry(n.clone()).or_default() += 1;
                m
            });
    assert_eq!(asked.keys().collect::<Vec<_>>(), vec!["example."]);
}

#[test]
fn resolv_conf_upstreams_feed_the_proxy() {
    let upstreams = parse_resolv_conf("nameserver 127.0.0.53\noptions edns0\n");
    assert_eq!(
        upstreams,
        vec!["127.0.0.53:53".parse::<SocketAddr>().unwrap()]
    );
}
