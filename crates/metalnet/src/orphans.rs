//! What a restarted metalnet finds in dpservice but the API no longer has: interfaces and load balancers whose
//! objects were deleted (their finalizer removed by hand) while metalnet was down, and claims of such
//! interfaces. Everything else in dpservice is adopted by the reconcilers as it is.

use std::collections::BTreeSet;

use kube::Resource;

use crate::agent::Agent;
use crate::reconcilers::Error;
use crate::reconcilers::networkinterface::teardown;

/// The IDs in `programmed` that no object in `known` has. Pure.
pub fn orphans<'a>(programmed: impl IntoIterator<Item = &'a str>, known: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = programmed
        .into_iter()
        .filter(|id| !known.contains(*id))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn uids<K: Resource>(objs: &[std::sync::Arc<K>]) -> BTreeSet<String> {
    objs.iter().filter_map(|o| o.meta().uid.clone()).collect()
}

/// Removes the orphans once the caches hold the first complete list (an absence before that means nothing).
pub async fn collect(agent: &Agent) -> Result<(), Error> {
    agent.interfaces.wait_ready().await;
    agent.load_balancers.wait_ready().await;
    // dpservice and the claims are read before the caches: whatever a reconcile creates meanwhile belongs to an
    // object that is in the cache by then (the cache is updated before the reconcile runs), so it is not taken
    // for an orphan.
    let listed = agent.dp.list_interfaces().await?;
    let claimed = agent.claims.all();
    let listed_lbs = agent.dp.list_load_balancers().await?;
    let interfaces = uids(&agent.interfaces.state());
    let lbs = uids(&agent.load_balancers.state());
    for id in orphans(listed.iter().map(|i| i.id.as_str()), &interfaces) {
        tracing::warn!(%id, "interface in dpservice without a NetworkInterface on this node; deleting it");
        teardown(agent, &id).await?;
    }
    for id in orphans(claimed.keys().map(String::as_str), &interfaces) {
        tracing::info!(%id, "releasing the claim of a NetworkInterface that no longer exists");
        agent.claims.release(&id)?;
    }
    for id in orphans(listed_lbs.iter().map(String::as_str), &lbs) {
        tracing::warn!(%id, "load balancer in dpservice without a LoadBalancer on this node; deleting it");
        agent.dp.delete_load_balancer(&id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unknown_ids_are_orphans() {
        let known: BTreeSet<String> = ["a".to_string(), "b".into()].into();
        assert_eq!(orphans(["c", "a", "c", "d"], &known), ["c", "d"]);
        assert!(orphans(["a", "b"], &known).is_empty());
        assert!(orphans([], &known).is_empty());
    }
}
