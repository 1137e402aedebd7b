//! Optional mutual TLS between metalbond peers.
//!
//! Upstream metalbond speaks plain TCP and accepts anyone who reaches its port on the underlay. With a
//! [`TlsConfig`] both sides authenticate: a server accepts only clients presenting a certificate signed by the
//! configured CA, and a client accepts only a server whose certificate is signed by that CA and names the address
//! it dialled (an IP SAN for `[fd00::1]:4711`, a DNS SAN for `metalbond.example:4711`). The metalbond protocol runs
//! unchanged inside the TLS stream.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input (`certificate`, `private key`, `CA bundle`), followed by its path when read from a file.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the credentials (key does not match, unsupported algorithm, bad CA certificate).
    #[error("invalid TLS credentials: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA bundle.
    #[error("invalid CA bundle: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Mutual-TLS credentials of one metalbond instance: its certificate chain and key, and the CA that signs every
/// peer's certificate. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

/// Two configurations are equal when they share the same loaded credentials (a clone of one another).
impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.server, &other.server) && Arc::ptr_eq(&self.client, &other.client)
    }
}

impl Eq for TlsConfig {}

impl TlsConfig {
    /// Loads the PEM certificate chain at `cert` (leaf first), its private key at `key` (PKCS#8, PKCS#1 or SEC1)
    /// and the CA bundle at `ca` that peers' certificates must chain to.
    pub fn from_pem_files(cert: &Path, key: &Path, ca: &Path) -> Result<Self, TlsError> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|e| TlsError::Pem {
                what: format!("{what} {}", path.display()),
                reason: e.to_string(),
            })
        };
        let cert_pem = read("certificate", cert)?;
        let key_pem = read("private key", key)?;
        let ca_pem = read("CA bundle", ca)?;
        Self::from_pem(&cert_pem, &key_pem, &ca_pem).map_err(|e| match e {
            TlsError::Pem { what, reason } => {
                let path = match what.as_str() {
                    "certificate" => cert,
                    "private key" => key,
                    _ => ca,
                };
                TlsError::Pem {
                    what: format!("{what} {}", path.display()),
                    reason,
                }
            }
            other => other,
        })
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Self, TlsError> {
        let pem_err = |what: &str, reason: String| TlsError::Pem {
            what: what.to_owned(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| pem_err("certificate", e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_err("certificate", "no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| pem_err("private key", e.to_string()))?;
        let mut roots = RootCertStore::empty();
        let mut found = 0;
        for ca_cert in CertificateDer::pem_slice_iter(ca) {
            roots.add(ca_cert.map_err(|e| pem_err("CA bundle", e.to_string()))?)?;
            found += 1;
        }
        if found == 0 {
            return Err(pem_err("CA bundle", "no CERTIFICATE block".into()));
        }
        let roots = Arc::new(roots);
        // ring, the provider the rest of the workspace (kube's rustls-tls) uses; explicit, so no process-wide
        // default provider has to be installed first.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }
}

/// The name a server's certificate must carry for the peer address `addr` (`HOST:PORT`, `[V6]:PORT`).
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>, std::io::Error> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("peer address {addr:?} has no host usable as a TLS server name: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_follow_the_dialled_host() {
        assert_eq!(
            server_name("[fd00::1]:4711").unwrap(),
            ServerName::IpAddress("fd00::1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name("127.0.0.1:4711").unwrap(),
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name("metalbond.example:4711").unwrap(),
            ServerName::try_from("metalbond.example").unwrap()
        );
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn missing_or_empty_pem_is_a_clear_error() {
        let err = TlsConfig::from_pem(b"", b"", b"").unwrap_err();
        assert_eq!(err.to_string(), "certificate: no CERTIFICATE block");
        let err = TlsConfig::from_pem_files(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
            Path::new("/nonexistent/ca.pem"),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("certificate /nonexistent/cert.pem: "),
            "{err}"
        );
    }
}
