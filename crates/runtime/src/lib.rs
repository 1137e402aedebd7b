//! ironnet's controller runtime: what every reconciling component (the controller-manager, apinetlet,
//! metalnetlet, metalnet) shares, so that each idea exists once.
//!
//! - [`informer`]: one watch and one indexed cache per kind per process ([`informer::Informers`]), fanned out to
//!   any number of controllers, as client-go's shared informers do;
//! - [`applied`]: skipping server-side applies that cannot change anything;
//! - [`cache`]: the indexed cache itself and its consistency contract;
//! - [`controller`]: kube-runtime's controller with its work queue observable (depth, queue time);
//! - [`health`]: the telemetry (controller metrics, API server readiness) every reconciling component serves;
//! - [`events`]: Kubernetes Events, repeats folded into series, under one reporting controller per component;
//! - [`finalizer`]: finalizers and deletions as every reconciler writes them;
//! - [`leader`]: Lease-based leader election with an injected clock;
//! - [`metrics`]: controller-runtime's controller metrics, recorded by wrapping each reconcile function;
//! - [`queue`]: the keys waiting in a controller's work queue, for the work-queue metrics;
//! - [`origin`]: the origin labels linking a derived object to its source, and the liveness check of that source;
//! - [`reconcile`]: the one reconcile error type, conflict/not-found classification and the retry policy;
//! - [`related`]: triggers that also reach the objects a watched object stopped relating to;
//! - [`shutdown`]: turning a caller's shutdown future into the `Sync` one kube-rs needs.
//!
//! The domain reconcilers live in the crates that use this one; nothing here knows what a Network is beyond
//! the index each shared kind keeps ([`informer::Informed`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![forbid(unsafe_code)]

pub mod applied;
pub mod cache;
pub mod controller;
pub mod events;
pub mod finalizer;
pub mod health;
pub mod informer;
pub mod leader;
pub mod metrics;
pub mod origin;
pub mod queue;
pub mod reconcile;
pub mod related;
pub mod shutdown;

pub use reconcile::{ReconcileError, error_policy, is_conflict, is_not_found};
