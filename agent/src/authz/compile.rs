//! Validates an AuthorizationPolicy the way Istio's webhook does and compiles
//! its matchers once, so a request check only compares.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::header::HeaderName;
use ipnet::IpNet;

use super::error::AuthzError;
use super::identity::{NamespaceMatch, PrincipalMatch};
use super::path::PathMatch;
use super::policy::{Action, CompiledPolicy, PolicyRef, PolicyTarget};
use super::rule::{Check, CompiledRule, HeaderMatch, Values};
use super::spec::{AuthorizationPolicySpec, Condition, Operation, PolicyTargetReference, Source};
use super::value_pattern::ValuePattern;

/// Annotation that turns a policy into a dry run.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";
/// Istio's limit on `targetRefs` and on `serviceAccounts`.
const MAX_REFS: usize = 16;
/// Istio's limit on one `serviceAccounts` value.
const MAX_SERVICE_ACCOUNT_LEN: usize = 320;

/// Compiles policy `namespace/name`; any error names the policy and the field.
pub fn compile(
    namespace: &str,
    name: &str,
    annotations: &BTreeMap<String, String>,
    spec: &AuthorizationPolicySpec,
) -> Result<CompiledPolicy, AuthzError> {
    let cx = Cx { namespace, name };
    let action = cx.action(spec)?;
    let dry_run = cx.dry_run(annotations, action)?;
    if spec.provider.is_some() {
        return Err(cx.field(
            "spec.provider",
            format!("must not be set with action {action}"),
        ));
    }
    if action == Action::Deny && spec.rules.is_none() {
        return Err(cx.field(
            "spec.rules",
            "DENY action without `rules` is meaningless as it will never be triggered; \
             add an empty rule `{}` to deny every request",
        ));
    }
    let targets = cx.targets(spec)?;
    let mut rules = Vec::new();
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let at = format!("spec.rules[{i}]");
        let from = cx.clauses(
            &at,
            "from",
            "source",
            rule.from.as_deref(),
            |f| f.source.as_ref(),
            |at, source| cx.source(at, source),
        )?;
        let to = cx.clauses(
            &at,
            "to",
            "operation",
            rule.to.as_deref(),
            |t| t.operation.as_ref(),
            |at, op| cx.operation(at, op),
        )?;
        let when = rule
            .when
            .iter()
            .enumerate()
            .map(|(j, c)| cx.condition(&format!("{at}.when[{j}]"), c))
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(CompiledRule::new(from, to, when));
    }
    Ok(CompiledPolicy {
        reference: PolicyRef::new(namespace, name, action),
        dry_run,
        targets,
        rules,
    })
}

/// Where policy `namespace/name` attaches, by its `selector` / `targetRef`
/// / `targetRefs` alone (the rest of `spec` is not looked at).
pub(crate) fn targets_of(
    namespace: &str,
    name: &str,
    spec: &AuthorizationPolicySpec,
) -> Result<Vec<PolicyTarget>, AuthzError> {
    Cx { namespace, name }.targets(spec)
}

/// The policy being compiled, for error messages.
struct Cx<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl Cx<'_> {
    /// A rule's `from` or `to` list: absent is no constraint, empty is an
    /// error, and every entry must carry its `source` / `operation`.
    fn clauses<T, U, V>(
        &self,
        at: &str,
        list_name: &str,
        item_name: &str,
        list: Option<&[T]>,
        inner: impl Fn(&T) -> Option<&U>,
        compile: impl Fn(&str, &U) -> Result<V, AuthzError>,
    ) -> Result<Vec<V>, AuthzError> {
        let Some(list) = list else {
            return Ok(Vec::new());
        };
        if list.is_empty() {
            return Err(self.field(&format!("{at}.{list_name}"), "must not be empty"));
        }
        list.iter()
            .enumerate()
            .map(|(j, item)| {
                let at = format!("{at}.{list_name}[{j}].{item_name}");
                let value = inner(item).ok_or_else(|| self.field(&at, "must be set"))?;
                compile(&at, value)
            })
            .collect()
    }

    fn field(&self, field: &str, reason: impl Into<String>) -> AuthzError {
        AuthzError::Field {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    fn action(&self, spec: &AuthorizationPolicySpec) -> Result<Action, AuthzError> {
        match spec.action.as_deref().unwrap_or("ALLOW") {
            "ALLOW" => Ok(Action::Allow),
            "DENY" => Ok(Action::Deny),
            "AUDIT" => Ok(Action::Audit),
            "CUSTOM" => Err(AuthzError::CustomNotSupported {
                namespace: self.namespace.to_string(),
                name: self.name.to_string(),
            }),
            other => Err(AuthzError::UnknownAction {
                namespace: self.namespace.to_string(),
                name: self.name.to_string(),
                action: other.to_string(),
            }),
        }
    }

    /// `istio.io/dry-run` takes Go's ParseBool values and only ALLOW/DENY.
    fn dry_run(
        &self,
        annotations: &BTreeMap<String, String>,
        action: Action,
    ) -> Result<bool, AuthzError> {
        let Some(value) = annotations.get(DRY_RUN_ANNOTATION) else {
            return Ok(false);
        };
        let field = format!("metadata.annotations[{DRY_RUN_ANNOTATION}]");
        if action == Action::Audit {
            return Err(self.field(
                &field,
                "dry-run only supports action ALLOW or DENY, found AUDIT",
            ));
        }
        match value.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            other => Err(self.field(&field, format!("invalid boolean {other:?}"))),
        }
    }

    fn targets(&self, spec: &AuthorizationPolicySpec) -> Result<Vec<PolicyTarget>, AuthzError> {
        let set = usize::from(spec.selector.is_some())
            + usize::from(spec.target_ref.is_some())
            + usize::from(!spec.target_refs.is_empty());
        if set > 1 {
            return Err(self.field(
                "spec",
                "only one of selector, targetRef or targetRefs can be set",
            ));
        }
        if spec.target_refs.len() > MAX_REFS {
            return Err(self.field(
                "spec.targetRefs",
                format!(
                    "may not have more than {MAX_REFS} items, found {}",
                    spec.target_refs.len()
                ),
            ));
        }
        if let Some(selector) = &spec.selector {
            for (k, v) in &selector.match_labels {
                if k.is_empty() || k.contains('*') || v.contains('*') {
                    return Err(self.field(
                        "spec.selector.matchLabels",
                        format!("empty keys and wildcards are not supported: {k}={v}"),
                    ));
                }
            }
            return Ok(vec![PolicyTarget::Selector]);
        }
        if let Some(r) = &spec.target_ref {
            return Ok(vec![self.target("spec.targetRef", r)?]);
        }
        if spec.target_refs.is_empty() {
            return Ok(vec![PolicyTarget::NamespaceWide]);
        }
        spec.target_refs
            .iter()
            .enumerate()
            .map(|(i, r)| self.target(&format!("spec.targetRefs[{i}]"), r))
            .collect()
    }

    fn target(&self, at: &str, r: &PolicyTargetReference) -> Result<PolicyTarget, AuthzError> {
        if r.name.is_empty() {
            return Err(self.field(&format!("{at}.name"), "must be set"));
        }
        if !r.namespace.is_empty() {
            return Err(self.field(
                &format!("{at}.namespace"),
                "must not be set; cross namespace referencing is not supported",
            ));
        }
        let (namespace, name) = (self.namespace.to_string(), r.name.clone());
        let group = if r.group.is_empty() {
            "core"
        } else {
            r.group.as_str()
        };
        match (group, r.kind.as_str()) {
            ("gateway.networking.k8s.io", "Gateway") => {
                Ok(PolicyTarget::Gateway { namespace, name })
            }
            ("gateway.networking.k8s.io", "GatewayClass") => {
                Ok(PolicyTarget::GatewayClass { name })
            }
            ("networking.istio.io", "ServiceEntry") => {
                Ok(PolicyTarget::ServiceEntry { namespace, name })
            }
            ("core", "Service") => Ok(PolicyTarget::Service { namespace, name }),
            _ => Err(self.field(
                at,
                format!(
                    "targetRef must be a gateway.networking.k8s.io Gateway or GatewayClass, a \
                     networking.istio.io ServiceEntry or a core Service, found {}/{}",
                    r.group, r.kind
                ),
            )),
        }
    }

    fn source(&self, at: &str, s: &Source) -> Result<Vec<Check>, AuthzError> {
        let sa_set = !s.service_accounts.is_empty() || !s.not_service_accounts.is_empty();
        let ident_set = !s.principals.is_empty()
            || !s.not_principals.is_empty()
            || !s.namespaces.is_empty()
            || !s.not_namespaces.is_empty();
        if sa_set && ident_set {
            return Err(self.field(
                at,
                "cannot set serviceAccounts with namespaces or principals",
            ));
        }
        let mut checks = Vec::new();
        let strs = |field: &str, not: &str, a: &[String], n: &[String]| {
            self.values(at, field, not, a, n, |v| Ok(ValuePattern::parse(v)))
        };
        push(
            &mut checks,
            Check::Principal,
            self.values(
                at,
                "principals",
                "notPrincipals",
                &s.principals,
                &s.not_principals,
                PrincipalMatch::compile,
            )?,
        );
        push(
            &mut checks,
            Check::RequestAuth,
            strs(
                "requestPrincipals",
                "notRequestPrincipals",
                &s.request_principals,
                &s.not_request_principals,
            )?,
        );
        push(
            &mut checks,
            Check::Namespace,
            self.values(
                at,
                "namespaces",
                "notNamespaces",
                &s.namespaces,
                &s.not_namespaces,
                NamespaceMatch::compile,
            )?,
        );
        let tds = self.values(
            at,
            "trustDomains",
            "notTrustDomains",
            &s.trust_domains,
            &s.not_trust_domains,
            trust_domain,
        )?;
        push(&mut checks, Check::TrustDomain, tds);
        for (field, list) in [
            ("serviceAccounts", &s.service_accounts),
            ("notServiceAccounts", &s.not_service_accounts),
        ] {
            if list.len() > MAX_REFS {
                return Err(self.field(
                    &format!("{at}.{field}"),
                    format!(
                        "may not have more than {MAX_REFS} values, found {}",
                        list.len()
                    ),
                ));
            }
        }
        let sas = self.values(
            at,
            "serviceAccounts",
            "notServiceAccounts",
            &s.service_accounts,
            &s.not_service_accounts,
            |v| service_account(self.namespace, v),
        )?;
        push(&mut checks, Check::ServiceAccount, sas);
        push(
            &mut checks,
            Check::SourceIp,
            self.values(
                at,
                "ipBlocks",
                "notIpBlocks",
                &s.ip_blocks,
                &s.not_ip_blocks,
                cidr,
            )?,
        );
        push(
            &mut checks,
            Check::RemoteIp,
            self.values(
                at,
                "remoteIpBlocks",
                "notRemoteIpBlocks",
                &s.remote_ip_blocks,
                &s.not_remote_ip_blocks,
                cidr,
            )?,
        );
        if checks.is_empty() {
            return Err(self.field(at, "must not be empty"));
        }
        Ok(checks)
    }

    fn operation(&self, at: &str, o: &Operation) -> Result<Vec<Check>, AuthzError> {
        let mut checks = Vec::new();
        let hosts = self.values(at, "hosts", "notHosts", &o.hosts, &o.not_hosts, |v| {
            Ok(ValuePattern::parse_ignore_case(v))
        })?;
        push(&mut checks, Check::Host, hosts);
        let methods = self.values(
            at,
            "methods",
            "notMethods",
            &o.methods,
            &o.not_methods,
            |v| Ok(ValuePattern::parse(v)),
        )?;
        push(&mut checks, Check::Method, methods);
        push(
            &mut checks,
            Check::Path,
            self.values(
                at,
                "paths",
                "notPaths",
                &o.paths,
                &o.not_paths,
                PathMatch::compile,
            )?,
        );
        push(
            &mut checks,
            Check::DestinationPort,
            self.values(at, "ports", "notPorts", &o.ports, &o.not_ports, port)?,
        );
        if checks.is_empty() {
            return Err(self.field(at, "must not be empty"));
        }
        Ok(checks)
    }

    fn condition(&self, at: &str, c: &Condition) -> Result<Check, AuthzError> {
        let key = c.key.as_str();
        let at = if key.is_empty() {
            format!("{at}.key")
        } else {
            format!("{at}[{key}]")
        };
        if key.is_empty() {
            return Err(self.field(&at, "must not be empty"));
        }
        if c.values.is_empty() && c.not_values.is_empty() {
            return Err(self.field(&at, "at least one of `values` or `notValues` must be set"));
        }
        let vals = |parse: &dyn Fn(&str) -> Result<ValuePattern, String>| {
            self.values(&at, "values", "notValues", &c.values, &c.not_values, parse)
        };
        let strs = || vals(&|v| Ok(ValuePattern::parse(v)));
        let check = match key {
            "source.ip" => Check::SourceIp(self.values(
                &at,
                "values",
                "notValues",
                &c.values,
                &c.not_values,
                cidr,
            )?),
            "remote.ip" => Check::RemoteIp(self.values(
                &at,
                "values",
                "notValues",
                &c.values,
                &c.not_values,
                cidr,
            )?),
            "destination.ip" => Check::DestinationIp(self.values(
                &at,
                "values",
                "notValues",
                &c.values,
                &c.not_values,
                cidr,
            )?),
            "destination.port" => Check::DestinationPort(self.values(
                &at,
                "values",
                "notValues",
                &c.values,
                &c.not_values,
                port,
            )?),
            "source.namespace" => Check::Namespace(self.values(
                &at,
                "values",
                "notValues",
                &c.values,
                &c.not_values,
                NamespaceMatch::compile,
            )?),
            "source.principal" => Check::Principal(self.values(
                &at,
                "values",
                "notValues",
                &c.values,
                &c.not_values,
                PrincipalMatch::compile,
            )?),
            "source.trustDomain" => Check::TrustDomain(vals(&trust_domain)?),
            "source.serviceAccount" => Check::ServiceAccount(self.values(
                &at,
                "values",
                "notValues",
                &c.values,
                &c.not_values,
                |v| service_account(self.namespace, v),
            )?),
            "connection.sni" => Check::Sni(strs()?),
            "request.auth.principal" | "request.auth.audiences" | "request.auth.presenter" => {
                Check::RequestAuth(strs()?)
            }
            _ if key.starts_with("request.auth.claims") => {
                map_key(key, "request.auth.claims").map_err(|e| self.field(&at, e))?;
                Check::RequestAuth(strs()?)
            }
            _ if key.starts_with("request.headers") => {
                let name = map_key(key, "request.headers").map_err(|e| self.field(&at, e))?;
                let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| self.field(&at, format!("invalid header name {name:?}")))?;
                let values =
                    self.values(&at, "values", "notValues", &c.values, &c.not_values, |v| {
                        Ok(if v == "*" {
                            HeaderMatch::Present
                        } else {
                            HeaderMatch::Value(ValuePattern::parse(v))
                        })
                    })?;
                Check::Header(name, values)
            }
            _ if key.starts_with("experimental.envoy.filters.") => {
                return Err(self.field(
                    &at,
                    "experimental Envoy filter metadata is not supported by egret",
                ))
            }
            "destination.namespace" => {
                return Err(self.field(&at, "replaced by the policy's metadata.namespace"))
            }
            _ if key.starts_with("destination.labels") => {
                return Err(self.field(&at, "replaced by the workload selector"))
            }
            "destination.name" | "destination.user" => {
                return Err(self.field(&at, "deprecated attribute, only supported in v1alpha1"))
            }
            _ => return Err(self.field(&at, format!("unknown attribute {key:?}"))),
        };
        Ok(check)
    }

    /// Parses the positive and negative lists of one attribute, rejecting empty values.
    fn values<T>(
        &self,
        at: &str,
        field: &str,
        not_field: &str,
        values: &[String],
        not_values: &[String],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Values<T>, AuthzError> {
        let one = |f: &str, list: &[String]| -> Result<Vec<T>, AuthzError> {
            list.iter()
                .enumerate()
                .map(|(i, v)| {
                    if v.is_empty() {
                        return Err(
                            self.field(&format!("{at}.{f}[{i}]"), "empty value not allowed")
                        );
                    }
                    parse(v).map_err(|e| self.field(&format!("{at}.{f}[{i}]"), e))
                })
                .collect()
        };
        Ok(Values {
            any_of: one(field, values)?,
            none_of: one(not_field, not_values)?,
        })
    }
}

/// Adds a check unless neither list was given.
fn push<T>(checks: &mut Vec<Check>, make: impl FnOnce(Values<T>) -> Check, v: Values<T>) {
    if !v.any_of.is_empty() || !v.none_of.is_empty() {
        checks.push(make(v));
    }
}

/// `1.2.3.4` or `10.0.0.0/8`; host bits are ignored as Envoy does.
fn cidr(v: &str) -> Result<IpNet, String> {
    if v.contains('/') {
        v.parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| format!("bad CIDR range {v:?}"))
    } else {
        v.parse::<IpAddr>()
            .map(|ip| IpNet::from(ip.to_canonical()))
            .map_err(|_| format!("bad IP address {v:?}"))
    }
}

/// Ports are decimal strings in 0..=65535.
fn port(v: &str) -> Result<u16, String> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port {v:?}: must be a number"));
    }
    v.parse::<u16>()
        .map_err(|_| format!("bad port {v:?}: must be in 0-65535"))
}

/// `ns/sa` or `sa` (the policy's namespace); Istio allows no wildcards.
fn service_account(policy_ns: &str, v: &str) -> Result<(Box<str>, Box<str>), String> {
    if v.contains('*') {
        return Err("wildcards are not allowed".into());
    }
    if v.len() > MAX_SERVICE_ACCOUNT_LEN {
        return Err(format!(
            "value cannot exceed {MAX_SERVICE_ACCOUNT_LEN} characters"
        ));
    }
    let (ns, sa) = v.split_once('/').unwrap_or((policy_ns, v));
    if ns.is_empty() || sa.is_empty() || sa.contains('/') {
        return Err(format!(
            "expected 'serviceAccount' or 'namespace/serviceAccount', found {v:?}"
        ));
    }
    Ok((ns.into(), sa.into()))
}

/// Trust domains: one wildcard at most, only at an end, no `/`.
fn trust_domain(v: &str) -> Result<ValuePattern, String> {
    let stars = v.matches('*').count();
    if stars > 1 || (stars == 1 && v != "*" && !v.starts_with('*') && !v.ends_with('*')) {
        return Err(format!(
            "a wildcard is only allowed once, at the start or end, found {v:?}"
        ));
    }
    if v.contains('/') {
        return Err(format!("trust domain must not contain '/', found {v:?}"));
    }
    Ok(ValuePattern::parse(v))
}

/// `prefix[name]` -> `name`.
fn map_key<'k>(key: &'k str, prefix: &str) -> Result<&'k str, String> {
    key.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('['))
        .and_then(|r| r.strip_suffix(']'))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("bad key {key:?}: should have the form {prefix}[name]"))
}
