//! ironnet's dataplane service: dpservice-compatible gRPC API over TAP ports.

/// Generated protobuf messages and the tonic server and client of `dpdkironcore.v1`.
#[allow(missing_docs, clippy::all, rust_2018_idioms, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("dpdkironcore.v1");
}

pub mod config;
pub mod tap;
pub mod validate;
