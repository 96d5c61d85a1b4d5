//! Each `from` / `to` / `when` field and its `not` form, one table.

use super::{policy, Req};

/// Whether an ALLOW policy with exactly `rule` (one `rules[]` entry, YAML) matches.
fn rule_matches(rule: &str, req: &Req) -> bool {
    let yaml = format!(
        "targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}}]\n\
         rules:\n- {}",
        rule.trim().replace('\n', "\n  ")
    );
    policy("istio-egress", "t", &yaml).matches(&req.attrs())
}

#[test]
fn fields_and_not_forms() {
    let http = Req::http;
    let cases: Vec<(&str, &str, Req, bool)> = vec![
        // principals: exact / prefix / suffix / presence, plaintext never matches.
        ("principal exact", "from: [{source: {principals: [cluster.local/ns/bookinfo/sa/bookinfo-productpage]}}]", http(), true),
        ("principal other", "from: [{source: {principals: [cluster.local/ns/other/sa/x]}}]", http(), false),
        ("principal prefix", "from: [{source: {principals: [cluster.local/ns/bookinfo/*]}}]", http(), true),
        ("principal suffix", "from: [{source: {principals: ['*/sa/bookinfo-productpage']}}]", http(), true),
        ("principal presence", "from: [{source: {principals: ['*']}}]", http(), true),
        ("principal presence plaintext", "from: [{source: {principals: ['*']}}]", http().plaintext(), false),
        ("principal plaintext", "from: [{source: {principals: [cluster.local/ns/bookinfo/sa/bookinfo-productpage]}}]", http().plaintext(), false),
        ("notPrincipals hit", "from: [{source: {notPrincipals: [cluster.local/ns/bookinfo/sa/bookinfo-productpage]}}]", http(), false),
        ("notPrincipals miss", "from: [{source: {notPrincipals: [cluster.local/ns/other/sa/x]}}]", http(), true),
        ("notPrincipals plaintext", "from: [{source: {notPrincipals: ['*']}}]", http().plaintext(), true),
        // namespaces
        ("namespace", "from: [{source: {namespaces: [bookinfo]}}]", http(), true),
        ("namespace other", "from: [{source: {namespaces: [default]}}]", http(), false),
        ("namespace prefix", "from: [{source: {namespaces: [book*]}}]", http(), true),
        // Istio turns every `*` of a namespace into `.*` (generator.go), wherever it is.
        ("namespace star inside", "from: [{source: {namespaces: ['b*nfo']}}]", http(), true),
        ("namespace star inside miss", "from: [{source: {namespaces: ['b*x']}}]", http(), false),
        ("notNamespaces star inside", "from: [{source: {notNamespaces: ['*ook*']}}]", http(), false),
        // In a principal only a leading or trailing `*` is special.
        ("principal star inside is literal", "from: [{source: {principals: [cluster.local/ns/*/sa/bookinfo-productpage]}}]", http(), false),
        ("namespace plaintext", "from: [{source: {namespaces: [bookinfo]}}]", http().plaintext(), false),
        ("notNamespaces hit", "from: [{source: {notNamespaces: [bookinfo]}}]", http(), false),
        ("notNamespaces plaintext", "from: [{source: {notNamespaces: [bookinfo]}}]", http().plaintext(), true),
        // serviceAccounts: ns/sa, or sa in the policy's namespace
        ("serviceAccount", "from: [{source: {serviceAccounts: [bookinfo/bookinfo-productpage]}}]", http(), true),
        ("serviceAccount other ns", "from: [{source: {serviceAccounts: [default/bookinfo-productpage]}}]", http(), false),
        ("serviceAccount bare uses policy ns", "from: [{source: {serviceAccounts: [bookinfo-productpage]}}]", http(), false),
        ("serviceAccount bare in policy ns", "from: [{source: {serviceAccounts: [egress]}}]", http().principal("td/ns/istio-egress/sa/egress"), true),
        ("serviceAccount plaintext", "from: [{source: {serviceAccounts: [bookinfo/bookinfo-productpage]}}]", http().plaintext(), false),
        ("notServiceAccounts hit", "from: [{source: {notServiceAccounts: [bookinfo/bookinfo-productpage]}}]", http(), false),
        ("notServiceAccounts plaintext", "from: [{source: {notServiceAccounts: [bookinfo/bookinfo-productpage]}}]", http().plaintext(), true),
        // trustDomains
        ("trustDomain", "from: [{source: {trustDomains: [cluster.local]}}]", http(), true),
        ("trustDomain suffix", "from: [{source: {trustDomains: ['*.local']}}]", http(), true),
        ("trustDomain other", "from: [{source: {trustDomains: [example.org]}}]", http(), false),
        ("notTrustDomains hit", "from: [{source: {notTrustDomains: [cluster.local]}}]", http(), false),
        // ipBlocks / remoteIpBlocks, single IPs and CIDRs
        ("ipBlocks ip", "from: [{source: {ipBlocks: [10.0.74.45]}}]", http(), true),
        ("ipBlocks cidr", "from: [{source: {ipBlocks: [10.0.0.0/16]}}]", http(), true),
        ("ipBlocks cidr host bits", "from: [{source: {ipBlocks: [10.0.1.1/16]}}]", http(), true),
        ("ipBlocks miss", "from: [{source: {ipBlocks: [192.168.0.0/16]}}]", http(), false),
        ("ipBlocks mapped v6", "from: [{source: {ipBlocks: [10.0.0.0/8]}}]", http().source("::ffff:10.1.2.3"), true),
        ("ipBlocks v6", "from: [{source: {ipBlocks: ['2001:db8::/32']}}]", http().source("2001:db8::1"), true),
        ("notIpBlocks hit", "from: [{source: {notIpBlocks: [10.0.74.45]}}]", http(), false),
        ("notIpBlocks miss", "from: [{source: {notIpBlocks: [10.9.0.0/16]}}]", http(), true),
        ("remoteIpBlocks", "from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]", http().remote("203.0.113.4"), true),
        ("remoteIpBlocks uses remote", "from: [{source: {remoteIpBlocks: [10.0.74.45]}}]", http().remote("203.0.113.4"), false),
        ("notRemoteIpBlocks", "from: [{source: {notRemoteIpBlocks: [203.0.113.4]}}]", http().remote("203.0.113.4"), false),
        // requestPrincipals: no JWT validation, so never present
        ("requestPrincipals", "from: [{source: {requestPrincipals: ['*']}}]", http(), false),
        ("notRequestPrincipals", "from: [{source: {notRequestPrincipals: ['*']}}]", http(), true),
        // source fields AND, values OR, from entries OR
        ("source fields and", "from: [{source: {namespaces: [bookinfo], ipBlocks: [192.168.0.0/16]}}]", http(), false),
        ("values or", "from: [{source: {namespaces: [default, bookinfo]}}]", http(), true),
        ("from entries or", "from: [{source: {namespaces: [default]}}, {source: {ipBlocks: [10.0.0.0/8]}}]", http(), true),
        // hosts: case-insensitive against :authority including the port
        ("host exact", "to: [{operation: {hosts: [httpbin.org]}}]", http(), true),
        ("host case", "to: [{operation: {hosts: [HttpBin.ORG]}}]", http(), true),
        ("host with port not matched", "to: [{operation: {hosts: [httpbin.org]}}]", http().authority("httpbin.org:80"), false),
        ("host port wildcard", "to: [{operation: {hosts: ['httpbin.org:*']}}]", http().authority("httpbin.org:80"), true),
        ("host suffix", "to: [{operation: {hosts: ['*.org']}}]", http(), true),
        ("host prefix", "to: [{operation: {hosts: ['httpbin.*']}}]", http(), true),
        ("host presence", "to: [{operation: {hosts: ['*']}}]", http(), true),
        ("host other", "to: [{operation: {hosts: [example.com]}}]", http(), false),
        ("notHosts hit", "to: [{operation: {notHosts: [httpbin.org]}}]", http(), false),
        ("notHosts miss", "to: [{operation: {notHosts: [example.com]}}]", http(), true),
        // methods: case-sensitive
        ("method", "to: [{operation: {methods: [GET]}}]", http(), true),
        ("method case", "to: [{operation: {methods: [get]}}]", http(), false),
        ("method other", "to: [{operation: {methods: [POST]}}]", http(), false),
        ("notMethods hit", "to: [{operation: {notMethods: [GET]}}]", http(), false),
        ("notMethods miss", "to: [{operation: {notMethods: [POST, PUT]}}]", http(), true),
        // paths incl. templates
        ("path", "to: [{operation: {paths: [/get]}}]", http(), true),
        ("path prefix", "to: [{operation: {paths: ['/g*']}}]", http(), true),
        ("path suffix", "to: [{operation: {paths: ['*et']}}]", http(), true),
        ("path other", "to: [{operation: {paths: [/post]}}]", http(), false),
        ("path template one", "to: [{operation: {paths: ['/status/{*}']}}]", http().path("/status/418"), true),
        ("path template one not deeper", "to: [{operation: {paths: ['/status/{*}']}}]", http().path("/status/418/x"), false),
        ("path template any", "to: [{operation: {paths: ['/anything/{**}']}}]", http().path("/anything/a/b/c"), true),
        ("notPaths hit", "to: [{operation: {notPaths: [/get]}}]", http(), false),
        ("notPaths template miss", "to: [{operation: {notPaths: ['/admin/{**}']}}]", http(), true),
        // ports: destination port, HTTP and TCP
        ("port", "to: [{operation: {ports: ['80']}}]", http(), true),
        ("port other", "to: [{operation: {ports: ['443']}}]", http(), false),
        ("notPorts hit", "to: [{operation: {notPorts: ['80']}}]", http(), false),
        ("notPorts miss", "to: [{operation: {notPorts: ['8080']}}]", http(), true),
        // operation fields AND, to entries OR
        ("operation and", "to: [{operation: {methods: [GET], paths: [/post]}}]", http(), false),
        ("to entries or", "to: [{operation: {paths: [/post]}}, {operation: {methods: [GET]}}]", http(), true),
        // when conditions
        ("when header", "when: [{key: 'request.headers[x-token]', values: [abc]}]", http().header("x-token", "abc"), true),
        ("when header name case", "when: [{key: 'request.headers[X-Token]', values: [abc]}]", http().header("x-token", "abc"), true),
        ("when header absent", "when: [{key: 'request.headers[x-token]', values: [abc]}]", http(), false),
        ("when header presence", "when: [{key: 'request.headers[x-token]', values: ['*']}]", http().header("x-token", ""), true),
        ("when header prefix", "when: [{key: 'request.headers[user-agent]', values: ['curl/*']}]", http().header("user-agent", "curl/8.0"), true),
        ("when header repeated joined", "when: [{key: 'request.headers[x-a]', values: ['1,2']}]", http().header("x-a", "1").header("x-a", "2"), true),
        ("when header notValues absent", "when: [{key: 'request.headers[x-token]', notValues: [abc]}]", http(), true),
        ("when header notValues hit", "when: [{key: 'request.headers[x-token]', notValues: [abc]}]", http().header("x-token", "abc"), false),
        ("when source.ip", "when: [{key: source.ip, values: [10.0.0.0/8]}]", http(), true),
        ("when remote.ip", "when: [{key: remote.ip, notValues: [10.0.0.0/8]}]", http(), false),
        ("when source.namespace", "when: [{key: source.namespace, values: [bookinfo]}]", http(), true),
        ("when source.principal", "when: [{key: source.principal, values: ['*/sa/bookinfo-productpage']}]", http(), true),
        ("when source.namespace star inside", "when: [{key: source.namespace, values: ['bo*fo']}]", http(), true),
        ("when source.namespace notValues star", "when: [{key: source.namespace, notValues: ['*']}]", http(), false),
        ("when source.serviceAccount", "when: [{key: source.serviceAccount, values: [bookinfo/bookinfo-productpage]}]", http(), true),
        ("when source.trustDomain", "when: [{key: source.trustDomain, notValues: [cluster.local]}]", http(), false),
        ("when destination.ip", "when: [{key: destination.ip, values: [240.240.0.0/16]}]", http(), true),
        ("when destination.port", "when: [{key: destination.port, values: ['80']}]", http(), true),
        ("when destination.port miss", "when: [{key: destination.port, values: ['443']}]", http().dest("240.240.0.2:80"), false),
        ("when sni", "when: [{key: connection.sni, values: ['*.httpbin.org']}]", http().sni("www.httpbin.org"), true),
        ("when sni absent", "when: [{key: connection.sni, values: ['*']}]", http(), false),
        ("when sni notValues absent", "when: [{key: connection.sni, notValues: [x.org]}]", http(), true),
        ("when request.auth.claims", "when: [{key: 'request.auth.claims[iss]', values: [x]}]", http(), false),
        ("when all required", "when: [{key: source.namespace, values: [bookinfo]}, {key: destination.port, values: ['443']}]", http(), false),
        // from AND to AND when
        ("from and to", "from: [{source: {namespaces: [bookinfo]}}]\nto: [{operation: {methods: [POST]}}]", http(), false),
        ("empty rule", "{}", http(), true),
    ];
    for (name, rule, req, want) in cases {
        assert_eq!(rule_matches(rule, &req), want, "case {name:?}: {rule}");
    }
}
