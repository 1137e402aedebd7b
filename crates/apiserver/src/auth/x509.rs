//! Client-certificate authentication (kube's x509 request authenticator): a certificate chain
//! that verifies against the client CA names its user in the subject's common name and its
//! groups in the organizations.

use std::sync::Arc;

use rustls::pki_types::UnixTime;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::{Authentication, Authenticator, UserInfo};
use crate::tls::{ConnectionInfo, TlsError};

/// Authenticates requests by the certificate their TLS client presented.
pub struct X509Authenticator {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for X509Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Authenticator").finish_non_exhaustive()
    }
}

impl X509Authenticator {
    /// Trusts the CAs of `client_ca_pem` (one or more PEM certificates), as
    /// `--client-ca-file` does.
    pub fn new(client_ca_pem: &str) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for der in crate::tls::parse_certificates("client CA", client_ca_pem)? {
            roots.add(der)?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Pem {
                what: "client CA",
                message: e.to_string(),
            })?;
        Ok(X509Authenticator { verifier })
    }
}

impl Authenticator for X509Authenticator {
    fn authenticate(&self, request: &http::request::Parts) -> Authentication {
        let Some(info) = request.extensions.get::<Arc<ConnectionInfo>>() else {
            return Authentication::NoCredentials;
        };
        let Some((end_entity, intermediates)) = info.peer_certificates.split_first() else {
            return Authentication::NoCredentials;
        };
        let now = UnixTime::now();
        if let Some((user, not_after)) = info.x509_user.get() {
            return if now.as_secs() <= *not_after {
                Authentication::User(user.clone())
            } else {
                Authentication::Rejected("x509: the certificate has expired".into())
            };
        }
        // Verification includes the validity period and the client-auth key usage.
        if let Err(e) = self.verifier.verify_client_cert(end_entity, intermediates, now) {
            return Authentication::Rejected(format!("x509: {e}"));
        }
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity) else {
            return Authentication::Rejected("x509: the certificate does not parse".into());
        };
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default();
        if name.is_empty() {
            return Authentication::Rejected("x509: the certificate has no common name".into());
        }
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        let user = UserInfo {
            name: name.to_owned(),
            uid: String::new(),
            groups,
            extra: Default::default(),
        };
        let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or_default();
        let _ = info.x509_user.set((user.clone(), not_after));
        Authentication::User(user)
    }
}
