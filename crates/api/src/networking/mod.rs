//! `networking.ironcore.dev/v1alpha1`: the user-facing networking API of IronCore.

pub mod ipam;
pub mod loadbalancer;
pub mod loadbalancerrouting;
pub mod natgateway;
pub mod network;
pub mod networkinterface;
pub mod networkpolicy;
pub mod virtualip;

pub use loadbalancer::{LoadBalancer, LoadBalancerSpec, LoadBalancerStatus};
pub use loadbalancerrouting::{LoadBalancerRouting, LoadBalancerRoutingFields};
pub use natgateway::{NATGateway, NATGatewaySpec, NATGatewayStatus};
pub use network::{Network, NetworkSpec, NetworkStatus};
pub use networkinterface::{NetworkInterface, NetworkInterfaceSpec, NetworkInterfaceStatus};
pub use networkpolicy::{NetworkPolicy, NetworkPolicySpec, NetworkPolicyStatus};
pub use virtualip::{VirtualIP, VirtualIPSpec, VirtualIPStatus};
