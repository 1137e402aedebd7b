//! ironnet's control-plane reconcilers.
//!
//! Every controller is a thin kube-rs shell over a pure decision function in this crate: the decision
//! functions take plain views of the objects involved and return what has to be written, so they can be tested
//! exhaustively without an API server. A decision module and the reconciler over it share a name
//! ([`placement`] and [`reconcilers::placement`], [`nat::allocation`] and [`reconcilers::nat_allocation`]).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod allocation_gc;
pub mod apinet_loadbalancer;
pub mod daemonset;
pub mod ephemeral;
pub mod loadbalancer_routing;
pub mod manager;
pub mod nat;
pub mod net;
pub mod network_policy;
pub mod peering;
pub mod placement;
pub mod protection;
pub mod reconcilers;
pub mod release;
pub mod selector;
pub mod simulated_node;

pub use manager::{ControllerConfig, run};
