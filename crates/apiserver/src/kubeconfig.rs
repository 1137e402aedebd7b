//! Kubeconfig files for the server's users: the admin's (`<data-dir>/kubeconfig`) and each
//! component's, with the CA to trust and a client certificate or bearer token.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Errors writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The server URL is not `http://` or `https://`.
    #[error("server URL {0:?} must start with http:// or https://")]
    BadUrl(String),
    /// Writing the file failed.
    #[error("writing kubeconfig {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How a kubeconfig's user authenticates.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// No credentials (a plain-HTTP server without authentication).
    #[default]
    None,
    /// A client certificate and its key (PEM).
    ClientCertificate {
        /// The certificate.
        cert_pem: String,
        /// The private key.
        key_pem: String,
    },
    /// A bearer token.
    Token(String),
}

/// What one kubeconfig holds: a cluster, a user and a context, all named `ironnet` but the user.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The server URL.
    pub server: String,
    /// The CA certificate (PEM) to verify the server with; none for plain HTTP.
    pub ca_pem: Option<String>,
    /// The kubeconfig's name for the user (`admin`, `node-hv-1`).
    pub user: String,
    /// How the user authenticates.
    pub credentials: Credentials,
}

impl Spec {
    /// A kubeconfig without credentials or CA for `server`.
    pub fn plain(server: &str) -> Spec {
        Spec {
            server: server.to_owned(),
            ca_pem: None,
            user: "admin".into(),
            credentials: Credentials::None,
        }
    }

    /// The kubeconfig YAML.
    pub fn render(&self) -> Result<String, KubeconfigError> {
        let url = &self.server;
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(['\n', '"']) {
            return Err(KubeconfigError::BadUrl(url.clone()));
        }
        let mut cluster = serde_json::json!({"server": url});
        if let Some(ca) = &self.ca_pem {
            cluster["certificate-authority-data"] = STANDARD.encode(ca).into();
        }
        let user = match &self.credentials {
            Credentials::None => serde_json::json!({}),
            Credentials::ClientCertificate { cert_pem, key_pem } => serde_json::json!({
                "client-certificate-data": STANDARD.encode(cert_pem),
                "client-key-data": STANDARD.encode(key_pem),
            }),
            Credentials::Token(token) => serde_json::json!({"token": token}),
        };
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "ironnet", "cluster": cluster}],
            "users": [{"name": self.user, "user": user}],
            "contexts": [{"name": "ironnet", "context": {"cluster": "ironnet", "user": self.user, "namespace": "default"}}],
            "current-context": "ironnet",
            "preferences": {},
        });
        Ok(serde_saphyr::to_string(&config).expect("a kubeconfig always serializes"))
    }

    /// Writes the kubeconfig atomically (temp file + rename) to `path` with mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), KubeconfigError> {
        let text = self.render()?;
        crate::pki::write_private(path, text.as_bytes()).map_err(|source| KubeconfigError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// The kubeconfig YAML for `server_url` with one cluster, user and context and no credentials.
pub fn render(server_url: &str) -> Result<String, KubeconfigError> {
    Spec::plain(server_url).render()
}

/// Writes a kubeconfig without credentials for `server_url` atomically (temp file + rename) to
/// `path` with mode 0600.
pub fn write(path: &Path, server_url: &str) -> Result<(), KubeconfigError> {
    Spec::plain(server_url).write(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_validates() {
        let y = render("http://127.0.0.1:6443").unwrap();
        assert!(y.contains("server: http://127.0.0.1:6443"), "{y}");
        assert!(y.contains("current-context: ironnet"), "{y}");
        assert!(render("ftp://x").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kubeconfig");
        write(&p, "http://127.0.0.1:1").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            render("http://127.0.0.1:1").unwrap()
        );
    }

    /// The kubeconfig is the admin's credential: 0600, even over a leftover world-readable temp
    /// file or kubeconfig. (The mode a new file is created with is 0600; a umask can only clear
    /// bits of it.)
    #[test]
    fn is_private_even_over_readable_leftovers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kubeconfig");
        let readable = std::fs::Permissions::from_mode(0o644);
        std::fs::write(p.with_extension("tmp"), "stale").unwrap();
        std::fs::set_permissions(p.with_extension("tmp"), readable.clone()).unwrap();
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, readable).unwrap();
        write(&p, "http://127.0.0.1:1").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
