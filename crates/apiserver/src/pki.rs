//! The cluster's certificates: a CA, the API server's serving certificate and client
//! certificates, created in a directory on first start and reused afterwards (what kubeadm's
//! `certs` phase does, with rcgen instead of openssl).
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM; every file is written atomically with mode 0600 in a 0700
//! directory.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

/// How long the CA is valid (kubeadm: 10 years).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long serving and client certificates are valid (kubeadm: 1 year).
pub const CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A certificate expiring sooner than this is issued again at start.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The CA's common name.
pub const CA_COMMON_NAME: &str = "ironnet-ca";
/// The serving certificate's common name (kube-apiserver's is `kube-apiserver`).
pub const SERVING_COMMON_NAME: &str = "ironnet-apiserver";

/// Errors creating or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Generating a key or certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct CertAndKey {
    /// The certificate (PEM, one block).
    pub cert_pem: String,
    /// The PKCS#8 private key (PEM).
    pub key_pem: String,
}

/// The cluster CA, loaded from or created in a directory.
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    ca_key: KeyPair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the CA from `dir` (`ca.crt`, `ca.key`), creating the directory (0700) and a new CA
    /// if there is none. A CA file without its key, or a key that does not match the
    /// certificate, is an error rather than silently replaced: every issued credential hangs
    /// on it.
    pub fn load_or_create(dir: &Path) -> Result<Pki, PkiError> {
        ironnet_store::create_private_dir(dir).map_err(io_error(dir))?;
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let ca_cert_pem = read(&cert_path)?;
                let ca_key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| PkiError::Invalid {
                    path: key_path.display().to_string(),
                    message: format!("not a private key: {e}"),
                })?;
                let der = first_cert(&cert_path, &ca_cert_pem)?;
                let (_, parsed) =
                    x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Invalid {
                        path: cert_path.display().to_string(),
                        message: format!("not a certificate: {e}"),
                    })?;
                if *parsed.public_key().subject_public_key.data != *ca_key.public_key_raw() {
                    return Err(PkiError::Invalid {
                        path: key_path.display().to_string(),
                        message: "the key does not belong to ca.crt".into(),
                    });
                }
                Ok(Pki {
                    dir: dir.to_owned(),
                    ca_cert_pem,
                    ca_key,
                })
            }
            (false, false) => {
                let ca_key = KeyPair::generate()?;
                let mut params = CertificateParams::default();
                params.distinguished_name = name(CA_COMMON_NAME, &[]);
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                ];
                set_validity(&mut params, CA_VALIDITY);
                let cert = params.self_signed(&ca_key)?;
                write_private(&key_path, ca_key.serialize_pem().as_bytes()).map_err(io_error(&key_path))?;
                write_private(&cert_path, cert.pem().as_bytes()).map_err(io_error(&cert_path))?;
                Ok(Pki {
                    dir: dir.to_owned(),
                    ca_cert_pem: cert.pem(),
                    ca_key,
                })
            }
            _ => Err(PkiError::Invalid {
                path: dir.display().to_string(),
                message: "holds only one of ca.crt and ca.key; restore the other or remove both \
                          to create a new CA (which invalidates every issued certificate)"
                    .into(),
            }),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The path of the CA certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, PkiError> {
        Ok(Issuer::from_ca_cert_pem(&self.ca_cert_pem, &self.ca_key)?)
    }

    /// The serving certificate `apiserver.crt`/`apiserver.key`: reused when it was issued by
    /// this CA, covers every name in `sans` (host names and IP addresses) and is valid for
    /// longer than [`RENEW_BEFORE`]; otherwise issued anew with exactly `sans`.
    pub fn ensure_serving_cert(&self, sans: &[String]) -> Result<CertAndKey, PkiError> {
        let wanted: Vec<SanType> = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
        self.ensure(
            "apiserver",
            |existing| existing.is_none_or(|c| !wanted.iter().all(|w| c.sans.contains(w))),
            || {
                let mut params = CertificateParams::default();
                params.distinguished_name = name(SERVING_COMMON_NAME, &[]);
                params.subject_alt_names = wanted.clone();
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params
            },
        )
    }

    /// A client certificate kept as `<stem>.crt`/`<stem>.key`: reused when it was issued by
    /// this CA for exactly `user` and `groups` and is valid for longer than [`RENEW_BEFORE`];
    /// otherwise issued anew.
    pub fn ensure_client_cert(
        &self,
        stem: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<CertAndKey, PkiError> {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let params = client_params(user, &groups, CERT_VALIDITY)?;
        self.ensure(
            stem,
            |existing| existing.is_none_or(|c| c.common_name != user || c.organizations != groups),
            || params,
        )
    }

    /// A new client certificate for `user` in `groups` (CN and O, as kube's x509 authenticator
    /// reads them), valid for `validity`; nothing is written.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[&str],
        validity: Duration,
    ) -> Result<CertAndKey, PkiError> {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let key = KeyPair::generate()?;
        let cert = client_params(user, &groups, validity)?.signed_by(&key, &self.issuer()?)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn ensure(
        &self,
        stem: &str,
        stale: impl FnOnce(Option<&Existing>) -> bool,
        params: impl FnOnce() -> CertificateParams,
    ) -> Result<CertAndKey, PkiError> {
        let cert_path = self.dir.join(format!("{stem}.crt"));
        let key_path = self.dir.join(format!("{stem}.key"));
        let existing = if cert_path.exists() && key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            Existing::inspect(&cert_pem, &key_pem, &self.ca_cert_pem).map(|e| (e, cert_pem, key_pem))
        } else {
            None
        };
        if let Some((e, cert_pem, key_pem)) = &existing
            && !stale(Some(e))
        {
            return Ok(CertAndKey {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            });
        }
        let mut params = params();
        if params.not_after == CertificateParams::default().not_after {
            set_validity(&mut params, CERT_VALIDITY);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        let pair = CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        write_private(&key_path, pair.key_pem.as_bytes()).map_err(io_error(&key_path))?;
        write_private(&cert_path, pair.cert_pem.as_bytes()).map_err(io_error(&cert_path))?;
        Ok(pair)
    }
}

/// What a reusable certificate on disk holds.
struct Existing {
    common_name: String,
    organizations: Vec<String>,
    sans: Vec<SanType>,
}

impl Existing {
    /// The certificate's names, if it is usable: issued by `ca_pem`'s CA, matching its key, and
    /// not expiring within [`RENEW_BEFORE`].
    fn inspect(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Option<Existing> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
        let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).ok()?;
        let key = KeyPair::from_pem(key_pem).ok()?;
        if *cert.public_key().subject_public_key.data != *key.public_key_raw()
            || cert.verify_signature(Some(ca.public_key())).is_err()
        {
            return None;
        }
        let renew_by = OffsetDateTime::now_utc() + RENEW_BEFORE;
        if cert.validity().not_after.to_datetime() < renew_by {
            return None;
        }
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let organizations = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        if let Ok(s) = san(d) {
                            sans.push(s);
                        }
                    }
                    x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                        4 => sans.push(SanType::IpAddress(IpAddr::from(
                            <[u8; 4]>::try_from(*b).expect("length checked"),
                        ))),
                        16 => sans.push(SanType::IpAddress(IpAddr::from(
                            <[u8; 16]>::try_from(*b).expect("length checked"),
                        ))),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        Some(Existing {
            common_name,
            organizations,
            sans,
        })
    }
}

/// A client certificate's parameters. rcgen writes one attribute per type in a subject, so a
/// certificate here carries at most one group (kube's x509 authenticator reads any number, and
/// certificates from other CAs may have several; signed tokens carry any number too).
fn client_params(user: &str, groups: &[String], validity: Duration) -> Result<CertificateParams, PkiError> {
    if user.is_empty() {
        return Err(PkiError::Invalid {
            path: "client certificate".into(),
            message: "the user (common name) is empty".into(),
        });
    }
    if groups.len() > 1 {
        return Err(PkiError::Invalid {
            path: "client certificate".into(),
            message: format!(
                "{groups:?}: a certificate issued here carries at most one group; use a signed token for more"
            ),
        });
    }
    let mut params = CertificateParams::default();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    params.distinguished_name = name(user, &groups);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(&mut params, validity);
    Ok(params)
}

fn name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Valid from an hour ago (clock skew between machines) for `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + validity;
}

/// A subject alternative name: an IP address, or a DNS name.
fn san(name: &str) -> Result<SanType, PkiError> {
    let trimmed = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || PkiError::Invalid {
        path: "--tls-san".into(),
        message: format!("{name:?} is neither an IP address nor a DNS name"),
    };
    let lower = name.to_ascii_lowercase();
    let labels = lower.strip_prefix("*.").unwrap_or(&lower);
    let valid = !labels.is_empty()
        && labels.len() <= 253
        && labels.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(invalid());
    }
    Ok(SanType::DnsName(lower.try_into().map_err(|_| invalid())?))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

fn first_cert(path: &Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Invalid {
        path: path.display().to_string(),
        message: format!("no PEM certificate: {e}"),
    })
}

/// The names a serving certificate needs by default: `localhost`, the loopback addresses, the
/// host name, and `bind` unless it is the unspecified address.
pub fn default_serving_names(bind: IpAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !bind.is_unspecified() && !bind.is_loopback() {
        names.push(bind.to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && san(host).is_ok() {
            names.push(host.to_owned());
        }
    }
    names
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with mode 0600, also over a
/// leftover temp file or an existing file that is readable by others.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` only applies to a file it creates; a leftover temp file keeps its own.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let pki = Pki::load_or_create(&pki_dir).unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let serving = pki.ensure_serving_cert(&names).unwrap();
        let admin = pki
            .ensure_client_cert("admin", "kubernetes-admin", &["system:masters"])
            .unwrap();
        assert_eq!(
            std::fs::metadata(&pki_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for f in [
            "ca.crt",
            "ca.key",
            "apiserver.crt",
            "apiserver.key",
            "admin.crt",
            "admin.key",
        ] {
            let mode = std::fs::metadata(pki_dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }

        let again = Pki::load_or_create(&pki_dir).unwrap();
        assert_eq!(again.ca_pem(), pki.ca_pem());
        // A subset of the names is covered: the same certificate.
        let same = again.ensure_serving_cert(&names[..1]).unwrap();
        assert_eq!(same.cert_pem, serving.cert_pem);
        let same_admin = again
            .ensure_client_cert("admin", "kubernetes-admin", &["system:masters"])
            .unwrap();
        assert_eq!(same_admin.cert_pem, admin.cert_pem);
        // A new name or a new identity: issued anew.
        let wider = again
            .ensure_serving_cert(&["localhost".to_owned(), "api.example.com".to_owned()])
            .unwrap();
        assert_ne!(wider.cert_pem, serving.cert_pem);
        let other = again.ensure_client_cert("admin", "someone-else", &[]).unwrap();
        assert_ne!(other.cert_pem, admin.cert_pem);
    }

    #[test]
    fn a_lone_ca_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        drop(pki);
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        let err = Pki::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("only one of ca.crt and ca.key"), "{err}");
    }

    #[test]
    fn a_foreign_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("ca.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        let err = Pki::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not belong to ca.crt"), "{err}");
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let err = pki
            .ensure_serving_cert(&["bad name!".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither an IP address nor a DNS name"), "{err}");
    }
}
