//! A plain-HTTP API server on 127.0.0.1 for tests that need the built-in kinds, one custom kind
//! (`gadgets.test.ironnet.dev`, schemaless) and the real kubectl: a kubeconfig pointing at it is
//! written into the server's directory.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ironnet_apiserver::definition::{ResourceDefinition, Scope};
use ironnet_apiserver::{ApiServer, DefaultStrategy};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use serde_json::json;

/// A running server; dropping it stops serving.
pub struct GadgetServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its store, `kubeconfig` and kubectl's cache.
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _server: ApiServer,
}

impl Drop for GadgetServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl GadgetServer {
    /// Starts the server.
    pub async fn start() -> GadgetServer {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).unwrap());
        let mut gadget =
            ResourceDefinition::new("test.ironnet.dev", "v1", "Gadget", "gadgets", Scope::Namespaced)
                .unwrap();
        gadget.schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let server = ApiServer::builder(store)
            .register(gadget, Arc::new(DefaultStrategy))
            .unwrap()
            .build()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        tokio::spawn(async move {
            let _ = serving
                .serve_with_shutdown(listener, async move {
                    let _ = rx.await;
                })
                .await;
        });
        ironnet_apiserver::kubeconfig::write(&dir.path().join("kubeconfig"), &format!("http://{addr}"))
            .unwrap();
        GadgetServer {
            addr,
            dir,
            stop: Some(tx),
            _server: server,
        }
    }

    /// A kube-rs client of the server.
    #[allow(dead_code)]
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// Runs the real kubectl against the server (30 s at most): success, stdout, stderr.
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("/usr/bin/kubectl")
                .arg("--kubeconfig")
                .arg(self.dir.path().join("kubeconfig"))
                .arg("--cache-dir")
                .arg(self.dir.path().join("cache"))
                .args(args)
                .env("HOME", self.dir.path())
                .env_remove("KUBECONFIG")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// [`GadgetServer::kubectl`] that must succeed; its stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}");
        stdout
    }
}
