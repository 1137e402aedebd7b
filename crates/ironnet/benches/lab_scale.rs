//! Programming at scale on real hypervisors: the time from the start of a tenant's apply until four hypervisors'
//! dataplanes hold every interface placed on them and a route to every interface of the same Network on the other
//! hypervisors (so metalnetlet, four metalnets and metalbond are done), on `ironnet up --hypervisors 4`
//! with 256 TAP ports per hypervisor (needs root).
//!
//! The full set is 100 Networks of 10 NetworkInterfaces each (1,000, 250 per hypervisor, placed round robin), each
//! attached as a provider does (ironcore-net NetworkInterface on the node, then the tenant interface with its
//! provider ID); it runs at 10 %, 50 % and 100 %.
//!
//! ```text
//! sudo cargo bench -p ironnet --bench lab_scale                  # 10 %, 50 %, 100 %
//! LAB_SCALES=10 sudo cargo bench -p ironnet --bench lab_scale
//! ```
//!
//! Observed through dpservice's List RPCs (ListInterfaces, ListRoutes per VNI) every 200 ms.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ironnet_dpservice::proto;
use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

const HYPERVISORS: usize = 4;
const NICS_PER_NETWORK: usize = 10;

fn res(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_owned(),
        version: "v1alpha1".to_owned(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

mod lab;

use lab::Lab;

async fn create(client: &kube::Client, r: &ApiResource, ns: &str, body: Value) -> DynamicObject {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, r);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    loop {
        match api.create(&PostParams::default(), &obj).await {
            Ok(o) => return o,
            // The API server's in-flight limit: back off as a client would.
            Err(kube::Error::Api(s)) if s.code == 429 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("create: {e}"),
        }
    }
}

/// One Network with its interfaces: waits for its ironcore-net Network, then attaches each interface.
async fn network(client: kube::Client, net: usize) -> u32 {
    let tenant_net = create(
        &client,
        &res("networking.ironcore.dev", "Network", "networks"),
        "default",
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
               "metadata": {"name": format!("net-{net}")}, "spec": {}}),
    )
    .await;
    let uid = tenant_net.metadata.uid.unwrap();
    let apinet_networks: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "apinet-system",
        &res("core.apinet.ironcore.dev", "Network", "networks"),
    );
    let vni = loop {
        let id = apinet_networks.get_opt(&uid).await.unwrap().and_then(|n| {
            n.data
                .pointer("/spec/id")
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok())
        });
        if let Some(id) = id {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for i in 0..NICS_PER_NETWORK {
        let name = format!("nic-{net}-{i}");
        let node = format!("lab.hv-{}", (net * NICS_PER_NETWORK + i) % HYPERVISORS + 1);
        let ip = format!("10.0.0.{}", i + 1);
        let anic = create(
            &client,
            &res(
                "core.apinet.ironcore.dev",
                "NetworkInterface",
                "networkinterfaces",
            ),
            "apinet-system",
            json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
                   "metadata": {"name": name},
                   "spec": {"networkRef": {"name": uid}, "nodeRef": {"name": node}, "ips": [ip]}}),
        )
        .await;
        create(
            &client,
            &res("networking.ironcore.dev", "NetworkInterface", "networkinterfaces"),
            "default",
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
                   "metadata": {"name": name},
                   "spec": {"networkRef": {"name": format!("net-{net}")}, "ipFamilies": ["IPv4"],
                            "ips": [{"value": ip}],
                            "providerID": format!("ironcore-net://apinet-system/{name}/{node}/{}",
                                                  anic.metadata.uid.unwrap())}}),
        )
        .await;
    }
    vni
}

/// Whether every dataplane holds its interfaces and a /32 route to each remote interface of its VNIs.
async fn programmed(
    dataplanes: &mut [DpdKironcoreClient<tonic::transport::Channel>],
    want: &[BTreeMap<u32, (usize, usize)>],
) -> bool {
    for (dp, want) in dataplanes.iter_mut().zip(want) {
        let Ok(list) = dp.list_interfaces(proto::ListInterfacesRequest {}).await else {
            return false;
        };
        let local: usize = want.values().map(|(l, _)| l).sum();
        if list.into_inner().interfaces.len() != local {
            return false;
        }
        for (vni, (_, remote)) in want {
            let Ok(routes) = dp.list_routes(proto::ListRoutesRequest { vni: *vni }).await else {
                return false;
            };
            let host_routes = routes
                .into_inner()
                .routes
                .iter()
                .filter(|r| r.prefix.as_ref().is_some_and(|p| p.length == 32))
                .count();
            if host_routes < *remote {
                return false;
            }
        }
    }
    true
}

async fn run(percent: usize) {
    let networks = 50 * percent / 100;
    let lab = Lab::start(HYPERVISORS, 126, "bsc");
    let client = lab.client().await;
    let mut dataplanes = Vec::new();
    for i in 1..=HYPERVISORS {
        dataplanes.push(DpdKironcoreClient::connect(lab.dataplane(i)).await.unwrap());
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..networks)
        .map(|n| tokio::spawn(network(client.clone(), n)))
        .collect();
    let mut vnis = Vec::new();
    for t in tasks {
        vnis.push(t.await.unwrap());
    }
    let applied = start.elapsed();
    // Per hypervisor: VNI → (interfaces on it, interfaces of that VNI elsewhere).
    let mut want = vec![BTreeMap::new(); HYPERVISORS];
    for (net, vni) in vnis.iter().enumerate() {
        let hosts: Vec<usize> = (0..NICS_PER_NETWORK)
            .map(|i| (net * NICS_PER_NETWORK + i) % HYPERVISORS)
            .collect();
        for (hv, w) in want.iter_mut().enumerate() {
            let local = hosts.iter().filter(|h| **h == hv).count();
            if local > 0 {
                w.insert(*vni, (local, NICS_PER_NETWORK - local));
            }
        }
    }
    let used: BTreeSet<u32> = vnis.iter().copied().collect();
    assert_eq!(used.len(), networks, "one VNI per network");
    let deadline = start + Duration::from_secs(600);
    while !programmed(&mut dataplanes, &want).await {
        assert!(Instant::now() < deadline, "not programmed after 600 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{percent:>3} %: {networks} Networks, {} NetworkInterfaces on {HYPERVISORS} hypervisors: applied in {:.2} s, \
         every dataplane programmed and every route distributed after {:.2} s",
        networks * NICS_PER_NETWORK,
        applied.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) != 0 {
        eprintln!("lab_scale needs root (network namespaces, TAP devices); skipped");
        return;
    }
    let scales: Vec<usize> = std::env::var("LAB_SCALES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 50, 100]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for p in scales {
        rt.block_on(run(p));
    }
}
