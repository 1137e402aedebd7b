//! kube-rs 5, unmodified, against the server: in process and over TCP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::common::{TestServer, Widget, WidgetStatus, serve_tcp, server_on, tcp_client, widget};

async fn crud(client: Client) {
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &widget("k1", 3))
        .await
        .unwrap();
    assert_eq!(created.spec.size, 3);
    assert_eq!(created.metadata.generation, Some(1));
    let got = api.get("k1").await.unwrap();
    assert_eq!(got.uid(), created.uid());
    let mut changed = got.clone();
    changed.spec.size = 4;
    let replaced = api.replace("k1", &PostParams::default(), &changed).await.unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    // Replacing with the stale object conflicts.
    let err = api.replace("k1", &PostParams::default(), &got).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
    // Status.
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let w = api
        .patch_status("k1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(w.status.unwrap().conditions[0].status, "True");
    // Every patch type.
    let w = api
        .patch(
            "k1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}})),
        )
        .await
        .unwrap();
    assert_eq!(w.spec.color.as_deref(), Some("red"));
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/size", "value": 4},
        {"op": "replace", "path": "/spec/size", "value": 5}
    ]))
    .unwrap();
    let w = api
        .patch("k1", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(w.spec.size, 5);
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/size", "value": 99}])).unwrap();
    let err = api
        .patch("k1", &PatchParams::default(), &Patch::<()>::Json(failing))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err:?}");
    let err = api
        .patch(
            "k1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 1}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 415), "{err:?}");
    let applied = json!({"apiVersion": "test.ironnet.dev/v1", "kind": "Widget", "metadata": {"name": "k2"}, "spec": {"size": 7}});
    let w = api
        .patch("k2", &PatchParams::apply("tester"), &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(w.spec.size, 7);
    assert_eq!(
        w.metadata.managed_fields.as_ref().unwrap()[0].manager.as_deref(),
        Some("tester")
    );
    // Finalizer helper (JSON patch with test ops).
    api.delete("k2", &DeleteParams::default()).await.unwrap();
    api.delete("k1", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("k1").await.unwrap().is_none());
    // Built-ins: Namespace and Lease (with strategic merge patch for kube-lease-manager).
    let nss: Api<Namespace> = Api::all(client.clone());
    assert!(nss.get("default").await.unwrap().status.unwrap().phase.as_deref() == Some("Active"));
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let l = leases
        .patch(
            "l",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await
        .unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

async fn typed_crud_in_process(t: TestServer) {
    crud(t.client()).await;
}

async fn typed_crud_over_tcp(t: TestServer) {
    let (addr, task) = t.serve_tcp().await;
    crud(tcp_client(addr)).await;
    task.stop().await;
}

async fn server_side_apply_conflicts_and_force(t: TestServer) {
    let api: Api<Widget> = Api::namespaced(t.client(), "default");
    let a = json!({"apiVersion": "test.ironnet.dev/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"size": 1, "color": "red"}});
    let first = api
        .patch("s", &PatchParams::apply("alice"), &Patch::Apply(&a))
        .await
        .unwrap();
    let again = api
        .patch("s", &PatchParams::apply("alice"), &Patch::Apply(&a))
        .await
        .unwrap();
    assert_eq!(
        first.resource_version(),
        again.resource_version(),
        "re-applying is a no-op"
    );
    let b = json!({"apiVersion": "test.ironnet.dev/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"size": 2}});
    let err = api
        .patch("s", &PatchParams::apply("bob"), &Patch::Apply(&b))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(s.message.contains("conflict with \"alice\""), "{}", s.message);
        }
        other => panic!("{other:?}"),
    }
    let forced = api
        .patch("s", &PatchParams::apply("bob").force(), &Patch::Apply(&b))
        .await
        .unwrap();
    assert_eq!(forced.spec.size, 2);
    // Alice omits color: it is removed; size now belongs to bob and stays.
    let a2 = json!({"apiVersion": "test.ironnet.dev/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"size": 2}});
    let w = api
        .patch("s", &PatchParams::apply("alice"), &Patch::Apply(&a2))
        .await
        .unwrap();
    assert_eq!(w.spec.color, None);
    let err = api.patch("s", &PatchParams::default(), &Patch::Apply(&a2)).await;
    assert!(err.is_err(), "apply needs a field manager");
}

async fn controller_reconciles_once_per_change(t: TestServer) {
    let client = t.client();
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &widget("c1", 1))
        .await
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    struct Ctx {
        api: Api<Widget>,
        count: Arc<AtomicUsize>,
    }
    async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
        ctx.count.fetch_add(1, Ordering::SeqCst);
        // An unconditional patch: must not cause a new event when nothing changes.
        let status = json!({"status": WidgetStatus { conditions: vec![], observed: w.metadata.generation }});
        ctx.api
            .patch_status(&w.name_any(), &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        ctx.api
            .patch(
                &w.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}})),
            )
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_secs(1))
    }
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        count: count.clone(),
    });
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default().timeout(5))
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = count.load(Ordering::SeqCst);
    // The reconciler's own writes cause at most a couple of follow-ups, then it is quiet.
    assert!((1..=3).contains(&settled), "reconciled {settled} times");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count.load(Ordering::SeqCst), settled, "hot loop");
    api.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = count.load(Ordering::SeqCst);
    assert!(after > settled && after <= settled + 3, "{settled} → {after}");
    let w = api.get("c1").await.unwrap();
    assert_eq!(w.status.unwrap().observed, Some(2));
    controller.abort();
}

/// A reflector over TCP survives an API server restart on the same store and port, and a
/// compaction past its revision (it relists on the in-stream 410). `open` opens (or reconnects
/// to) the same store each time it is called.
async fn reflector_survives_restart_and_compaction<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn ironnet_store::Store>>,
{
    let store = open().await;
    let server = server_on(store.clone()).await;
    let (addr, task) = serve_tcp(&server, 0).await;
    let client = tcp_client(addr);
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &widget("r1", 1))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<Widget>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().timeout(3)),
    )
    .default_backoff()
    .applied_objects();
    let watch_task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        loop {
            match s.try_next().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => eprintln!("watcher error (retried): {e}"),
            }
        }
    });
    let wait_for = |n: usize, reader: reflector::Store<Widget>| async move {
        for _ in 0..200 {
            if reader.state().len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("reflector has {} objects, want {n}", reader.state().len());
    };
    wait_for(1, reader.clone()).await;

    // Restart: stop serving, drop server and store, reopen on the same port and store.
    task.stop().await;
    drop(server);
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = open().await;
    let server = server_on(store.clone()).await;
    let (_, task) = serve_tcp(&server, addr.port()).await;
    let api2: Api<Widget> = Api::namespaced(tcp_client(addr), "default");
    api2.create(&PostParams::default(), &widget("r2", 1))
        .await
        .unwrap();
    wait_for(2, reader.clone()).await;

    // Compaction past the watcher's revision: it relists (410 in-stream) and converges.
    for i in 3..8 {
        api2.create(&PostParams::default(), &widget(&format!("r{i}"), 1))
            .await
            .unwrap();
        api2.delete(&format!("r{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    store
        .compact(store.current_revision().await.unwrap())
        .await
        .unwrap();
    api2.create(&PostParams::default(), &widget("r9", 1))
        .await
        .unwrap();
    wait_for(3, reader.clone()).await;
    watch_task.abort();
    task.stop().await;
}

#[tokio::test]
async fn reflector_survives_restart_and_compaction_on_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    reflector_survives_restart_and_compaction(|| {
        let path = path.clone();
        async move { crate::common::open_store(&path) }
    })
    .await;
}

#[tokio::test]
async fn reflector_survives_restart_and_compaction_on_etcd() {
    // Started on the test thread: the helper ties etcd's life to the thread that started it.
    let etcd = ironnet_store::testing::EtcdProcess::start().unwrap();
    let endpoint = etcd.endpoint().to_owned();
    reflector_survives_restart_and_compaction(|| {
        let config = ironnet_store::StoreConfig::Etcd {
            endpoints: vec![endpoint.clone()],
            key_prefix: "/ironnet".into(),
        };
        async move { ironnet_store::open(config).await.unwrap() }
    })
    .await;
    drop(etcd);
}

crate::on_both_stores!(tokio::test; typed_crud_in_process, typed_crud_over_tcp, server_side_apply_conflicts_and_force, controller_reconciles_once_per_change);
