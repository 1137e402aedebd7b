//! Limits that keep one client from hurting the server or other clients: bounded JSON patches,
//! connection timeouts and bounds, in-flight request limits, strict collection paths and
//! query parameters, and protected namespaces. Network traffic stays on loopback.

// The shared fixtures of the `api` suite; this suite uses only some of them.
#[allow(dead_code)]
#[path = "../api/common.rs"]
mod common;

mod connections;
mod inflight;
mod metrics;
mod namespaces;
mod patch;
mod query;
mod support;
