//! Privileged: REGISTRY_ONLY, the packet backstop and pinned state, with
//! egret's real kernel programs in the running kernel.
//!
//! Every socket lives in network namespaces this test creates. Their only
//! way "out" is a veth whose peer, in the same namespace, is down: packets
//! sent there go nowhere. A connect the programs let through starts
//! (EINPROGRESS, non-blocking) and goes nowhere; one they refuse fails at
//! once with EPERM. Nothing leaves the machine either way.
//!
//! Needs root and the built programs (`cargo xtask build-ebpf`, or
//! `EGRET_BPF_OBJECT=PATH`); fails, never skips, when it cannot run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use egret::kernel::events::{KernelEvent, Verdict};
use egret::kernel::registry::registry_nets;
use egret::kernel::{Kernel, Placement};
use egret_common::{
    Reason, Stat, DNS_PORT, EGRET_MARK, ENROLL_DNS, ENROLL_REGISTRY_ONLY, ENROLL_SERVICES,
    OUTBOUND_PORT,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

#[path = "support/test_kernel.rs"]
mod test_kernel;
#[path = "support/test_netns.rs"]
mod test_netns;

use test_netns::Netns;

/// An address outside the registry (the "internet").
const OUTSIDE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const OUTSIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 1);
/// An address in the node's pod network (in the registry).
const POD: Ipv4Addr = Ipv4Addr::new(10, 238, 0, 7);
/// A mesh service VIP.
const VIP4: Ipv4Addr = Ipv4Addr::new(240, 240, 0, 2);
const TIMEOUT: Duration = Duration::from_secs(3);
const ENFORCING: u32 = ENROLL_SERVICES | ENROLL_DNS | ENROLL_REGISTRY_ONLY;
const OPEN: u32 = ENROLL_SERVICES | ENROLL_DNS;

/// What a non-blocking connect says at once: `Ok` (connected: loopback),
/// or the error (EINPROGRESS: let through; EPERM: refused).
fn try_connect(ns: &Netns, socket: impl FnOnce() -> Socket + Send, to: SocketAddr) -> Option<i32> {
    ns.run(|| {
        let s = socket();
        s.set_nonblocking(true).unwrap();
        s.connect(&to.into()).err().and_then(|e| e.raw_os_error())
    })
}

/// A blocking connect (for loopback, where the answer comes at once).
fn connect_wait(ns: &Netns, to: SocketAddr) -> Option<i32> {
    ns.run(|| {
        std::net::TcpStream::connect_timeout(&to, TIMEOUT)
            .err()
            .and_then(|e| e.raw_os_error())
    })
}

fn tcp4() -> Socket {
    Socket::new(Domain::IPV4, Type::STREAM, None).unwrap()
}

fn tcp6() -> Socket {
    Socket::new(Domain::IPV6, Type::STREAM, None).unwrap()
}

fn udp(domain: Domain) -> Socket {
    Socket::new(domain, Type::DGRAM, None).unwrap()
}

/// `sendto` from a fresh unconnected UDP socket; the errno when it fails.
fn send_udp(ns: &Netns, domain: Domain, to: SocketAddr, payload: &[u8]) -> Option<i32> {
    ns.run(|| {
        let s = udp(domain);
        s.send_to(payload, &to.into())
            .err()
            .and_then(|e| e.raw_os_error())
    })
}

/// `sendto(MSG_FASTOPEN)` on a TCP socket: TCP Fast Open's implicit connect.
fn tcp_fast_open(ns: &Netns, to: SocketAddr) -> Option<i32> {
    ns.run(|| {
        let s = if to.is_ipv4() { tcp4() } else { tcp6() };
        s.set_nonblocking(true).unwrap();
        let addr = SockAddr::from(to);
        // SAFETY: a valid socket, buffer and address for the call.
        let rc = unsafe {
            libc::sendto(
                s.as_raw_fd(),
                b"GET".as_ptr().cast(),
                3,
                libc::MSG_FASTOPEN,
                addr.as_ptr().cast(),
                addr.len(),
            )
        };
        (rc < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap())
    })
}

fn stat(kernel: &Kernel, which: Stat) -> u64 {
    kernel
        .stats()
        .unwrap()
        .into_iter()
        .find(|(s, _)| *s == which)
        .map_or(0, |(_, n)| n)
}

fn services(kernel: &Kernel) {
    kernel.sync_services([IpAddr::from(VIP4)]).unwrap();
    kernel
        .sync_registry_nets(&registry_nets(&["10.238.0.0/16".parse().unwrap()]))
        .unwrap();
}

/// A standard DNS query for `name` (A), as a stub resolver sends it.
fn dns_query(name: &str, edns: bool) -> Vec<u8> {
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let mut m = Message::new();
    m.set_id(0x1234).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

const EPERM: Option<i32> = Some(libc::EPERM);
const LET_THROUGH: Option<i32> = Some(libc::EINPROGRESS);

#[test]
fn registry_only_refuses_connects_and_sends_outside_the_registry() {
    let kernel = test_kernel::load_kernel("kernel_enforcement");
    let enrolled = Netns::with_dead_end("ke", "ro");
    let open = Netns::with_dead_end("ke", "open");
    let bystander = Netns::with_dead_end("ke", "by");
    services(&kernel);
    let cookie = enrolled.cookie();
    kernel.enroll(cookie, ENFORCING).unwrap();
    kernel.enroll(open.cookie(), OPEN).unwrap();
    let out4 = SocketAddr::from((OUTSIDE4, 80));
    let out6 = SocketAddr::from((OUTSIDE6, 80));
    let mapped = SocketAddr::from((OUTSIDE4.to_ipv6_mapped(), 80));

    // TCP, every way of starting a connection.
    assert_eq!(try_connect(&enrolled, tcp4, out4), EPERM, "IPv4 connect");
    assert_eq!(try_connect(&enrolled, tcp6, out6), EPERM, "IPv6 connect");
    assert_eq!(
        try_connect(&enrolled, tcp6, mapped),
        EPERM,
        "IPv4-mapped connect"
    );
    assert_eq!(tcp_fast_open(&enrolled, out4), EPERM, "TFO sendto IPv4");
    assert_eq!(tcp_fast_open(&enrolled, out6), EPERM, "TFO sendto IPv6");
    let tfo_connect = || {
        let s = tcp4();
        // TCP_FASTOPEN_CONNECT: connect() defers the SYN to the first write.
        let on: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option value.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_FASTOPEN_CONNECT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "TCP_FASTOPEN_CONNECT");
        s
    };
    assert_eq!(
        try_connect(&enrolled, tfo_connect, out4),
        EPERM,
        "TCP_FASTOPEN_CONNECT"
    );
    // UDP: connected and unconnected, both families, mapped.
    assert_eq!(
        try_connect(&enrolled, || udp(Domain::IPV4), (OUTSIDE4, 443).into()),
        EPERM,
        "connected UDP"
    );
    assert_eq!(
        send_udp(&enrolled, Domain::IPV4, (OUTSIDE4, 443).into(), b"x"),
        EPERM
    );
    assert_eq!(
        send_udp(&enrolled, Domain::IPV6, (OUTSIDE6, 443).into(), b"x"),
        EPERM
    );
    assert_eq!(
        send_udp(
            &enrolled,
            Domain::IPV6,
            (OUTSIDE4.to_ipv6_mapped(), 443).into(),
            b"x"
        ),
        EPERM,
        "unconnected UDP to an IPv4-mapped address"
    );
    // A mark exempts nothing (egret's own, or any other).
    for mark in [EGRET_MARK, 1] {
        let marked = move || {
            let s = tcp4();
            s.set_mark(mark).unwrap();
            s
        };
        assert_eq!(
            try_connect(&enrolled, marked, out4),
            EPERM,
            "mark {mark:#x}"
        );
    }

    // The registry: the pod network, loopback; mesh services captured; DNS
    // (port 53, any server) answered by egret.
    assert_eq!(try_connect(&enrolled, tcp4, (POD, 80).into()), LET_THROUGH);
    assert_eq!(
        send_udp(&enrolled, Domain::IPV4, (POD, 9).into(), b"x"),
        None
    );
    assert_eq!(
        connect_wait(&enrolled, (Ipv4Addr::LOCALHOST, 1).into()),
        Some(libc::ECONNREFUSED),
        "loopback is the workload's own"
    );
    let (outbound, dns) = enrolled.run(|| {
        (
            TcpListener::bind((Ipv4Addr::LOCALHOST, OUTBOUND_PORT)).unwrap(),
            UdpSocket::bind((Ipv4Addr::LOCALHOST, DNS_PORT)).unwrap(),
        )
    });
    assert_eq!(try_connect(&enrolled, tcp4, (VIP4, 80).into()), LET_THROUGH);
    outbound.set_nonblocking(false).unwrap();
    let _ = outbound
        .accept()
        .expect("the VIP connect reaches the outbound listener");
    assert_eq!(
        send_udp(&enrolled, Domain::IPV4, (OUTSIDE4, 53).into(), b"q"),
        None
    );
    dns.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        dns.recv_from(&mut buf)
            .expect("DNS to any server on port 53 reaches egret")
            .0,
        1
    );

    // ALLOW_ANY, and namespaces egret does not enroll: untouched.
    assert_eq!(try_connect(&open, tcp4, out4), LET_THROUGH);
    assert_eq!(
        send_udp(&open, Domain::IPV4, (OUTSIDE4, 443).into(), b"x"),
        None
    );
    assert_eq!(try_connect(&bystander, tcp4, out4), LET_THROUGH);
    assert_eq!(
        tcp_fast_open(&bystander, out4),
        LET_THROUGH,
        "TFO untouched"
    );

    // Counted, per namespace, and reported with who did it.
    assert!(stat(&kernel, Stat::DeniedNotInRegistry) >= 12);
    let denials = kernel.denials().unwrap();
    let here = denials
        .iter()
        .find(|(c, r, _)| *c == cookie && *r == Reason::NotInRegistry)
        .map(|(_, _, n)| *n);
    assert!(here >= Some(12), "{denials:?}");
    let mut ring = kernel.take_events().expect("the events ring");
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        events.extend(KernelEvent::decode(&item));
    }
    let first = events
        .iter()
        .find(|e| e.netns_cookie == cookie)
        .unwrap_or_else(|| panic!("no event of the namespace in {events:?}"));
    assert_eq!(first.verdict, Verdict::Denied(Reason::NotInRegistry));
    assert_eq!(
        (first.addr, first.port, first.proto.as_str(), first.hook),
        (OUTSIDE4.into(), 80, "tcp", "connect")
    );
    assert_eq!(first.pid, std::process::id());

    // Released: nothing left of it in the kernel.
    let had = kernel.unenroll(cookie).unwrap();
    assert!(had
        .iter()
        .any(|(r, n)| *r == Reason::NotInRegistry && *n >= 12));
    assert!(kernel
        .denials()
        .unwrap()
        .iter()
        .all(|(c, _, _)| *c != cookie));
    assert_eq!(try_connect(&enrolled, tcp4, out4), LET_THROUGH);
}

#[test]
fn the_packet_backstop_catches_what_no_connect_hook_sees() {
    let kernel = test_kernel::load_kernel("kernel_enforcement");
    let ns = Netns::with_dead_end("ke", "pkt");
    services(&kernel);
    let cookie = ns.cookie();
    kernel.enroll(cookie, OPEN).unwrap();

    // A connected UDP socket opened under ALLOW_ANY keeps working...
    let old = ns.run(|| {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        s.connect((OUTSIDE4, 9)).unwrap();
        s
    });
    old.send(b"before").expect("allowed while ALLOW_ANY");
    // ...until the namespace turns REGISTRY_ONLY: then its packets stop.
    kernel.enroll(cookie, ENFORCING).unwrap();
    let err = old
        .send(b"after")
        .expect_err("a socket older than REGISTRY_ONLY is stopped");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));

    // A raw socket (CAP_NET_RAW, which pods have) sees no connect hook.
    let raw = ns.run(|| {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).unwrap();
        let udp_header = [0x30, 0x39, 0x00, 0x50, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        let to = SockAddr::from(SocketAddr::from((OUTSIDE4, 0)));
        let outside = s
            .send_to(&udp_header, &to)
            .err()
            .and_then(|e| e.raw_os_error());
        let pod = SockAddr::from(SocketAddr::from((POD, 0)));
        let inside = s
            .send_to(&udp_header, &pod)
            .err()
            .and_then(|e| e.raw_os_error());
        (outside, inside)
    });
    assert_eq!(
        raw,
        (EPERM, None),
        "raw packets: outside refused, registry let through"
    );
    assert!(stat(&kernel, Stat::DeniedPacket) >= 2);

    // DNS only through egret, in every mode: a standard query to another
    // resolver on another port is dropped; other UDP is not.
    kernel.enroll(cookie, OPEN).unwrap();
    let resolver = SocketAddr::from((OUTSIDE4, 5353));
    for (edns, what) in [(false, "plain query"), (true, "query with EDNS")] {
        assert_eq!(
            send_udp(
                &ns,
                Domain::IPV4,
                resolver,
                &dns_query("httpbin.org.", edns)
            ),
            EPERM,
            "{what} to another resolver"
        );
    }
    let resolver6 = SocketAddr::from((OUTSIDE6, 5353));
    assert_eq!(
        send_udp(&ns, Domain::IPV6, resolver6, &dns_query("a.test.", true)),
        EPERM
    );
    let mut not_dns = dns_query("httpbin.org.", false);
    not_dns.push(0);
    assert_eq!(
        send_udp(&ns, Domain::IPV4, resolver, &not_dns),
        None,
        "trailing byte: not a query"
    );
    assert_eq!(
        send_udp(&ns, Domain::IPV4, resolver, b"hello, not dns"),
        None
    );
    assert!(stat(&kernel, Stat::DeniedDnsElsewhere) >= 3);
    let denials = kernel.denials().unwrap();
    assert!(
        denials.contains(&(cookie, Reason::DnsElsewhere, 3)),
        "{denials:?}"
    );
    kernel.unenroll(cookie).unwrap();
}

#[test]
fn pinned_programs_outlive_the_agent_and_are_swapped_in_place() {
    let pins = test_kernel::test_pins("kernel_enforcement");
    let _ = Kernel::remove_pinned(&pins);
    let _guard = test_kernel::PinsGuard(pins.clone());
    let ns = Netns::with_dead_end("ke", "pin");
    let out = SocketAddr::from((OUTSIDE4, 80));
    let cookie = ns.cookie();
    let first = test_kernel::load_into(&pins, "kernel_enforcement");
    let placed = first.put_in_force().unwrap();
    assert!(
        placed.iter().all(|(_, p)| *p == Placement::Attached),
        "{placed:?}"
    );
    services(&first);
    first.enroll(cookie, ENFORCING).unwrap();
    assert_eq!(try_connect(&ns, tcp4, out), EPERM);

    // The agent goes (crash or stop): the kernel goes on refusing.
    drop(first);
    assert_eq!(
        try_connect(&ns, tcp4, out),
        EPERM,
        "no agent: still refused"
    );
    assert_eq!(
        connect_wait(&ns, (VIP4, 80).into()),
        Some(libc::ECONNREFUSED),
        "no agent: a service connect is refused, not let out"
    );

    // The next agent finds the state and swaps its programs in.
    let second = test_kernel::load_into(&pins, "kernel_enforcement");
    assert!(second.enrolled().unwrap().contains(&(cookie, ENFORCING)));
    let placed = second.put_in_force().unwrap();
    assert_eq!(placed.len(), egret::kernel::PROGRAMS.len());
    assert!(
        placed.iter().all(|(_, p)| *p == Placement::Swapped),
        "{placed:?}"
    );
    assert_eq!(try_connect(&ns, tcp4, out), EPERM, "after the swap");
    let before = stat(&second, Stat::DeniedNotInRegistry);
    assert!(before >= 2, "the counters carried over: {before}");

    // Removed: the programs detach.
    drop(second);
    Kernel::remove_pinned(&pins).unwrap();
    assert!(!pins.path().exists());
    assert_eq!(until_let_through(&ns, out), LET_THROUGH);
}

/// Connects until one is let through, for at most [`TIMEOUT`]: the kernel
/// releases an unpinned link from a work item, a moment after the unpin
/// (longer on a busy machine), so the programs go shortly after
/// `remove_pinned` returns, not at once.
fn until_let_through(ns: &Netns, to: SocketAddr) -> Option<i32> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let answer = try_connect(ns, tcp4, to);
        if answer == LET_THROUGH || std::time::Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
