//! The admin kubeconfig written next to the server's data (plain HTTP on loopback, no auth yet).

use std::io::Write;
use std::path::Path;

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

/// The kubeconfig YAML for `server_url` with one cluster, user and context named `ironnet`.
pub fn render(server_url: &str) -> Result<String, KubeconfigError> {
    if !(server_url.starts_with("http://") || server_url.starts_with("https://"))
        || server_url.contains(['\n', '"'])
    {
        return Err(KubeconfigError::BadUrl(server_url.to_owned()));
    }
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ironnet\n  cluster:\n    server: \"{server_url}\"\n\
         users:\n- name: admin\n  user: {{}}\ncontexts:\n- name: ironnet\n  context:\n    cluster: ironnet\n    \
         user: admin\n    namespace: default\ncurrent-context: ironnet\npreferences: {{}}\n"
    ))
}

/// Writes the kubeconfig atomically (temp file + rename) to `path` with mode 0600.
pub fn write(path: &Path, server_url: &str) -> Result<(), KubeconfigError> {
    let text = render(server_url)?;
    let io = |source| KubeconfigError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(io)?;
        // `mode` only applies to a file it creates; a leftover temp file keeps its own.
        #[cfg(unix)]
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_validates() {
        let y = render("http://127.0.0.1:6443").unwrap();
        assert!(y.contains("server: \"http://127.0.0.1:6443\""));
        assert!(y.contains("current-context: ironnet"));
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
