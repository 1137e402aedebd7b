//! Allocation through the real API server on the embedded store, driven by kube-rs: the registry behaviours
//! upstream ironcore-net tests in `internal/app/core_test.go`, and the quirks ironnet fixes.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ironnet_registry::alloc::VniRange;
use ironnet_registry::{AllocationConfig, IroncoreApiServer};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Error};
use serde_json::{Value, json};

const GROUP: &str = "core.apinet.ironcore.dev";

struct Fixture {
    _dir: tempfile::TempDir,
    server: IroncoreApiServer,
    client: Client,
}

async fn fixture(vni_range: VniRange, prefixes: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).unwrap();
    let allocation = AllocationConfig {
        vni_range,
        public_prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
    };
    let server = ironnet_registry::build(Arc::new(store), &allocation, |b| b)
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

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{GROUP}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn namespaced(f: &Fixture, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(f.client.clone(), "default", &resource(kind, plural))
}

fn cluster(f: &Fixture, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::all_with(f.client.clone(), &resource(kind, plural))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn spec(o: &DynamicObject) -> &Value {
    &o.data["spec"]
}

fn status_code(e: &Error) -> u16 {
    match e {
        Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn ips_in_default(f: &Fixture) -> Vec<DynamicObject> {
    namespaced(f, "IP", "ips")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_network_gets_a_vni_claimed_by_a_network_id_released_on_delete() {
    let f = fixture(VniRange::DEFAULT, &[]).await;
    let networks = namespaced(&f, "Network", "networks");
    let created = networks
        .create(&PostParams::default(), &object("Network", "net", json!({})))
        .await
        .unwrap();
    let id = spec(&created)["id"].as_str().unwrap().to_owned();
    let vni: ironnet_vni::Vni = id.parse().unwrap();
    assert!(VniRange::DEFAULT.contains(vni));

    let network_ids = cluster(&f, "NetworkID", "networkids");
    let claim = network_ids.get(&id).await.unwrap();
    assert_eq!(
        spec(&claim)["claimRef"],
        json!({
            "group": GROUP, "resource": "networks", "namespace": "default", "name": "net",
            "uid": created.metadata.uid.clone().unwrap(),
        })
    );
    networks.delete("net", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        status_code(&network_ids.get(&id).await.unwrap_err()),
        404,
        "released immediately"
    );
}

#[tokio::test]
async fn a_given_vni_is_validated_and_claimed_once() {
    let f = fixture(VniRange::new(200, 1000).unwrap(), &[]).await;
    let networks = namespaced(&f, "Network", "networks");
    let non_canonical = networks
        .create(
            &PostParams::default(),
            &object("Network", "z", json!({"id": "0300"})),
        )
        .await;
    assert_eq!(
        status_code(&non_canonical.unwrap_err()),
        422,
        "one spelling per VNI"
    );
    let created = networks
        .create(
            &PostParams::default(),
            &object("Network", "a", json!({"id": "300"})),
        )
        .await
        .unwrap();
    assert_eq!(spec(&created)["id"], "300");
    cluster(&f, "NetworkID", "networkids").get("300").await.unwrap();

    let taken = networks
        .create(
            &PostParams::default(),
            &object("Network", "b", json!({"id": "300"})),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(&taken), 409);
    let out_of_range = networks
        .create(
            &PostParams::default(),
            &object("Network", "c", json!({"id": "5"})),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(&out_of_range), 422);
    let garbage = networks
        .create(
            &PostParams::default(),
            &object("Network", "d", json!({"id": "x"})),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(&garbage), 422);
    // Nothing was claimed by the failed creates.
    let ids = cluster(&f, "NetworkID", "networkids")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(ids.items.len(), 1);
}

#[tokio::test]
async fn every_vni_of_a_small_range_is_handed_out_once_then_conflict() {
    let f = fixture(VniRange::new(200, 209).unwrap(), &[]).await;
    let networks = namespaced(&f, "Network", "networks");
    let mut seen = BTreeSet::new();
    for i in 0..10 {
        let n = networks
            .create(
                &PostParams::default(),
                &object("Network", &format!("n{i}"), json!({})),
            )
            .await
            .unwrap();
        assert!(seen.insert(spec(&n)["id"].as_str().unwrap().to_owned()));
    }
    let err = networks
        .create(&PostParams::default(), &object("Network", "full", json!({})))
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), 409);
    networks.delete("n3", &DeleteParams::default()).await.unwrap();
    // The released VNI can be allocated again (the index learns it through its watch).
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match networks
                .create(&PostParams::default(), &object("Network", "again", json!({})))
                .await
            {
                Ok(n) => break n,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .unwrap();
    assert!(!spec(&again)["id"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn dynamic_ips_fill_the_first_prefix_including_network_and_broadcast_then_the_next() {
    let f = fixture(VniRange::DEFAULT, &["10.0.0.0/29", "10.0.1.0/29"]).await;
    let ips = namespaced(&f, "IP", "ips");
    let mut first = BTreeSet::new();
    for i in 0..8 {
        let ip = ips
            .create(
                &PostParams::default(),
                &object(
                    "IP",
                    &format!("ip{i}"),
                    json!({"type": "Public", "ipFamily": "IPv4"}),
                ),
            )
            .await
            .unwrap();
        let addr: IpAddr = spec(&ip)["ip"].as_str().unwrap().parse().unwrap();
        assert!(addr.to_string().starts_with("10.0.0."), "{addr}");
        first.insert(addr);
    }
    assert_eq!(first.len(), 8);
    let ninth = ips
        .create(
            &PostParams::default(),
            &object("IP", "ip8", json!({"type": "Public", "ipFamily": "IPv4"})),
        )
        .await
        .unwrap();
    assert!(spec(&ninth)["ip"].as_str().unwrap().starts_with("10.0.1."));
}

#[tokio::test]
async fn an_ip_claims_an_ip_address_with_protection_and_labels_and_releases_it_with_itself() {
    let f = fixture(VniRange::DEFAULT, &["192.0.2.0/24"]).await;
    let ips = namespaced(&f, "IP", "ips");
    let ip = ips
        .create(
            &PostParams::default(),
            &object("IP", "my-ip", json!({"type": "Public", "ipFamily": "IPv4"})),
        )
        .await
        .unwrap();
    let addr = spec(&ip)["ip"].as_str().unwrap().to_owned();
    assert!(addr.parse::<std::net::Ipv4Addr>().is_ok());
    let labels = ip.metadata.labels.clone().unwrap();
    assert_eq!(labels["apinet.ironcore.dev/ip-family"], "IPv4");
    assert_eq!(labels["apinet.ironcore.dev/ip"], addr);

    let addresses = cluster(&f, "IPAddress", "ipaddresses");
    let claim = addresses.get(&addr).await.unwrap();
    assert_eq!(
        spec(&claim)["claimRef"],
        json!({"group": GROUP, "resource": "ips", "namespace": "default", "name": "my-ip", "uid": ip.metadata.uid.clone().unwrap()})
    );
    assert_eq!(
        claim.metadata.finalizers,
        Some(vec!["apinet.ironcore.dev/ipaddress-protection".to_owned()])
    );

    ips.delete("my-ip", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_code(&addresses.get(&addr).await.unwrap_err()), 404);
}

#[tokio::test]
async fn a_given_ip_must_be_in_range_and_free_and_exhaustion_is_a_conflict() {
    let f = fixture(VniRange::DEFAULT, &["198.51.100.0/31"]).await;
    let ips = namespaced(&f, "IP", "ips");
    let given = |name: &str, ip: &str| object("IP", name, json!({"type": "Public", "ip": ip}));
    let a = ips
        .create(&PostParams::default(), &given("a", "198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(spec(&a)["ipFamily"], "IPv4", "family defaulted from the address");
    assert_eq!(
        status_code(
            &ips.create(&PostParams::default(), &given("b", "198.51.100.1"))
                .await
                .unwrap_err()
        ),
        409
    );
    assert_eq!(
        status_code(
            &ips.create(&PostParams::default(), &given("c", "203.0.113.9"))
                .await
                .unwrap_err()
        ),
        422
    );
    let dynamic = |name: &str| object("IP", name, json!({"type": "Public", "ipFamily": "IPv4"}));
    ips.create(&PostParams::default(), &dynamic("d")).await.unwrap();
    let err = ips
        .create(&PostParams::default(), &dynamic("e"))
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), 409);
    assert!(
        err.to_string().contains("all IP addresses are already allocated"),
        "{err}"
    );
    let v6 = object("IP", "v6", json!({"type": "Public", "ipFamily": "IPv6"}));
    assert_eq!(
        status_code(&ips.create(&PostParams::default(), &v6).await.unwrap_err()),
        422
    );
}

#[tokio::test]
async fn dry_run_allocates_nothing() {
    let f = fixture(VniRange::DEFAULT, &["192.0.2.0/30"]).await;
    let ips = namespaced(&f, "IP", "ips");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let ip = ips
        .create(
            &dry,
            &object("IP", "dry", json!({"type": "Public", "ipFamily": "IPv4"})),
        )
        .await
        .unwrap();
    assert!(spec(&ip)["ip"].is_string(), "the dry-run answer shows an address");
    assert!(ips_in_default(&f).await.is_empty());
    let addresses = cluster(&f, "IPAddress", "ipaddresses")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(addresses.items.is_empty());
    let networks = namespaced(&f, "Network", "networks");
    networks
        .create(&dry, &object("Network", "dry", json!({})))
        .await
        .unwrap();
    assert!(
        cluster(&f, "NetworkID", "networkids")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn embedded_ip_lifecycle(kind: &str, plural: &str, spec_with: impl Fn(&str) -> Value, list: &str) {
    let f = fixture(VniRange::DEFAULT, &["10.0.0.0/24"]).await;
    let api = namespaced(&f, kind, plural);
    let created = api
        .create(&PostParams::default(), &object(kind, "obj", spec_with("ip-1")))
        .await
        .unwrap();
    let first: IpAddr = spec(&created)[list][0]["ip"].as_str().unwrap().parse().unwrap();
    let owned: Vec<_> = ips_in_default(&f).await;
    assert_eq!(owned.len(), 1);
    assert_eq!(spec(&owned[0])["ip"], first.to_string());
    assert_eq!(
        spec(&owned[0])["claimRef"]["uid"],
        json!(created.metadata.uid.clone().unwrap())
    );

    let mut replaced = spec(&created).clone();
    replaced[list] = spec_with("new-ip-1")[list].clone();
    let updated = api
        .patch(
            "obj",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {list: replaced[list]}})),
        )
        .await
        .unwrap();
    let second: IpAddr = spec(&updated)[list][0]["ip"].as_str().unwrap().parse().unwrap();
    assert_ne!(first, second);
    let remaining = ips_in_default(&f).await;
    assert_eq!(remaining.len(), 1, "the old ephemeral IP is released");
    assert_eq!(spec(&remaining[0])["ip"], second.to_string());
    let addresses = cluster(&f, "IPAddress", "ipaddresses");
    assert_eq!(
        status_code(&addresses.get(&first.to_string()).await.unwrap_err()),
        404
    );

    api.delete("obj", &DeleteParams::default()).await.unwrap();
    assert!(ips_in_default(&f).await.is_empty());
    assert_eq!(
        status_code(&addresses.get(&second.to_string()).await.unwrap_err()),
        404
    );
}

#[tokio::test]
async fn public_load_balancer_ips_are_ephemeral_and_follow_updates_and_deletion() {
    embedded_ip_lifecycle(
        "LoadBalancer",
        "loadbalancers",
        |name| {
            json!({
                "type": "Public",
                "networkRef": {"name": "does-not-exist"},
                "ips": [{"name": name, "ipFamily": "IPv4"}],
                "selector": {},
                "template": {"spec": {}},
            })
        },
        "ips",
    )
    .await;
}

#[tokio::test]
async fn nat_gateway_ips_are_ephemeral_and_follow_updates_and_deletion() {
    embedded_ip_lifecycle(
        "NATGateway",
        "natgateways",
        |name| json!({"ipFamily": "IPv4", "networkRef": {"name": "net"}, "ips": [{"name": name}], "portsPerNetworkInterface": 64}),
        "ips",
    )
    .await;
}

#[tokio::test]
async fn network_interface_public_ips_are_ephemeral_and_follow_updates_and_deletion() {
    embedded_ip_lifecycle(
        "NetworkInterface",
        "networkinterfaces",
        |name| json!({"nodeRef": {"name": "my-node"}, "networkRef": {"name": "net"}, "ips": ["10.1.0.1"], "publicIPs": [{"name": name, "ipFamily": "IPv4"}]}),
        "publicIPs",
    )
    .await;
}

#[tokio::test]
async fn an_existing_ip_is_claimed_by_address_and_released_by_clearing_the_claim() {
    let f = fixture(VniRange::DEFAULT, &["192.0.2.0/24"]).await;
    let ips = namespaced(&f, "IP", "ips");
    let vip = ips
        .create(
            &PostParams::default(),
            &object("IP", "vip", json!({"type": "Public", "ipFamily": "IPv4"})),
        )
        .await
        .unwrap();
    let addr = spec(&vip)["ip"].as_str().unwrap().to_owned();
    let nics = namespaced(&f, "NetworkInterface", "networkinterfaces");
    let nic_spec = |ip: &str| {
        json!({"nodeRef": {"name": "n"}, "networkRef": {"name": "net"}, "ips": ["10.1.0.1"],
               "publicIPs": [{"name": "pub", "ipFamily": "IPv4", "ip": ip}]})
    };
    let nic = nics
        .create(
            &PostParams::default(),
            &object("NetworkInterface", "nic", nic_spec(&addr)),
        )
        .await
        .unwrap();
    let claimed = ips.get("vip").await.unwrap();
    assert_eq!(
        spec(&claimed)["claimRef"]["uid"],
        json!(nic.metadata.uid.clone().unwrap())
    );
    assert_eq!(spec(&claimed)["claimRef"]["resource"], "networkinterfaces");

    // A second claimer is refused.
    let other = nics
        .create(
            &PostParams::default(),
            &object("NetworkInterface", "other", nic_spec(&addr)),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(&other), 409);
    // An address with no IP object is a validation error.
    let missing = nics
        .create(
            &PostParams::default(),
            &object("NetworkInterface", "m", nic_spec("192.0.2.250")),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(&missing), 422);

    nics.delete("nic", &DeleteParams::default()).await.unwrap();
    let released = ips.get("vip").await.unwrap();
    assert!(
        spec(&released).get("claimRef").is_none_or(Value::is_null),
        "claim cleared, IP kept"
    );
}

#[tokio::test]
async fn concurrent_ip_and_load_balancer_creates_never_share_an_address() {
    let f = fixture(VniRange::DEFAULT, &["10.0.0.0/26"]).await;
    let ips = namespaced(&f, "IP", "ips");
    let lbs = namespaced(&f, "LoadBalancer", "loadbalancers");
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (ips, lbs) = (ips.clone(), lbs.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..6 {
                ips.create(&PostParams::default(), &object("IP", &format!("w{w}-{i}"), json!({"type": "Public", "ipFamily": "IPv4"})))
                    .await
                    .unwrap();
                let lb = json!({"type": "Public", "networkRef": {"name": "n"}, "ips": [{"name": "a", "ipFamily": "IPv4"}],
                                "selector": {}, "template": {"spec": {}}});
                lbs.create(&PostParams::default(), &object("LoadBalancer", &format!("lb{w}-{i}"), lb)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = ips_in_default(&f).await;
    assert_eq!(all.len(), 48);
    let unique: BTreeSet<_> = all
        .iter()
        .map(|ip| spec(ip)["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unique.len(), 48, "no address is held twice");
    let addresses = cluster(&f, "IPAddress", "ipaddresses")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(addresses.items.len(), 48);
}

#[tokio::test]
async fn a_rejected_create_rolls_back_everything_it_allocated() {
    let f = fixture(VniRange::DEFAULT, &["10.0.0.0/30"]).await;
    let nats = namespaced(&f, "NATGateway", "natgateways");
    // The second entry names an address with no IP object: the whole create fails, and the first
    // entry's ephemeral IP must not exist either.
    let bad = json!({"ipFamily": "IPv4", "networkRef": {"name": "n"}, "portsPerNetworkInterface": 64,
                     "ips": [{"name": "a"}, {"name": "b", "ip": "10.0.0.3"}]});
    assert!(
        nats.create(&PostParams::default(), &object("NATGateway", "gw", bad))
            .await
            .is_err()
    );
    assert!(ips_in_default(&f).await.is_empty());
    assert!(
        cluster(&f, "IPAddress", "ipaddresses")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let _ = &f.server;
}
