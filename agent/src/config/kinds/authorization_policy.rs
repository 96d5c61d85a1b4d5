//! Istio `AuthorizationPolicy`: checked here with the same compiler the
//! waypoint uses, so a policy that would not compile is refused at apply
//! time and never reaches the waypoint (an ALLOW policy can never silently
//! become "allow everything").

use serde_yaml::Value;

use super::{typed_spec, Kind, KindInfo};
use crate::authz::{compile, AuthorizationPolicySpec, AuthzError};
use crate::config::object::{FieldError, ObjectMeta};

/// AuthorizationPolicy `spec`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthorizationPolicy(pub AuthorizationPolicySpec);

impl Kind for AuthorizationPolicy {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "AuthorizationPolicy",
        group: "security.istio.io",
        versions: &["v1", "v1beta1"],
        plural: "authorizationpolicies",
        short_names: &["ap"],
        namespaced: true,
    };

    fn parse(spec: &Value, meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let spec: AuthorizationPolicySpec = typed_spec(spec)?;
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        compile(namespace, &meta.name, &meta.annotations, &spec).map_err(|e| vec![field_error(e)])?;
        Ok(AuthorizationPolicy(spec))
    }
}

/// The compiler's error without its `Kind ns/name:` prefix, which the config
/// layer adds itself.
fn field_error(error: AuthzError) -> FieldError {
    match error {
        AuthzError::Field { field, reason, .. } => FieldError::new(field, reason),
        other => {
            let text = other.to_string();
            let reason = text.split_once("spec.action: ").map_or(text.as_str(), |(_, r)| r);
            FieldError::new("spec.action", reason)
        }
    }
}
