//! The IronCore kinds as served by ironnet's API server: per-kind strategies built from `ironnet-api`,
//! and the allocation of network IDs (VNIs) and public IP addresses in admission hooks.
//!
//! Allocation follows ironcore-net's claim-by-creation model (a `NetworkID` object per VNI, an `IPAddress`
//! object per address) but picks candidates from an in-memory index ([`alloc`], [`index`]) instead of
//! probing the store address by address, and claims them in the same store transaction as the object
//! that needs them ([`claims`], [`public_ips`]).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod alloc;
pub mod claims;
pub mod index;
pub mod metrics;
pub mod networking;
pub mod objects;
pub mod public_ips;
pub mod server;
pub mod strategy;

pub use index::ClaimIndex;
pub use server::{AllocationConfig, AssembleError, IroncoreApiServer, build, register_kinds};
pub use strategy::{KindStrategy, kinds};
