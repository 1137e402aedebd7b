//! Well-known labels, annotations, finalizers, field owners and RBAC names of ironcore and ironcore-net.

/// Annotation marking an ephemeral object's manager (value [`DEFAULT_EPHEMERAL_MANAGER`]).
pub const EPHEMERAL_MANAGED_BY_ANNOTATION: &str = "common.ironcore.dev/ephemeral-managed-by";
/// The value of [`EPHEMERAL_MANAGED_BY_ANNOTATION`] set by ironcore's ephemeral controllers.
pub const DEFAULT_EPHEMERAL_MANAGER: &str = "ephemeral-manager";
/// Annotation marking an object as managed externally.
pub const MANAGED_BY_ANNOTATION: &str = "common.ironcore.dev/managed-by";
/// Label letting poollets reconcile selectively.
pub const WATCH_FILTER_LABEL: &str = "common.ironcore.dev/watch-filter";
/// Annotation requesting a reconcile (RFC 3339 nano timestamp).
pub const RECONCILE_REQUESTED_AT_ANNOTATION: &str = "reconcile.common.ironcore.dev/requested-at";
/// Finalizer the network-protection controller puts on every ironcore Network.
pub const NETWORK_FINALIZER: &str = "networking.ironcore.dev/network";
/// Finalizer machinepoollet puts on Machines.
pub const MACHINEPOOLLET_MACHINE_FINALIZER: &str = "machinepoollet.ironcore.dev/machine";
/// RBAC group of ironcore network plugins.
pub const NETWORK_PLUGINS_GROUP: &str = "networking.ironcore.dev:system:networkplugins";
/// User-name prefix of ironcore network plugins.
pub const NETWORK_PLUGIN_USER_NAME_PREFIX: &str = "networking.ironcore.dev:system:networkplugin:";

/// The certificate common name of network plugin `name`.
pub fn network_plugin_common_name(name: &str) -> String {
    format!("{NETWORK_PLUGIN_USER_NAME_PREFIX}{name}")
}

/// Label set by the apiserver on every apinet IP: its family.
pub const IP_FAMILY_LABEL: &str = "apinet.ironcore.dev/ip-family";
/// Label set by the apiserver on every apinet IP: its address with `:` replaced by `-`.
pub const IP_LABEL: &str = "apinet.ironcore.dev/ip";
/// Label set by the DaemonSet controller on created Instances.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "apinet.ironcore.dev/controller-revision-hash";
/// Node label with the metalnetlet partition.
pub const TOPOLOGY_PARTITION_LABEL: &str = "topology.core.apinet.ironcore.dev/partition";
/// Topology key for LoadBalancer instance anti-affinity.
pub const TOPOLOGY_ZONE_LABEL: &str = "topology.core.apinet.ironcore.dev/zone";
/// Annotation requesting a reconcile of an apinet object (defined upstream, unused).
pub const APINET_RECONCILE_REQUESTED_AT_ANNOTATION: &str = "reconcile.apinet.ironcore.dev/requestedAt";
/// Finalizer added to every IPAddress at create.
pub const IP_ADDRESS_PROTECTION_FINALIZER: &str = "apinet.ironcore.dev/ipaddress-protection";
/// Finalizer apinetlet puts on ironcore Networks.
pub const APINETLET_NETWORK_FINALIZER: &str = "apinet.ironcore.dev/network";
/// Finalizer apinetlet puts on ironcore VirtualIPs.
pub const APINETLET_VIRTUAL_IP_FINALIZER: &str = "apinet.ironcore.dev/virtualip";
/// Finalizer apinetlet puts on ironcore NATGateways.
pub const APINETLET_NAT_GATEWAY_FINALIZER: &str = "apinet.ironcore.dev/natgateway";
/// Finalizer apinetlet puts on ironcore LoadBalancers.
pub const APINETLET_LOAD_BALANCER_FINALIZER: &str = "apinet.ironcore.dev/loadbalancer";
/// Finalizer apinetlet puts on ironcore NetworkPolicies.
pub const APINETLET_NETWORK_POLICY_FINALIZER: &str = "apinet.ironcore.dev/networkpolicy";
/// Finalizer apinetlet puts on ironcore NetworkInterfaces.
pub const APINETLET_NETWORK_INTERFACE_FINALIZER: &str = "apinet.ironcore.dev/networkinterface";
/// Finalizer metalnetlet puts on metalnet nodes.
pub const METALNETLET_NODE_FINALIZER: &str = "apinet.ironcore.dev/node";

/// Finalizer metalnetlet of `partition` puts on apinet Networks, NetworkInterfaces and Instances.
pub fn partition_finalizer(partition: &str) -> String {
    format!("partition.metalnetlet.apinet.ironcore.dev/{partition}")
}

/// Server-side-apply field owner of the apinet controller-manager.
pub const CONTROLLER_MANAGER_FIELD_OWNER: &str = "apinet.ironcore.dev/controller-manager";
/// Server-side-apply field owner of apinetlet.
pub const APINETLET_FIELD_OWNER: &str = "ironcore.dev/apinetlet";
/// Server-side-apply field owner of apinetlet's NetworkPolicyRule apply.
pub const NETWORK_POLICY_RULE_FIELD_OWNER: &str = "networkpolicies.networking.ironcore.dev";
/// Server-side-apply field owner of metalnetlet on metalnet objects.
pub const METALNETLET_FIELD_OWNER: &str = "metalnetlet.apinet.ironcore.dev/controller-manager";

/// Server-side-apply field owner of metalnetlet of `partition` on apinet Nodes.
pub fn partition_field_owner(partition: &str) -> String {
    format!("partition.metalnetlet.apinet.ironcore.dev/{partition}")
}

/// RBAC group of apinetlets.
pub const APINETLETS_GROUP: &str = "apinet.ironcore.dev:system:apinetlets";
/// User-name prefix of apinetlets (CN = prefix + apinet namespace).
pub const APINETLET_USER_NAME_PREFIX: &str = "apinet.ironcore.dev:system:apinetlet:";
/// RBAC group of metalnetlets.
pub const METALNETLETS_GROUP: &str = "apinet.ironcore.dev:system:metalnetlets";
/// User-name prefix of metalnetlets (CN = prefix + partition).
pub const METALNETLET_USER_NAME_PREFIX: &str = "apinet.ironcore.dev:system:metalnetlet:";

/// Finalizer metalnet puts on its NetworkInterfaces.
pub const METALNET_NETWORK_INTERFACE_FINALIZER: &str = "networking.metalnet.ironcore.dev/networkInterface";
/// Finalizer metalnet puts on its LoadBalancers.
pub const METALNET_LOAD_BALANCER_FINALIZER: &str = "networking.metalnet.ironcore.dev/loadBalancer";

/// Per-node finalizer metalnet puts on its Networks.
pub fn metalnet_network_finalizer(node: &str) -> String {
    format!("networking.metalnet.ironcore.dev/network-{node}")
}
