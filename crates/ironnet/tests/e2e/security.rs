//! What `ironnet up` and `ironnet apiserver` serve by default: HTTPS with the credentials they
//! write, each component under its own identity (as the audit log shows), certificates reused
//! across restarts, `ironnet token create`, plain HTTP refused off loopback, and the Python
//! `kubernetes` client with the written kubeconfig.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ServingProcess, repo_root};

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("/usr/bin/kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .expect("kubectl runs")
}

fn ironnet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ironnet"))
        .args(args)
        .output()
        .expect("ironnet runs")
}

fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until an audit event matches `pred`, failing with the users seen so far.
fn wait_for_event(path: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = audit_events(path);
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return e.clone();
        }
        if Instant::now() > deadline {
            let mut users: Vec<String> = events
                .iter()
                .map(|e| e["user"]["username"].as_str().unwrap_or("").to_owned())
                .collect();
            users.sort();
            users.dedup();
            panic!("no audit event for {what}; users seen: {users:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn file_mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ironnet_up_runs_every_component_with_its_own_identity() {
    let audit = tempfile::tempdir().unwrap();
    let audit_log = audit.path().join("audit.log");
    let mut up = ServingProcess::start("up", &["--audit-log-path", audit_log.to_str().unwrap()]);
    let data = up.dir().join("data");
    let kubeconfig: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(up.kubeconfig()).unwrap()).unwrap();
    let cluster = &kubeconfig["clusters"][0]["cluster"];
    assert!(
        cluster["server"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{cluster}"
    );
    assert!(cluster["certificate-authority-data"].is_string());
    assert!(kubeconfig["users"][0]["user"]["client-certificate-data"].is_string());
    assert_eq!(file_mode(&data.join("pki")), 0o700);
    for file in ["ca.key", "apiserver.key", "admin.key", "token-signing.key"] {
        assert_eq!(file_mode(&data.join("pki").join(file)), 0o600, "{file}");
    }

    // The README's first commands work over TLS.
    let examples = repo_root().join("examples");
    let out = kubectl(
        &up.kubeconfig(),
        up.dir(),
        &[
            "apply",
            "-f",
            examples.join("00-network.yaml").to_str().unwrap(),
            "-f",
            examples.join("04-virtualip.yaml").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let admin = wait_for_event(&audit_log, "kubectl's create", |e| {
        e["verb"] == "create"
            && e["objectRef"]["resource"] == "networks"
            && e["user"]["username"] == "kubernetes-admin"
    });
    assert_eq!(admin["user"]["groups"][0], "system:masters");
    // The controllers and apinetlet write with their own certificates.
    wait_for_event(&audit_log, "apinetlet's network", |e| {
        e["user"]["username"] == "system:ironnet-apinetlet"
            && e["objectRef"]["apiGroup"] == "core.apinet.ironcore.dev"
            && ["create", "patch", "update"].contains(&e["verb"].as_str().unwrap_or(""))
            && e["responseStatus"]["code"]
                .as_u64()
                .is_some_and(|c| (200..300).contains(&c))
    });
    wait_for_event(&audit_log, "the controller-manager", |e| {
        e["user"]["username"] == "system:ironnet-controller-manager" && e["responseStatus"]["code"] == 200
    });
    wait_for_event(&audit_log, "the simulated node", |e| {
        e["user"]["username"] == "system:ironnet-simulated-node"
    });
    // Nothing the components did was refused: each identity authenticates and its role covers its work.
    let refused: Vec<Value> = audit_events(&audit_log)
        .into_iter()
        .filter(|e| e["responseStatus"]["code"] == 401 || e["responseStatus"]["code"] == 403)
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");

    // A restart reuses the CA and the admin's certificate: the old kubeconfig's credentials stay valid.
    let ca = std::fs::read(data.join("pki/ca.crt")).unwrap();
    let admin_cert = std::fs::read(data.join("pki/admin.crt")).unwrap();
    up.restart("up", &["--audit-log-path", audit_log.to_str().unwrap()]);
    assert_eq!(std::fs::read(data.join("pki/ca.crt")).unwrap(), ca);
    assert_eq!(std::fs::read(data.join("pki/admin.crt")).unwrap(), admin_cert);
    let out = kubectl(
        &up.kubeconfig(),
        up.dir(),
        &["get", "networks", "network-sample", "-o", "name"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn token_create_mints_node_and_user_tokens() {
    let audit = tempfile::tempdir().unwrap();
    let audit_log = audit.path().join("audit.log");
    let server = ServingProcess::start(
        "apiserver",
        &[
            "--public-prefix",
            "192.0.2.0/24",
            "--audit-log-path",
            audit_log.to_str().unwrap(),
        ],
    );
    let data = server.dir().join("data");
    let node_kubeconfig = server.dir().join("hv-9.kubeconfig");
    let out = ironnet(&[
        "token",
        "create",
        "--data-dir",
        data.to_str().unwrap(),
        "--node",
        "hv-9",
        "--ttl",
        "1h",
        "--kubeconfig",
        node_kubeconfig.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(file_mode(&node_kubeconfig), 0o600);
    // /version is public, so this holds under any authorization; the audit log says who asked.
    let out = kubectl(&node_kubeconfig, server.dir(), &["get", "--raw", "/version"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let event = wait_for_event(&audit_log, "the node token", |e| {
        e["user"]["username"] == "system:node:hv-9"
    });
    assert_eq!(
        event["user"]["groups"],
        serde_json::json!(["system:nodes", "system:authenticated"])
    );

    let out = ironnet(&[
        "token",
        "create",
        "--data-dir",
        data.to_str().unwrap(),
        "--user",
        "ops-bot",
        "--group",
        "ops",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("ironnet.v1."), "{token}");

    // Bad input: a clear error, no token.
    let out = ironnet(&[
        "token",
        "create",
        "--data-dir",
        data.to_str().unwrap(),
        "--node",
        "hv-9",
        "--ttl",
        "5w",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown unit \"w\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = ironnet(&[
        "token",
        "create",
        "--data-dir",
        empty.path().to_str().unwrap(),
        "--node",
        "hv-9",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token-signing.key does not exist"));

    // A token signed with another data dir's key is refused.
    let other = ServingProcess::start("apiserver", &["--public-prefix", "192.0.2.0/24"]);
    let foreign = server.dir().join("foreign.kubeconfig");
    let out = ironnet(&[
        "token",
        "create",
        "--data-dir",
        other.dir().join("data").to_str().unwrap(),
        "--user",
        "kubernetes-admin",
        "--group",
        "system:masters",
        "--kubeconfig",
        foreign.to_str().unwrap(),
        "--server",
        &kube_server(&server.kubeconfig()),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Its CA is the other server's too; trust this one's to see the token refused.
    let mut config: Value = serde_saphyr::from_str(&std::fs::read_to_string(&foreign).unwrap()).unwrap();
    let ours: Value = serde_saphyr::from_str(&std::fs::read_to_string(server.kubeconfig()).unwrap()).unwrap();
    config["clusters"][0]["cluster"]["certificate-authority-data"] =
        ours["clusters"][0]["cluster"]["certificate-authority-data"].clone();
    std::fs::write(&foreign, serde_json::to_string(&config).unwrap()).unwrap();
    let out = kubectl(&foreign, server.dir(), &["get", "namespaces"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: You must be logged in to the server"),
        "{err}"
    );
    wait_for_event(&audit_log, "the refused token", |e| {
        e["responseStatus"]["code"] == 401 && e["user"] == serde_json::json!({})
    });
}

fn kube_server(kubeconfig: &Path) -> String {
    let config: Value = serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    config["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn plain_http_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ironnet(&[
        "apiserver",
        "--insecure-plain-http",
        "--bind-address",
        "0.0.0.0",
        "--port",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure-plain-http serves without TLS or authentication and only binds a loopback address, not 0.0.0.0"),
        "{err}"
    );
    // Refused before anything is written.
    assert!(!data.join("kubeconfig").exists());
    let out = ironnet(&[
        "up",
        "--insecure-plain-http",
        "--bind-address",
        "10.0.0.1",
        "--port",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not 10.0.0.1"));

    // On loopback it serves plain HTTP with a credential-less kubeconfig.
    let plain = ServingProcess::start(
        "apiserver",
        &["--insecure-plain-http", "--public-prefix", "192.0.2.0/24"],
    );
    assert!(kube_server(&plain.kubeconfig()).starts_with("http://127.0.0.1:"));
    let out = kubectl(
        &plain.kubeconfig(),
        plain.dir(),
        &["get", "namespaces", "-o", "name"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!plain.dir().join("data/pki").exists());
}

/// Debian's python3-kubernetes with the kubeconfig `ironnet up` writes: list namespaces and
/// create a Network.
#[test]
fn python_kubernetes_client() {
    let up = ServingProcess::start("up", &[]);
    let script = r#"
import sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
names = [ns.metadata.name for ns in client.CoreV1Api().list_namespace().items]
assert "default" in names, names
created = client.CustomObjectsApi().create_namespaced_custom_object(
    "networking.ironcore.dev", "v1alpha1", "default", "networks",
    {"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network", "metadata": {"name": "from-python"}, "spec": {}})
print(created["metadata"]["name"], created["metadata"]["uid"] != "")
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(up.kubeconfig())
        .env("HOME", up.dir())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-python True");
    let out = kubectl(
        &up.kubeconfig(),
        up.dir(),
        &["get", "network", "from-python", "-o", "name"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
