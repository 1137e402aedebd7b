//! HTTPS serving: the rustls configuration of the API server, and what the connection tells the
//! authenticator about the client.
//!
//! As kube-apiserver does (Go's `tls.RequestClientCert`), the TLS layer asks for a client
//! certificate but accepts any, or none: a client without one may still authenticate with a
//! bearer token, and a certificate that does not verify is answered 401 by the x509
//! authenticator instead of failing the handshake. The handshake does prove that the client
//! holds the certificate's private key.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key PEM is unusable.
    #[error("{what}: {message}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What the connection knows about the client of a request; the server puts it into every
/// request's extensions.
#[derive(Clone, Debug, Default)]
pub struct ConnectionInfo {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The certificate chain the client presented over TLS (end entity first), not yet verified
    /// against any CA: the x509 authenticator does that.
    pub peer_certificates: Arc<[CertificateDer<'static>]>,
    /// The user the x509 authenticator found in the chain and when the certificate expires
    /// (seconds since the epoch): a connection's chain cannot change, so it is verified once.
    pub(crate) x509_user: Arc<std::sync::OnceLock<(crate::auth::UserInfo, u64)>>,
}

/// The crypto provider of every TLS configuration here: ring, as kube's `rustls-tls` client uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate of a PEM bundle.
pub fn parse_certificates(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            message: "no PEM certificate found".into(),
        });
    }
    Ok(certs)
}

/// The server configuration for HTTPS with `cert_pem` (the serving certificate, then any
/// intermediates) and `key_pem`, offering h2 and HTTP/1.1 by ALPN. With `client_ca_pem`, clients
/// are asked for a certificate issued by one of its CAs (the hint; any certificate or none is
/// accepted here, see the module documentation).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = parse_certificates("serving certificate", cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "serving key",
        message: e.to_string(),
    })?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = match client_ca_pem {
        Some(ca) => {
            let mut hints = Vec::new();
            for der in parse_certificates("client CA", ca)? {
                let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| TlsError::Pem {
                    what: "client CA",
                    message: e.to_string(),
                })?;
                hints.push(DistinguishedName::from(cert.subject().as_raw().to_vec()));
            }
            builder
                .with_client_cert_verifier(Arc::new(RequestClientCert {
                    hints,
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_single_cert(chain, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Asks for a client certificate, accepts any (or none), and checks the handshake signature
/// made with its key.
#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain is verified per request by the x509 authenticator (a 401 rather than a
        // handshake failure, as kube-apiserver answers).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
