//! kubectl 1.32 end to end over TCP with the generated kubeconfig, against the `Widget` test kind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::TestServer;

pub(crate) struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

pub(crate) struct Out {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Kubectl {
    pub(crate) async fn new(addr: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        ironnet_apiserver::kubeconfig::write(&kubeconfig, &format!("http://{addr}")).unwrap();
        Kubectl { dir, kubeconfig }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(30), c.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[]).await
    }

    /// Runs and asserts success; returns stdout.
    pub(crate) async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            o.ok,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stdout
    }

    pub(crate) fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn manifest(name: &str, size: i64, extra: &str) -> String {
    format!(
        "apiVersion: test.ironnet.dev/v1\nkind: Widget\nmetadata:\n  name: {name}\n{extra}spec:\n  size: {size}\n"
    )
}

async fn kubectl_end_to_end(t: TestServer) {
    let (addr, serving) = t.serve_tcp().await;
    let k = Kubectl::new(addr).await;

    // Discovery and OpenAPI.
    let res = k.ok(&["api-resources"]).await;
    let line = res
        .lines()
        .find(|l| l.starts_with("widgets"))
        .unwrap_or_else(|| panic!("{res}"));
    assert!(
        line.contains("wd")
            && line.contains("test.ironnet.dev/v1")
            && line.contains("true")
            && line.contains("Widget"),
        "{line}"
    );
    assert!(res.lines().any(|l| l.starts_with("namespaces")), "{res}");
    let explain = k.ok(&["explain", "widgets.spec"]).await;
    assert!(explain.contains("size"), "{explain}");

    // create, client-side apply (twice), server-side apply (twice).
    let f1 = k.file("w1.yaml", &manifest("w1", 1, ""));
    assert!(
        k.ok(&["create", "-f", &f1])
            .await
            .contains("widget.test.ironnet.dev/w1 created")
    );
    let f2 = k.file("w2.yaml", &manifest("w2", 2, ""));
    assert!(k.ok(&["apply", "-f", &f2]).await.contains("created"));
    assert!(k.ok(&["apply", "-f", &f2]).await.contains("unchanged"));
    let f3 = k.file("w3.yaml", &manifest("w3", 3, ""));
    assert!(
        k.ok(&["apply", "--server-side", "-f", &f3])
            .await
            .contains("serverside-applied")
    );
    let rv_args = [
        "get",
        "widget",
        "w3",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ];
    let before = k.ok(&rv_args).await;
    k.ok(&["apply", "--server-side", "-f", &f3]).await;
    assert_eq!(
        k.ok(&rv_args).await,
        before,
        "a second server-side apply is a no-op"
    );
    // Another manager applying a different size conflicts; --force-conflicts wins.
    let f3b = k.file("w3b.yaml", &manifest("w3", 30, ""));
    let o = k
        .run(&["apply", "--server-side", "--field-manager", "other", "-f", &f3b])
        .await;
    assert!(!o.ok && o.stderr.contains("conflict"), "{}", o.stderr);
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        &f3b,
    ])
    .await;

    // diff shows the change without applying it.
    let f1b = k.file("w1b.yaml", &manifest("w1", 5, ""));
    let d = k.run(&["diff", "-f", &f1b]).await;
    assert!(d.stdout.contains("size: 5"), "diff: {} {}", d.stdout, d.stderr);
    assert_eq!(
        k.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"])
            .await,
        "1"
    );

    // edit with a scripted editor.
    let editor = k.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/^  size: 1$/  size: 42/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = k
        .run_env(&["edit", "widget", "w1"], &[("EDITOR", editor.to_str().unwrap())])
        .await;
    assert!(o.ok, "{} {}", o.stdout, o.stderr);
    assert_eq!(
        k.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"])
            .await,
        "42"
    );

    // label, annotate, patch.
    k.ok(&["label", "widget", "w1", "tier=gold"]).await;
    k.ok(&["annotate", "widget", "w1", "note=hi"]).await;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"color":"red"}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "widget",
        "w2",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/size","value":7}]"#,
    ])
    .await;
    let o = k
        .run(&["patch", "widget", "w2", "-p", r#"{"spec":{"size":8}}"#])
        .await;
    assert!(
        !o.ok && o.stderr.contains("not supported"),
        "strategic merge patch is refused: {}",
        o.stderr
    );

    // get in every output format.
    let plain = k.ok(&["get", "widgets"]).await;
    assert!(
        plain.starts_with("NAME")
            && plain.contains("SIZE")
            && plain.contains("AGE")
            && !plain.contains("COLOR"),
        "{plain}"
    );
    let wide = k.ok(&["get", "widgets", "-o", "wide"]).await;
    assert!(wide.contains("COLOR") && wide.contains("red"), "{wide}");
    let y = k.ok(&["get", "widget", "w1", "-o", "yaml"]).await;
    assert!(y.contains("note: hi") && y.contains("tier: gold"), "{y}");
    let j: Value = serde_json::from_str(&k.ok(&["get", "widgets", "-o", "json"]).await).unwrap();
    assert_eq!(j["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        k.ok(&["get", "widgets", "-o", "jsonpath={.items[*].metadata.name}"])
            .await,
        "w1 w2 w3"
    );
    let cc = k
        .ok(&[
            "get",
            "widgets",
            "-o",
            "custom-columns=N:.metadata.name,S:.spec.size",
        ])
        .await;
    assert!(
        cc.contains("w2   7")
            || cc
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["w2", "7"]),
        "{cc}"
    );
    assert_eq!(
        k.ok(&["get", "widgets", "-l", "tier=gold", "-o", "name"])
            .await
            .trim(),
        "widget.test.ironnet.dev/w1"
    );
    assert_eq!(
        k.ok(&["get", "widgets", "-l", "tier!=gold", "-o", "name"])
            .await
            .lines()
            .count(),
        2
    );
    assert_eq!(
        k.ok(&[
            "get",
            "widgets",
            "--field-selector",
            "metadata.name=w2",
            "-o",
            "name"
        ])
        .await
        .trim(),
        "widget.test.ironnet.dev/w2"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "widgets",
            "--field-selector",
            "spec.color=red",
            "-o",
            "name"
        ])
        .await
        .trim(),
        "widget.test.ironnet.dev/w1"
    );
    let all = k.ok(&["get", "widgets", "-A"]).await;
    assert!(all.starts_with("NAMESPACE") && all.contains("default"), "{all}");
    let ns = k.ok(&["get", "ns"]).await;
    assert!(ns.contains("kube-system") && ns.contains("Active"), "{ns}");

    // get -w sees a new object.
    let mut watch = k
        .command(&["get", "widgets", "-w", "--output-watch-events"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let f4 = k.file("w4.yaml", &manifest("w4", 4, ""));
    k.ok(&["create", "-f", &f4]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watch.start_kill().unwrap();
    let out = watch.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("ADDED") && l.contains("w4")),
        "watch output:\n{text}"
    );

    // wait --for=condition and --for=jsonpath.
    let waiter = k
        .command(&["wait", "--for=condition=Ready", "widget/w1", "--timeout=20s"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        status,
    ])
    .await;
    let out = tokio::time::timeout(Duration::from_secs(25), waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    k.ok(&[
        "wait",
        "--for=jsonpath={.spec.size}=7",
        "widget/w2",
        "--timeout=10s",
    ])
    .await;

    // describe (with the events lookup).
    let desc = k.ok(&["describe", "widget", "w1"]).await;
    assert!(
        desc.contains("Name:") && desc.contains("w1") && desc.contains("Events:"),
        "{desc}"
    );

    // delete held by a finalizer, then released.
    let ff = k.file(
        "fin.yaml",
        &manifest("fin", 1, "  finalizers:\n  - test.ironnet.dev/hold\n"),
    );
    k.ok(&["create", "-f", &ff]).await;
    let deleter = k
        .command(&["delete", "widget", "fin", "--timeout=25s"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let dt = k
        .ok(&[
            "get",
            "widget",
            "fin",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(!dt.is_empty(), "deletion is pending");
    k.ok(&[
        "patch",
        "widget",
        "fin",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let out = tokio::time::timeout(Duration::from_secs(25), deleter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let o = k.run(&["get", "widget", "fin"]).await;
    assert!(!o.ok && o.stderr.contains("NotFound"), "{}", o.stderr);
    serving.stop().await;
}

crate::on_both_stores!(tokio::test(flavor = "multi_thread", worker_threads = 2); kubectl_end_to_end);
