//! Why an AuthorizationPolicy was refused. Every message names the policy and,
//! where there is one, the field, so `kubectl apply` users can fix it.

/// A policy that cannot be compiled; it is never enforced as "allow everything".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// `spec.action` is not one of Istio's actions.
    #[error(
        "AuthorizationPolicy {namespace}/{name}: spec.action: unknown action {action:?} \
         (expected ALLOW, DENY, AUDIT or CUSTOM)"
    )]
    UnknownAction {
        /// Policy namespace.
        namespace: String,
        /// Policy name.
        name: String,
        /// The value written.
        action: String,
    },
    /// `action: CUSTOM` needs an external authorizer egret does not have yet.
    #[error(
        "AuthorizationPolicy {namespace}/{name}: spec.action: CUSTOM is not supported yet \
         by egret (no external authorization providers); use ALLOW or DENY"
    )]
    CustomNotSupported {
        /// Policy namespace.
        namespace: String,
        /// Policy name.
        name: String,
    },
    /// A field holds a value Istio would reject, or one egret cannot evaluate.
    #[error("AuthorizationPolicy {namespace}/{name}: {field}: {reason}")]
    Field {
        /// Policy namespace.
        namespace: String,
        /// Policy name.
        name: String,
        /// Path of the field, e.g. `spec.rules[0].to[0].operation.ports[1]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}
