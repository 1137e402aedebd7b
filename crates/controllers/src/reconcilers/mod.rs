//! kube-rs reconcilers: thin shells that read the objects involved, call a pure decision function and write
//! only what differs.

pub mod allocation_gc;
pub mod apinet_loadbalancer;
pub mod daemonset;
pub mod ephemeral_prefix;
pub mod ephemeral_vip;
pub mod loadbalancer_routing;
pub mod nat_allocation;
pub mod nat_autoscaler;
pub mod nat_release;
pub mod network_policy;
pub mod peering;
pub mod placement;
pub mod protection;
pub mod release;

use std::time::Duration;

/// The reporting controller of the controller-manager's Events (`kubectl describe`'s "From"); the instance
/// scheduler reports as upstream's `instance-scheduler` ([`placement::CONTROLLER_NAME`]).
pub const EVENT_REPORTER: &str = "controller-manager";

/// How long fan-in controllers (one object derived from all interfaces of a Network: LB routing,
/// NetworkPolicy rules, NATGateway tables) wait for further triggers before reconciling.
///
/// Attaching a Network's interfaces sends a burst of interface events, each of which re-triggers every
/// such object on the Network; without a window each event cost a reconcile and usually a write, which
/// every watcher then decoded. The window is trailing (kube-rs resets it on every trigger), so a result
/// is at most this much later than the last change it reflects.
pub(crate) const FAN_IN_DEBOUNCE: Duration = Duration::from_millis(200);
