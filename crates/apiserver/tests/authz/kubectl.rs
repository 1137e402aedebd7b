//! `kubectl auth can-i` and `kubectl auth whoami` (kubectl 1.32, /usr/bin/kubectl) against the
//! review endpoints, with a kubeconfig carrying a bearer token.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::{Cluster, api, create, eventually};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn kubectl(c: &Cluster, user: &str, args: &[&str]) -> Run {
    let home = c.dir.path().join(format!("home-{}", user.replace(':', "_")));
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(c.tls_kubeconfig(user))
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .args(args)
            .env("HOME", &home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
    .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn kubectl_auth_can_i_answers_from_rbac() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    create(
        &api(&admin, "", "v1", "Namespace", "namespaces", None),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .await
    .unwrap();
    create(
        &api(&admin, "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", Some("team")),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "alice-views"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]}),
    )
    .await
    .unwrap();

    eventually("alice's view binding", || async {
        let r = kubectl(
            &c,
            "alice",
            &[
                "auth",
                "can-i",
                "list",
                "networks.networking.ironcore.dev",
                "-n",
                "team",
            ],
        )
        .await;
        r.stdout == "yes"
    })
    .await;
    let cases = [
        (
            "alice",
            vec!["get", "networks.networking.ironcore.dev", "-n", "team"],
            "yes",
            0,
        ),
        (
            "alice",
            vec!["create", "networks.networking.ironcore.dev", "-n", "team"],
            "no",
            1,
        ),
        (
            "alice",
            vec!["get", "networks.networking.ironcore.dev", "-n", "default"],
            "no",
            1,
        ),
        ("alice", vec!["get", "/healthz"], "yes", 0),
        ("alice", vec!["delete", "namespaces"], "no", 1),
        ("admin", vec!["delete", "namespaces"], "yes", 0),
        (
            "system:node:hv-1",
            vec!["list", "networkinterfaces.networking.metalnet.ironcore.dev"],
            "no - can only list/watch networkinterfaces with the field selector spec.nodeName=hv-1",
            1,
        ),
        ("system:node:hv-1", vec!["get", "nodes/hv-1"], "yes", 0),
        (
            "system:node:hv-1",
            vec!["get", "nodes/hv-2"],
            "no - node 'hv-1' can only access its own Node object",
            1,
        ),
    ];
    for (user, args, answer, code) in cases {
        let mut full = vec!["auth", "can-i"];
        full.extend(args.iter());
        let run = kubectl(&c, user, &full).await;
        assert_eq!(
            (run.stdout.as_str(), run.code),
            (answer, code),
            "{user}: kubectl {full:?}: {}",
            run.stderr
        );
    }

    let list = kubectl(&c, "alice", &["auth", "can-i", "--list", "-n", "team"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("*.networking.ironcore.dev"))
        .unwrap_or_else(|| panic!("no networking line in\n{}", list.stdout));
    assert!(line.contains("[get list watch]"), "{line}");
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")),
        "{}",
        list.stdout
    );

    let whoami = kubectl(&c, "alice", &["auth", "whoami", "-o", "json"]).await;
    assert_eq!(whoami.code, 0, "{}", whoami.stderr);
    let me: serde_json::Value = serde_json::from_str(&whoami.stdout).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "alice");
}
