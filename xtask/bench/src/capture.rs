//! Case 2: what capture costs per connection. The same accept-only
//! listener on 127.0.0.1:15001, reached (a) directly, (b) through egret's
//! connect4/sock_ops programs, (c) through iptables REDIRECT (how Istio's
//! sidecar/ambient capture works today), (d) through TPROXY with the raw
//! table's NOTRACK, i.e. iptables with conntrack off (REDIRECT itself needs
//! conntrack, so this is the conntrack-free way to intercept).

use std::time::Duration;

use crate::bpf::BenchKernel;
use crate::capture_ns::{CaptureNs, LISTENER, VIP, VIP_PORT};
use crate::load;
use crate::report::Report;
use crate::stats::Summary;
use crate::Ctx;

const CASE: &str = "2 capture";

/// One way of reaching the listener.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Direct,
    Ebpf,
    Redirect,
    TproxyNotrack,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Direct,
        Variant::Ebpf,
        Variant::Redirect,
        Variant::TproxyNotrack,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::Direct => "(a) no capture",
            Variant::Ebpf => "(b) egret eBPF",
            Variant::Redirect => "(c) iptables REDIRECT",
            Variant::TproxyNotrack => "(d) iptables TPROXY + NOTRACK",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Variant::Direct => "ca",
            Variant::Ebpf => "cb",
            Variant::Redirect => "cc",
            Variant::TproxyNotrack => "cd",
        }
    }
}

/// Runs the case.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let mut spaces = Vec::new();
    for v in Variant::ALL {
        let cap = CaptureNs::new(
            v.tag(),
            &ctx.built.load,
            &ctx.logs,
            600_000,
            v == Variant::TproxyNotrack,
            (v == Variant::Ebpf)
                .then(crate::bpf::orig_dst_pin)
                .as_deref(),
        )?;
        setup(v, &cap)?;
        spaces.push((v, cap));
    }
    let mut rate = vec![Vec::new(); 4];
    let mut p50 = vec![Vec::new(); 4];
    let mut p99 = vec![Vec::new(); 4];
    let mut errors = [0.0; 4];
    let ms = ctx.load_ms.to_string();
    // Rounds interleave the variants so drift on the shared machine hits all.
    for _ in 0..ctx.runs {
        for (i, (v, cap)) in spaces.iter().enumerate() {
            // egret's programs are attached only for their own variant.
            let kernel = match v {
                Variant::Ebpf => {
                    let k = BenchKernel::load(&ctx.built.bpf_object)?;
                    let cookie = k.enroll(&cap.ns.path())?;
                    k.fill(&[VIP], 0, &[cookie], 1)?;
                    Some(k)
                }
                _ => None,
            };
            let addr = if *v == Variant::Direct {
                LISTENER
            } else {
                VIP_PORT
            };
            let out = load::json(
                load::in_ns(
                    &cap.ns.name,
                    &ctx.built.load,
                    &[
                        "connect",
                        "--addr",
                        addr,
                        "--duration-ms",
                        &ms,
                        "--count",
                        "1000000",
                    ],
                ),
                Duration::from_millis(ctx.load_ms + 10_000),
            )?;
            drop(kernel);
            anyhow::ensure!(
                load::num(&out, "connections") > 0.0,
                "{}: no connection reached the listener: {out}",
                v.label()
            );
            rate[i].push(load::num(&out, "per_sec"));
            p50[i].push(load::num(&out, "p50_us"));
            p99[i].push(load::num(&out, "p99_us"));
            errors[i] += load::num(&out, "errors");
        }
    }
    for (i, v) in Variant::ALL.iter().enumerate() {
        let note = format!(
            "1 client thread, SO_LINGER 0; failed connects: {}",
            errors[i]
        );
        report.add_noted(CASE, v.label(), "connections/s", "/s", &rate[i], &note);
        report.add(CASE, v.label(), "connect p50", "µs", &p50[i]);
        report.add(CASE, v.label(), "connect p99", "µs", &p99[i]);
        if i > 0 {
            report.add_summary(
                CASE,
                v.label(),
                "connections/s vs (a)",
                "x",
                Summary::ratio(&rate[i], &rate[0]),
                "run-by-run ratio",
            );
        }
    }
    let ebpf = Summary::ratio(&rate[1], &rate[0]).median;
    report.target(
        "capture: egret eBPF connections/s vs no capture",
        ">= 0.97x",
        format!("{ebpf:.3}x"),
        ebpf >= 0.97,
    );
    Ok(())
}

/// The iptables rules of a variant, inside its own namespace.
fn setup(v: Variant, cap: &CaptureNs) -> anyhow::Result<()> {
    let vip = "240.240.9.1";
    let ipt = |args: &[&str]| cap.ns.run("iptables", args).map(|_| ());
    match v {
        Variant::Direct | Variant::Ebpf => Ok(()),
        Variant::Redirect => ipt(&[
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            vip,
            "--dport",
            "80",
            "-j",
            "REDIRECT",
            "--to-ports",
            "15001",
        ]),
        Variant::TproxyNotrack => {
            for chain in ["OUTPUT", "PREROUTING"] {
                ipt(&[
                    "-t", "raw", "-A", chain, "-p", "tcp", "-d", vip, "-j", "NOTRACK",
                ])?;
            }
            // Marked packets loop back through lo, where TPROXY hands them
            // to the transparent listener without rewriting anything.
            ipt(&[
                "-t",
                "mangle",
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "-d",
                vip,
                "-j",
                "MARK",
                "--set-mark",
                "1",
            ])?;
            ipt(&[
                "-t",
                "mangle",
                "-A",
                "PREROUTING",
                "-p",
                "tcp",
                "-d",
                vip,
                "-j",
                "TPROXY",
                "--on-ip",
                "127.0.0.1",
                "--on-port",
                "15001",
                "--tproxy-mark",
                "1",
            ])?;
            cap.ns
                .ip(&["rule", "add", "fwmark", "1", "lookup", "100"])?;
            cap.ns.ip(&[
                "route",
                "add",
                "local",
                "0.0.0.0/0",
                "dev",
                "lo",
                "table",
                "100",
            ])?;
            Ok(())
        }
    }
}
