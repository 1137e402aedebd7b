//! The origins apinetlet writes on apinet objects to remember the ironcore object each was derived from
//! (upstream ironcore-net `apinetlet/controllers`); the metadata contract is [`ironnet_runtime::origin`]'s.

pub use ironnet_runtime::origin::{Origin, OriginData};

/// Origin of apinet Networks.
pub const NETWORK: Origin = Origin {
    name: "apinetlet.ironcore.dev/network",
};
/// Origin of apinet IPs (from VirtualIPs).
pub const VIRTUAL_IP: Origin = Origin {
    name: "apinetlet.ironcore.dev/virtualip",
};
/// Origin of apinet NATGateways and their autoscalers.
pub const NAT_GATEWAY: Origin = Origin {
    name: "apinetlet.ironcore.dev/natgateway",
};
/// Origin of apinet LoadBalancers and routings.
pub const LOAD_BALANCER: Origin = Origin {
    name: "apinetlet.ironcore.dev/loadbalancer",
};
/// Origin of apinet NetworkPolicies and rules.
pub const NETWORK_POLICY: Origin = Origin {
    name: "apinetlet.ironcore.dev/networkpolicy",
};
/// Origin of claimed apinet NetworkInterfaces.
pub const NETWORK_INTERFACE: Origin = Origin {
    name: "apinetlet.ironcore.dev/networkinterface",
};
