//! AuthorizationPolicy `spec` as written (security.istio.io v1 / v1beta1).
//!
//! Presence is kept where Istio gives it meaning: `rules` missing, `rules: []`
//! and `rules: [{}]` are three different policies, so lists that Istio
//! distinguishes are `Option<Vec<_>>`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `spec` of an AuthorizationPolicy.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// `spec.selector`: workload selector (never applies at a waypoint).
    #[serde(default)]
    pub selector: Option<WorkloadSelector>,
    /// `spec.targetRef` (deprecated single form of `targetRefs`).
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    /// `spec.targetRefs`: the Gateway, GatewayClass, Service or ServiceEntry the policy binds to.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// `spec.action`: `ALLOW` when unset.
    #[serde(default)]
    pub action: Option<String>,
    /// `spec.provider`: only with `CUSTOM`.
    #[serde(default)]
    pub provider: Option<ExtensionProvider>,
    /// `spec.rules`: missing means "never matches".
    #[serde(default)]
    pub rules: Option<Vec<Rule>>,
}

/// `spec.selector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// `matchLabels`.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// One `spec.targetRefs[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// API group: `gateway.networking.k8s.io`, `networking.istio.io`, `""`/`core`.
    #[serde(default)]
    pub group: String,
    /// Kind: `Gateway`, `GatewayClass`, `Service`, `ServiceEntry`.
    #[serde(default)]
    pub kind: String,
    /// Name of the target.
    #[serde(default)]
    pub name: String,
    /// Must be empty or the policy's namespace (cross-namespace refs are not supported).
    #[serde(default)]
    pub namespace: String,
}

/// `spec.provider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    /// Provider name from MeshConfig.
    #[serde(default)]
    pub name: String,
}

/// One `spec.rules[]` entry; an empty rule matches everything.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// `from`: any source when missing; `from: []` is invalid.
    #[serde(default)]
    pub from: Option<Vec<RuleFrom>>,
    /// `to`: any operation when missing; `to: []` is invalid.
    #[serde(default)]
    pub to: Option<Vec<RuleTo>>,
    /// `when`: every condition must hold.
    #[serde(default)]
    pub when: Vec<Condition>,
}

/// `rules[].from[]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleFrom {
    /// `source` (required).
    #[serde(default)]
    pub source: Option<Source>,
}

/// `rules[].to[]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTo {
    /// `operation` (required).
    #[serde(default)]
    pub operation: Option<Operation>,
}

/// `from[].source`: fields AND, values in a list OR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Peer identities `<td>/ns/<ns>/sa/<sa>`.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Negated `principals`.
    #[serde(default)]
    pub not_principals: Vec<String>,
    /// JWT identities `<iss>/<sub>` (HTTP only).
    #[serde(default)]
    pub request_principals: Vec<String>,
    /// Negated `requestPrincipals`.
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    /// Peer namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Negated `namespaces`.
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    /// Source IPs or CIDRs.
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    /// Negated `ipBlocks`.
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    /// Original client IPs or CIDRs.
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    /// Negated `remoteIpBlocks`.
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
    /// `ns/sa` or `sa` (policy namespace); no wildcards, at most 16.
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// Negated `serviceAccounts`.
    #[serde(default)]
    pub not_service_accounts: Vec<String>,
    /// Trust domains of the peer identity.
    #[serde(default)]
    pub trust_domains: Vec<String>,
    /// Negated `trustDomains`.
    #[serde(default)]
    pub not_trust_domains: Vec<String>,
}

/// `to[].operation`: fields AND, values in a list OR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// `:authority` values, case-insensitive (HTTP only).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Negated `hosts`.
    #[serde(default)]
    pub not_hosts: Vec<String>,
    /// Destination ports, as strings of digits.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Negated `ports`.
    #[serde(default)]
    pub not_ports: Vec<String>,
    /// HTTP methods (HTTP only).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Negated `methods`.
    #[serde(default)]
    pub not_methods: Vec<String>,
    /// Paths, with `*` and `{*}`/`{**}` templates (HTTP only).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Negated `paths`.
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// `rules[].when[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// Attribute name, e.g. `request.headers[x-token]`.
    #[serde(default)]
    pub key: String,
    /// Accepted values.
    #[serde(default)]
    pub values: Vec<String>,
    /// Rejected values.
    #[serde(default)]
    pub not_values: Vec<String>,
}
