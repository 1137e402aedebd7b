//! ironnet's dataplane service: dpservice's gRPC API (`dpdkironcore.v1`) over Linux TAP ports and
//! vhost-user VM ports.
//!
//! - [`proto`]: the generated messages, server and client of `proto/dpdk.proto`;
//! - [`validate`]: pure syntactic validation of requests (gRPC `INVALID_ARGUMENT`);
//! - [`server`]: the gRPC service, which runs control operations on the worker;
//! - [`worker`]: the thread that owns the [`ironnet_dataplane::Dataplane`] and the ports;
//! - [`port`]: a port is a [`tap`] device or a [`vhost_user`] socket a QEMU/KVM guest connects to;
//! - [`config`]: command-line flags; [`service`]: start/stop of it all;
//! - [`metrics`]: the Prometheus metrics and readiness checks served with `--metrics-bind-address`.
//!
//! See `docs/dpservice.md` for running it and for the differences from dpservice.

// gRPC requests and frames come from outside: a silent `as` truncation of a length or field is a bug; every cast
// that cannot truncate says why where it is allowed.
#![deny(clippy::cast_possible_truncation)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

/// Generated protobuf messages and the tonic server and client of `dpdkironcore.v1`.
#[allow(missing_docs, clippy::all, rust_2018_idioms, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("dpdkironcore.v1");
}

pub mod config;
pub mod convert;
pub mod metrics;
pub mod offload;
pub mod port;
pub mod server;
pub mod service;
pub mod tap;
pub mod validate;
pub mod vhost_user;
pub mod worker;

pub use config::DpServiceArgs;
pub use service::{RunningService, StartError, run};
