//! All compiled policies, indexed by what they attach to, and Istio's decision
//! order for one request at a waypoint.
//!
//! Which policies apply to a request (Istio's `ShouldAttachPolicy` for waypoints):
//! - `targetRefs` Gateway: the waypoint Gateway of that name in the policy's namespace;
//! - `targetRefs` GatewayClass: every waypoint of that class, only for a policy in the
//!   root namespace (elsewhere Istio marks it `Invalid` and ignores it: a warning says so);
//! - `targetRefs` ServiceEntry / Service: requests to that object, when the policy is in
//!   its namespace;
//! - `selector` or no target at all: never at a waypoint (reported by [`PolicySet::warnings`]);
//! - a whole namespace: only the fail-closed stand-in of a policy whose targets could not be
//!   read ([`super::fail_closed`]) — every waypoint and ServiceEntry there.

use std::collections::HashMap;
use std::sync::Arc;

use super::policy::{Action, CompiledPolicy, PolicyRef, PolicyTarget};
use super::request::RequestAttrs;

/// The waypoint a request passes and the service it is for.
#[derive(Clone, Copy, Debug)]
pub struct TargetKey<'a> {
    /// The waypoint Gateway handling the request.
    pub gateway: GatewayKey<'a>,
    /// The ServiceEntry the request is addressed to, if any.
    pub service_entry: Option<NamespacedName<'a>>,
    /// The Kubernetes Service the request is addressed to, if any.
    pub service: Option<NamespacedName<'a>>,
}

/// A waypoint Gateway.
#[derive(Clone, Copy, Debug)]
pub struct GatewayKey<'a> {
    /// Gateway namespace.
    pub namespace: &'a str,
    /// Gateway name.
    pub name: &'a str,
    /// `spec.gatewayClassName`, e.g. `istio-waypoint`.
    pub class: &'a str,
}

/// A namespaced object.
#[derive(Clone, Copy, Debug)]
pub struct NamespacedName<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
}

/// Why a request was allowed or denied; doubles as the metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecisionReason {
    /// A DENY policy matched.
    DeniedBy,
    /// An ALLOW policy matched.
    AllowedBy,
    /// ALLOW policies apply to the target and none matched.
    NoAllowMatched,
    /// No enforced ALLOW or DENY policy decided: allowed by default.
    NoPolicies,
}

impl DecisionReason {
    /// Stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionReason::DeniedBy => "denied_by_policy",
            DecisionReason::AllowedBy => "allowed_by_policy",
            DecisionReason::NoAllowMatched => "no_allow_matched",
            DecisionReason::NoPolicies => "no_policies",
        }
    }
}

/// The outcome of [`PolicySet::evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The enforced policy that decided, for `DeniedBy` / `AllowedBy`.
    pub policy: Option<PolicyRef>,
    /// Why.
    pub reason: DecisionReason,
    /// AUDIT policies that matched (they never change the decision).
    pub audit: Vec<PolicyRef>,
    /// Dry-run policies and whether each would allow the request if enforced: a matching
    /// DENY reports `false`; an ALLOW reports whether it matched. Non-matching DENY
    /// policies are left out.
    pub dry_run: Vec<(PolicyRef, bool)>,
}

/// Policies of one target, split by how they take part in the decision.
#[derive(Debug, Default)]
struct Bucket {
    deny: Vec<Arc<CompiledPolicy>>,
    allow: Vec<Arc<CompiledPolicy>>,
    audit: Vec<Arc<CompiledPolicy>>,
    dry_run: Vec<Arc<CompiledPolicy>>,
}

impl Bucket {
    fn add(&mut self, p: &Arc<CompiledPolicy>) {
        let list = match (p.dry_run(), p.action()) {
            (true, _) => &mut self.dry_run,
            (false, Action::Deny) => &mut self.deny,
            (false, Action::Allow) => &mut self.allow,
            (false, Action::Audit) => &mut self.audit,
        };
        list.push(p.clone());
    }
}

type ByName = HashMap<String, HashMap<String, Bucket>>;

/// Every compiled policy of the cluster, indexed by target. Immutable: build a new
/// one on each config change and swap it in.
#[derive(Debug, Default)]
pub struct PolicySet {
    gateways: ByName,
    classes: HashMap<String, Bucket>,
    service_entries: ByName,
    services: ByName,
    namespaces: HashMap<String, Bucket>,
    warnings: Vec<String>,
    len: usize,
}

impl PolicySet {
    /// Indexes `policies`; order of evaluation within a target is by `namespace/name`.
    /// `root_namespace` is MeshConfig's `rootNamespace` (GatewayClass targets).
    pub fn new(mut policies: Vec<Arc<CompiledPolicy>>, root_namespace: &str) -> Self {
        policies.sort_by(|a, b| {
            let (a, b) = (a.policy_ref(), b.policy_ref());
            (a.namespace(), a.name()).cmp(&(b.namespace(), b.name()))
        });
        let mut set = PolicySet {
            len: policies.len(),
            ..Default::default()
        };
        for p in &policies {
            for target in p.targets() {
                let bucket = match target {
                    PolicyTarget::Gateway { namespace, name } => {
                        nested(&mut set.gateways, namespace, name)
                    }
                    PolicyTarget::GatewayClass { name } => {
                        if p.policy_ref().namespace() != root_namespace {
                            set.warnings.push(format!(
                                "AuthorizationPolicy {}: ignored: an AuthorizationPolicy must be in \
                                 the root namespace `{root_namespace}` when referencing a \
                                 GatewayClass",
                                p.policy_ref()
                            ));
                            continue;
                        }
                        set.classes.entry(name.clone()).or_default()
                    }
                    PolicyTarget::ServiceEntry { namespace, name } => {
                        nested(&mut set.service_entries, namespace, name)
                    }
                    PolicyTarget::Service { namespace, name } => {
                        nested(&mut set.services, namespace, name)
                    }
                    PolicyTarget::Namespace { namespace } => {
                        set.namespaces.entry(namespace.clone()).or_default()
                    }
                    PolicyTarget::Selector => {
                        set.warnings.push(format!(
                            "AuthorizationPolicy {}: selector policies do not apply at a waypoint; \
                             use targetRefs",
                            p.policy_ref()
                        ));
                        continue;
                    }
                    PolicyTarget::NamespaceWide => {
                        set.warnings.push(format!(
                            "AuthorizationPolicy {}: policies without targetRefs do not apply at a \
                             waypoint; use targetRefs",
                            p.policy_ref()
                        ));
                        continue;
                    }
                };
                bucket.add(p);
            }
        }
        set
    }

    /// How many policies the set was built from.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set was built from no policies.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Policies that were accepted but never apply at a waypoint, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Decides one request: any matching DENY denies; with no ALLOW policy on the
    /// target it is allowed; a matching ALLOW allows; otherwise it is denied.
    /// AUDIT and dry-run policies are evaluated and reported only.
    pub fn evaluate(&self, target: &TargetKey<'_>, req: &RequestAttrs<'_>) -> PolicyDecision {
        let buckets = [
            lookup(
                &self.gateways,
                target.gateway.namespace,
                target.gateway.name,
            ),
            self.classes.get(target.gateway.class),
            target
                .service_entry
                .and_then(|o| lookup(&self.service_entries, o.namespace, o.name)),
            target
                .service
                .and_then(|o| lookup(&self.services, o.namespace, o.name)),
            self.namespaces.get(target.gateway.namespace),
            target
                .service_entry
                .filter(|o| o.namespace != target.gateway.namespace)
                .and_then(|o| self.namespaces.get(o.namespace)),
        ];
        let policies = |pick: fn(&Bucket) -> &Vec<Arc<CompiledPolicy>>| {
            buckets
                .into_iter()
                .flatten()
                .flat_map(move |b| pick(b).iter())
        };

        let mut audit: Vec<PolicyRef> = Vec::new();
        for p in policies(|b| &b.audit) {
            // A policy bound to both the Gateway and the service is reported once.
            if p.matches(req) && !audit.contains(p.policy_ref()) {
                audit.push(p.policy_ref().clone());
            }
        }
        let mut dry_run: Vec<(PolicyRef, bool)> = Vec::new();
        for p in policies(|b| &b.dry_run) {
            if dry_run.iter().any(|(r, _)| r == p.policy_ref()) {
                continue;
            }
            let matched = p.matches(req);
            match p.action() {
                Action::Deny if matched => dry_run.push((p.policy_ref().clone(), false)),
                Action::Allow => dry_run.push((p.policy_ref().clone(), matched)),
                _ => {}
            }
        }

        let decide = move |allowed, policy: Option<&Arc<CompiledPolicy>>, reason| PolicyDecision {
            allowed,
            policy: policy.map(|p| p.policy_ref().clone()),
            reason,
            audit,
            dry_run,
        };
        if let Some(p) = policies(|b| &b.deny).find(|p| p.matches(req)) {
            return decide(false, Some(p), DecisionReason::DeniedBy);
        }
        let mut any_allow = false;
        for p in policies(|b| &b.allow) {
            any_allow = true;
            if p.matches(req) {
                return decide(true, Some(p), DecisionReason::AllowedBy);
            }
        }
        if any_allow {
            decide(false, None, DecisionReason::NoAllowMatched)
        } else {
            decide(true, None, DecisionReason::NoPolicies)
        }
    }
}

fn nested<'m>(map: &'m mut ByName, namespace: &str, name: &str) -> &'m mut Bucket {
    map.entry(namespace.to_string())
        .or_default()
        .entry(name.to_string())
        .or_default()
}

fn lookup<'m>(map: &'m ByName, namespace: &str, name: &str) -> Option<&'m Bucket> {
    map.get(namespace)?.get(name)
}
