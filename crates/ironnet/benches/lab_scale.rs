//! Programming at scale on real hypervisors: the time from the start of a tenant's apply until four hypervisors'
//! dataplanes hold every object of the set (so the controllers, metalnetlet, four metalnets and metalbond are all
//! done), on `ironnet up --hypervisors 4 --ports-per-hypervisor 250` (needs root).
//!
//! The full set (100 %) is 100 Networks of 10 NetworkInterfaces each (1,000, 250 per hypervisor, placed round
//! robin), 100 VirtualIPs (interface 0 of every Network), 10 NATGateways, 10 LoadBalancers and 10 NetworkPolicies
//! (Networks 0, 10, 20, … have a NATGateway, Networks 1, 11, … a LoadBalancer over their five `app=web`
//! interfaces, Networks 2, 12, … a NetworkPolicy letting only `app=batch` reach `app=web` on TCP/80). Each
//! interface is attached as a provider does (ironcore-net NetworkInterface on the node, then the tenant interface
//! with its provider ID). It runs at 10 %, 50 % and 100 %, each on a fresh lab.
//!
//! ```text
//! sudo cargo bench -p ironnet --bench lab_scale                  # 10 %, 50 %, 100 %
//! LAB_SCALES=10 sudo cargo bench -p ironnet --bench lab_scale
//! ```
//!
//! Observed through dpservice's List/Get RPCs: a check that holds is not asked again (the set only grows).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ironnet_dpservice::proto;
use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use tonic::transport::Channel;

const HYPERVISORS: usize = 4;
const NICS_PER_NETWORK: usize = 10;
/// Networks of the full set.
const NETWORKS: usize = 100;
/// Interfaces `0..WEB` of a Network are `app=web`, the rest `app=batch`.
const WEB: usize = 5;
const PORTS_PER_HYPERVISOR: usize = NETWORKS * NICS_PER_NETWORK / HYPERVISORS;

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

mod lab;

use lab::Lab;

/// What a Network of the set has besides its interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extra {
    NatGateway,
    LoadBalancer,
    NetworkPolicy,
    Nothing,
}

fn extra(net: usize) -> Extra {
    match net % 10 {
        0 => Extra::NatGateway,
        1 => Extra::LoadBalancer,
        2 => Extra::NetworkPolicy,
        _ => Extra::Nothing,
    }
}

fn hypervisor_of(net: usize, nic: usize) -> usize {
    (net * NICS_PER_NETWORK + nic) % HYPERVISORS
}

fn nic_ip(nic: usize) -> String {
    format!("10.0.0.{}", nic + 1)
}

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

/// One Network with everything it has: waits for its ironcore-net Network (for the VNI), then creates its
/// VirtualIP, NATGateway / LoadBalancer / NetworkPolicy, and attaches each interface.
async fn network(client: kube::Client, net: usize) -> u32 {
    let name = format!("net-{net}");
    let tenant_net = create(
        &client,
        &tenant("Network", "networks"),
        "default",
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
               "metadata": {"name": name}, "spec": {}}),
    )
    .await;
    let uid = tenant_net.metadata.uid.unwrap();
    create(
        &client,
        &tenant("VirtualIP", "virtualips"),
        "default",
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP",
               "metadata": {"name": format!("vip-{net}")}, "spec": {"type": "Public", "ipFamily": "IPv4"}}),
    )
    .await;
    match extra(net) {
        Extra::NatGateway => {
            create(
                &client,
                &tenant("NATGateway", "natgateways"),
                "default",
                json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NATGateway",
                       "metadata": {"name": format!("nat-{net}")},
                       "spec": {"type": "Public", "ipFamily": "IPv4", "portsPerNetworkInterface": 1024,
                                "networkRef": {"name": name}}}),
            )
            .await;
        }
        Extra::LoadBalancer => {
            create(
                &client,
                &tenant("LoadBalancer", "loadbalancers"),
                "default",
                json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancer",
                       "metadata": {"name": format!("lb-{net}")},
                       "spec": {"type": "Public", "ipFamilies": ["IPv4"], "networkRef": {"name": name},
                                "networkInterfaceSelector": {"matchLabels": {"app": "web"}},
                                "ports": [{"port": 80}]}}),
            )
            .await;
        }
        Extra::NetworkPolicy => {
            create(
                &client,
                &tenant("NetworkPolicy", "networkpolicies"),
                "default",
                json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkPolicy",
                       "metadata": {"name": format!("policy-{net}")},
                       "spec": {"networkRef": {"name": name},
                                "networkInterfaceSelector": {"matchLabels": {"app": "web"}},
                                "policyTypes": ["Ingress"],
                                "ingress": [{"from": [{"objectSelector": {"kind": "NetworkInterface",
                                                                          "matchLabels": {"app": "batch"}}}],
                                             "ports": [{"protocol": "TCP", "port": 80}]}]}}),
            )
            .await;
        }
        Extra::Nothing => {}
    }
    let apinet_networks: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "apinet-system",
        &res("core.apinet.ironcore.dev", "Network", "networks"),
    );
    // Watched, as a provider would: polling every 50 ms made about as many requests (GETs answered 404 until
    // the controller created the Network) as the whole set's programming did.
    let vni_of = |n: &DynamicObject| -> Option<u32> {
        n.data
            .pointer("/spec/id")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
    };
    let created = kube::runtime::wait::await_condition(apinet_networks, &uid, |n: Option<&DynamicObject>| {
        n.and_then(vni_of).is_some()
    })
    .await
    .unwrap();
    let vni = created.as_ref().and_then(vni_of).expect("the condition holds");
    for i in 0..NICS_PER_NETWORK {
        let nic = format!("nic-{net}-{i}");
        let node = format!("lab.hv-{}", hypervisor_of(net, i) + 1);
        let anic = create(
            &client,
            &res(
                "core.apinet.ironcore.dev",
                "NetworkInterface",
                "networkinterfaces",
            ),
            "apinet-system",
            json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
                   "metadata": {"name": nic},
                   "spec": {"networkRef": {"name": uid}, "nodeRef": {"name": node}, "ips": [nic_ip(i)]}}),
        )
        .await;
        let mut spec = json!({
            "networkRef": {"name": name}, "ipFamilies": ["IPv4"], "ips": [{"value": nic_ip(i)}],
            "providerID": format!("ironcore-net://apinet-system/{nic}/{node}/{}", anic.metadata.uid.unwrap()),
        });
        if i == 0 {
            spec["virtualIP"] = json!({"virtualIPRef": {"name": format!("vip-{net}")}});
        }
        let app = if i < WEB { "web" } else { "batch" };
        create(
            &client,
            &tenant("NetworkInterface", "networkinterfaces"),
            "default",
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
                   "metadata": {"name": nic, "labels": {"app": app}}, "spec": spec}),
        )
        .await;
    }
    vni
}

/// One thing a dataplane must hold once the set is programmed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    /// The interface with this (VNI, IPv4) exists.
    Interface(u32, String),
    /// At least this many /32 routes in the VNI (one per interface of the Network on other hypervisors).
    Routes(u32, usize),
    /// The interface has its VirtualIP.
    Vip(u32, String),
    /// The interface has its NAT IP and port range.
    Nat(u32, String),
    /// The interface has exactly this many firewall rules.
    Firewall(u32, String, usize),
    /// A load balancer of the VNI with this many targets.
    LoadBalancer(u32, usize),
}

/// What the full set requires of each hypervisor.
fn checks(vnis: &[u32]) -> Vec<BTreeSet<Check>> {
    let mut want = vec![BTreeSet::new(); HYPERVISORS];
    for (net, &vni) in vnis.iter().enumerate() {
        let mut local = [0usize; HYPERVISORS];
        for i in 0..NICS_PER_NETWORK {
            let hv = hypervisor_of(net, i);
            local[hv] += 1;
            let ip = nic_ip(i);
            want[hv].insert(Check::Interface(vni, ip.clone()));
            if i == 0 {
                want[hv].insert(Check::Vip(vni, ip.clone()));
            } else if extra(net) == Extra::NatGateway {
                // An interface with a VirtualIP leaves through it; the others through the NATGateway.
                want[hv].insert(Check::Nat(vni, ip.clone()));
            }
            if extra(net) == Extra::NetworkPolicy && i < WEB {
                // One Accept rule per batch interface.
                want[hv].insert(Check::Firewall(vni, ip, NICS_PER_NETWORK - WEB));
            }
        }
        for (hv, w) in want.iter_mut().enumerate() {
            if local[hv] > 0 {
                w.insert(Check::Routes(vni, NICS_PER_NETWORK - local[hv]));
            }
            // A LoadBalancer's instances run on every node (a DaemonSet), each with every selected target.
            if extra(net) == Extra::LoadBalancer {
                w.insert(Check::LoadBalancer(vni, WEB));
            }
        }
    }
    want
}

fn ok(status: Option<&proto::Status>) -> bool {
    status.is_none_or(|s| s.code == 0)
}

/// Asks one dataplane about its pending checks and drops those that hold. Routes of a VNI in `incomplete` (some
/// interface of that Network is not created yet on some hypervisor) are not asked for: they cannot all be there,
/// and every RPC the benchmark sends competes with the programming it measures.
async fn settle(
    dp: &mut DpdKironcoreClient<Channel>,
    pending: &mut BTreeSet<Check>,
    incomplete: &BTreeSet<u32>,
) {
    let Ok(list) = dp.list_interfaces(proto::ListInterfacesRequest {}).await else {
        return;
    };
    let ids: HashMap<(u32, String), Vec<u8>> = list
        .into_inner()
        .interfaces
        .into_iter()
        .map(|i| {
            (
                (i.vni, String::from_utf8_lossy(&i.primary_ipv4).into_owned()),
                i.id,
            )
        })
        .collect();
    let mut lbs: Option<BTreeMap<u32, Vec<u8>>> = None;
    let mut done = Vec::new();
    for check in pending.iter() {
        let holds = match check {
            Check::Interface(vni, ip) => ids.contains_key(&(*vni, ip.clone())),
            Check::Routes(vni, _) if incomplete.contains(vni) => false,
            Check::Routes(vni, n) => match dp.list_routes(proto::ListRoutesRequest { vni: *vni }).await {
                Ok(r) => {
                    let routes = r.into_inner().routes;
                    routes
                        .iter()
                        .filter(|r| r.prefix.as_ref().is_some_and(|p| p.length == 32))
                        .count()
                        >= *n
                }
                Err(_) => false,
            },
            Check::Vip(vni, ip) | Check::Nat(vni, ip) | Check::Firewall(vni, ip, _) => {
                let Some(id) = ids.get(&(*vni, ip.clone())).cloned() else {
                    continue;
                };
                match check {
                    Check::Vip(..) => dp
                        .get_vip(proto::GetVipRequest { interface_id: id })
                        .await
                        .is_ok_and(|r| ok(r.get_ref().status.as_ref()) && r.get_ref().vip_ip.is_some()),
                    Check::Nat(..) => dp
                        .get_nat(proto::GetNatRequest { interface_id: id })
                        .await
                        .is_ok_and(|r| ok(r.get_ref().status.as_ref()) && r.get_ref().nat_ip.is_some()),
                    Check::Firewall(_, _, n) => dp
                        .list_firewall_rules(proto::ListFirewallRulesRequest { interface_id: id })
                        .await
                        .is_ok_and(|r| r.get_ref().rules.len() == *n),
                    _ => unreachable!("matched above"),
                }
            }
            Check::LoadBalancer(vni, targets) => {
                if lbs.is_none() {
                    let Ok(list) = dp.list_load_balancers(proto::ListLoadBalancersRequest {}).await else {
                        continue;
                    };
                    lbs = Some(
                        list.into_inner()
                            .loadbalancers
                            .into_iter()
                            .map(|lb| (lb.vni, lb.id))
                            .collect(),
                    );
                }
                let Some(id) = lbs.as_ref().and_then(|l| l.get(vni)).cloned() else {
                    continue;
                };
                dp.list_load_balancer_targets(proto::ListLoadBalancerTargetsRequest { loadbalancer_id: id })
                    .await
                    .is_ok_and(|r| r.get_ref().target_ips.len() == *targets)
            }
        };
        if holds {
            done.push(check.clone());
        }
    }
    for d in done {
        pending.remove(&d);
    }
}

/// How many checks of each kind are pending, e.g. `Routes 12, Firewall 3`.
fn summary(pending: &[BTreeSet<Check>]) -> String {
    let mut by_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
    for check in pending.iter().flatten() {
        let kind = match check {
            Check::Interface(..) => "Interface",
            Check::Routes(..) => "Routes",
            Check::Vip(..) => "Vip",
            Check::Nat(..) => "Nat",
            Check::Firewall(..) => "Firewall",
            Check::LoadBalancer(..) => "LoadBalancer",
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn run(percent: usize) {
    let networks = NETWORKS * percent / 100;
    let lab = Lab::start(HYPERVISORS, PORTS_PER_HYPERVISOR, "bsc");
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
    let used: BTreeSet<u32> = vnis.iter().copied().collect();
    assert_eq!(used.len(), networks, "one VNI per network");
    let mut pending = checks(&vnis);
    let total: usize = pending.iter().map(BTreeSet::len).sum();
    let deadline = start + Duration::from_secs(600);
    let mut last_report = Instant::now();
    let mut slowest_pass = Duration::ZERO;
    while pending.iter().any(|p| !p.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "not programmed after 600 s; still missing: {:?}",
            pending
                .iter()
                .map(|p| p.iter().take(5).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        let pass = Instant::now();
        let incomplete: BTreeSet<u32> = pending
            .iter()
            .flatten()
            .filter_map(|c| match c {
                Check::Interface(vni, _) => Some(*vni),
                _ => None,
            })
            .collect();
        // The hypervisors are asked at once: one after the other, a pass took seconds near the end (every VNI's
        // routes on four dataplanes), which is how late the clock could stop.
        futures::future::join_all(
            dataplanes
                .iter_mut()
                .zip(pending.iter_mut())
                .map(|(dp, p)| settle(dp, p, &incomplete)),
        )
        .await;
        slowest_pass = slowest_pass.max(pass.elapsed());
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  after {:.0} s still pending: {} (slowest check pass {:.2} s)",
                start.elapsed().as_secs_f64(),
                summary(&pending),
                slowest_pass.as_secs_f64()
            );
        }
        if pending.iter().any(|p| !p.is_empty()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let cpu: Vec<String> = lab
        .cpu_seconds()
        .iter()
        .map(|(c, s)| format!("{c} {s} s"))
        .collect();
    eprintln!("  CPU used since the lab started: {}", cpu.join(", "));
    eprintln!("  {}", load_summary(&client).await);
    let per = |e: Extra| (0..networks).filter(|n| extra(*n) == e).count();
    println!(
        "{percent:>3} %: {networks} Networks, {} NetworkInterfaces, {networks} VirtualIPs, {} NATGateways, {} \
         LoadBalancers, {} NetworkPolicies on {HYPERVISORS} hypervisors: applied in {:.2} s, all {total} dataplane \
         checks hold after {:.2} s",
        networks * NICS_PER_NETWORK,
        per(Extra::NatGateway),
        per(Extra::LoadBalancer),
        per(Extra::NetworkPolicy),
        applied.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

/// Sums of `metric`'s samples on a Prometheus text `page`, grouped by the values of `labels`, largest first (the
/// twelve largest, then the total).
fn breakdown(page: &str, metric: &str, labels: &[&str]) -> String {
    let mut by: HashMap<Vec<String>, f64> = HashMap::new();
    for line in page.lines().filter(|l| l.starts_with(&format!("{metric}{{"))) {
        let (set, value) = line.rsplit_once(' ').unwrap_or((line, "0"));
        let label = |name: &str| {
            set.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        *by.entry(labels.iter().map(|l| label(l)).collect()).or_default() +=
            value.parse::<f64>().unwrap_or(0.0);
    }
    let total: f64 = by.values().sum();
    let mut rows: Vec<(Vec<String>, f64)> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = rows
        .iter()
        .take(12)
        .map(|(key, n)| format!("{} {n}", key.join(" ")))
        .collect();
    format!("{} (total {total})", top.join(", "))
}

/// What the API server's `/metrics` says about the run: requests by verb and resource. (The controllers'
/// reconcile counts are on `ironnet up`'s telemetry page, which the lab does not expose to the benchmark.)
async fn load_summary(client: &kube::Client) -> String {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("static request");
    let Ok(page) = client.request_text(request).await else {
        return "(metrics not readable)".to_owned();
    };
    format!(
        "API requests served: {}",
        breakdown(&page, "apiserver_request_total", &["verb", "resource"]),
    )
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
