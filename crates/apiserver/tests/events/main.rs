//! core/v1 and events.k8s.io/v1 Events are one set of objects: an Event written by kube-rs's
//! `Recorder` (events.k8s.io/v1) shows in `kubectl describe` (core/v1 by `involvedObject`), with
//! the same uid and resourceVersion in both views, each view's field selectors, and deletes
//! through either API removing both.

use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

#[path = "../support/gadget_server.rs"]
mod support;
use support::GadgetServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_events_show_in_kubectl_describe() {
    let server = GadgetServer::start().await;
    let client = server.client();
    let gadgets: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource {
            group: "test.ironnet.dev".into(),
            version: "v1".into(),
            api_version: "test.ironnet.dev/v1".into(),
            kind: "Gadget".into(),
            plural: "gadgets".into(),
        },
    );
    let gadget = gadgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "test.ironnet.dev/v1", "kind": "Gadget", "metadata": {"name": "g1"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let reference = ObjectReference {
        api_version: Some("test.ironnet.dev/v1".into()),
        kind: Some("Gadget".into()),
        name: Some("g1".into()),
        namespace: Some("default".into()),
        uid: gadget.metadata.uid.clone(),
        ..Default::default()
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "gadget-controller".into(),
            instance: Some("gc-1".into()),
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: "Overheated".into(),
                note: Some("gadget g1 is too hot".into()),
                action: "Cooling".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .unwrap();

    // Written once, readable in both versions as the same object.
    let new_events: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let core_events: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let listed = new_events
        .list(&ListParams::default().fields("regarding.name=g1"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let new = &listed.items[0];
    let by_involved = ListParams::default().fields("involvedObject.name=g1,involvedObject.kind=Gadget");
    let core = core_events.list(&by_involved).await.unwrap().items;
    assert_eq!(core.len(), 1);
    let core = &core[0];
    assert_eq!(core.metadata.name, new.metadata.name);
    assert_eq!(core.metadata.uid, new.metadata.uid);
    assert_eq!(core.metadata.resource_version, new.metadata.resource_version);
    assert_eq!(core.message.as_deref(), Some("gadget g1 is too hot"));
    assert_eq!(core.involved_object.uid, gadget.metadata.uid);
    assert_eq!(core.reporting_component.as_deref(), Some("gadget-controller"));
    assert_eq!(core.reporting_instance.as_deref(), Some("gc-1"));
    assert_eq!(core.type_.as_deref(), Some("Warning"));
    assert!(
        core_events
            .list(&ListParams::default().fields("involvedObject.name=other"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // kubectl describe (core/v1 Events by involvedObject, read as protobuf) lists it.
    let described = server
        .kubectl_ok(&["describe", "gadget", "g1", "-n", "default"])
        .await;
    assert!(described.contains("Events:"), "{described}");
    assert!(
        described.contains("Warning")
            && described.contains("Overheated")
            && described.contains("gadget g1 is too hot"),
        "{described}"
    );

    // The recorder's repeat is a PATCH of the events.k8s.io object; the core view follows it.
    recorder
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: "Overheated".into(),
                note: Some("gadget g1 is too hot".into()),
                action: "Cooling".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .unwrap();
    let name = new.metadata.name.clone().unwrap();
    let new = new_events.get(&name).await.unwrap();
    let core = core_events.get(&name).await.unwrap();
    assert_eq!(new.series.as_ref().map(|s| s.count), Some(2), "{new:?}");
    assert_eq!(core.series.as_ref().and_then(|s| s.count), Some(2), "{core:?}");
    assert_eq!(core.metadata.resource_version, new.metadata.resource_version);

    // A core/v1 write shows through events.k8s.io, and deleting through one API removes both.
    let written: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "by-core"}, "involvedObject": {"kind": "Gadget", "name": "g1", "namespace": "default"},
        "reason": "Made", "message": "made by core", "type": "Normal", "source": {"component": "old-style"},
        "count": 3, "firstTimestamp": "2026-12-07T17:00:00Z", "lastTimestamp": "2026-12-07T17:05:00Z"
    }))
    .unwrap();
    core_events
        .create(&PostParams::default(), &written)
        .await
        .unwrap();
    let seen = new_events.get("by-core").await.unwrap();
    assert_eq!(seen.note.as_deref(), Some("made by core"));
    assert_eq!(seen.deprecated_count, Some(3));
    assert_eq!(
        seen.deprecated_source.and_then(|s| s.component).as_deref(),
        Some("old-style")
    );
    assert_eq!(seen.regarding.and_then(|r| r.name).as_deref(), Some("g1"));
    new_events
        .delete("by-core", &DeleteParams::default())
        .await
        .unwrap();
    let gone = core_events.get_opt("by-core").await.unwrap();
    assert!(gone.is_none(), "deleted through events.k8s.io, gone from core/v1");
    core_events.delete(&name, &DeleteParams::default()).await.unwrap();
    assert!(new_events.get_opt(&name).await.unwrap().is_none());
    // Creating a name that exists in the other view is AlreadyExists, not a second object.
    new_events.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "twice"}, "eventTime": "2026-12-07T17:00:00.000000Z",
        "reportingController": "c", "reportingInstance": "i", "action": "A", "reason": "R", "type": "Normal"
    })).unwrap()).await.unwrap();
    let err = core_events
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "twice"}, "involvedObject": {}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_namespace_removes_both_views() {
    let server = GadgetServer::start().await;
    let client = server.client();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "evns"}})).unwrap(),
        )
        .await
        .unwrap();
    let new_events: Api<NewEvent> = Api::namespaced(client.clone(), "evns");
    let core_events: Api<CoreEvent> = Api::namespaced(client.clone(), "evns");
    for i in 0..3 {
        new_events
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": format!("e{i}")}, "eventTime": "2026-12-07T17:00:00.000000Z",
                    "reportingController": "c", "reportingInstance": "i", "action": "A", "reason": "R", "type": "Normal"
                }))
                .unwrap(),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        core_events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    namespaces.delete("evns", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while namespaces.get_opt("evns").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace evns still there after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        core_events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        new_events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
