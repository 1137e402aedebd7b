//! A simulated hypervisor, used by `ironnet up` and the control-plane benchmark: it reports every
//! `core.apinet.ironcore.dev` NetworkInterface placed on its Node as realised, the way metalnetlet does once
//! a real node's dataplane has programmed the interface (`status.state`, `prefixes`, `publicIPs`, `natIPs`),
//! and reports the peerings of every Network under its partition in `status.peerings` (a peering is `Ready`
//! once the peer Network exists and peers back, `Pending` until then), as metalnetlet's Network controller
//! does.
//!
//! It exists so that a laptop without hypervisors can take tenant objects all the way to `state: Available`; a
//! real node agent replaces it by running with its own Node name.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ironnet_api::apinet::{NATTable, Network, NetworkInterface};
use ironnet_runtime::controller::{Action, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use ironnet_runtime::ReconcileError;
use ironnet_runtime::cache::{IndexedStore, index_key, indexed_reflector};

/// The cache index of NATTables by the interfaces (UIDs) their sections target.
const BY_TARGET: &str = "target";

struct Ctx {
    client: Client,
    node: String,
    partition: String,
    /// NATTables by `target:<namespace>/<interface uid>`.
    tables: IndexedStore<NATTable>,
    /// Every Network (filled by the Network controller's own watch).
    networks: Store<Network>,
}

/// The interfaces (namespace, uid) a NATTable gives a section to.
fn table_targets(table: &NATTable) -> Vec<String> {
    let ns = table.namespace();
    let v = serde_json::to_value(table).unwrap_or(Value::Null);
    v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ip| ip["sections"].as_array().into_iter().flatten())
        .filter_map(|s| s.pointer("/targetRef/uid").and_then(Value::as_str))
        .map(|uid| index_key(BY_TARGET, ns.as_deref(), uid))
        .collect()
}

/// The status a node reports for `nic` once it has realised it, given the NAT IPs the NATTables hand it.
fn realised_status(nic: &Value, nat_ips: &BTreeSet<String>) -> Value {
    let spec = &nic["spec"];
    let public_ips: Vec<&Value> = spec["publicIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("ip").filter(|ip| ip.is_string()))
        .collect();
    let mut status = json!({ "state": "Ready" });
    if let Some(prefixes) = spec["prefixes"].as_array().filter(|p| !p.is_empty()) {
        status["prefixes"] = json!(prefixes);
    }
    if !public_ips.is_empty() {
        status["publicIPs"] = json!(public_ips);
    }
    if !nat_ips.is_empty() {
        status["natIPs"] = json!(nat_ips);
    }
    status
}

/// Whether the fields a node owns in `current` already equal `desired`.
fn status_matches(current: &Value, desired: &Value) -> bool {
    ["state", "prefixes", "publicIPs", "natIPs"].iter().all(|k| {
        let empty = |v: &Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
        let (c, d) = (&current[k], &desired[k]);
        c == d || (empty(c) && empty(d))
    })
}

async fn reconcile(nic: Arc<NetworkInterface>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if nic.spec.node_ref.name != ctx.node || nic.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = nic.namespace().unwrap_or_default();
    let uid = nic.uid().unwrap_or_default();
    // The table cache feeds this controller's table triggers, so it is at least as new as the event that led
    // here.
    ctx.tables.wait_ready().await;
    let mut nat_ips = BTreeSet::new();
    for table in ctx.tables.indexed(&index_key(BY_TARGET, Some(&ns), &uid)) {
        let table = serde_json::to_value(table.as_ref()).unwrap_or(Value::Null);
        for ip in table["ips"].as_array().into_iter().flatten() {
            let mine = ip["sections"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s.pointer("/targetRef/uid").and_then(Value::as_str) == Some(uid.as_str()));
            if let (true, Some(addr)) = (mine, ip["ip"].as_str()) {
                nat_ips.insert(addr.to_owned());
            }
        }
    }
    let value = serde_json::to_value(nic.as_ref()).unwrap_or(Value::Null);
    let desired = realised_status(&value, &nat_ips);
    if status_matches(&value["status"], &desired) {
        return Ok(Action::await_change());
    }
    let mut patch = desired;
    for k in ["prefixes", "publicIPs", "natIPs"] {
        if patch.get(k).is_none() {
            patch[k] = Value::Null;
        }
    }
    Api::<NetworkInterface>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &nic.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": patch })),
        )
        .await?;
    Ok(Action::await_change())
}

/// The peering states a node reports for `network` (`{id, state}` per `spec.peerings` entry), given every
/// Network's `(id, peered ids)`: `Ready` when a Network with the peer's id exists and peers back.
fn peering_states(network: &Value, all: &[(i64, Vec<i64>)]) -> Vec<Value> {
    let own: Option<i64> = network
        .pointer("/spec/id")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok());
    network["spec"]["peerings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().and_then(|id| id.parse::<i64>().ok()))
        .map(|peer| {
            let mutual = all
                .iter()
                .any(|(id, peers)| *id == peer && own.is_some_and(|own| peers.contains(&own)));
            json!({"id": peer, "state": if mutual { "Ready" } else { "Pending" }})
        })
        .collect()
}

fn ids(network: &Value) -> (i64, Vec<i64>) {
    let parse = |v: &Value| v.as_str().and_then(|s| s.parse::<i64>().ok());
    let id = parse(&network["spec"]["id"]).unwrap_or(-1);
    let peers = network["spec"]["peerings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| parse(&p["id"]))
        .collect();
    (id, peers)
}

async fn reconcile_network(network: Arc<Network>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if network.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let value = serde_json::to_value(network.as_ref()).unwrap_or(Value::Null);
    let has_peerings = value["spec"]["peerings"]
        .as_array()
        .is_some_and(|p| !p.is_empty());
    let all: Vec<(i64, Vec<i64>)> = if has_peerings {
        ctx.networks
            .state()
            .iter()
            .map(|n| ids(&serde_json::to_value(n.as_ref()).unwrap_or(Value::Null)))
            .collect()
    } else {
        Vec::new()
    };
    let states = peering_states(&value, &all);
    let current = &value["status"]["peerings"][&ctx.partition];
    let unchanged = current == &json!(states) || (states.is_empty() && current.is_null());
    let pending = states.iter().any(|s| s["state"] == "Pending");
    if !unchanged {
        let patch = json!({"status": {"peerings": {(ctx.partition.clone()): if states.is_empty() { Value::Null } else { json!(states) }}}});
        Api::<Network>::namespaced(ctx.client.clone(), &network.namespace().unwrap_or_default())
            .patch_status(
                &network.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    // A peer that appears later is noticed on the next look.
    Ok(if pending {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::await_change()
    })
}

/// Runs the simulated node `node` of `partition` until `shutdown` resolves.
pub async fn run(
    client: Client,
    node: String,
    partition: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let nics: Api<NetworkInterface> = Api::all(client.clone());
    let networks: Api<Network> = Api::all(client.clone());
    let (tables, table_events) = indexed_reflector(
        table_targets,
        watcher(Api::<NATTable>::all(client.clone()), watcher::Config::default()).default_backoff(),
    );
    let network_controller = Controller::new(networks, watcher::Config::default());
    let ctx = Arc::new(Ctx {
        client,
        node,
        partition,
        tables,
        networks: network_controller.store(),
    });
    // kube-rs needs a shutdown future that is Sync; relay the caller's through a watch channel.
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let relay = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    let stop = {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let network_stop = async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let network_controller = network_controller
        .graceful_shutdown_on(network_stop)
        .run(
            ironnet_runtime::metrics::instrument("simulatednode-network", reconcile_network),
            ironnet_runtime::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|_| async {});
    let controller = Controller::new(nics, watcher::Config::default())
        .watches_stream(table_events, |table| {
            let ns = table.namespace().unwrap_or_default();
            let table = serde_json::to_value(&table).unwrap_or(Value::Null);
            table["ips"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|ip| ip["sections"].as_array().into_iter().flatten())
                .filter_map(|s| s.pointer("/targetRef/name").and_then(Value::as_str))
                .map(|name| ObjectRef::new(name).within(&ns))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("simulatednode-networkinterface", reconcile),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| async {});
    futures::join!(controller, network_controller, relay);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realised_status_reports_spec_addresses_and_nat_ips() {
        let nic = json!({"spec": {
            "prefixes": ["10.0.5.0/24"],
            "publicIPs": [{"name": "a", "ipFamily": "IPv4", "ip": "192.0.2.7"}, {"name": "b", "ipFamily": "IPv6"}],
        }});
        let nat: BTreeSet<String> = ["192.0.2.9".to_owned()].into();
        assert_eq!(
            realised_status(&nic, &nat),
            json!({"state": "Ready", "prefixes": ["10.0.5.0/24"], "publicIPs": ["192.0.2.7"], "natIPs": ["192.0.2.9"]})
        );
        assert_eq!(
            realised_status(&json!({"spec": {}}), &BTreeSet::new()),
            json!({"state": "Ready"})
        );
    }

    #[test]
    fn peerings_are_ready_only_when_the_peer_exists_and_peers_back() {
        let net = json!({"spec": {"id": "200", "peerings": [{"name": "a", "id": "201"}, {"name": "b", "id": "202"}]}});
        let all = vec![(200, vec![201, 202]), (201, vec![200]), (202, vec![])];
        assert_eq!(
            peering_states(&net, &all),
            vec![
                json!({"id": 201, "state": "Ready"}),
                json!({"id": 202, "state": "Pending"})
            ]
        );
        assert!(peering_states(&json!({"spec": {"id": "200"}}), &all).is_empty());
    }

    #[test]
    fn empty_lists_match_absent_fields() {
        let desired = json!({"state": "Ready"});
        assert!(status_matches(
            &json!({"state": "Ready", "publicIPs": []}),
            &desired
        ));
        assert!(!status_matches(&json!({"state": "Pending"}), &desired));
        assert!(!status_matches(
            &json!({"state": "Ready", "natIPs": ["192.0.2.1"]}),
            &desired
        ));
    }
}
