//! kubectl against the full server: core/v1 Nodes (the metalnet nodes) and apinet Nodes (their mirrors) are
//! two resources named `nodes`, and kubectl must reach both.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{env, poll};

/// Runs kubectl with `kubeconfig` and returns (success, stdout, stderr).
async fn kubectl(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("kubectl in time")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_manages_metalnet_nodes_next_to_apinet_nodes() {
    let env = env().await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = env.server.server.clone();
    let serving = tokio::spawn(async move {
        let _ = server.serve_with_shutdown(listener, std::future::pending()).await;
    });
    let dir = tempfile::tempdir().unwrap();
    ironnet_apiserver::kubeconfig::write(&dir.path().join("kubeconfig"), &format!("http://{addr}")).unwrap();

    let manifest = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels:\n    role: hypervisor\n";
    let (ok, out, err) = kubectl(dir.path(), &["apply", "-f", "-"], Some(manifest)).await;
    assert!(ok, "kubectl apply: {out}\n{err}");
    let (ok, out, err) = kubectl(dir.path(), &["label", "node", "node-1", "zone=a"], None).await;
    assert!(ok, "kubectl label: {out}\n{err}");
    // metalnetlet mirrors it; kubectl reaches the mirror by its full resource name.
    let mirrored = poll("apinet node through kubectl", || async {
        let (ok, out, _) = kubectl(
            dir.path(),
            &["get", "nodes.core.apinet.ironcore.dev", "-o", "name"],
            None,
        )
        .await;
        (ok && out.contains("test-metalnetlet.node-1")).then_some(out)
    })
    .await;
    assert_eq!(
        mirrored.trim(),
        "node.core.apinet.ironcore.dev/test-metalnetlet.node-1"
    );
    let (ok, out, err) = kubectl(dir.path(), &["get", "no", "-l", "zone=a", "-o", "name"], None).await;
    assert!(ok, "kubectl get no: {out}\n{err}");
    assert_eq!(
        out.trim(),
        "node/node-1",
        "the short name resolves to core/v1 nodes"
    );
    serving.abort();
}
