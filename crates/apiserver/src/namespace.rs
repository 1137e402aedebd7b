//! Namespace lifecycle: the initial namespaces, and the controller that empties a terminating
//! namespace (deleting every namespaced object in it) before releasing its `kubernetes` finalizer.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::handlers::delete::DeleteOptions;
use crate::handlers::write::Part;
use crate::meta;
use crate::request::Query;
use crate::server::Server;

impl Server {
    /// Creates the configured initial namespaces that do not exist yet.
    pub(crate) async fn bootstrap(&self) -> Result<(), ApiError> {
        let Some(kind) = self.registry.get("", "v1", "namespaces").cloned() else {
            return Ok(());
        };
        for ns in &self.config.initial_namespaces {
            if self.store.get(&kind.def.key(None, ns), None).await?.is_some() {
                continue;
            }
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self
                .create_object(&kind, None, obj, false, Some("ironnet-apiserver"))
                .await
            {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Runs the namespace controller until aborted: reacts to namespace events and rechecks
/// terminating namespaces every second while any exist.
pub(crate) async fn run(server: Arc<Server>) {
    loop {
        if let Err(e) = run_once(&server).await {
            tracing::warn!(error = %e, "namespace controller restarting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run_once(server: &Arc<Server>) -> Result<(), ApiError> {
    let Some(kind) = server.registry.get("", "v1", "namespaces").cloned() else {
        return Ok(());
    };
    let rev = server.store.current_revision().await?;
    let mut stream = server.store.watch(&kind.def.key_prefix(), rev).await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let terminating = reconcile_all(server).await?;
        tokio::select! {
            item = stream.next() => {
                let Some(item) = item else { return Ok(()) };
                item?;
            }
            _ = tick.tick(), if terminating => {}
        }
    }
}

/// Processes every terminating namespace; returns whether any remain.
async fn reconcile_all(server: &Server) -> Result<bool, ApiError> {
    let Some(kind) = server.registry.get("", "v1", "namespaces").cloned() else {
        return Ok(false);
    };
    let listed = server
        .list_objects(&kind.def, None, &Default::default(), &Query::default())
        .await?;
    let mut any = false;
    for ns in listed.items.iter().filter(|n| meta::is_deleting(n)) {
        any = true;
        let name = meta::name(ns).to_owned();
        if let Err(e) = reconcile(server, &name).await {
            tracing::debug!(namespace = %name, error = %e, "namespace cleanup step failed");
        }
    }
    Ok(any)
}

/// Deletes the namespace's contents; once empty, removes the `kubernetes` finalizer.
async fn reconcile(server: &Server, ns: &str) -> Result<(), ApiError> {
    let mut remaining = 0;
    for kind in server.registry.kinds().filter(|k| k.def.namespaced()) {
        let listed = server
            .list_objects(&kind.def, Some(ns), &Default::default(), &Query::default())
            .await?;
        for obj in listed.items {
            remaining += 1;
            if !meta::is_deleting(&obj) {
                match server
                    .delete_object(kind, Some(ns), meta::name(&obj), &DeleteOptions::background())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    // Refused while in use (e.g. a bound VirtualIP): other objects still go now, and
                    // the next pass retries once what uses it is gone.
                    Err(e) if e.code == 422 => {
                        tracing::debug!(namespace = %ns, name = %meta::name(&obj), error = %e, "delete refused; retrying later");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if remaining > 0 {
        // Check again: what we deleted may have been removed already.
        for kind in server.registry.kinds().filter(|k| k.def.namespaced()) {
            let page = server
                .store
                .list(&kind.def.namespace_prefix(Some(ns)), Default::default())
                .await?;
            if !page.items.is_empty() {
                return Ok(());
            }
        }
    }
    let Some(kind) = server.registry.get("", "v1", "namespaces").cloned() else {
        return Ok(());
    };
    let mut mutate = |cur: &Value| -> Result<Value, ApiError> {
        let mut new = cur.clone();
        new["spec"] = json!({"finalizers": []});
        Ok(new)
    };
    server
        .update_object(&kind, None, ns, Part::Main, false, None, &mut mutate)
        .await?;
    Ok(())
}
