//! The waypoint's certificate, issued by the elected agent with the
//! cluster CA and handed over in a Secret the waypoint's pods mount (they
//! never see the CA key). Reissued at half-life, when the roots change, or
//! when the Secret holds anything else.

use std::time::SystemTime;

use base64::Engine as _;
use kube::core::DynamicObject;
use rustls::pki_types::CertificateDer;

use crate::identity::files::validity;
use crate::identity::spiffe::identities_in;
use crate::identity::Identity;

/// Why the Secret must be (re)issued, or `None` while it is good.
pub fn reissue_reason(
    secret: Option<&DynamicObject>,
    want: &Identity,
    roots_pem: &str,
    now: SystemTime,
) -> Option<&'static str> {
    let Some(secret) = secret else {
        return Some("no identity Secret yet");
    };
    let value = |key: &str| -> Option<Vec<u8>> {
        let text = secret.data.get("data")?.get(key)?.as_str()?;
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    let Some(leaf) = value("tls.crt").and_then(|pem| {
        rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .and_then(Result::ok)
    }) else {
        return Some("no certificate in the identity Secret");
    };
    if value("tls.key").is_none() {
        return Some("no key in the identity Secret");
    }
    if value("ca.crt").as_deref() != Some(roots_pem.as_bytes()) {
        return Some("the cluster CA's roots changed");
    }
    if !holds(&leaf, want) {
        return Some("the certificate is for another identity");
    }
    match validity(&leaf) {
        Some((from, until)) => {
            let half = from + until.duration_since(from).unwrap_or_default() / 2;
            (now >= half).then_some("the certificate is past half its lifetime")
        }
        None => Some("unreadable certificate validity"),
    }
}

fn holds(leaf: &CertificateDer<'_>, want: &Identity) -> bool {
    identities_in(leaf).is_ok_and(|ids| ids.contains(want))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::identity::signer::LEAF_LIFETIME;
    use crate::identity::CaCerts;
    use crate::kube::waypoints::render::identity_secret;
    use crate::testing::waypoints::gw;

    fn id(name: &str) -> Identity {
        Identity {
            trust_domain: "cluster.local".into(),
            namespace: "istio-egress".into(),
            service_account: name.into(),
        }
    }

    #[test]
    fn fresh_secret_is_kept_and_stale_ones_are_reissued() {
        let ca = CaCerts::generate().unwrap();
        let roots = String::from_utf8(ca.root_cert.clone()).unwrap();
        let signer = ca.signer("test").unwrap();
        let (chain, key) = signer
            .issue_pem(&id("egress-waypoint"), LEAF_LIFETIME)
            .unwrap();
        let secret: DynamicObject =
            serde_json::from_value(identity_secret(&gw(), &chain, &key, &roots).body).unwrap();
        let now = SystemTime::now();
        let want = id("egress-waypoint");
        assert_eq!(reissue_reason(Some(&secret), &want, &roots, now), None);
        assert!(reissue_reason(None, &want, &roots, now).is_some());
        assert_eq!(
            reissue_reason(Some(&secret), &want, &roots, now + LEAF_LIFETIME / 2),
            Some("the certificate is past half its lifetime")
        );
        assert_eq!(
            reissue_reason(Some(&secret), &id("other"), &roots, now),
            Some("the certificate is for another identity")
        );
        let other_roots = String::from_utf8(CaCerts::generate().unwrap().root_cert).unwrap();
        assert_eq!(
            reissue_reason(
                Some(&secret),
                &want,
                &other_roots,
                now + Duration::from_secs(1)
            ),
            Some("the cluster CA's roots changed")
        );
    }
}
