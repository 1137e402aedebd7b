//! Restart: `ironnet controller-manager` and `ironnet apinetlet` processes are SIGKILLed at random moments while a
//! tenant applies a large set of objects (and a provider attaches NetworkInterfaces); once they run again, the
//! state converges with no duplicate derived object and no leaked VNI, public IP or NAT slot, and deleting every
//! tenant object frees everything.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use rand::Rng;
use serde_json::{Value, json};

use crate::common::{ControllerProcesses, ironnet_apiserver};

const APINET_NS: &str = "apinet-system";
const TENANT_NS: &str = "default";
const NETWORKS: usize = 40;
/// Networks 0..NIC_NETWORKS get NICS_PER_NETWORK NetworkInterfaces each.
const NIC_NETWORKS: usize = 10;
const NICS_PER_NETWORK: usize = 6;
/// VirtualIPs; the first NIC_NETWORKS are bound to the last NIC of each NIC network.
const VIPS: usize = 20;
/// Networks 0..NATS get a NATGateway.
const NATS: usize = 4;
/// Networks 0..LBS get a LoadBalancer (selecting `app: web`) and a NetworkPolicy.
const LBS: usize = 3;
/// Networks PEERED_FROM.. are peered pairwise (2k with 2k+1).
const PEERED_FROM: usize = 30;

fn res(group: &str, kind: &str, plural: &str) -> ApiResource {
    let (api_version, version) = (format!("{group}/v1alpha1"), "v1alpha1".to_owned());
    ApiResource {
        group: group.to_owned(),
        version,
        api_version,
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

fn tenant(kind: &str) -> ApiResource {
    let plural = match kind {
        "Network" => "networks",
        "VirtualIP" => "virtualips",
        "NATGateway" => "natgateways",
        "LoadBalancer" => "loadbalancers",
        "LoadBalancerRouting" => "loadbalancerroutings",
        "NetworkPolicy" => "networkpolicies",
        "NetworkInterface" => "networkinterfaces",
        other => panic!("unknown tenant kind {other}"),
    };
    res("networking.ironcore.dev", kind, plural)
}

fn apinet(kind: &str) -> ApiResource {
    let plural = match kind {
        "Network" => "networks",
        "NetworkID" => "networkids",
        "IP" => "ips",
        "IPAddress" => "ipaddresses",
        "NATGateway" => "natgateways",
        "NATGatewayAutoscaler" => "natgatewayautoscalers",
        "NATTable" => "nattables",
        "LoadBalancer" => "loadbalancers",
        "LoadBalancerRouting" => "loadbalancerroutings",
        "NetworkPolicy" => "networkpolicies",
        "NetworkPolicyRule" => "networkpolicyrules",
        "NetworkInterface" => "networkinterfaces",
        "Node" => "nodes",
        other => panic!("unknown apinet kind {other}"),
    };
    res("core.apinet.ironcore.dev", kind, plural)
}

/// Lists every object of `r` (in `ns`, or cluster-wide) as JSON.
async fn list(client: &kube::Client, r: &ApiResource, ns: Option<&str>) -> Vec<Value> {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, r),
        None => Api::all_with(client.clone(), r),
    };
    match api.list(&ListParams::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect(),
        Err(e) => panic!("listing {}: {e}", r.plural),
    }
}

/// Creates `obj` (retrying transient errors; an existing object counts as created).
async fn create(client: &kube::Client, r: &ApiResource, ns: Option<&str>, obj: Value) -> Value {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, r),
        None => Api::all_with(client.clone(), r),
    };
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    let name = obj.metadata.name.clone().unwrap();
    for _ in 0..100 {
        match api.create(&PostParams::default(), &obj).await {
            Ok(o) => return serde_json::to_value(o).unwrap(),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
            }
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => panic!("{} {name}: {s:?}", r.kind),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("could not create {} {name}", r.kind)
}

async fn get(client: &kube::Client, r: &ApiResource, ns: &str, name: &str) -> Option<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, r);
    api.get_opt(name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn name(v: &Value) -> &str {
    s(v, "/metadata/name")
}

fn uid(v: &Value) -> &str {
    s(v, "/metadata/uid")
}

fn nic_name(net: usize, i: usize) -> String {
    format!("nic-{net}-{i}")
}

/// What the tenant and the provider do: create every object, attach every NetworkInterface to the simulated
/// node once its Network exists in ironcore-net.
async fn apply_everything(client: kube::Client) {
    let networks = futures::stream::iter(0..NETWORKS).map(|n| {
        let client = client.clone();
        async move {
            let peer = match n {
                n if n >= PEERED_FROM => Some(if (n - PEERED_FROM).is_multiple_of(2) {
                    n + 1
                } else {
                    n - 1
                }),
                _ => None,
            };
            let peerings: Vec<Value> = peer
                .into_iter()
                .map(|p| json!({"name": "peer", "networkRef": {"name": format!("net-{p}")}}))
                .collect();
            let body = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
                "metadata": {"name": format!("net-{n}")}, "spec": {"peerings": peerings}});
            create(&client, &tenant("Network"), Some(TENANT_NS), body).await;
        }
    });
    networks.buffer_unordered(8).collect::<Vec<_>>().await;

    for v in 0..VIPS {
        let body = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP",
            "metadata": {"name": format!("vip-{v}")}, "spec": {"type": "Public", "ipFamily": "IPv4"}});
        create(&client, &tenant("VirtualIP"), Some(TENANT_NS), body).await;
    }
    for n in 0..NATS {
        let body = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NATGateway",
            "metadata": {"name": format!("nat-{n}")},
            "spec": {"type": "Public", "ipFamily": "IPv4", "portsPerNetworkInterface": 64,
                     "networkRef": {"name": format!("net-{n}")}}});
        create(&client, &tenant("NATGateway"), Some(TENANT_NS), body).await;
    }
    for n in 0..LBS {
        let lb = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancer",
            "metadata": {"name": format!("lb-{n}")},
            "spec": {"type": "Public", "ipFamilies": ["IPv4"], "networkRef": {"name": format!("net-{n}")},
                     "networkInterfaceSelector": {"matchLabels": {"app": "web"}}, "ports": [{"port": 80}]}});
        create(&client, &tenant("LoadBalancer"), Some(TENANT_NS), lb).await;
        let np = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkPolicy",
            "metadata": {"name": format!("np-{n}")},
            "spec": {"networkRef": {"name": format!("net-{n}")},
                     "networkInterfaceSelector": {"matchLabels": {"app": "web"}},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"objectSelector": {"kind": "NetworkInterface",
                                                               "matchLabels": {"app": "db"}}}],
                                  "ports": [{"protocol": "TCP", "port": 80}]}]}});
        create(&client, &tenant("NetworkPolicy"), Some(TENANT_NS), np).await;
    }

    let nics =
        futures::stream::iter((0..NIC_NETWORKS).flat_map(|n| (0..NICS_PER_NETWORK).map(move |i| (n, i))))
            .map(|(n, i)| {
                let client = client.clone();
                async move { attach_nic(&client, n, i).await }
            });
    nics.buffer_unordered(8).collect::<Vec<_>>().await;
}

/// The provider's part for one NetworkInterface: wait until the tenant Network is in ironcore-net, create the
/// apinet NetworkInterface on the node, then the tenant NetworkInterface with the provider ID.
async fn attach_nic(client: &kube::Client, net: usize, i: usize) {
    let name = nic_name(net, i);
    let net_uid = loop {
        let n = get(client, &tenant("Network"), TENANT_NS, &format!("net-{net}"))
            .await
            .unwrap();
        if get(client, &apinet("Network"), APINET_NS, uid(&n))
            .await
            .is_some()
        {
            break uid(&n).to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ip = format!("10.{net}.0.{}", i + 10);
    let body = json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
        "metadata": {"name": name}, "spec": {"networkRef": {"name": net_uid}, "nodeRef": {"name": "node-1"},
        "ips": [ip]}});
    let anic = create(client, &apinet("NetworkInterface"), Some(APINET_NS), body).await;
    let app = if i < 3 { "web" } else { "db" };
    let mut spec = json!({"networkRef": {"name": format!("net-{net}")}, "ipFamilies": ["IPv4"],
        "ips": [{"value": ip}],
        "providerID": format!("ironcore-net://{APINET_NS}/{name}/node-1/{}", uid(&anic))});
    if i == NICS_PER_NETWORK - 1 {
        spec["virtualIP"] = json!({"virtualIPRef": {"name": format!("vip-{net}")}});
    }
    let body = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
        "metadata": {"name": name, "labels": {"app": app}}, "spec": spec});
    create(client, &tenant("NetworkInterface"), Some(TENANT_NS), body).await;
}

/// Why the state has not converged yet (`None` once it has).
async fn not_converged(client: &kube::Client) -> Option<String> {
    let nets = list(client, &tenant("Network"), Some(TENANT_NS)).await;
    for n in &nets {
        if s(n, "/status/state") != "Available" {
            return Some(format!("network {} not Available", name(n)));
        }
        let prefix = format!("ironcore-net://{APINET_NS}/{}/", uid(n));
        if !s(n, "/spec/providerID").starts_with(&prefix) {
            return Some(format!(
                "network {} providerID {:?}",
                name(n),
                s(n, "/spec/providerID")
            ));
        }
        let idx: usize = name(n)[4..].parse().unwrap();
        if idx >= PEERED_FROM && s(n, "/status/peerings/0/state") != "Ready" {
            return Some(format!("network {} peering not Ready", name(n)));
        }
    }
    for v in list(client, &tenant("VirtualIP"), Some(TENANT_NS)).await {
        if s(&v, "/status/ip").is_empty() {
            return Some(format!("virtualip {} without ip", name(&v)));
        }
    }
    for g in list(client, &tenant("NATGateway"), Some(TENANT_NS)).await {
        if g.pointer("/status/ips/0").is_none() {
            return Some(format!("natgateway {} without ips", name(&g)));
        }
    }
    for lb in list(client, &tenant("LoadBalancer"), Some(TENANT_NS)).await {
        if lb.pointer("/status/ips/0").is_none() {
            return Some(format!("loadbalancer {} without ips", name(&lb)));
        }
        let routing = get(client, &tenant("LoadBalancerRouting"), TENANT_NS, name(&lb)).await;
        let dests = routing
            .as_ref()
            .and_then(|r| r["destinations"].as_array())
            .map_or(0, Vec::len);
        if dests != 3 {
            return Some(format!(
                "loadbalancer {} routes to {dests} destinations",
                name(&lb)
            ));
        }
    }
    let nics = list(client, &tenant("NetworkInterface"), Some(TENANT_NS)).await;
    if nics.len() != NIC_NETWORKS * NICS_PER_NETWORK {
        return Some(format!("{} networkinterfaces", nics.len()));
    }
    for nic in &nics {
        if s(nic, "/status/state") != "Available" {
            return Some(format!("networkinterface {} not Available", name(nic)));
        }
        if nic.pointer("/spec/virtualIP").is_some() && s(nic, "/status/virtualIP").is_empty() {
            return Some(format!("networkinterface {} without its virtual IP", name(nic)));
        }
    }
    for t in list(client, &apinet("NATTable"), Some(APINET_NS)).await {
        let sections: usize = t["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|ip| ip["sections"].as_array().map_or(0, Vec::len))
            .sum();
        // Every NIC of the network but the one with a virtual IP gets a port range.
        if sections != NICS_PER_NETWORK - 1 {
            return Some(format!("nattable {} has {sections} sections", name(&t)));
        }
    }
    let rules = list(client, &apinet("NetworkPolicyRule"), Some(APINET_NS)).await;
    if rules.len() != LBS
        || rules
            .iter()
            .any(|r| r["targets"].as_array().map_or(0, Vec::len) != 3)
    {
        return Some(format!(
            "{} networkpolicyrules, not all with 3 targets",
            rules.len()
        ));
    }
    None
}

/// Asserts that every derived object stems from exactly one living source and every allocation is held by a
/// living object.
async fn assert_no_duplicates_or_leaks(client: &kube::Client) {
    for (kind, origin) in [
        ("Network", "network"),
        ("IP", "virtualip"),
        ("NATGateway", "natgateway"),
        ("LoadBalancer", "loadbalancer"),
        ("NetworkPolicy", "networkpolicy"),
    ] {
        let sources: BTreeSet<String> = list(
            client,
            &tenant(match kind {
                "IP" => "VirtualIP",
                k => k,
            }),
            Some(TENANT_NS),
        )
        .await
        .iter()
        .map(|o| uid(o).to_owned())
        .collect();
        let label = format!("apinetlet.ironcore.dev/{origin}-uid");
        let mut by_origin: BTreeMap<String, usize> = BTreeMap::new();
        for o in list(client, &apinet(kind), Some(APINET_NS)).await {
            // The ephemeral IPs of NATGateways and LoadBalancers are owned by them, not by a tenant VirtualIP;
            // they are checked with the IPAddresses below.
            if kind == "IP" && o["metadata"]["labels"].get(&label).is_none() {
                continue;
            }
            let src = o["metadata"]["labels"][&label]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                sources.contains(&src),
                "apinet {kind} {} stems from no living source",
                name(&o)
            );
            *by_origin.entry(src).or_default() += 1;
        }
        assert_eq!(
            by_origin.len(),
            sources.len(),
            "every tenant {kind} has its apinet object"
        );
        assert!(
            by_origin.values().all(|&c| c == 1),
            "duplicate apinet {kind}s: {by_origin:?}"
        );
    }

    let apinet_nets: BTreeSet<String> = list(client, &apinet("Network"), Some(APINET_NS))
        .await
        .iter()
        .map(|o| name(o).to_owned())
        .collect();
    let ids = list(client, &apinet("NetworkID"), None).await;
    assert_eq!(ids.len(), apinet_nets.len(), "one NetworkID per Network");
    for id in &ids {
        assert!(
            apinet_nets.contains(s(id, "/spec/claimRef/name")),
            "NetworkID {} leaked",
            name(id)
        );
    }

    // Every IPAddress is held by an address that a living object carries, and vice versa.
    let mut held = BTreeSet::new();
    for ip in list(client, &apinet("IP"), Some(APINET_NS)).await {
        held.insert(s(&ip, "/spec/ip").to_owned());
    }
    for kind in ["NATGateway", "LoadBalancer"] {
        for o in list(client, &apinet(kind), Some(APINET_NS)).await {
            for ip in o["spec"]["ips"].as_array().into_iter().flatten() {
                held.insert(s(ip, "/ip").to_owned());
            }
        }
    }
    // Every ephemeral IP belongs to a living NATGateway or LoadBalancer.
    let mut owners = BTreeSet::new();
    for kind in ["NATGateway", "LoadBalancer"] {
        for o in list(client, &apinet(kind), Some(APINET_NS)).await {
            owners.insert(uid(&o).to_owned());
        }
    }
    for ip in list(client, &apinet("IP"), Some(APINET_NS)).await {
        if ip["metadata"]["labels"]
            .get("apinetlet.ironcore.dev/virtualip-uid")
            .is_none()
        {
            let owner = s(&ip, "/metadata/ownerReferences/0/uid");
            assert!(
                owners.contains(owner),
                "ephemeral IP {} has no living owner",
                name(&ip)
            );
        }
    }
    let addresses: BTreeSet<String> = list(client, &apinet("IPAddress"), None)
        .await
        .iter()
        .map(|o| name(o).to_owned())
        .collect();
    assert_eq!(addresses, held, "IPAddresses are exactly the addresses in use");

    // NAT slots: each NIC holds at most one range per gateway, and only living NICs hold any.
    let nic_uids: BTreeSet<String> = list(client, &apinet("NetworkInterface"), Some(APINET_NS))
        .await
        .iter()
        .map(|o| uid(o).to_owned())
        .collect();
    for t in list(client, &apinet("NATTable"), Some(APINET_NS)).await {
        let mut seen = BTreeSet::new();
        for section in t["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|ip| ip["sections"].as_array())
            .flatten()
        {
            let target = s(section, "/targetRef/uid").to_owned();
            assert!(
                nic_uids.contains(&target),
                "nattable {} holds a slot for a gone NIC",
                name(&t)
            );
            assert!(
                seen.insert(target),
                "nattable {} holds two slots for one NIC",
                name(&t)
            );
        }
    }
}

async fn wait_converged(client: &kube::Client, procs: &ControllerProcesses) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let why = not_converged(client).await;
        let Some(why) = why else { return };
        assert!(
            tokio::time::Instant::now() < deadline,
            "not converged: {why}\n{}",
            procs.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn delete_all(client: &kube::Client, r: &ApiResource, ns: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, r);
    for o in api.list(&ListParams::default()).await.unwrap() {
        let _ = api
            .delete(&o.metadata.name.unwrap(), &DeleteParams::default())
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_killed_during_a_large_apply_converge_without_duplicates_or_leaks() {
    let server = ironnet_apiserver();
    let client = server.client().await;
    let nodes: Api<DynamicObject> = Api::all_with(client.clone(), &apinet("Node"));
    let node = serde_json::from_value(
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": "node-1"}, "spec": {}}),
    )
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": APINET_NS}})).unwrap();
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let node_agent = tokio::spawn(ironnet_controllers::simulated_node::run(
        client.clone(),
        "node-1".to_owned(),
        "simulated".to_owned(),
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        },
    ));

    let mut procs = ControllerProcesses::start(&server.kubeconfig(), server.dir());
    let apply = tokio::spawn(apply_everything(client.clone()));
    let (mut kills, mut kills_during_apply) = (0, 0);
    while !apply.is_finished() || kills < 6 {
        let pause = rand::rng().random_range(100..800);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if !apply.is_finished() {
            kills_during_apply += 1;
        }
        procs.kill_and_restart(rand::rng().random_range(0..3));
        kills += 1;
        assert!(kills < 200, "the apply did not finish");
    }
    apply.await.unwrap();
    eprintln!("killed the controllers {kills} times, {kills_during_apply} of them during the apply");
    wait_converged(&client, &procs).await;
    assert_no_duplicates_or_leaks(&client).await;

    // A label change moves a NIC out of the load balancers' and policies' selection.
    let tenant_nics: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), TENANT_NS, &tenant("NetworkInterface"));
    tenant_nics
        .patch(
            &nic_name(0, 0),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let routing = get(&client, &tenant("LoadBalancerRouting"), TENANT_NS, "lb-0")
            .await
            .unwrap();
        if routing["destinations"].as_array().map_or(0, Vec::len) == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "routing did not follow the label change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting every tenant object (and the provider's NICs) frees every VNI, IP and NAT slot.
    for kind in [
        "NetworkInterface",
        "NetworkPolicy",
        "LoadBalancer",
        "NATGateway",
        "VirtualIP",
        "Network",
    ] {
        delete_all(&client, &tenant(kind), TENANT_NS).await;
    }
    delete_all(&client, &apinet("NetworkInterface"), APINET_NS).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut left = Vec::new();
        for kind in [
            "Network",
            "NetworkInterface",
            "VirtualIP",
            "NATGateway",
            "LoadBalancer",
            "NetworkPolicy",
        ] {
            let n = list(&client, &tenant(kind), Some(TENANT_NS)).await.len();
            if n > 0 {
                left.push(format!("{n} tenant {kind}"));
            }
        }
        for kind in [
            "Network",
            "IP",
            "NATGateway",
            "NATTable",
            "LoadBalancer",
            "LoadBalancerRouting",
            "NetworkPolicy",
            "NetworkPolicyRule",
            "NetworkInterface",
        ] {
            let n = list(&client, &apinet(kind), Some(APINET_NS)).await.len();
            if n > 0 {
                left.push(format!("{n} apinet {kind}"));
            }
        }
        for kind in ["NetworkID", "IPAddress"] {
            let n = list(&client, &apinet(kind), None).await.len();
            if n > 0 {
                left.push(format!("{n} {kind}"));
            }
        }
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left after deleting everything: {left:?}\n{}",
            procs.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = stop_tx.send(true);
    let _ = node_agent.await;
}
