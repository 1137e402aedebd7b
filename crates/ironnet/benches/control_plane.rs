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
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

// As the `ironnet` binary, so that the figures are those of `ironnet up`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Requests per verb and resource (`CONTROL_PLANE_REQUEST_STATS=1`): where the control plane's work goes.
#[derive(Clone, Default)]
struct RequestCounts(Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

impl RequestCounts {
    fn counting(
        self,
        router: axum::Router,
    ) -> impl tower::Service<
        http::Request<kube::client::Body>,
        Response = http::Response<axum::body::Body>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone
    + Send {
        use tower::ServiceExt;
        let counts = self;
        tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let path = req.uri().path();
            let watch = req.uri().query().is_some_and(|q| q.contains("watch=true"));
            // `/apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>[/<sub>]]`: keep group, plural, subresource.
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let (resource, item, sub) = match parts.iter().position(|p| *p == "namespaces") {
                Some(i) if parts.len() > i + 2 => (
                    format!("{}/{}", parts.get(1).unwrap_or(&""), parts[i + 2]),
                    parts.len() > i + 3,
                    parts.get(i + 4).copied(),
                ),
                _ => (path.to_owned(), false, None),
            };
            let verb = match (req.method().as_str(), item, watch) {
                ("GET", _, true) => "WATCH",
                ("GET", false, _) => "LIST",
                (m, _, _) => m,
            };
            let key = format!(
                "{verb:6} {resource}{}",
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            );
            *counts.0.lock().expect("counts").entry(key).or_default() += 1;
            router.clone().oneshot(req)
        })
    }

    fn print(&self) {
        let counts = self.0.lock().expect("counts");
        if counts.is_empty() {
            return;
        }
        let mut rows: Vec<(&String, &usize)> = counts.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1));
        for (k, n) in rows {
            println!("  {n:>8}  {k}");
        }
    }
}

/// A watch-fed cache of one kind in `ns`, as a user observing the apply would keep (polling with lists would
/// decode every object every time and compete with the control plane for the two cores).
fn observe(client: &kube::Client, r: &ApiResource, ns: &str) -> Store<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, r);
    let writer = reflector::store::Writer::new(r.clone());
    let reader = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    reader
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// The provider's part for one NetworkInterface: wait for the Network in ironcore-net (once per Network, as a
/// provider with an informer would), create the ironcore-net NetworkInterface on the node, then the tenant
/// NetworkInterface with its provider ID.
async fn attach_nic(
    client: kube::Client,
    net: usize,
    i: usize,
    scale: Scale,
    network_uids: Arc<Vec<tokio::sync::OnceCell<String>>>,
) {
    let net_uid = network_uids[net]
        .get_or_init(|| async {
            let networks: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), NS, &tenant("Network", "networks"));
            let apinet_networks: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), APINET_NS, &apinet("Network", "networks"));
            loop {
                let n = networks.get(&format!("net-{net}")).await.expect("network exists");
                let uid = n.metadata.uid.clone().unwrap_or_default();
                if apinet_networks.get_opt(&uid).await.expect("get").is_some() {
                    break uid;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .clone();
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
    let network_uids = Arc::new(
        (0..scale.networks)
            .map(|_| tokio::sync::OnceCell::new())
            .collect::<Vec<_>>(),
    );
    futures::stream::iter((0..scale.networks).flat_map(|n| (0..per_net).map(move |i| (n, i))))
        .map(|(n, i)| attach_nic(client.clone(), n, i, scale, Arc::clone(&network_uids)))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

/// The caches the benchmark judges convergence from.
struct Observed {
    networks: Store<DynamicObject>,
    nics: Store<DynamicObject>,
    vips: Store<DynamicObject>,
    nats: Store<DynamicObject>,
    lbs: Store<DynamicObject>,
    routings: Store<DynamicObject>,
    rules: Store<DynamicObject>,
}

impl Observed {
    fn new(client: &kube::Client) -> Observed {
        Observed {
            networks: observe(client, &tenant("Network", "networks"), NS),
            nics: observe(client, &tenant("NetworkInterface", "networkinterfaces"), NS),
            vips: observe(client, &tenant("VirtualIP", "virtualips"), NS),
            nats: observe(client, &tenant("NATGateway", "natgateways"), NS),
            lbs: observe(client, &tenant("LoadBalancer", "loadbalancers"), NS),
            routings: observe(client, &tenant("LoadBalancerRouting", "loadbalancerroutings"), NS),
            rules: observe(
                client,
                &apinet("NetworkPolicyRule", "networkpolicyrules"),
                APINET_NS,
            ),
        }
    }

    /// How many objects are not reconciled yet, in total and per kind.
    fn pending(&self, scale: Scale) -> (usize, String) {
        let count = |store: &Store<DynamicObject>, done: &dyn Fn(&Value) -> bool| {
            store.state().iter().filter(|o| done(&o.data)).count()
        };
        let networks = count(&self.networks, &|n| {
            s(n, "/status/state") == "Available" && !s(n, "/spec/providerID").is_empty()
        });
        let vips = count(&self.vips, &|v| !s(v, "/status/ip").is_empty());
        let nats = count(&self.nats, &|g| g.pointer("/status/ips/0").is_some());
        let lbs = count(&self.lbs, &|l| l.pointer("/status/ips/0").is_some());
        let nics = count(&self.nics, &|n| s(n, "/status/state") == "Available");
        let routings = self.routings.state().len();
        let rules = self.rules.state().len();
        let left = [
            ("networks", scale.networks.saturating_sub(networks)),
            ("virtualips", scale.vips.saturating_sub(vips)),
            ("natgateways", scale.nats.saturating_sub(nats)),
            ("loadbalancers", scale.lbs.saturating_sub(lbs)),
            ("routings", scale.lbs.saturating_sub(routings)),
            ("rules", scale.policies.saturating_sub(rules)),
            ("interfaces", scale.nics.saturating_sub(nics)),
        ];
        let detail = left
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        (left.iter().map(|(_, n)| n).sum(), detail)
    }
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
    let requests = RequestCounts::default();
    let client = if std::env::var_os("CONTROL_PLANE_REQUEST_STATS").is_some() {
        kube::Client::new(requests.clone().counting(server.server.router()), NS)
    } else {
        kube::Client::new(server.server.router(), NS)
    };
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

    let observed = Observed::new(&client);
    let start = Instant::now();
    apply(&client, scale, 64).await;
    let applied = start.elapsed();
    let mut last = usize::MAX;
    loop {
        let (left, detail) = observed.pending(scale);
        if left == 0 {
            break;
        }
        if left != last {
            eprintln!(
                "  {percent:>3}%: {left} objects not reconciled after {:.1?} ({detail})",
                start.elapsed()
            );
            last = left;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "{percent}%: not converged: {left} left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    requests.print();
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
