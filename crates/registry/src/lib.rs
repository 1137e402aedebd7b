//! The IronCore kinds as served by ironnet's API server: per-kind strategies built from `ironnet-api`,
//! and the allocation of network IDs (VNIs) and public IP addresses in admission hooks.
//!
//! Allocation follows ironcore-net's claim-by-creation model (a `NetworkID` object per VNI, an `IPAddress`
//! object per address) but picks candidates from an in-memory index ([`alloc`]) instead of probing the
//! store address by address, and claims them in the same store transaction as the object that needs them.

pub mod alloc;
