//! AuthorizationPolicy: compiled once per config change, evaluated per request at the waypoint.
//!
//! [`compile`] validates one policy the way Istio's webhook does and precompiles its
//! matchers; [`PolicySet`] indexes every compiled policy by the Gateway, GatewayClass,
//! ServiceEntry or Service it targets and applies Istio's decision order to a
//! [`RequestAttrs`]; [`AuthzStats`] counts the outcomes. [`fail_closed`] stands
//! in for a policy that cannot be understood and has no last good version.

mod compile;
mod error;
mod fail_closed;
mod identity;
mod path;
mod policy;
mod request;
mod rule;
mod set;
mod spec;
mod stats;
mod value_pattern;

#[cfg(test)]
mod tests;

pub use compile::{compile, DRY_RUN_ANNOTATION};
pub use error::AuthzError;
pub use fail_closed::fail_closed;
pub use policy::{Action, CompiledPolicy, PolicyRef, PolicyTarget};
pub use request::{HttpAttrs, RequestAttrs};
pub use set::{DecisionReason, GatewayKey, NamespacedName, PolicyDecision, PolicySet, TargetKey};
pub use spec::{
    AuthorizationPolicySpec, Condition, ExtensionProvider, Operation, PolicyTargetReference, Rule,
    RuleFrom, RuleTo, Source, WorkloadSelector,
};
pub use stats::{AuthzCounts, AuthzStats};

/// Body of the waypoint's deny reply (403, `content-type: text/plain`), as Envoy sends it.
pub const DENY_BODY: &str = "RBAC: access denied";
