//! Issue 4's concurrency acceptance: 10,000 random concurrent Network and IP creates and deletes
//! spread over two API server instances sharing one store (a real etcd, and the embedded store) →
//! no VNI or address is ever held by two objects, claims match their claimers exactly, and every
//! released value can be allocated again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ironnet_registry::alloc::VniRange;
use ironnet_registry::{AllocationConfig, IroncoreApiServer};
use ironnet_store::Store;
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use ironnet_store::etcd::{EtcdOptions, EtcdStore};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use rand::Rng;
use serde_json::{Value, json};

const OPERATIONS: usize = 10_000;
const WORKERS: usize = 32;
/// Small pools (256 VNIs, 256 addresses) so that values are released and reused many times.
const VNI_MIN: u32 = 1000;
const VNI_MAX: u32 = 1255;
const PREFIX: &str = "198.51.100.0/24";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "core.apinet.ironcore.dev".into(),
        version: "v1alpha1".into(),
        api_version: "core.apinet.ironcore.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

struct Apis {
    networks: Api<DynamicObject>,
    ips: Api<DynamicObject>,
}

fn apis(client: &Client) -> Apis {
    Apis {
        networks: Api::namespaced_with(client.clone(), "default", &resource("Network", "networks")),
        ips: Api::namespaced_with(client.clone(), "default", &resource("IP", "ips")),
    }
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

async fn two_servers(a: Arc<dyn Store>, b: Arc<dyn Store>) -> [IroncoreApiServer; 2] {
    let allocation = AllocationConfig {
        vni_range: VniRange::new(VNI_MIN, VNI_MAX).unwrap(),
        public_prefixes: vec![PREFIX.parse().unwrap()],
    };
    let first = ironnet_registry::build(a, &allocation, |b| b).await.unwrap();
    let second = ironnet_registry::build(b, &allocation, |b| b).await.unwrap();
    for s in [&first, &second] {
        assert!(s.index.wait_ready(Duration::from_secs(20)).await);
    }
    [first, second]
}

/// Runs the random workload; returns how many creates were refused because a pool was full.
async fn workload(clients: [Client; 2]) -> usize {
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let apis = [apis(&clients[0]), apis(&clients[1])];
        tasks.push(tokio::spawn(async move {
            let mut exhausted = 0;
            let mut mine: Vec<(bool, String)> = Vec::new();
            for i in 0..OPERATIONS / WORKERS {
                let (server, choice, pick) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..2usize),
                        rng.random_range(0..10u32),
                        rng.random_range(0..usize::MAX),
                    )
                };
                let api = &apis[server];
                // 60% creates, 40% deletes of one of this worker's objects (on either server).
                if choice < 6 || mine.is_empty() {
                    let network = choice % 2 == 0;
                    let name = format!("w{w}-{i}");
                    let result = if network {
                        api.networks
                            .create(&PostParams::default(), &object("Network", &name, json!({})))
                            .await
                    } else {
                        let spec = json!({"type": "Public", "ipFamily": "IPv4"});
                        api.ips
                            .create(&PostParams::default(), &object("IP", &name, spec))
                            .await
                    };
                    match result {
                        Ok(_) => mine.push((network, name)),
                        Err(kube::Error::Api(s)) if s.code == 409 => exhausted += 1,
                        Err(e) => panic!("create {name}: {e}"),
                    }
                } else {
                    let (network, name) = mine.swap_remove(pick % mine.len());
                    let target = if network { &api.networks } else { &api.ips };
                    target.delete(&name, &DeleteParams::default()).await.unwrap();
                }
            }
            exhausted
        }));
    }
    let mut exhausted = 0;
    for t in tasks {
        exhausted += t.await.unwrap();
    }
    exhausted
}

/// No value held twice; every claim object belongs to exactly one live claimer and vice versa.
async fn check_consistent(client: &Client) -> (usize, usize) {
    let a = apis(client);
    let networks = a.networks.list(&ListParams::default()).await.unwrap().items;
    let ips = a.ips.list(&ListParams::default()).await.unwrap().items;
    let network_ids: Api<DynamicObject> = Api::all_with(client.clone(), &resource("NetworkID", "networkids"));
    let addresses: Api<DynamicObject> = Api::all_with(client.clone(), &resource("IPAddress", "ipaddresses"));
    let network_ids = network_ids.list(&ListParams::default()).await.unwrap().items;
    let addresses = addresses.list(&ListParams::default()).await.unwrap().items;

    let claims = |objs: &[DynamicObject]| -> BTreeMap<String, String> {
        objs.iter()
            .map(|o| {
                let uid = o.data["spec"]["claimRef"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (o.metadata.name.clone().unwrap(), uid)
            })
            .collect()
    };
    let held = |objs: &[DynamicObject], field: &str| -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for o in objs {
            let value = o.data["spec"][field].as_str().unwrap().to_owned();
            let previous = map.insert(value.clone(), o.metadata.uid.clone().unwrap());
            assert!(previous.is_none(), "{field} {value} is held by two objects");
        }
        map
    };
    assert_eq!(
        held(&networks, "id"),
        claims(&network_ids),
        "NetworkIDs match live Networks exactly"
    );
    assert_eq!(
        held(&ips, "ip"),
        claims(&addresses),
        "IPAddresses match live IPs exactly"
    );
    (networks.len(), ips.len())
}

/// Deletes everything, then allocates every value of both pools once more.
async fn everything_released_is_allocatable_again(clients: [Client; 2]) {
    let a = apis(&clients[0]);
    for api in [&a.networks, &a.ips] {
        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .unwrap();
    }
    let size = (VNI_MAX - VNI_MIN + 1) as usize;
    let mut vnis = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for i in 0..size {
        // Alternate servers; a server whose index has not yet seen a release proposes a taken
        // value, finds it claimed in the store and proposes again, so every create succeeds.
        let api = apis(&clients[i % 2]);
        let n = api
            .networks
            .create(
                &PostParams::default(),
                &object("Network", &format!("f{i}"), json!({})),
            )
            .await
            .unwrap();
        assert!(vnis.insert(n.data["spec"]["id"].as_str().unwrap().to_owned()));
        let spec = json!({"type": "Public", "ipFamily": "IPv4"});
        let ip = api
            .ips
            .create(&PostParams::default(), &object("IP", &format!("f{i}"), spec))
            .await
            .unwrap();
        assert!(ips.insert(ip.data["spec"]["ip"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        (vnis.len(), ips.len()),
        (size, size),
        "the full pools were allocated again"
    );
}

async fn run(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let servers = two_servers(a, b).await;
    let clients = [
        Client::new(servers[0].server.router(), "default"),
        Client::new(servers[1].server.router(), "default"),
    ];
    let exhausted = workload(clients.clone()).await;
    let (networks, ips) = check_consistent(&clients[0]).await;
    eprintln!(
        "{OPERATIONS} operations: {networks} networks and {ips} IPs live, {exhausted} creates refused (pool full)"
    );
    everything_released_is_allocatable_again(clients.clone()).await;
    check_consistent(&clients[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_servers_on_one_embedded_store_never_double_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("s.redb"), EmbeddedOptions::default()).unwrap());
    run(Arc::clone(&store), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_servers_on_one_etcd_never_double_allocate() {
    // Started on the test thread: the helper ties etcd's life to the starting thread.
    let etcd = ironnet_store::testing::EtcdProcess::start().unwrap();
    let endpoints = vec![etcd.endpoint().to_owned()];
    let a: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(endpoints.clone(), EtcdOptions::default())
            .await
            .unwrap(),
    );
    let b: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(endpoints, EtcdOptions::default())
            .await
            .unwrap(),
    );
    run(a, b).await;
    drop(etcd);
}
