//! A compiled AuthorizationPolicy: its identity, action, targets and rules.

use std::fmt;
use std::sync::Arc;

use super::request::RequestAttrs;
use super::rule::CompiledRule;

/// What a policy does when it matches (`CUSTOM` is refused at compile time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Allow matching requests; once an ALLOW policy applies, others are denied.
    Allow,
    /// Deny matching requests.
    Deny,
    /// Report matching requests; never changes the decision.
    Audit,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
        })
    }
}

/// Where a policy attaches (from `targetRefs`, `selector`, or neither).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PolicyTarget {
    /// A Gateway (waypoint) in the policy's namespace.
    Gateway {
        /// Gateway namespace (the policy's).
        namespace: String,
        /// Gateway name.
        name: String,
    },
    /// Every Gateway of a class, e.g. `istio-waypoint`.
    GatewayClass {
        /// Class name.
        name: String,
    },
    /// A ServiceEntry in the policy's namespace, for traffic to it through a waypoint.
    ServiceEntry {
        /// ServiceEntry namespace (the policy's).
        namespace: String,
        /// ServiceEntry name.
        name: String,
    },
    /// A Kubernetes Service in the policy's namespace, through a waypoint.
    Service {
        /// Service namespace (the policy's).
        namespace: String,
        /// Service name.
        name: String,
    },
    /// A workload selector: not applied at a waypoint.
    Selector,
    /// No selector and no targetRefs: namespace-wide, not applied at a waypoint.
    NamespaceWide,
    /// Every waypoint Gateway and ServiceEntry of a namespace: only the
    /// fail-closed stand-in of a policy whose targets cannot be read
    /// ([`super::fail_closed`]).
    Namespace {
        /// The policy's namespace.
        namespace: String,
    },
}

/// Names a policy in decisions and logs: `ns/name` plus its action. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyRef(Arc<PolicyId>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct PolicyId {
    namespace: String,
    name: String,
    action: Action,
}

impl PolicyRef {
    /// A reference to policy `namespace/name` with `action`.
    pub fn new(namespace: &str, name: &str, action: Action) -> Self {
        PolicyRef(Arc::new(PolicyId {
            namespace: namespace.to_string(),
            name: name.to_string(),
            action,
        }))
    }

    /// Policy namespace.
    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    /// Policy name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Policy action.
    pub fn action(&self) -> Action {
        self.0.action
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.namespace, self.0.name)
    }
}

/// A policy ready to evaluate; built by [`super::compile`].
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub(crate) reference: PolicyRef,
    pub(crate) dry_run: bool,
    pub(crate) targets: Vec<PolicyTarget>,
    /// Empty when `rules` is missing or `[]`: the policy never matches.
    pub(crate) rules: Vec<CompiledRule>,
}

impl CompiledPolicy {
    /// `ns/name` and action.
    pub fn policy_ref(&self) -> &PolicyRef {
        &self.reference
    }

    /// The policy's action.
    pub fn action(&self) -> Action {
        self.reference.action()
    }

    /// Whether `istio.io/dry-run: "true"`: evaluated and reported, never enforced.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Where the policy attaches.
    pub fn targets(&self) -> &[PolicyTarget] {
        &self.targets
    }

    /// Whether any rule matches the request, with Istio's TCP handling for the action.
    pub fn matches(&self, req: &RequestAttrs<'_>) -> bool {
        let narrow = self.action() == Action::Allow;
        self.rules.iter().any(|r| r.matches(req, narrow))
    }
}
