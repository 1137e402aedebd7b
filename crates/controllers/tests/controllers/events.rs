//! Events against the real API server, read back through both Event APIs and shown by the real
//! `kubectl describe` over TCP: the shared recorder folds repeats into one Event with a count and keeps a new
//! message apart, a refused Event is the API server's error, and the peering controller says why a one-sided
//! peering waits.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common;

use common::server;
use ironnet_api::networking::Network;
use ironnet_apiserver::ApiServer;
use ironnet_runtime::events::{EventRecorder, Occurrence};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Serves `server` on a loopback port until the returned sender is dropped; returns a kubeconfig for it.
async fn serve_tcp(server: &ApiServer, dir: &Path) -> (PathBuf, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = server.clone();
    tokio::spawn(async move {
        let _ = serving
            .serve_with_shutdown(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    let path = dir.join("kubeconfig");
    ironnet_apiserver::kubeconfig::write(&path, &format!("http://{addr}")).unwrap();
    (path, tx)
}

/// `kubectl describe networks.networking.ironcore.dev <name>` in namespace default.
async fn describe_network(kubeconfig: &Path, name: &str) -> String {
    let home = kubeconfig.parent().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(home.join("kubectl-cache"))
            .args([
                "describe",
                "networks.networking.ironcore.dev",
                name,
                "-n",
                "default",
            ])
            .env("HOME", home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kubectl describe timed out")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl describe failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The line of `kubectl describe`'s Events section that carries `text`.
fn event_line<'a>(described: &'a str, text: &str) -> &'a str {
    described
        .split_once("\nEvents:")
        .unwrap_or_else(|| panic!("no Events section in\n{described}"))
        .1
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no event line with {text:?} in\n{described}"))
}

fn network(name: &str, peers: &[&str]) -> Network {
    let peerings: Vec<_> = peers
        .iter()
        .map(|n| json!({"name": format!("to-{n}"), "networkRef": {"name": n}}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
        "metadata": {"name": name}, "spec": {"peerings": peerings},
    }))
    .unwrap()
}

async fn create_available(api: &Api<Network>, name: &str, peers: &[&str]) -> Network {
    api.create(&PostParams::default(), &network(name, peers))
        .await
        .unwrap();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Available"}})),
    )
    .await
    .unwrap()
}

/// The events.k8s.io Events regarding `default/<name>`.
async fn events_regarding(client: &kube::Client, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default().fields(&format!("regarding.name={name}")))
        .await
        .unwrap()
        .items
}

fn with_note<'a>(events: &'a [Event], note: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.note.as_deref() == Some(note))
        .collect()
}

fn count(e: &Event) -> i32 {
    e.series.as_ref().map_or(1, |s| s.count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_fold_into_one_event_with_a_count_and_a_new_message_is_a_new_event() {
    let (client, server, dir) = server().await;
    let (kubeconfig, _serving) = serve_tcp(&server, dir.path()).await;
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    let net = nets
        .create(&PostParams::default(), &network("subject", &[]))
        .await
        .unwrap();
    let recorder = EventRecorder::new(client.clone(), "events-test");

    let empty = "No free address in the pool";
    for _ in 0..3 {
        recorder
            .record(&net, Occurrence::warning("PoolExhausted", "Allocate", empty))
            .await;
    }
    let other = "No free address in the pool, said differently";
    recorder
        .record(&net, Occurrence::warning("PoolExhausted", "Allocate", other))
        .await;
    // Recorded only when the message changes.
    for note in ["Applied to 1", "Applied to 1", "Applied to 2", "Applied to 2"] {
        recorder
            .record_change(&net, Occurrence::normal("PolicyApplied", "Apply", note))
            .await;
    }

    // The recorder writes in the background, in order: once the last occurrence is there, all are.
    common::eventually("the last recorded Event", || async {
        !with_note(&events_regarding(&client, "subject").await, "Applied to 2").is_empty()
    })
    .await;
    let events = events_regarding(&client, "subject").await;
    assert_eq!(events.len(), 4, "{events:#?}");
    let repeated = with_note(&events, empty);
    assert_eq!(repeated.len(), 1, "{events:#?}");
    assert_eq!(count(repeated[0]), 3);
    assert!(
        repeated[0].series.as_ref().unwrap().last_observed_time.0
            >= repeated[0].event_time.as_ref().unwrap().0
    );
    for note in [other, "Applied to 1", "Applied to 2"] {
        let once = with_note(&events, note);
        assert_eq!(once.len(), 1, "{events:#?}");
        assert!(once[0].series.is_none(), "{events:#?}");
    }
    let e = repeated[0];
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.reporting_controller.as_deref(), Some("events-test"));
    let regarding = e.regarding.as_ref().unwrap();
    assert_eq!(regarding.kind.as_deref(), Some("Network"));
    assert_eq!(regarding.uid, net.metadata.uid);

    // The same Events through core/v1, as kubectl describe reads them.
    let core = Api::<CoreEvent>::namespaced(client.clone(), "default")
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind=Network,involvedObject.name=subject,involvedObject.uid={}",
            net.metadata.uid.as_deref().unwrap()
        )))
        .await
        .unwrap()
        .items;
    assert_eq!(core.len(), 4);
    let described = describe_network(&kubeconfig, "subject").await;
    let line = event_line(&described, empty);
    assert!(
        line.contains("Warning") && line.contains("PoolExhausted") && line.contains("events-test"),
        "{line}"
    );
    assert!(line.contains("(x3 over"), "{line}");
    assert!(!event_line(&described, other).contains("(x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_sided_peering_records_why_it_waits() {
    let (client, server, dir) = server().await;
    let (kubeconfig, _serving) = serve_tcp(&server, dir.path()).await;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::reconcilers::peering::run(
        ironnet_runtime::informer::Informers::new(client.clone()),
        2,
        async move {
            let _ = rx.await;
        },
    ));
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    create_available(&nets, "red", &["blue"]).await;

    let missing = "Peering to-blue: waiting for Network default/blue to exist";
    common::eventually("PeeringPending for a missing peer", || async {
        !with_note(&events_regarding(&client, "red").await, missing).is_empty()
    })
    .await;

    // blue exists but does not peer back; red is reconciled again on its next change.
    create_available(&nets, "blue", &[]).await;
    let one_sided = "Peering to-blue: waiting for Network default/blue to declare a peering to this Network";
    for (round, want) in [1, 2, 3].into_iter().enumerate() {
        nets.patch(
            "red",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"round": round.to_string()}}})),
        )
        .await
        .unwrap();
        common::eventually(&format!("one-sided peering recorded {want} times"), || async {
            with_note(&events_regarding(&client, "red").await, one_sided)
                .first()
                .is_some_and(|e| count(e) >= want)
        })
        .await;
    }
    let events = events_regarding(&client, "red").await;
    let pending = with_note(&events, one_sided);
    assert_eq!(pending.len(), 1, "repeats fold into one Event: {events:#?}");
    assert_eq!(pending[0].type_.as_deref(), Some("Normal"));
    assert_eq!(pending[0].reason.as_deref(), Some("PeeringPending"));
    assert_eq!(
        pending[0].reporting_controller.as_deref(),
        Some("controller-manager")
    );

    // Once blue peers back the peering is mutual and red lists blue as incoming.
    nets.patch(
        "blue",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"peerings": [{"name": "to-red", "networkRef": {"name": "red"}}]}})),
    )
    .await
    .unwrap();
    common::eventually("red lists blue as incoming", || async {
        nets.get("red")
            .await
            .unwrap()
            .spec
            .incoming_peerings
            .iter()
            .any(|c| c.name == "blue")
    })
    .await;

    let described = describe_network(&kubeconfig, "red").await;
    assert!(event_line(&described, missing).contains("PeeringPending"));
    let line = event_line(&described, "to declare a peering to this Network");
    assert!(
        line.contains("Normal") && line.contains("PeeringPending") && line.contains("controller-manager"),
        "{line}"
    );
    assert!(line.contains("(x"), "{line}");
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_the_api_servers_error_and_does_not_disturb_the_series() {
    let (client, _server, _dir) = server().await;
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    let net = nets
        .create(&PostParams::default(), &network("refused", &[]))
        .await
        .unwrap();
    let recorder = EventRecorder::new(client.clone(), "events-test");
    // An object name that is no valid Event name prefix: the API server answers 422 naming the field.
    let mut regarding = kube::Resource::object_ref(&net, &());
    regarding.name = Some("Not_A_DNS_Name".into());
    let err = recorder
        .publish(
            &regarding,
            &Occurrence::normal("AddressAllocated", "Allocate", "x"),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains("metadata.name"), "{s:?}");
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    // The recorder still works for valid objects afterwards.
    recorder
        .publish(
            &kube::Resource::object_ref(&net, &()),
            &Occurrence::normal("AddressAllocated", "Allocate", "x"),
        )
        .await
        .unwrap();
    assert_eq!(events_regarding(&client, "refused").await.len(), 1);
}
