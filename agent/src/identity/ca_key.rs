//! A CA's private key from PEM, in the forms openssl and Istio's tools
//! write: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC
//! PRIVATE KEY`). The signing library (rcgen over ring) takes PKCS#8 only,
//! so the other two are wrapped in a PKCS#8 envelope first (RFC 5208).

use rcgen::KeyPair;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use yasna::models::ObjectIdentifier;
use yasna::Tag;

/// rsaEncryption (RFC 8017).
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
/// id-ecPublicKey (RFC 5480).
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10_045, 2, 1];

/// The key in `pem`, or why it cannot sign.
pub fn parse(pem: &[u8]) -> Result<KeyPair, String> {
    let der = rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("unreadable PEM: {e}"))?
        .ok_or("no private key in the PEM")?;
    let pkcs8 = match &der {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(k) => wrap(RSA_ENCRYPTION, None, k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => {
            let curve =
                sec1_curve(k.secret_sec1_der()).ok_or("EC PRIVATE KEY without its named curve")?;
            wrap(EC_PUBLIC_KEY, Some(&curve), k.secret_sec1_der())
        }
        _ => return Err("unsupported private key format".into()),
    };
    KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8))
        .map_err(|e| format!("unsupported key (RSA, ECDSA P-256/P-384 or Ed25519 expected): {e}"))
}

/// PrivateKeyInfo { version 0, algorithm, privateKey }.
fn wrap(algorithm: &[u64], parameter: Option<&ObjectIdentifier>, key: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            w.next().write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(algorithm));
                match parameter {
                    Some(oid) => w.next().write_oid(oid),
                    None => w.next().write_null(),
                }
            });
            w.next().write_bytes(key);
        })
    })
}

/// The namedCurve of a SEC1 ECPrivateKey (RFC 5915 `parameters [0]`).
fn sec1_curve(sec1: &[u8]) -> Option<ObjectIdentifier> {
    yasna::parse_der(sec1, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            r.next().read_bytes()?;
            let curve = r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_oid()))?;
            r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_bitvec_bytes()))?;
            Ok(curve)
        })
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key written by `openssl` in the given form.
    fn openssl_key(args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{out:?}");
        out.stdout
    }

    #[test]
    fn every_pem_form_openssl_writes_signs() {
        let pkcs8_rsa = openssl_key(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ]);
        let pkcs8_ec = openssl_key(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ]);
        let sec1 = openssl_key(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
        assert!(String::from_utf8_lossy(&sec1).contains("BEGIN EC PRIVATE KEY"));
        let pkcs1 = {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("k.pem");
            std::fs::write(&path, &pkcs8_rsa).unwrap();
            let path = path.to_string_lossy().to_string();
            openssl_key(&["rsa", "-in", &path, "-traditional"])
        };
        assert!(String::from_utf8_lossy(&pkcs1).contains("BEGIN RSA PRIVATE KEY"));
        for (name, pem) in [
            ("pkcs8 rsa", &pkcs8_rsa),
            ("pkcs8 ec", &pkcs8_ec),
            ("sec1", &sec1),
            ("pkcs1", &pkcs1),
        ] {
            let key = parse(pem).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!key.public_key_der().is_empty(), "{name}");
        }
        assert!(parse(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n").is_err());
    }
}
