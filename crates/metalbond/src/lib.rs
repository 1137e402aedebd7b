//! metalbond: route distribution between hypervisors, wire-compatible with IronCore metalbond.
//!
//! Hypervisors announce `VNI: overlay prefix → underlay next hop` routes to one or more metalbond servers, which
//! reflect every route to the other clients subscribed to that VNI. The crate provides:
//!
//! - [`codec`]: the framing (4-byte header + proto3 payload) and message types, byte-exact with upstream;
//! - [`session`]: the per-connection state machine and keepalive/hold timers (sans I/O);
//! - [`table`]: the route table keyed by VNI, destination and next hop, with the set of providers;
//! - [`MetalBond`]: an instance (client, server or both) with the node agent's API — subscribe, unsubscribe,
//!   announce, withdraw and a stream of [`RouteEvent`]s;
//! - [`http`]: the route table view (`/`, `/routes.json`, `/routes.yaml`);
//! - [`cli`]: the `metalbond server|client` command line;
//! - [`tls`]: optional mutual TLS between peers;
//! - [`metrics`]: Prometheus metrics (peers by state, routes per VNI, updates).
//!
//! Deviations from upstream (bugs fixed) are listed in `docs/compatibility.md`; the protocol is described in
//! `docs/metalbond.md`.

// The codec reads lengths from peers: a silent `as` truncation is a bug; every cast that cannot truncate says why
// where it is allowed.
#![deny(clippy::cast_possible_truncation)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
pub mod codec;
pub mod config;
mod connection;
mod engine;
pub mod http;
mod instance;
pub mod metrics;
mod outbox;
pub mod route;
pub mod session;
pub mod table;
pub mod tls;

/// Generated protobuf types of `proto/metalbond.proto` (package `metalbond`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/metalbond.rs"));
}

pub use codec::{Action, CodecError, FrameView, Message, MessageCodec, MessageType};
pub use config::{Config, ConfigError};
pub use connection::ConnectionError;
pub use engine::{EngineError, RouteEvent};
pub use instance::{Error, MetalBond};
pub use ironnet_vni::VniError;
pub use route::{NextHop, NextHopType, Route, RouteError, RouteFault, Vni};
pub use session::{ConnectionState, Direction, Session, SessionError, SessionTimers};
pub use table::{RouteTable, TableError};
pub use tls::{TlsConfig, TlsError};
