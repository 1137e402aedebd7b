//! The Events apinetlet records on tenant objects, read back through the API and shown by the real
//! `kubectl describe` over TCP: public IPs allocated, an exhausted pool (one Event whose count grows with
//! every retry), an interface bound to its node, ready and given its addresses, and a policy's reach.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::common::{
    APINET_NS, Env, PUBLIC_PREFIX, apinet, env, env_with_allocation, env_with_prefix, ironcore, s,
};
use crate::networkinterface::{apinet_nic, ironcore_nic, mark_ready};

/// The Events about the `default/<name>` object of `kind`.
async fn events_of(env: &Env, kind: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
    api.list(&ListParams::default().fields(&selector))
        .await
        .unwrap()
        .items
}

/// Waits for an Event about `default/<name>` with `reason` whose message satisfies `note` and returns it.
async fn wait_event(env: &Env, kind: &str, name: &str, reason: &str, note: impl Fn(&str) -> bool) -> Event {
    env.wait_for(&format!("{reason} event on {kind} {name}"), || async {
        events_of(env, kind, name)
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason) && note(e.message.as_deref().unwrap_or_default()))
    })
    .await
}

/// The Events about `default/<name>` with `reason`.
async fn with_reason(env: &Env, kind: &str, name: &str, reason: &str) -> Vec<Event> {
    events_of(env, kind, name)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// `kubectl describe <resource> <name>` (namespace default) with the kubeconfig at `kubeconfig`.
async fn describe(kubeconfig: &Path, resource: &str, name: &str) -> String {
    kubectl(kubeconfig, &["describe", resource, name, "-n", "default"]).await
}

/// The real kubectl with `args` and the kubeconfig at `kubeconfig`; must succeed; its stdout.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let home = kubeconfig.parent().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(home.join("kubectl-cache"))
            .args(args)
            .env("HOME", home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
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

/// The line of `kubectl describe`'s Events section that carries `text`.
fn event_line<'a>(described: &'a str, text: &str) -> &'a str {
    let events = described
        .split_once("\nEvents:")
        .unwrap_or_else(|| panic!("no Events section in\n{described}"))
        .1;
    events
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no event line with {text:?} in\n{described}"))
}

async fn create_vip(env: &Env, name: &str) {
    env.create(
        &ironcore("VirtualIP"),
        Some("default"),
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP",
               "metadata": {"name": name}, "spec": {"type": "Public", "ipFamily": "IPv4"}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocated_address_and_an_exhausted_pool_are_events_kubectl_describe_shows() {
    // A pool of exactly one address: the first VirtualIP gets it, the second finds the pool exhausted.
    let env = env_with_prefix(
        ironnet_apinetlet::ApinetletConfig::new(APINET_NS),
        "198.51.100.7/32",
    )
    .await;
    let kubeconfig = env.serve_tcp().await;
    create_vip(&env, "first").await;
    let allocated = wait_event(&env, "VirtualIP", "first", "AddressAllocated", |_| true).await;
    assert_eq!(
        allocated.message.as_deref(),
        Some("Allocated public IP 198.51.100.7")
    );
    assert_eq!(allocated.type_.as_deref(), Some("Normal"));
    assert_eq!(allocated.reporting_component.as_deref(), Some("apinetlet"));
    assert_eq!(allocated.action.as_deref(), Some("Allocate"));

    create_vip(&env, "second").await;
    // Every retry (every 2 s) hits the same exhausted pool: one Event, its series count growing.
    let exhausted = env
        .wait_for("PoolExhausted event counted twice", || async {
            with_reason(&env, "VirtualIP", "second", "PoolExhausted")
                .await
                .into_iter()
                .find(|e| e.series.as_ref().is_some_and(|s| s.count.is_some_and(|c| c >= 2)))
        })
        .await;
    assert_eq!(exhausted.type_.as_deref(), Some("Warning"));
    assert_eq!(
        exhausted.message.as_deref(),
        Some(
            "Cannot allocate a public IPv4 address: the IPv4 public IP address pool is exhausted (all IP addresses are already allocated); retrying until one is released"
        )
    );
    assert_eq!(
        with_reason(&env, "VirtualIP", "second", "PoolExhausted")
            .await
            .len(),
        1,
        "repeats must fold into one Event"
    );
    let second = env
        .get(&ironcore("VirtualIP"), Some("default"), "second")
        .await
        .unwrap();
    assert_eq!(second.pointer("/status/ip"), None);
    assert!(
        with_reason(&env, "VirtualIP", "second", "AddressAllocated")
            .await
            .is_empty()
    );

    // Allocated once: a status write repeated from a stale cache is no second allocation.
    let allocations = with_reason(&env, "VirtualIP", "first", "AddressAllocated").await;
    assert_eq!(allocations.len(), 1, "{allocations:#?}");
    assert!(allocations[0].series.is_none(), "{allocations:#?}");
    let first = describe(&kubeconfig, "virtualips.networking.ironcore.dev", "first").await;
    let line = event_line(&first, "Allocated public IP 198.51.100.7");
    assert!(
        line.contains("Normal") && line.contains("AddressAllocated") && line.contains("apinetlet"),
        "{line}"
    );
    let second = describe(&kubeconfig, "virtualips.networking.ironcore.dev", "second").await;
    let line = event_line(&second, "public IP address pool is exhausted");
    assert!(
        line.contains("Warning") && line.contains("PoolExhausted"),
        "{line}"
    );
    // kubectl shows a series as "<age> (x<count> over <age>)".
    assert!(line.contains("(x"), "a series shows its count: {line}");
    // `kubectl events` shows the same Events for the object: its columns are
    // LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.
    let listed = kubectl(
        &kubeconfig,
        &[
            "events",
            "-n",
            "default",
            "--for",
            "virtualips.networking.ironcore.dev/second",
        ],
    )
    .await;
    let line = listed
        .lines()
        .find(|l| l.contains("public IP address pool is exhausted"))
        .unwrap_or_else(|| panic!("no PoolExhausted line in kubectl events:\n{listed}"));
    assert!(
        line.contains("Warning") && line.contains("PoolExhausted") && line.contains("VirtualIP/second"),
        "{line}"
    );
    assert!(
        !listed.contains("VirtualIP/first"),
        "--for shows only the named object's Events:\n{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_placed_ready_and_addressed_and_a_policy_reaching_it_are_events() {
    let env = env().await;
    let kubeconfig = env.serve_tcp().await;
    let net = env.available_network("default", "net", json!({})).await;
    create_vip(&env, "vip").await;
    let vip_ip = env
        .wait_for("vip address", || async {
            let v = env.get(&ironcore("VirtualIP"), Some("default"), "vip").await?;
            v.pointer("/status/ip").and_then(Value::as_str).map(str::to_owned)
        })
        .await;

    let anic = apinet_nic(&env, "apinet-nic", s(&net, "/metadata/uid"), "10.0.0.1").await;
    ironcore_nic(
        &env,
        "nic",
        json!({"app": "web"}),
        &anic,
        json!({"virtualIP": {"virtualIPRef": {"name": "vip"}}}),
    )
    .await;
    let placed = wait_event(&env, "NetworkInterface", "nic", "Placed", |_| true).await;
    assert_eq!(
        placed.message.as_deref(),
        Some("Bound to network interface apinet-system/apinet-nic on node node-1")
    );
    wait_event(&env, "NetworkInterface", "nic", "AddressAllocated", |m| {
        m == "Assigned IPs 10.0.0.1"
    })
    .await;
    // The node agent's part: once the public IP is pushed down, report the interface realised.
    env.wait_for("public IP pushed to the apinet interface", || async {
        env.get(&apinet("NetworkInterface"), Some(APINET_NS), "apinet-nic")
            .await?
            .pointer("/spec/publicIPs/0")
            .map(|_| ())
    })
    .await;
    mark_ready(&env, "apinet-nic").await;
    wait_event(&env, "NetworkInterface", "nic", "Ready", |m| {
        m == "Ready on node node-1"
    })
    .await;
    let public = format!("Assigned public IP {vip_ip}");
    wait_event(&env, "NetworkInterface", "nic", "AddressAllocated", |m| {
        m == public
    })
    .await;

    env.create(
        &ironcore("NetworkPolicy"),
        Some("default"),
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkPolicy",
               "metadata": {"name": "web"},
               "spec": {"networkRef": {"name": "net"},
                        "networkInterfaceSelector": {"matchLabels": {"app": "web"}},
                        "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"objectSelector": {"kind": "NetworkInterface", "matchLabels": {"app": "batch"}}}],
                                     "ports": [{"protocol": "TCP", "port": 80}]}]}}),
    )
    .await;
    wait_event(&env, "NetworkPolicy", "web", "PolicyApplied", |m| {
        m == "Applied to 1 network interface"
    })
    .await;
    // A second selected interface widens the rule's reach: a new Event with the new number.
    let anic2 = apinet_nic(&env, "apinet-nic-2", s(&net, "/metadata/uid"), "10.0.0.2").await;
    ironcore_nic(&env, "nic-2", json!({"app": "web"}), &anic2, json!({})).await;
    wait_event(&env, "NetworkInterface", "nic-2", "Placed", |_| true).await;
    mark_ready(&env, "apinet-nic-2").await;
    wait_event(&env, "NetworkPolicy", "web", "PolicyApplied", |m| {
        m == "Applied to 2 network interfaces"
    })
    .await;
    // The policy was reconciled many times meanwhile; an unchanged reach is not recorded again.
    let applied = with_reason(&env, "NetworkPolicy", "web", "PolicyApplied").await;
    for note in [
        "Applied to 1 network interface",
        "Applied to 2 network interfaces",
    ] {
        let with_note: Vec<&Event> = applied
            .iter()
            .filter(|e| e.message.as_deref() == Some(note))
            .collect();
        assert_eq!(with_note.len(), 1, "{applied:#?}");
        assert!(with_note[0].series.is_none(), "{applied:#?}");
    }

    let described = describe(&kubeconfig, "networkinterfaces.networking.ironcore.dev", "nic").await;
    for (reason, text) in [
        (
            "Placed",
            "Bound to network interface apinet-system/apinet-nic on node node-1",
        ),
        ("AddressAllocated", "Assigned IPs 10.0.0.1"),
        ("Ready", "Ready on node node-1"),
        ("AddressAllocated", public.as_str()),
    ] {
        let line = event_line(&described, text);
        assert!(
            line.contains("Normal") && line.contains(reason) && line.contains("apinetlet"),
            "{line}"
        );
    }
    let described = describe(&kubeconfig, "networkpolicies.networking.ironcore.dev", "web").await;
    assert!(event_line(&described, "Applied to 1 network interface").contains("PolicyApplied"));
    assert!(event_line(&described, "Applied to 2 network interfaces").contains("PolicyApplied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_network_id_pool_is_a_warning_on_the_network() {
    // Two VNIs: the third Network finds the pool exhausted and stays Pending.
    let allocation = ironnet_registry::AllocationConfig {
        vni_range: ironnet_registry::alloc::VniRange::new(200, 201).unwrap(),
        public_prefixes: vec![PUBLIC_PREFIX.parse().unwrap()],
    };
    let env = env_with_allocation(ironnet_apinetlet::ApinetletConfig::new(APINET_NS), allocation).await;
    let kubeconfig = env.serve_tcp().await;
    env.available_network("default", "a", json!({})).await;
    env.available_network("default", "b", json!({})).await;
    env.create(
        &ironcore("Network"),
        Some("default"),
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network", "metadata": {"name": "c"}, "spec": {}}),
    )
    .await;
    let exhausted = wait_event(&env, "Network", "c", "PoolExhausted", |_| true).await;
    assert_eq!(exhausted.type_.as_deref(), Some("Warning"));
    assert_eq!(
        exhausted.message.as_deref(),
        Some(
            "Cannot allocate a network ID: the network ID (VNI) pool is exhausted (all IDs are allocated); retrying until one is released"
        )
    );
    let c = env.get(&ironcore("Network"), Some("default"), "c").await.unwrap();
    assert_eq!(c.pointer("/status/state"), Some(&json!("Pending")));
    for name in ["a", "b"] {
        assert!(
            with_reason(&env, "Network", name, "PoolExhausted")
                .await
                .is_empty()
        );
    }
    let described = describe(&kubeconfig, "networks.networking.ironcore.dev", "c").await;
    let line = event_line(&described, "network ID (VNI) pool is exhausted");
    assert!(
        line.contains("Warning") && line.contains("PoolExhausted") && line.contains("apinetlet"),
        "{line}"
    );
}
