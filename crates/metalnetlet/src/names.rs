//! Names, finalizers, field managers and origins shared by metalnetlet's controllers (upstream
//! ironcore-net `metalnetlet/controllers/common.go`).

use ironnet_runtime::origin::Origin;

/// Field manager of the server-side applies of metalnet objects.
pub const METALNET_FIELD_MANAGER: &str = "metalnetlet.apinet.ironcore.dev/controller-manager";

/// Label on apinet Nodes naming their partition.
pub const PARTITION_LABEL: &str = "topology.core.apinet.ironcore.dev/partition";

/// Finalizer on metalnet (core/v1) Nodes: their apinet Node is deleted first.
pub const NODE_FINALIZER: &str = "apinet.ironcore.dev/node";

/// Origin of metalnet Networks (source: apinet Network).
pub const NETWORK_ORIGIN: Origin = Origin {
    name: "metalnetlet.ironcore.dev/network",
};
/// Origin of metalnet NetworkInterfaces (source: apinet NetworkInterface).
pub const NETWORK_INTERFACE_ORIGIN: Origin = Origin {
    name: "metalnetlet.ironcore.dev/networkinterface",
};
/// Origin of metalnet LoadBalancers (source: apinet Instance).
pub const INSTANCE_ORIGIN: Origin = Origin {
    name: "metalnetlet.ironcore.dev/instance",
};

/// The finalizer metalnetlet of `partition` puts on apinet Networks, NetworkInterfaces and Instances.
pub fn partition_finalizer(partition: &str) -> String {
    format!("partition.metalnetlet.apinet.ironcore.dev/{partition}")
}

/// The field manager of the apinet Node applies of `partition`.
pub fn partition_field_manager(partition: &str) -> String {
    format!("partition.metalnetlet.apinet.ironcore.dev/{partition}")
}

/// The apinet Node name of metalnet node `node` in `partition`: `<partition>.<node>`.
pub fn partition_node_name(partition: &str, node: &str) -> String {
    format!("{partition}.{node}")
}

/// The metalnet node name of apinet Node `name`, if it belongs to `partition` (`<partition>.<node>` with a
/// non-empty `<node>`).
///
/// Upstream also accepts `"<partition>."`, the name it (wrongly) deletes when a metalnet node is not found;
/// no metalnet node has an empty name, so such a name belongs to no node here.
pub fn parse_node_name<'a>(partition: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix(partition)
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|node| !node.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip_within_the_partition_only() {
        assert_eq!(partition_node_name("p", "n1"), "p.n1");
        assert_eq!(parse_node_name("p", "p.n1"), Some("n1"));
        assert_eq!(parse_node_name("p", "p.a.b"), Some("a.b"));
        assert_eq!(parse_node_name("p", "q.n1"), None);
        assert_eq!(
            parse_node_name("p", "pp.n1"),
            None,
            "a longer partition name is another partition"
        );
        assert_eq!(parse_node_name("p", "p."), None);
        assert_eq!(parse_node_name("p", "p"), None);
        assert_eq!(
            partition_finalizer("test-metalnetlet"),
            "partition.metalnetlet.apinet.ironcore.dev/test-metalnetlet"
        );
    }
}
