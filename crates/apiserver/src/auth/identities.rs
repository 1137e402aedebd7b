//! The users and groups ironnet's own components authenticate as. `ironnet up` and
//! `ironnet token create` issue credentials with these names; the bootstrap roles bind them.
//!
//! The names follow kube's conventions: `system:` users for control-plane components (as
//! `system:kube-controller-manager`), `system:node:<name>` in `system:nodes` for node agents (as
//! the kubelet), and the admin as kubeadm's `kubernetes-admin` in `system:masters`.

/// The administrator of the admin kubeconfig (`<data-dir>/kubeconfig`), in [`ADMIN_GROUP`].
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The admin's group: allowed everything (kube's `system:masters`).
pub const ADMIN_GROUP: &str = super::SYSTEM_MASTERS;

/// The controller-manager (ironcore networking and ironcore-net controllers).
pub const CONTROLLER_MANAGER_USER: &str = "system:ironnet-controller-manager";
/// apinetlet (networking.ironcore.dev → core.apinet.ironcore.dev).
pub const APINETLET_USER: &str = "system:ironnet-apinetlet";
/// metalnetlet (core.apinet.ironcore.dev → networking.metalnet.ironcore.dev per node).
pub const METALNETLET_USER: &str = "system:ironnet-metalnetlet";
/// The simulated node agent of `ironnet up` without hypervisors; it realises what is placed on
/// its node like a node agent but writes apinet objects, so it is its own identity.
pub const SIMULATED_NODE_USER: &str = "system:ironnet-simulated-node";

/// The prefix of a node agent's (metalnet's) user name: `system:node:<node name>`.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of every node agent (kube's `system:nodes`).
pub const NODES_GROUP: &str = "system:nodes";

/// The user name of the node agent of `node`.
pub fn node_user(node: &str) -> String {
    format!("{NODE_USER_PREFIX}{node}")
}

/// The node a node agent's user name belongs to, if it is one (`system:node:hv-1` → `hv-1`).
pub fn node_name(user: &str) -> Option<&str> {
    user.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        assert_eq!(node_user("hv-1"), "system:node:hv-1");
        assert_eq!(node_name(&node_user("hv-1")), Some("hv-1"));
        assert_eq!(node_name("system:node:"), None);
        assert_eq!(node_name(ADMIN_USER), None);
    }
}
