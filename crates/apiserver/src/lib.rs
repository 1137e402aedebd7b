//! A generic Kubernetes-style API server over ironnet's revisioned store.
//!
//! The server knows nothing about networking: kinds are registered as a [`ResourceDefinition`]
//! (usually from a kube-derive `CustomResourceExt::crd()`) plus a [`Strategy`] (defaulting,
//! validation, and admission hooks whose side effects commit in the object's own store
//! transaction). It speaks the Kubernetes API as kubectl 1.32 and kube-rs 5 use it: aggregated
//! discovery, OpenAPI v3, CRUD with optimistic concurrency, merge/JSON patch and server-side
//! apply, list/watch with selectors and bookmarks, Tables, finalizers, garbage collection and
//! namespace lifecycle.
//!
//! Store layout: `/registry/<group>/<plural>/[<namespace>/]<name>` with `core` as the group of
//! the core API; the value is the object's JSON without `metadata.resourceVersion`, which is the
//! key's `mod_revision`.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn ironnet_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! let server = ironnet_apiserver::ApiServer::builder(store).build().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! server.serve(listener).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod apply;
pub mod audit;
pub mod auth;
pub mod body;
pub mod builtin;
mod conn;
pub mod definition;
pub mod discovery;
pub mod error;
pub mod events;
mod gc;
mod handlers;
pub mod jsonpath;
pub mod kubeconfig;
pub mod meta;
pub mod metrics;
mod namespace;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod request;
pub mod selector;
mod server;
pub mod strategy;
pub mod table;
pub mod tls;
mod watch;

pub use definition::{DefinitionError, PrinterColumn, ResourceDefinition, Scope};
pub use error::{ApiError, GroupResource};
pub use handlers::delete::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation};
pub use meta::{Clock, SystemClock};
pub use registry::{RegisteredKind, Registry, RegistryError};
pub use server::{ApiServer, ApiServerBuilder, BuildError, ServerConfig};
pub use strategy::{AdmissionContext, DefaultStrategy, SideEffects, Strategy};
pub use watch::INITIAL_EVENTS_END;
