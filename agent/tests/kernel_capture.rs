//! Privileged: loads egret's real kernel programs into the running kernel
//! and checks what they capture. Every socket lives in network namespaces
//! this test creates (only `lo`, no route off the machine), so a capture
//! that fails ends in ENETUNREACH, never in traffic leaving the host.
//!
//! Needs root and the built programs (`cargo xtask build-ebpf`, embedded at
//! build time, or `EGRET_BPF_OBJECT=PATH`). It fails, never skips, when it
//! cannot load them.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::Duration;

use egret::kernel::{netns_cookie_of, Kernel};

#[path = "support/test_kernel.rs"]
mod test_kernel;
#[path = "support/test_netns.rs"]
mod test_netns;

use test_netns::Netns;

use egret_common::{
    v4_mapped, FlowKey, OrigDst, ServiceKey, ServiceRange, Stat, AF_INET, AF_INET6, DNS_PORT,
    EGRET_MARK, ENROLL_DNS, ENROLL_SERVICES, OUTBOUND_PORT,
};
use test_kernel::TestKernel;

const VIP4: Ipv4Addr = Ipv4Addr::new(240, 240, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const RESOLVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const RESOLVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);
const TIMEOUT: Duration = Duration::from_secs(3);

/// Keeps every `log` record so the test can see the programs' aya-log lines.
struct Recorder(Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

/// Whether some recorded log line contains `needle`.
fn logged(needle: &str) -> bool {
    RECORDER
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains(needle))
}

/// Loads the programs and puts them in force, or fails the test with what to do.
fn load_kernel() -> TestKernel {
    // Every test installs it; only the first call succeeds, which is fine.
    let _ = log::set_logger(&RECORDER);
    // The programs format only the levels enabled when they are loaded.
    log::set_max_level(log::LevelFilter::Debug);
    test_kernel::load_kernel("kernel_capture")
}

fn key(ip: IpAddr, port: u16) -> ServiceKey {
    let addr = match ip {
        IpAddr::V4(a) => v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    };
    ServiceKey {
        addr,
        port,
        _pad: 0,
    }
}

fn stat(kernel: &Kernel, which: Stat) -> u64 {
    kernel
        .stats()
        .expect("read STATS")
        .into_iter()
        .find(|(s, _)| *s == which)
        .map(|(_, n)| n)
        .expect("every Stat is reported")
}

/// Connects from inside `ns`; the error kind tells captured from not.
fn connect_in(ns: &Netns, to: SocketAddr) -> std::io::Result<TcpStream> {
    ns.run(|| TcpStream::connect_timeout(&to, TIMEOUT))
}

fn assert_unreachable(result: std::io::Result<TcpStream>, what: &str) {
    match result {
        Ok(s) => panic!(
            "{what}: connected to {:?}, expected it untouched (ENETUNREACH)",
            s.peer_addr()
        ),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::ENETUNREACH),
            "{what}: expected ENETUNREACH (untouched, no route), got {e}"
        ),
    }
}

/// Accepts the captured connection and returns the client's port after
/// checking both ends agree on it.
fn accept_captured(listener: &TcpListener, client: &TcpStream) -> u16 {
    let (_server, peer) = listener.accept().expect("accept the captured connection");
    let local = client.local_addr().unwrap();
    assert_eq!(peer.port(), local.port());
    assert!(peer.ip().is_loopback(), "peer {peer} should be loopback");
    peer.port()
}

#[test]
fn tcp_connects_to_services_reach_the_outbound_listener() {
    let enrolled = Netns::new("kt", "tcp");
    let other = Netns::new("kt", "tcp-other");
    let kernel = load_kernel();
    assert!(kernel.log_fd().is_some(), "the aya-log ring is set up");

    let (listener4, listener6) = enrolled.run(|| {
        (
            TcpListener::bind((Ipv4Addr::LOCALHOST, OUTBOUND_PORT)).expect("bind 127.0.0.1:15001"),
            TcpListener::bind((Ipv6Addr::LOCALHOST, OUTBOUND_PORT)).expect("bind [::1]:15001"),
        )
    });
    let cookie = netns_cookie_of(listener4.as_fd()).expect("SO_NETNS_COOKIE");
    kernel.enroll(cookie, ENROLL_SERVICES | ENROLL_DNS).unwrap();
    assert!(kernel
        .enrolled()
        .unwrap()
        .contains(&(cookie, ENROLL_SERVICES | ENROLL_DNS)));

    let vips = [IpAddr::from(VIP4), IpAddr::from(VIP6)];
    let wanted = BTreeSet::from([key(VIP4.into(), 0), key(VIP6.into(), 0)]);
    let report = kernel.sync_services(vips).unwrap();
    assert_eq!((report.added, report.removed), (2, 0));
    let again = kernel.sync_services(vips).unwrap();
    assert_eq!(
        (again.added, again.removed),
        (0, 0),
        "a second sync changes nothing"
    );
    assert_eq!(
        kernel.services().unwrap(),
        wanted.iter().copied().collect::<Vec<_>>()
    );

    // IPv4: captured, original destination recovered once.
    let client =
        connect_in(&enrolled, (VIP4, 80).into()).expect("enrolled connect to the VIP is captured");
    let port = accept_captured(&listener4, &client);
    let flow = FlowKey::new(cookie, port, AF_INET);
    let orig = kernel.take_orig_dst(&flow).unwrap();
    assert_eq!(
        orig,
        Some(OrigDst {
            addr: v4_mapped(VIP4.octets()),
            port: 80,
            family: AF_INET
        })
    );
    assert_eq!(orig.unwrap().socket_addr(), SocketAddr::from((VIP4, 80)));
    assert_eq!(
        kernel.take_orig_dst(&flow).unwrap(),
        None,
        "take deletes the entry"
    );
    kernel.flush_logs();
    assert!(
        logged("connect to ::ffff:240.240.0.2:80 -> agent"),
        "the redirect's debug line reaches the log facade: {:?}",
        RECORDER.0.lock().unwrap()
    );

    // A namespace that is not enrolled is untouched.
    assert_unreachable(
        connect_in(&other, (VIP4, 80).into()),
        "unenrolled namespace",
    );

    // A mark exempts nothing: a socket carrying egret's own mark (which a
    // workload with CAP_NET_ADMIN could set) is captured like any other.
    let marked = enrolled.run(|| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_mark(EGRET_MARK).unwrap();
        s.connect_timeout(&SocketAddr::from((VIP4, 80)).into(), TIMEOUT)
            .map(|()| TcpStream::from(s))
    });
    let marked = marked.expect("a socket with egret's mark is still captured");
    let marked_port = accept_captured(&listener4, &marked);
    assert!(kernel
        .take_orig_dst(&FlowKey::new(cookie, marked_port, AF_INET))
        .unwrap()
        .is_some());

    // IPv6: captured to [::1]:15001.
    let client6 =
        connect_in(&enrolled, (VIP6, 80).into()).expect("enrolled IPv6 connect is captured");
    let port6 = accept_captured(&listener6, &client6);
    let orig6 = kernel
        .take_orig_dst(&FlowKey::new(cookie, port6, AF_INET6))
        .unwrap();
    assert_eq!(
        orig6,
        Some(OrigDst {
            addr: VIP6.octets(),
            port: 80,
            family: AF_INET6
        })
    );

    // Once the service is gone from the snapshot, connects are no longer captured.
    let report = kernel.sync_services(std::iter::empty()).unwrap();
    assert_eq!((report.added, report.removed), (0, 2));
    assert!(kernel.services().unwrap().is_empty());
    assert_unreachable(
        connect_in(&enrolled, (VIP4, 80).into()),
        "after the service was removed",
    );

    assert!(stat(&kernel, Stat::RedirectService) >= 2);
    assert!(stat(&kernel, Stat::FlowRecorded) >= 2);
    assert!(stat(&kernel, Stat::PassthroughEnrolled) >= 1);

    kernel.unenroll(cookie).unwrap();
    kernel.unenroll(cookie).expect("unenrolling twice is fine");
    assert!(kernel.enrolled().unwrap().is_empty());
}

#[test]
fn connects_into_a_service_address_range_are_captured() {
    let enrolled = Netns::new("kt", "range");
    let kernel = load_kernel();
    let (listener4, listener6) = enrolled.run(|| {
        (
            TcpListener::bind((Ipv4Addr::LOCALHOST, OUTBOUND_PORT)).expect("bind 127.0.0.1:15001"),
            TcpListener::bind((Ipv6Addr::LOCALHOST, OUTBOUND_PORT)).expect("bind [::1]:15001"),
        )
    });
    let cookie = netns_cookie_of(listener4.as_fd()).expect("SO_NETNS_COOKIE");
    kernel.enroll(cookie, ENROLL_SERVICES).unwrap();

    // 203.0.113.0/24 and 2001:db8:77::/48, as ServiceEntry addresses.
    let v4 = ServiceRange {
        prefix_len: 96 + 24,
        addr: v4_mapped([203, 0, 113, 0]),
    };
    let v6 = ServiceRange {
        prefix_len: 48,
        addr: Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0).octets(),
    };
    let wanted = BTreeSet::from([v4, v6]);
    let nets: [ipnet::IpNet; 2] = [
        "203.0.113.0/24".parse().unwrap(),
        "2001:db8:77::/48".parse().unwrap(),
    ];
    let report = kernel.sync_service_ranges(nets).unwrap();
    assert_eq!((report.added, report.removed), (2, 0));
    let again = kernel.sync_service_ranges(nets).unwrap();
    assert_eq!(
        (again.added, again.removed),
        (0, 0),
        "a second sync changes nothing"
    );
    assert_eq!(
        kernel.service_ranges().unwrap(),
        wanted.iter().copied().collect::<Vec<_>>()
    );

    // Any address and any port inside the range is captured.
    for (last, port) in [(7, 443), (254, 5432)] {
        let dst = Ipv4Addr::new(203, 0, 113, last);
        let client = connect_in(&enrolled, (dst, port).into())
            .unwrap_or_else(|e| panic!("connect to {dst}:{port} in the range: {e}"));
        let local = accept_captured(&listener4, &client);
        assert_eq!(
            kernel
                .take_orig_dst(&FlowKey::new(cookie, local, AF_INET))
                .unwrap(),
            Some(OrigDst {
                addr: v4_mapped(dst.octets()),
                port,
                family: AF_INET
            })
        );
    }
    let dst6 = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0x5, 0, 0, 0, 9);
    let client6 = connect_in(&enrolled, (dst6, 443).into()).expect("IPv6 range is captured");
    let local6 = accept_captured(&listener6, &client6);
    assert_eq!(
        kernel
            .take_orig_dst(&FlowKey::new(cookie, local6, AF_INET6))
            .unwrap()
            .map(|o| o.socket_addr()),
        Some(SocketAddr::from((dst6, 443)))
    );

    // Just outside the prefixes: untouched.
    assert_unreachable(
        connect_in(&enrolled, (Ipv4Addr::new(203, 0, 114, 1), 443).into()),
        "next to the IPv4 range",
    );
    assert_unreachable(
        connect_in(
            &enrolled,
            (Ipv6Addr::new(0x2001, 0xdb8, 0x78, 0, 0, 0, 0, 1), 443).into(),
        ),
        "next to the IPv6 range",
    );

    // Removed from the snapshot: no longer captured.
    let report = kernel.sync_service_ranges(std::iter::empty()).unwrap();
    assert_eq!((report.added, report.removed), (0, 2));
    assert!(kernel.service_ranges().unwrap().is_empty());
    assert_unreachable(
        connect_in(&enrolled, (Ipv4Addr::new(203, 0, 113, 7), 443).into()),
        "after the range was removed",
    );
    kernel.unenroll(cookie).unwrap();
}

/// Sends one UDP query with sendto from `ns` to `resolver` while a fake DNS
/// listener on `listen` answers; returns the reply's source as the client saw it.
fn udp_dns_roundtrip(ns: &Netns, listen: SocketAddr, resolver: SocketAddr) -> SocketAddr {
    ns.run(|| {
        let server = UdpSocket::bind(listen).expect("bind the DNS listener");
        server.set_read_timeout(Some(TIMEOUT)).unwrap();
        let unspecified: IpAddr = if listen.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let client = UdpSocket::bind((unspecified, 0)).unwrap();
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        client
            .send_to(b"query", resolver)
            .expect("sendto the resolver");
        let mut buf = [0u8; 64];
        let (n, from) = server
            .recv_from(&mut buf)
            .expect("the query reaches the DNS listener");
        assert_eq!(&buf[..n], b"query");
        server.send_to(b"answer", from).unwrap();
        let (n, source) = client
            .recv_from(&mut buf)
            .expect("the reply reaches the client");
        assert_eq!(&buf[..n], b"answer");
        source
    })
}

#[test]
fn dns_from_enrolled_namespaces_reaches_the_dns_listener() {
    let enrolled = Netns::new("kt", "dns");
    let other = Netns::new("kt", "dns-other");
    let kernel = load_kernel();

    let tcp_dns = enrolled.run(|| {
        TcpListener::bind((Ipv4Addr::LOCALHOST, DNS_PORT)).expect("bind 127.0.0.1:15053/tcp")
    });
    let cookie = netns_cookie_of(tcp_dns.as_fd()).unwrap();
    kernel.enroll(cookie, ENROLL_DNS).unwrap();

    // UDP over IPv4 and IPv6: the reply seems to come from the resolver.
    let source = udp_dns_roundtrip(
        &enrolled,
        (Ipv4Addr::LOCALHOST, DNS_PORT).into(),
        (RESOLVER4, 53).into(),
    );
    assert_eq!(source, SocketAddr::from((RESOLVER4, 53)));
    let source6 = udp_dns_roundtrip(
        &enrolled,
        (Ipv6Addr::LOCALHOST, DNS_PORT).into(),
        (RESOLVER6, 53).into(),
    );
    assert_eq!(source6, SocketAddr::from((RESOLVER6, 53)));

    // TCP DNS is captured too.
    let mut client = connect_in(&enrolled, (RESOLVER4, 53).into()).expect("TCP DNS is captured");
    let (mut server, _) = tcp_dns.accept().unwrap();
    client.write_all(b"q").unwrap();
    let mut byte = [0u8; 1];
    server.set_read_timeout(Some(TIMEOUT)).unwrap();
    server.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"q");

    // A namespace that is not enrolled: sendto finds no route.
    let err = other.run(|| {
        let client = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        client
            .send_to(b"query", (RESOLVER4, 53))
            .expect_err("unenrolled DNS must not be redirected")
    });
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "got {err}");
    assert_ne!(err.kind(), ErrorKind::TimedOut);

    assert!(stat(&kernel, Stat::RedirectDns) >= 3);
    assert!(stat(&kernel, Stat::DnsReplyRestored) >= 2);
}

/// sendmsg4 writes a socket's record only when it changes: one socket
/// asking two resolvers in turn must still see each reply come from the
/// resolver it asked last (glibc drops a reply from any other source).
#[test]
fn one_udp_socket_asking_resolvers_in_turn_sees_each_reply_from_the_one_asked() {
    let enrolled = Netns::new("kt", "dns-turns");
    let kernel = load_kernel();
    let other_resolver = Ipv4Addr::new(192, 0, 2, 54);
    let sources = enrolled.run(|| {
        let server =
            UdpSocket::bind((Ipv4Addr::LOCALHOST, DNS_PORT)).expect("bind the DNS listener");
        server.set_read_timeout(Some(TIMEOUT)).unwrap();
        let cookie = netns_cookie_of(server.as_fd()).unwrap();
        kernel.enroll(cookie, ENROLL_DNS).unwrap();
        let client = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut sources = Vec::new();
        for resolver in [RESOLVER4, RESOLVER4, other_resolver, RESOLVER4] {
            client
                .send_to(b"query", (resolver, 53))
                .expect("sendto the resolver");
            let mut buf = [0u8; 64];
            let (_, from) = server
                .recv_from(&mut buf)
                .expect("the query reaches the DNS listener");
            server.send_to(b"answer", from).unwrap();
            let (_, source) = client
                .recv_from(&mut buf)
                .expect("the reply reaches the client");
            sources.push(source);
        }
        sources
    });
    let asked: Vec<SocketAddr> = [RESOLVER4, RESOLVER4, other_resolver, RESOLVER4]
        .iter()
        .map(|r| SocketAddr::from((*r, 53)))
        .collect();
    assert_eq!(sources, asked);
}
