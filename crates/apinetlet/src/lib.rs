//! apinetlet: translates `networking.ironcore.dev` objects into `core.apinet.ironcore.dev` objects and writes
//! their status back.
//!
//! Every mapping is a pure function from a view of the ironcore object to the exact server-side-apply body of
//! the apinet object (and from apinet state to the ironcore status patch), so the wire format is pinned by unit
//! tests and the reconcilers ([`reconcilers`], started by [`run()`]) only fetch, call and write.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod loadbalancer;
pub mod meta;
pub mod natgateway;
pub mod network;
pub mod networkinterface;
pub mod networkpolicy;
pub mod origin;
pub mod provider_id;
pub mod reconcilers;
mod run;
pub mod virtualip;

pub use run::{ApinetletConfig, LEASE_NAME, run};

/// The apinet namespace `ironnet up` and `ironnet apinetlet` use when none is given (upstream requires
/// `--api-net-namespace`).
pub const DEFAULT_APINET_NAMESPACE: &str = "apinet-system";
