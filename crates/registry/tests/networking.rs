//! The `networking.ironcore.dev` rules of the served API that need the store, through the real API server on
//! the embedded store: VirtualIP deletion blocked while in use, legacy LoadBalancerRouting destinations
//! resolved from their NetworkInterface, upstream's formatted Table cells, and every seed example applied and
//! listed with real kubectl.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ironnet_apimachinery::clock::{ManualClock, SharedClock};
use ironnet_registry::{AllocationConfig, IroncoreApiServer};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Error};
use serde_json::{Value, json};

const NET: &str = "networking.ironcore.dev";

struct Fixture {
    _dir: tempfile::TempDir,
    server: IroncoreApiServer,
    client: Client,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).unwrap();
    let allocation = AllocationConfig {
        public_prefixes: vec!["192.0.2.0/24".parse().unwrap()],
        ..AllocationConfig::default()
    };
    // Stopped at one instant, so that ages in tables are exact.
    let clock: SharedClock = Arc::new(ManualClock::new("2026-11-23T19:00:00Z".parse().unwrap()));
    let server = ironnet_registry::build(Arc::new(store), &allocation, |b| b.clock(clock))
        .await
        .unwrap();
    assert!(server.index.wait_ready(Duration::from_secs(5)).await);
    let client = Client::new(server.server.router(), "default");
    Fixture {
        _dir: dir,
        server,
        client,
    }
}

fn api(f: &Fixture, group: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: group.into(),
        version: "v1alpha1".into(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(f.client.clone(), "default", &ar)
}

fn object(group: &str, kind: &str, name: &str, fields: Value) -> DynamicObject {
    let mut o = json!({"apiVersion": format!("{group}/v1alpha1"), "kind": kind, "metadata": {"name": name}});
    for (k, v) in fields.as_object().unwrap() {
        o[k] = v.clone();
    }
    serde_json::from_value(o).unwrap()
}

async fn create(api: &Api<DynamicObject>, obj: DynamicObject) -> DynamicObject {
    api.create(&PostParams::default(), &obj).await.unwrap()
}

fn api_error(e: Error) -> (u16, String, String) {
    match e {
        Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A NetworkInterface with one IPv4 address and the given `spec.virtualIP`.
fn nic(name: &str, virtual_ip: Value) -> DynamicObject {
    object(
        NET,
        "NetworkInterface",
        name,
        json!({"spec": {"networkRef": {"name": "net"}, "ipFamilies": ["IPv4"], "ips": [{"value": "10.0.0.1"}],
            "virtualIP": virtual_ip}}),
    )
}

fn vip(name: &str, target: Option<&DynamicObject>) -> DynamicObject {
    let mut spec = json!({"type": "Public", "ipFamily": "IPv4"});
    if let Some(t) = target {
        spec["targetRef"] = json!({"name": t.metadata.name, "uid": t.metadata.uid});
    }
    object(NET, "VirtualIP", name, json!({"spec": spec}))
}

#[tokio::test]
async fn a_virtual_ip_in_use_cannot_be_deleted_until_unbound() {
    let f = fixture().await;
    let nics = api(&f, NET, "NetworkInterface", "networkinterfaces");
    let vips = api(&f, NET, "VirtualIP", "virtualips");
    let nic = create(&nics, nic("nic", json!({"virtualIPRef": {"name": "vip"}}))).await;
    create(&vips, vip("vip", Some(&nic))).await;

    let refused = (
        422,
        "Invalid".to_owned(),
        r#"VirtualIP.networking.ironcore.dev "vip" is invalid: spec.targetRef: Forbidden: virtual ip is still bound to nic"#
            .to_owned(),
    );
    let err = vips.delete("vip", &DeleteParams::default()).await.unwrap_err();
    assert_eq!(api_error(err), refused);
    let err = vips
        .delete("vip", &DeleteParams::default().dry_run())
        .await
        .unwrap_err();
    assert_eq!(api_error(err), refused, "dry run validates too");
    let err = vips
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_error(err), refused, "deletecollection validates every item");
    assert!(
        vips.get_opt("vip").await.unwrap().is_some(),
        "nothing was deleted"
    );

    // Unbinding releases it.
    vips.patch(
        "vip",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"targetRef": null}})),
    )
    .await
    .unwrap();
    vips.delete("vip", &DeleteParams::default()).await.unwrap();
    assert!(vips.get_opt("vip").await.unwrap().is_none());
}

#[tokio::test]
async fn stale_bindings_do_not_block_deletion() {
    let f = fixture().await;
    let nics = api(&f, NET, "NetworkInterface", "networkinterfaces");
    let vips = api(&f, NET, "VirtualIP", "virtualips");

    // The interface refers to another VirtualIP (e.g. it switched from ephemeral to a reference).
    let moved = create(&nics, nic("moved", json!({"virtualIPRef": {"name": "other"}}))).await;
    create(&vips, vip("left-behind", Some(&moved))).await;
    vips.delete("left-behind", &DeleteParams::default())
        .await
        .unwrap();

    // The target names an interface that does not exist, or exists under another UID.
    let mut ghost = vip("ghost", Some(&moved));
    ghost.data["spec"]["targetRef"] = json!({"name": "moved", "uid": "not-the-uid"});
    create(&vips, ghost).await;
    vips.delete("ghost", &DeleteParams::default()).await.unwrap();

    // An ephemeral VirtualIP owned by its interface: refused while the interface lives, then collected by the
    // garbage collector when the interface goes (before anything cleared its targetRef).
    let template =
        json!({"ephemeral": {"virtualIPTemplate": {"spec": {"type": "Public", "ipFamily": "IPv4"}}}});
    let owner = create(&nics, nic("eph", template)).await;
    let mut ephemeral = vip("eph", Some(&owner));
    ephemeral.metadata.owner_references = Some(vec![
        serde_json::from_value(
            json!({"apiVersion": format!("{NET}/v1alpha1"), "kind": "NetworkInterface",
            "name": "eph", "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": true}),
        )
        .unwrap(),
    ]);
    create(&vips, ephemeral).await;
    let (code, _, _) = api_error(vips.delete("eph", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(code, 422);
    nics.delete("eph", &DeleteParams::default()).await.unwrap();
    let mut gone = false;
    for _ in 0..200 {
        if vips.get_opt("eph").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the garbage collector deletes the ephemeral VirtualIP of a deleted interface"
    );
}

#[tokio::test]
async fn legacy_routing_destinations_get_their_interface_ips() {
    let f = fixture().await;
    let nics = api(&f, NET, "NetworkInterface", "networkinterfaces");
    let lbrs = api(&f, NET, "LoadBalancerRouting", "loadbalancerroutings");
    let nic_1 = create(&nics, nic("nic-1", json!({"virtualIPRef": {"name": "v"}}))).await;
    let uid = nic_1.metadata.uid.clone().unwrap();
    let lbr = object(
        NET,
        "LoadBalancerRouting",
        "lb",
        json!({"networkRef": {"name": "net"}, "destinations": [
            {"name": "nic-1", "uid": uid},
            {"name": "missing", "uid": "u-2"},
            {"name": "nic-1", "uid": "another-uid"},
            {"ip": "10.0.0.9"}]}),
    );
    let created = create(&lbrs, lbr).await;
    assert_eq!(
        created.data["destinations"],
        json!([
            {"ip": "10.0.0.1", "targetRef": {"uid": uid, "name": "nic-1", "providerID": ""}},
            {"targetRef": {"uid": "u-2", "name": "missing", "providerID": ""}},
            {"targetRef": {"uid": "another-uid", "name": "nic-1", "providerID": ""}},
            {"ip": "10.0.0.9"}])
    );
    // Updates resolve what became resolvable; the interface's effective IPs (status) win over spec values.
    nics.patch_status(
        "nic-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"ips": ["10.0.0.1", "10.0.0.2"]}})),
    )
    .await
    .unwrap();
    let updated = lbrs
        .patch(
            "lb",
            &PatchParams::default(),
            &Patch::Merge(json!({"destinations": [{"targetRef": {"name": "nic-1", "uid": uid}}]})),
        )
        .await
        .unwrap();
    assert_eq!(
        updated.data["destinations"],
        json!([
            {"ip": "10.0.0.1", "targetRef": {"uid": uid, "name": "nic-1", "providerID": ""}},
            {"ip": "10.0.0.2", "targetRef": {"uid": uid, "name": "nic-1", "providerID": ""}}])
    );
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

async fn table(f: &Fixture, path: &str) -> String {
    let req = http::Request::get(path)
        .header("accept", TABLE)
        .body(Vec::new())
        .unwrap();
    f.client.request_text(req).await.unwrap()
}

#[tokio::test]
async fn tables_format_cells_like_upstream() {
    let f = fixture().await;
    let vips = api(&f, NET, "VirtualIP", "virtualips");
    create(&vips, vip("a", None)).await;
    create(&vips, vip("b", None)).await;
    vips.patch_status(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"ip": "192.0.2.7"}})),
    )
    .await
    .unwrap();
    let body = table(
        &f,
        "/apis/networking.ironcore.dev/v1alpha1/namespaces/default/virtualips?includeObject=None",
    )
    .await;
    let rv: Value = serde_json::from_str(&body).unwrap();
    let rv = rv["metadata"]["resourceVersion"].as_str().unwrap();
    let expected = format!(
        concat!(
            r#"{{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{{"resourceVersion":"{rv}"}},"#,
            r#""columnDefinitions":[{{"name":"Name","type":"string","format":"name","description":"Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names","priority":0}},"#,
            r#"{{"name":"ExternalIP","type":"string","format":"","description":"The allocated address","priority":0}},"#,
            r#"{{"name":"Age","type":"date","format":"","description":"","priority":0}}],"#,
            r#""rows":[{{"cells":["a","None","0s"]}},{{"cells":["b","192.0.2.7","0s"]}}]}}"#
        ),
        rv = rv
    );
    assert_eq!(body, expected);

    // Lists: at most three targets, then a count; `<unset>` without any.
    let lbrs = api(&f, NET, "LoadBalancerRouting", "loadbalancerroutings");
    let ips: Vec<Value> = (1..=5).map(|i| json!({"ip": format!("10.0.0.{i}")})).collect();
    create(
        &lbrs,
        object(NET, "LoadBalancerRouting", "five", json!({"destinations": ips})),
    )
    .await;
    create(
        &lbrs,
        object(NET, "LoadBalancerRouting", "none", json!({"destinations": []})),
    )
    .await;
    let t: Value = serde_json::from_str(
        &table(
            &f,
            "/apis/networking.ironcore.dev/v1alpha1/namespaces/default/loadbalancerroutings",
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["five", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more", "0s"])
    );
    assert_eq!(t["rows"][1]["cells"], json!(["none", "<unset>", "0s"]));

    // ironcore-net: the NetworkID's claim is `<resource>.<group> <namespace>/<name>`.
    let apinet = "core.apinet.ironcore.dev";
    let network = create(
        &api(&f, apinet, "Network", "networks"),
        object(apinet, "Network", "tenant-a", json!({"spec": {}})),
    )
    .await;
    let vni = network.data["spec"]["id"].as_str().unwrap().to_owned();
    let t: Value =
        serde_json::from_str(&table(&f, &format!("/apis/{apinet}/v1alpha1/networkids/{vni}")).await).unwrap();
    assert_eq!(
        t["rows"][0]["cells"],
        json!([vni, "networks.core.apinet.ironcore.dev default/tenant-a", "0s"])
    );
}

/// Every field of `original` appears in `output` with the same value.
fn assert_subset(original: &Value, output: &Value, path: &str) {
    match (original, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let out = b.get(k).unwrap_or_else(|| panic!("{path}.{k} dropped: {output}"));
                assert_subset(v, out, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: list length changed");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_subset(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(original, output, "{path} changed"),
    }
}

struct Kubectl {
    dir: tempfile::TempDir,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

#[tokio::test]
async fn every_seed_example_applies_with_kubectl_and_lists_with_upstream_columns() {
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = f.server.server.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let _ = server
            .serve_with_shutdown(listener, async move {
                let _ = stopped.await;
            })
            .await;
    });
    let k = Kubectl {
        dir: tempfile::tempdir().unwrap(),
    };
    ironnet_apiserver::kubeconfig::write(&k.dir.path().join("kubeconfig"), &format!("http://{addr}"))
        .unwrap();

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 11, "the seed has 11 YAML examples");
    // Status fragments go to the `/status` of the object the preceding example created.
    let fragment_of = |file: &str| match file {
        "03-networkinterface-status.yaml" => Some(("networkinterface", "networkinterface-sample")),
        "05-virtualip-status.yaml" => Some(("virtualip", "virtualip-sample")),
        "07-natgateway-status.yaml" => Some(("natgateway", "natgateway-sample")),
        _ => None,
    };
    let mut applied = Vec::new();
    for p in &files {
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        let path = p.display().to_string();
        let original: Value = serde_saphyr::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        if let Some((kind, name)) = fragment_of(&file) {
            let mut status = original.clone();
            if file.starts_with("07") {
                // The documentation shows `{name, ip}` objects; the wire form is a plain address list.
                status = json!({"status": {"ips": ["10.0.0.1"]}});
            }
            let patch = status.to_string();
            k.run(&[
                "patch",
                kind,
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ])
            .await;
            let back: Value = serde_json::from_str(&k.run(&["get", kind, name, "-o", "json"]).await).unwrap();
            assert_subset(&status["status"], &back["status"], &format!("{file}: status"));
            continue;
        }
        k.run(&["apply", "-f", &path]).await;
        applied.push((file, original));
    }
    for (file, original) in applied {
        let kind = original["kind"].as_str().unwrap().to_lowercase();
        let name = original["metadata"]["name"].as_str().unwrap();
        let back: Value = serde_json::from_str(
            &k.run(&["get", &format!("{kind}.{NET}"), name, "-o", "json"])
                .await,
        )
        .unwrap();
        let mut expected = original.clone();
        expected.as_object_mut().unwrap().remove("status");
        match file.as_str() {
            // 00 is superseded by its reconciled form (same object), which is checked below.
            "00-network.yaml" => continue,
            "01-network-reconciled.yaml" => {
                expected["spec"]["peerings"][0]["networkRef"] = json!({"name": "network-sample2"});
            }
            "09-loadbalancerrouting.yaml" => {
                for d in expected["destinations"].as_array_mut().unwrap() {
                    *d = json!({"targetRef": {"name": d["name"], "uid": d["uid"], "providerID": ""}});
                }
            }
            "10-networkpolicy.yaml" => expected["spec"]["policyTypes"] = json!(["Egress", "Ingress"]),
            _ => {}
        }
        assert_subset(&expected, &back, &file);
    }

    let lines = |out: String| -> Vec<Vec<String>> {
        out.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let nics = lines(k.run(&["get", "networkinterfaces"]).await);
    assert_eq!(
        nics[0],
        [
            "NAME",
            "NETWORK",
            "MACHINE",
            "IPS",
            "PREFIXES",
            "VIRTUALIP",
            "STATE",
            "AGE"
        ]
    );
    assert_eq!(
        nics[1][..7],
        [
            "networkinterface-sample",
            "network-sample",
            "<none>",
            "10.0.0.1",
            "<none>",
            "172.89.244.23",
            "Available"
        ]
    );
    let vips = lines(k.run(&["get", "virtualips"]).await);
    assert_eq!(vips[0], ["NAME", "EXTERNALIP", "AGE"]);
    assert_eq!(vips[1][..2], ["virtualip-sample", "10.0.0.1"]);
    let lbrs = lines(k.run(&["get", "loadbalancerroutings"]).await);
    assert_eq!(
        lbrs[1][..2],
        ["loadbalancer-sample", "<unset>"],
        "the seed's interfaces do not exist"
    );
    let lbs = lines(k.run(&["get", "loadbalancers.networking.ironcore.dev"]).await);
    assert_eq!(lbs[1][..2], ["loadbalancer-sample", "None"]);
    let policies = lines(k.run(&["get", "networkpolicies.networking.ironcore.dev"]).await);
    assert_eq!(policies[1][..3], ["my-network-policy", "my-network", "app=db"]);
    let networks = lines(k.run(&["get", "networks.networking.ironcore.dev"]).await);
    assert_eq!(networks[0], ["NAME", "STATE", "PROVIDERID", "AGE"]);
    assert_eq!(networks[1][..2], ["network-sample", "<unknown>"]);

    let _ = stop.send(());
    serving.await.unwrap();
}

/// Upstream's Network `spec` is optional: a Network without one is created with an empty spec
/// (and so is one with `spec: null`), and updated like any other.
#[tokio::test]
async fn a_network_without_spec_is_accepted() {
    let f = fixture().await;
    let networks = api(&f, NET, "Network", "networks");
    let bare = create(&networks, object(NET, "Network", "bare", json!({}))).await;
    assert_eq!(bare.data["spec"], json!({}));
    let null = create(&networks, object(NET, "Network", "null", json!({"spec": null}))).await;
    assert_eq!(null.data["spec"], json!({}));
    let labelled = networks
        .patch(
            "bare",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            &labelled.data["spec"],
            labelled.metadata.labels.unwrap()["a"].as_str()
        ),
        (&json!({}), "b")
    );
}
