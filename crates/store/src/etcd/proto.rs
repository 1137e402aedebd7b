//! Generated etcd v3 protocol types and clients (see `proto/*.proto` and `build.rs`).

#![allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]

/// etcd's `mvccpb` package: key-values and watch events.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `etcdserverpb` package: the KV and Watch services.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
