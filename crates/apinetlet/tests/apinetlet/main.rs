//! apinetlet against the real in-process API server (with VNI and public-IP allocation) and the real
//! controller-manager, both on one embedded store.

mod common;
mod events;
mod loadbalancer;
mod natgateway;
mod network;
mod networkinterface;
mod networkpolicy;
mod virtualip;
