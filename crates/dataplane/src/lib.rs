//! The pure packet pipeline of ironnet's dataplane (no I/O, no threads, no locks).
//!
//! A [`Dataplane`] owns all state of a dpservice-compatible dataplane: ports, interfaces, the VNF table of
//! underlay addresses, per-VNI routing tables, VIPs, NAT, load balancers, firewall rules and connection tracking.
//! Its owner (the `dpservice` crate's worker thread) feeds it [`Batch`]es of frames with [`Dataplane::process`],
//! calls [`Dataplane::tick`] periodically, and applies control operations (the gRPC RPCs' semantics, errors as
//! [`DpError`]) between batches. Time is passed in explicitly, in nanoseconds of a monotonic clock.
//!
//! See `docs/dataplane.md` for the design and the differences from dpservice.

// Frames come from VMs and the network: a silent `as` truncation of a length or index is a bug; every cast that
// cannot truncate says why where it is allowed.
#![deny(clippy::cast_possible_truncation)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod batch;
pub mod config;
mod control;
pub mod dataplane;
pub mod dhcp;
pub mod dhcpv6;
pub mod error;
pub mod firewall;
pub mod flow;
mod flow_index;
pub mod lpm;
pub mod maglev;
pub mod nat;
pub mod packet;
mod pipeline;
pub mod port;
mod services;
pub mod stats;
pub mod underlay;

pub use api::*;
pub use batch::{Batch, Packet, Verdict};
pub use config::{ConfigError, DataplaneConfig};
pub use dataplane::Dataplane;
pub use error::DpError;
pub use firewall::{Action, Direction, FirewallRule, PortRange, ProtocolFilter};
pub use port::{MacAddr, PortConfig, PortId, PortInfo, PortKind};
pub use stats::{DropReason, PortStats, Stats};

#[cfg(test)]
// Tests build frames from small literal lengths; the truncation lint guards the code under test.
#[allow(clippy::cast_possible_truncation)]
mod tests;
