//! Client configs for TLS origination, cached by everything that shapes
//! them (settings, names, file stamps, Secret content), and the handshake.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::error::TlsError;
use super::material::{parse_certificates, parse_private_key, PemFiles};
use super::roots::DefaultRoots;
use super::settings::OriginTls;
use super::verify::UpstreamVerifier;
use crate::config::snapshot::TlsMode;

/// A TLS connection to an upstream.
pub type UpstreamStream = tokio_rustls::client::TlsStream<TcpStream>;

/// How long the handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Configs kept at most; the cache starts over past this.
const MAX_CONFIGS: usize = 256;

/// Makes TLS connections to upstreams. One per proxy: file contents and
/// configs are shared by every workload connection.
#[derive(Debug, Default)]
pub struct TlsOrigin {
    files: PemFiles,
    configs: Mutex<HashMap<u64, Arc<ClientConfig>>>,
    roots: DefaultRoots,
}

impl TlsOrigin {
    /// Origination trusting `roots` where a rule names no CA.
    pub fn new(roots: DefaultRoots) -> Self {
        TlsOrigin {
            roots,
            ..TlsOrigin::default()
        }
    }

    /// The client config for `origin`, built on first use and again when a
    /// file it reads changed.
    pub fn config(&self, origin: &OriginTls) -> Result<Arc<ClientConfig>, TlsError> {
        let key = self.connection_key(origin);
        if let Some(c) = self.lock().get(&key) {
            return Ok(c.clone());
        }
        let config = Arc::new(self.build(origin)?);
        let mut configs = self.lock();
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        configs.insert(key, config.clone());
        Ok(config)
    }

    /// Runs the handshake on `stream` (connected to `addr`).
    pub async fn connect(
        &self,
        origin: &OriginTls,
        stream: TcpStream,
        addr: SocketAddr,
    ) -> Result<UpstreamStream, TlsError> {
        let config = self.config(origin)?;
        let server_name = ServerName::try_from(origin.server_name.clone()).map_err(|_| {
            TlsError::InvalidName {
                rule: origin.rule_ref(),
                name: origin.server_name.clone(),
            }
        })?;
        let connector = TlsConnector::from(config);
        let handshake = connector.connect(server_name, stream);
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| TlsError::Timeout {
                addr,
                server_name: origin.server_name.clone(),
                timeout: HANDSHAKE_TIMEOUT,
            })?
            .map_err(|source| TlsError::Handshake {
                addr,
                server_name: origin.server_name.clone(),
                source,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ClientConfig>>> {
        self.configs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settings + the current stamp of each file they read (a stat per
    /// file per request: how a changed file gets noticed). Connections made
    /// under another key are not reused, so a rotated certificate takes
    /// effect on the next request.
    pub fn connection_key(&self, origin: &OriginTls) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        origin.key().hash(&mut h);
        let s = &origin.settings;
        let paths: Vec<&Path> = [&s.ca_certificates, &s.client_certificate, &s.private_key]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .collect();
        PemFiles::stamps(&paths).hash(&mut h);
        h.finish()
    }

    fn build(&self, origin: &OriginTls) -> Result<ClientConfig, TlsError> {
        let provider = super::provider();
        let rule = origin.rule_ref();
        let config_error = |source| TlsError::Config {
            rule: rule.clone(),
            source,
        };
        let verifier = if origin.settings.insecure_skip_verify {
            UpstreamVerifier::insecure(provider.clone())
        } else {
            let names = origin
                .verify_names
                .iter()
                .map(|n| {
                    ServerName::try_from(n.clone()).map_err(|_| TlsError::InvalidName {
                        rule: rule.clone(),
                        name: n.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            UpstreamVerifier::new(self.roots(origin)?, names, provider.clone()).map_err(|e| {
                TlsError::BadPem {
                    rule: rule.clone(),
                    what: "trusted roots".to_string(),
                    reason: e.to_string(),
                }
            })?
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match self.client_identity(origin)? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(config_error)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = origin.alpn.clone();
        Ok(config)
    }

    /// `caCertificates`, the Secret's CA, or the default roots.
    fn roots(&self, origin: &OriginTls) -> Result<Arc<RootCertStore>, TlsError> {
        let rule = origin.rule_ref();
        let certs: Vec<CertificateDer<'static>> = if let Some(secret) = &origin.secret {
            match &secret.ca {
                Some(pem) => parse_certificates(pem).map_err(|reason| TlsError::BadPem {
                    rule: rule.clone(),
                    what: secret_what(origin, "cacert"),
                    reason,
                })?,
                None => return Ok(self.roots.get()),
            }
        } else if let Some(path) = &origin.settings.ca_certificates {
            self.files
                .certificates(&rule, "caCertificates", path)?
                .as_ref()
                .clone()
        } else {
            return Ok(self.roots.get());
        };
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::BadPem {
                rule,
                what: "trusted roots".to_string(),
                reason: "no usable CA certificate".to_string(),
            });
        }
        Ok(Arc::new(store))
    }

    /// The client certificate chain and key for MUTUAL.
    #[allow(clippy::type_complexity)]
    fn client_identity(
        &self,
        origin: &OriginTls,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
        if origin.settings.mode != TlsMode::Mutual {
            return Ok(None);
        }
        let rule = origin.rule_ref();
        if let Some(secret) = &origin.secret {
            let missing = |needed, keys| TlsError::SecretIncomplete {
                rule: rule.clone(),
                secret: secret_name(origin),
                needed,
                keys,
            };
            let cert = secret
                .cert
                .as_ref()
                .ok_or_else(|| missing("client certificate", "cert or tls.crt"))?;
            let key = secret
                .key
                .as_ref()
                .ok_or_else(|| missing("private key", "key or tls.key"))?;
            let chain = parse_certificates(cert).map_err(|reason| TlsError::BadPem {
                rule: rule.clone(),
                what: secret_what(origin, "cert"),
                reason,
            })?;
            let key = parse_private_key(key).map_err(|reason| TlsError::BadPem {
                rule: rule.clone(),
                what: secret_what(origin, "key"),
                reason,
            })?;
            return Ok(Some((chain, key)));
        }
        let s = &origin.settings;
        // Validation guarantees both files for MUTUAL without credentialName.
        let (Some(cert_path), Some(key_path)) = (&s.client_certificate, &s.private_key) else {
            return Ok(None);
        };
        let chain = self
            .files
            .certificates(&rule, "clientCertificate", cert_path)?
            .as_ref()
            .clone();
        let key = self.files.key(&rule, "privateKey", key_path)?.clone_key();
        Ok(Some((chain, key)))
    }
}

fn secret_what(origin: &OriginTls, key: &str) -> String {
    format!("Secret {} {key}", secret_name(origin))
}

/// `namespace/credentialName` of the rule's Secret.
fn secret_name(origin: &OriginTls) -> String {
    format!(
        "{}/{}",
        origin.rule.namespace,
        origin
            .settings
            .credential_name
            .as_deref()
            .unwrap_or_default()
    )
}
