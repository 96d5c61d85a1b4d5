//! The plug-in CA against certificates openssl made, with subjects egret
//! never uses, checked by `openssl verify` as a chain-building peer would.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::identity::signer::LEAF_LIFETIME;
use crate::identity::spiffe::{identities_in, Identity};
use crate::identity::{CertSource, IdentityStore};

const ROOT_SUBJECT: &str = "/C=US/O=Example Corp/CN=Example Root CA";
const MESH_SUBJECT: &str = "/C=US/O=Example Corp/OU=Mesh/CN=Example Mesh Intermediate CA";
const CA_EXTENSIONS: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n";

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An RSA root (PKCS#1 key, as older openssl and Istio's samples write it).
fn openssl_root(dir: &Path) {
    openssl(
        dir,
        &["genrsa", "-traditional", "-out", "root-key.pem", "2048"],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root-key.pem",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            ROOT_SUBJECT,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root-cert.pem",
        ],
    );
}

/// An ECDSA intermediate (SEC1 key) signed by the root, laid out as
/// Istio's `cacerts`: cert-chain.pem = intermediate + root.
fn openssl_intermediate(dir: &Path) {
    std::fs::write(dir.join("ca.ext"), CA_EXTENSIONS).unwrap();
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca-key.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            MESH_SUBJECT,
            "-out",
            "ca.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "ca.csr",
            "-CA",
            "root-cert.pem",
            "-CAkey",
            "root-key.pem",
            "-CAcreateserial",
            "-days",
            "730",
            "-sha256",
            "-extfile",
            "ca.ext",
            "-out",
            "ca-cert.pem",
        ],
    );
    let chain = std::fs::read_to_string(dir.join("ca-cert.pem")).unwrap()
        + &std::fs::read_to_string(dir.join("root-cert.pem")).unwrap();
    std::fs::write(dir.join("cert-chain.pem"), chain).unwrap();
}

fn productpage() -> Identity {
    Identity {
        trust_domain: "cluster.local".into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
    }
}

/// Writes a leaf issued by `signer` and returns what `openssl verify` says.
fn verify_leaf(dir: &Path, signer: &CaSigner, untrusted: Option<&str>) -> String {
    let (chain, _key) = signer.issue_pem(&productpage(), LEAF_LIFETIME).unwrap();
    let leaf_end = chain.find("-----END CERTIFICATE-----").unwrap() + 26;
    std::fs::write(dir.join("leaf.pem"), &chain[..leaf_end]).unwrap();
    std::fs::write(dir.join("presented.pem"), &chain).unwrap();
    let mut args = vec![
        "verify",
        "-CAfile",
        "root-cert.pem",
        "-purpose",
        "sslclient",
    ];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u]);
    }
    args.push("leaf.pem");
    openssl(dir, &args)
}

#[test]
fn an_intermediate_made_by_openssl_issues_leaves_openssl_verifies() {
    let dir = tempfile::tempdir().unwrap();
    openssl_root(dir.path());
    openssl_intermediate(dir.path());
    let ca = CaCerts::read_dir(dir.path()).unwrap();
    let signer = ca.signer("cacerts").unwrap();
    // The chain the leaf is sent with is all a peer gets besides its roots.
    let out = verify_leaf(dir.path(), &signer, Some("presented.pem"));
    assert_eq!(out.trim(), "leaf.pem: OK");
    let issuer = openssl(
        dir.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-issuer"],
    );
    let subject = openssl(
        dir.path(),
        &["x509", "-in", "ca-cert.pem", "-noout", "-subject"],
    );
    assert_eq!(
        issuer.trim().trim_start_matches("issuer="),
        subject.trim().trim_start_matches("subject="),
        "the leaf names the intermediate as its issuer"
    );
    // Through the store, as HBONE presents it: leaf, then cert-chain.pem.
    let store = IdentityStore::new("cluster.local", CertSource::Ca(signer.into())).unwrap();
    let credential = store.credential(&productpage()).unwrap();
    assert_eq!(credential.certified.cert.len(), 3);
    assert_eq!(
        identities_in(&credential.certified.cert[0]).unwrap(),
        vec![productpage()]
    );
}

#[test]
fn a_root_made_by_openssl_signs_directly() {
    let dir = tempfile::tempdir().unwrap();
    openssl_root(dir.path());
    std::fs::copy(
        dir.path().join("root-cert.pem"),
        dir.path().join("ca-cert.pem"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("root-key.pem"),
        dir.path().join("ca-key.pem"),
    )
    .unwrap();
    let signer = CaCerts::read_dir(dir.path())
        .unwrap()
        .signer("cacerts")
        .unwrap();
    assert_eq!(
        verify_leaf(dir.path(), &signer, None).trim(),
        "leaf.pem: OK"
    );
}

#[test]
fn egret_generated_cluster_ca_round_trips_through_secret_values() {
    let ca = CaCerts::generate().unwrap();
    let again = CaCerts::from_values(&ca.values(), "egret-ca").unwrap();
    assert_eq!(ca, again);
    let signer = again.signer("egret-ca").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root-cert.pem"), &again.root_cert).unwrap();
    assert_eq!(
        verify_leaf(dir.path(), &signer, None).trim(),
        "leaf.pem: OK"
    );
    // Istio's self-signed layout: no root-cert.pem, the CA is the root.
    let mut values = ca.values();
    values.insert(ROOT_CERT.into(), Vec::new());
    assert!(CaCerts::from_values(&values, "istio-ca-secret")
        .unwrap()
        .signer("x")
        .is_ok());
}

#[test]
fn unusable_cacerts_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    openssl_root(dir.path());
    openssl_intermediate(dir.path());
    let good = CaCerts::read_dir(dir.path()).unwrap();

    let mut values = good.values();
    values.remove(CA_KEY);
    let err = CaCerts::from_values(&values, "Secret istio-system/cacerts").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Secret istio-system/cacerts: ca-key.pem is missing"
    );

    let other = CaCerts::generate().unwrap();
    let wrong_key = CaCerts {
        ca_key: other.ca_key.clone(),
        ..good.clone()
    };
    let err = wrong_key.signer("cacerts").unwrap_err().to_string();
    assert!(
        err.contains("the CA key is not the CA certificate's key"),
        "{err}"
    );

    let wrong_root = CaCerts {
        root_cert: other.root_cert.clone(),
        ..good.clone()
    };
    let err = wrong_root.signer("cacerts").unwrap_err().to_string();
    assert!(err.contains("do not verify against the root"), "{err}");
}

#[test]
fn an_intermediate_without_cert_chain_is_sent_after_each_leaf() {
    let dir = tempfile::tempdir().unwrap();
    openssl_root(dir.path());
    openssl_intermediate(dir.path());
    std::fs::remove_file(dir.path().join("cert-chain.pem")).unwrap();
    let signer = CaCerts::read_dir(dir.path())
        .unwrap()
        .signer("cacerts")
        .unwrap();
    let out = verify_leaf(dir.path(), &signer, Some("presented.pem"));
    assert_eq!(out.trim(), "leaf.pem: OK");
}
