//! Control-plane convergence benchmark: the time from the start of a tenant's apply until every object is
//! reconciled, with the whole control plane of `ironnet up` in one process on the embedded store (API server with
//! allocators, ironcore and ironcore-net controllers, apinetlet, one simulated node).
//!
//! The full set is 1,000 Networks, 10,000 NetworkInterfaces (each attached by a provider: an ironcore-net
//! NetworkInterface on the node plus `spec.providerID`), 1,000 VirtualIPs, 100 NATGateways, 100 LoadBalancers and
//! 100 NetworkPolicies; it runs at 10 %, 50 % and 100 % of that.
//!
//! ```text
//! cargo bench -p ironnet --bench control_plane                  # 10 %, 50 %, 100 %
//! CONTROL_PLANE_SCALES=10 cargo bench -p ironnet --bench control_plane
//! ```
//!
//! "Reconciled" means: every Network `Available` with a provider ID, every NetworkInterface `Available`, every
//! VirtualIP with `status.ip`, every NATGateway and LoadBalancer with `status.ips`, every LoadBalancer with its
//! LoadBalancerRouting and every NetworkPolicy with its NetworkPolicyRule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

const APINET_NS: &str = "apinet-system";
const NS: &str = "default";

fn res(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_owned(),
        version: "v1alpha1".to_owned(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

fn tenant(kind: &str, plural: &str) -> ApiResource {
    res("networking.ironcore.dev", kind, plural)
}

fn apinet(kind: &str, plural: &str) -> ApiResource {
    res("core.apinet.ironcore.dev", kind, plural)
}

/// The object counts of one run.
#[derive(Clone, Copy, Debug)]
struct Scale {
    networks: usize,
    nics: usize,
    vips: usize,
    nats: usize,
    lbs: usize,
    policies: usize,
}

impl Scale {
    fn percent(p: usize) -> Scale {
        Scale {
            networks: 1_000 * p / 100,
            nics: 10_000 * p / 100,
            vips: 1_000 * p / 100,
            nats: 100 * p / 100,
            lbs: 100 * p / 100,
            policies: 100 * p / 100,
        }
    }

    fn total(&self) -> usize {
        self.networks + self.nics + self.vips + self.nats + self.lbs + self.policies
    }
}

async fn create(client: &kube::Client, r: &ApiResource, ns: &str, body: Value) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, r);
    let obj: DynamicObject = serde_json::from_value(body).expect("valid object");
    loop {
        match api.create(&PostParams::default(), &obj).await {
            Ok(o) => return serde_json::to_value(o).expect("json"),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 429 || s.code >= 500 => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("creating {} {:?}: {e}", r.kind, obj.metadata.name),
        }
    }
}

async fn list(client: &kube::Client, r: &ApiResource, ns: &str) -> Vec<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, r);
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).expect("json"))
        .collect()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// The provider's part for one NetworkInterface: wait for the Network in ironcore-net, create the ironcore-net
/// NetworkInterface on the node, then the tenant NetworkInterface with its provider ID.
async fn attach_nic(client: kube::Client, net: usize, i: usize, scale: Scale) {
    let networks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &tenant("Network", "networks"));
    let apinet_networks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), APINET_NS, &apinet("Network", "networks"));
    let net_uid = loop {
        let n = networks.get(&format!("net-{net}")).await.expect("network exists");
        let uid = n.metadata.uid.clone().unwrap_or_default();
        if apinet_networks.get_opt(&uid).await.expect("get").is_some() {
            break uid;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let name = format!("nic-{net}-{i}");
    let ip = format!("10.0.{}.{}", i / 250, i % 250 + 2);
    let anic = create(
        &client,
        &apinet("NetworkInterface", "networkinterfaces"),
        APINET_NS,
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
               "metadata": {"name": name},
               "spec": {"networkRef": {"name": net_uid}, "nodeRef": {"name": "node-1"}, "ips": [ip]}}),
    )
    .await;
    let per_net = scale.nics / scale.networks;
    let mut spec = json!({"networkRef": {"name": format!("net-{net}")}, "ipFamilies": ["IPv4"],
        "ips": [{"value": ip}],
        "providerID": format!("ironcore-net://{APINET_NS}/{name}/node-1/{}", s(&anic, "/metadata/uid"))});
    // The last NIC of each network uses that network's VirtualIP (one VirtualIP per network at every scale).
    if i == per_net - 1 && net < scale.vips {
        spec["virtualIP"] = json!({"virtualIPRef": {"name": format!("vip-{net}")}});
    }
    let app = if i.is_multiple_of(2) { "web" } else { "db" };
    create(
        &client,
        &tenant("NetworkInterface", "networkinterfaces"),
        NS,
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
               "metadata": {"name": name, "labels": {"app": app}}, "spec": spec}),
    )
    .await;
}

/// Applies the whole set with `concurrency` requests in flight.
async fn apply(client: &kube::Client, scale: Scale, concurrency: usize) {
    let mut bodies: Vec<(ApiResource, Value)> = Vec::new();
    for n in 0..scale.networks {
        bodies.push((
            tenant("Network", "networks"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
                   "metadata": {"name": format!("net-{n}")}, "spec": {}}),
        ));
    }
    for v in 0..scale.vips {
        bodies.push((
            tenant("VirtualIP", "virtualips"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP",
                   "metadata": {"name": format!("vip-{v}")}, "spec": {"type": "Public", "ipFamily": "IPv4"}}),
        ));
    }
    for n in 0..scale.nats {
        bodies.push((
            tenant("NATGateway", "natgateways"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NATGateway",
                   "metadata": {"name": format!("nat-{n}")},
                   "spec": {"type": "Public", "ipFamily": "IPv4", "portsPerNetworkInterface": 1024,
                            "networkRef": {"name": format!("net-{n}")}}}),
        ));
    }
    for n in 0..scale.lbs {
        bodies.push((
            tenant("LoadBalancer", "loadbalancers"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancer",
                   "metadata": {"name": format!("lb-{n}")},
                   "spec": {"type": "Public", "ipFamilies": ["IPv4"], "networkRef": {"name": format!("net-{n}")},
                            "networkInterfaceSelector": {"matchLabels": {"app": "web"}}, "ports": [{"port": 80}]}}),
        ));
    }
    for n in 0..scale.policies {
        bodies.push((
            tenant("NetworkPolicy", "networkpolicies"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkPolicy",
                   "metadata": {"name": format!("np-{n}")},
                   "spec": {"networkRef": {"name": format!("net-{n}")},
                            "networkInterfaceSelector": {"matchLabels": {"app": "web"}},
                            "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"objectSelector": {"kind": "NetworkInterface",
                                                                      "matchLabels": {"app": "db"}}}],
                                         "ports": [{"protocol": "TCP", "port": 80}]}]}}),
        ));
    }
    futures::stream::iter(bodies)
        .map(|(r, body)| {
            let client = client.clone();
            async move {
                create(&client, &r, NS, body).await;
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let per_net = scale.nics / scale.networks;
    futures::stream::iter((0..scale.networks).flat_map(|n| (0..per_net).map(move |i| (n, i))))
        .map(|(n, i)| attach_nic(client.clone(), n, i, scale))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

/// The kinds whose objects are all reconciled: each is listed only until it is done, so that the
/// benchmark's own polling does not compete with the control plane for the two cores.
#[derive(Default)]
struct Done {
    networks: bool,
    nics: bool,
    vips: bool,
    nats: bool,
    lbs: bool,
    policies: bool,
}

/// How many objects are not reconciled yet.
async fn pending(client: &kube::Client, scale: Scale, done: &mut Done) -> usize {
    let mut left = 0;
    if !done.networks {
        let nets = list(client, &tenant("Network", "networks"), NS).await;
        let n = scale.networks
            - nets
                .iter()
                .filter(|n| s(n, "/status/state") == "Available" && !s(n, "/spec/providerID").is_empty())
                .count();
        done.networks = n == 0;
        left += n;
    }
    if !done.vips {
        let vips = list(client, &tenant("VirtualIP", "virtualips"), NS).await;
        let n = scale.vips - vips.iter().filter(|v| !s(v, "/status/ip").is_empty()).count();
        done.vips = n == 0;
        left += n;
    }
    if !done.nats {
        let nats = list(client, &tenant("NATGateway", "natgateways"), NS).await;
        let n = scale.nats
            - nats
                .iter()
                .filter(|g| g.pointer("/status/ips/0").is_some())
                .count();
        done.nats = n == 0;
        left += n;
    }
    if !done.lbs {
        let lbs = list(client, &tenant("LoadBalancer", "loadbalancers"), NS).await;
        let routings = list(client, &tenant("LoadBalancerRouting", "loadbalancerroutings"), NS).await;
        let n = (scale.lbs
            - lbs
                .iter()
                .filter(|l| l.pointer("/status/ips/0").is_some())
                .count())
            + (scale.lbs - routings.len().min(scale.lbs));
        done.lbs = n == 0;
        left += n;
    }
    if !done.policies {
        let rules = list(
            client,
            &apinet("NetworkPolicyRule", "networkpolicyrules"),
            APINET_NS,
        )
        .await;
        let n = scale.policies - rules.len().min(scale.policies);
        done.policies = n == 0;
        left += n;
    }
    if !done.nics {
        let nics = list(client, &tenant("NetworkInterface", "networkinterfaces"), NS).await;
        let n = scale.nics
            - nics
                .iter()
                .filter(|n| s(n, "/status/state") == "Available")
                .count();
        done.nics = n == 0;
        left += n;
    }
    left
}

async fn run_once(percent: usize) -> Duration {
    let scale = Scale::percent(percent);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ironnet_store::open(ironnet_store::StoreConfig::Embedded {
        path: dir.path().join("store.redb"),
        options: Default::default(),
    })
    .await
    .expect("store");
    let allocation = ironnet_registry::AllocationConfig {
        vni_range: ironnet_registry::alloc::VniRange::new(200, 16_777_215).expect("range"),
        public_prefixes: vec![
            "198.18.0.0/15".parse().expect("prefix"),
            "2001:db8::/64".parse().expect("prefix"),
        ],
    };
    let server = ironnet_registry::build(Arc::clone(&store), &allocation, |b| b)
        .await
        .expect("server");
    let client = kube::Client::new(server.server.router(), NS);
    let nodes: Api<DynamicObject> = Api::all_with(client.clone(), &apinet("Node", "nodes"));
    let node = serde_json::from_value(
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": "node-1"}, "spec": {}}),
    )
    .expect("node");
    nodes.create(&PostParams::default(), &node).await.expect("node");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let controllers = tokio::spawn(ironnet_controllers::run(
        ironnet_controllers::ControllerConfig::default(),
        client.clone(),
        stopped(stop_rx.clone()),
    ));
    let apinetlet = tokio::spawn(ironnet_apinetlet::run(
        ironnet_apinetlet::ApinetletConfig::new(APINET_NS),
        client.clone(),
        client.clone(),
        stopped(stop_rx.clone()),
    ));
    let node_agent = tokio::spawn(ironnet_controllers::simulated_node::run(
        client.clone(),
        "node-1".to_owned(),
        "simulated".to_owned(),
        stopped(stop_rx),
    ));

    let start = Instant::now();
    apply(&client, scale, 64).await;
    let applied = start.elapsed();
    let mut last = usize::MAX;
    let mut done = Done::default();
    loop {
        let left = pending(&client, scale, &mut done).await;
        if left == 0 {
            break;
        }
        if left != last {
            eprintln!(
                "  {percent:>3}%: {left} objects not reconciled after {:.1?}",
                start.elapsed()
            );
            last = left;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "{percent}%: not converged: {left} left"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged = start.elapsed();
    println!(
        "{percent:>3}%  {:>6} objects  apply {:>7.2} s  all reconciled {:>7.2} s  ({:.0} objects/s)",
        scale.total(),
        applied.as_secs_f64(),
        converged.as_secs_f64(),
        scale.total() as f64 / converged.as_secs_f64()
    );
    let _ = stop_tx.send(true);
    let _ = tokio::join!(controllers, apinetlet, node_agent);
    converged
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects a quick check.
    let benching = std::env::args().any(|a| a == "--bench");
    let scales: Vec<usize> = match std::env::var("CONTROL_PLANE_SCALES") {
        Ok(v) => v.split(',').map(|p| p.trim().parse().expect("percent")).collect(),
        Err(_) if benching => vec![10, 50, 100],
        Err(_) => vec![1],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for percent in scales {
        // On a worker, so that the benchmark's own requests do not get a third thread beside the two workers.
        runtime
            .block_on(async { tokio::spawn(run_once(percent)).await })
            .expect("benchmark run");
    }
}
