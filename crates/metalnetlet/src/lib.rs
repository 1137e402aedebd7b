//! metalnetlet: translates `core.apinet.ironcore.dev` objects into the per-node
//! `networking.metalnet.ironcore.dev` objects of one partition and writes their status back.
//!
//! One metalnetlet serves one partition: the hypervisors registered as core/v1 Nodes on the metalnet API
//! server. It
//!
//! - mirrors every metalnet Node `n` as apinet Node `<partition>.<n>` (so the scheduler can place
//!   LoadBalancer instances and interfaces on it);
//! - gives every apinet Network a metalnet Network named by its UID (VNI, peered VNIs and prefixes) and reports
//!   the peerings the nodes realised under `status.peerings[<partition>]`;
//! - gives every apinet NetworkInterface on a node of the partition a metalnet NetworkInterface named by its UID
//!   (IPs, prefixes, virtual IP, NAT, load-balancer targets, firewall rules) and mirrors its state back;
//! - gives every LoadBalancer Instance on a node of the partition one metalnet LoadBalancer per IP.
//!
//! The mappings are pure functions ([`firewall`], [`network`], [`networkinterface`], [`instance`]) with unit
//! tests; the kube-rs reconcilers in [`reconcilers`] read the shared caches, call them and write only what
//! differs. [`run()`] starts everything. Behaviour follows upstream ironcore-net's metalnetlet
//! (`metalnetlet/controllers/*.go`); deviations are listed in `docs/compatibility.md`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod args;
pub mod firewall;
pub mod instance;
pub mod names;
pub mod network;
pub mod networkinterface;
pub mod reconcilers;
mod run;

pub use args::MetalnetletArgs;
pub use run::{MetalnetletConfig, lease_name, run};
