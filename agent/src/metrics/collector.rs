//! egret's own metrics, read at scrape time from the counters the agent
//! already keeps (kernel STATS map, authorization and DNS counters, the
//! snapshot in force): nothing is counted twice.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::authz::AuthzCounts;

/// What a process can report about itself at scrape time; `None` where it
/// has no such part (the standalone waypoint has no kernel, DNS proxy or
/// workloads).
pub trait Readings: Send + Sync + 'static {
    /// Kernel verdict counters by name (`redirect_service`, …).
    fn kernel_verdicts(&self) -> Option<Vec<(&'static str, u64)>>;
    /// DNS queries by outcome (`local`, `forwarded`, `failed`, `malformed`).
    fn dns_queries(&self) -> Option<[(&'static str, u64); 4]>;
    /// Generation of the config snapshot in force.
    fn config_generation(&self) -> u64;
    /// Workloads enrolled in the kernel right now.
    fn workloads_enrolled(&self) -> Option<u64>;
    /// Authorization decision totals.
    fn authz(&self) -> AuthzCounts;
    /// Kernel denials by workload namespace and reason (`not_in_registry`, …).
    fn kernel_denials(&self) -> Option<Vec<(String, &'static str, u64)>> {
        None
    }
}

/// Encodes [`Readings`] on every scrape.
pub struct ReadingsCollector<R>(pub R);

impl<R> std::fmt::Debug for ReadingsCollector<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadingsCollector")
    }
}

impl<R: Readings> Collector for ReadingsCollector<R> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.0;
        if let Some(verdicts) = r.kernel_verdicts() {
            counters(
                &mut encoder,
                "egret_kernel_verdicts",
                "Decisions of the kernel programs, by verdict",
                verdicts.into_iter().map(|(v, n)| ([("verdict", v)], n)),
            )?;
        }
        if let Some(denials) = r.kernel_denials() {
            let mut metric = encoder.encode_descriptor(
                "egret_kernel_denials",
                "Connects, sends and packets the kernel refused, by workload namespace and reason",
                None,
                MetricType::Counter,
            )?;
            for (namespace, reason, n) in denials {
                let labels = vec![
                    ("namespace".to_string(), namespace),
                    ("reason".to_string(), reason.to_string()),
                ];
                ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
            }
        }
        let a = r.authz();
        counters(
            &mut encoder,
            "egret_authz_decisions",
            "AuthorizationPolicy decisions at the waypoint, by outcome and reason",
            [
                ("deny", "denied_by_policy", a.denied_by_policy),
                ("allow", "allowed_by_policy", a.allowed_by_policy),
                ("deny", "no_allow_matched", a.no_allow_matched),
                ("allow", "no_policies", a.no_policies),
                ("audit", "audit_policy_matched", a.audited),
                ("dry_run", "would_deny", a.dry_run_would_deny),
                ("dry_run", "would_allow", a.dry_run_would_allow),
            ]
            .map(|(decision, reason, n)| ([("decision", decision), ("reason", reason)], n)),
        )?;
        if let Some(queries) = r.dns_queries() {
            counters(
                &mut encoder,
                "egret_dns_queries",
                "DNS queries from enrolled workloads, by outcome",
                queries.map(|(outcome, n)| ([("outcome", outcome)], n)),
            )?;
        }
        gauge(
            &mut encoder,
            "egret_config_generation",
            "Generation of the config snapshot in force",
            r.config_generation(),
        )?;
        if let Some(n) = r.workloads_enrolled() {
            gauge(
                &mut encoder,
                "egret_workloads_enrolled",
                "Workloads whose connections the kernel captures",
                n,
            )?;
        }
        Ok(())
    }
}

/// One counter family with constant label sets.
fn counters<const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = ([(&'static str, &'static str); N], u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use super::*;

    struct Fixed {
        node: bool,
    }

    impl Readings for Fixed {
        fn kernel_verdicts(&self) -> Option<Vec<(&'static str, u64)>> {
            self.node
                .then(|| vec![("redirect_service", 3), ("redirect_dns", 5)])
        }
        fn dns_queries(&self) -> Option<[(&'static str, u64); 4]> {
            self.node.then_some([
                ("local", 4),
                ("forwarded", 1),
                ("failed", 0),
                ("malformed", 0),
            ])
        }
        fn config_generation(&self) -> u64 {
            9
        }
        fn workloads_enrolled(&self) -> Option<u64> {
            self.node.then_some(2)
        }
        fn authz(&self) -> AuthzCounts {
            AuthzCounts {
                denied_by_policy: 1,
                no_allow_matched: 6,
                ..AuthzCounts::default()
            }
        }
        fn kernel_denials(&self) -> Option<Vec<(String, &'static str, u64)>> {
            self.node
                .then(|| vec![("bookinfo".to_string(), "not_in_registry", 4)])
        }
    }

    fn exposition(node: bool) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ReadingsCollector(Fixed { node })));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn node_exposition() {
        let text = exposition(true);
        for line in [
            "# TYPE egret_kernel_verdicts counter\n",
            "egret_kernel_verdicts_total{verdict=\"redirect_service\"} 3\n",
            "egret_kernel_verdicts_total{verdict=\"redirect_dns\"} 5\n",
            "egret_authz_decisions_total{decision=\"deny\",reason=\"denied_by_policy\"} 1\n",
            "egret_authz_decisions_total{decision=\"deny\",reason=\"no_allow_matched\"} 6\n",
            "egret_authz_decisions_total{decision=\"allow\",reason=\"no_policies\"} 0\n",
            "egret_dns_queries_total{outcome=\"local\"} 4\n",
            "egret_dns_queries_total{outcome=\"forwarded\"} 1\n",
            "# TYPE egret_config_generation gauge\n",
            "egret_config_generation 9\n",
            "egret_workloads_enrolled 2\n",
            "# TYPE egret_kernel_denials counter\n",
            "egret_kernel_denials_total{namespace=\"bookinfo\",reason=\"not_in_registry\"} 4\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn waypoint_exposition_leaves_out_node_parts() {
        let text = exposition(false);
        assert!(text.contains("egret_config_generation 9\n"), "{text}");
        assert!(text.contains("egret_authz_decisions_total"), "{text}");
        for absent in [
            "egret_kernel_verdicts",
            "egret_dns_queries",
            "egret_workloads_enrolled",
            "egret_kernel_denials",
        ] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
    }
}
