//! The controllers integration tests, one binary so the workspace links (and stores) fewer test executables.

mod common;
mod daemonset_controller;
mod ephemeral_prefix_controller;
mod ephemeral_vip_controller;
mod events;
mod ironcore_net_conformance;
mod leader_election;
mod loadbalancer_routing_controller;
mod metrics;
mod nat_allocation_controller;
mod network_conformance;
mod network_controllers;
mod network_policy_controller;
mod placement_controller;
mod release_controllers;
